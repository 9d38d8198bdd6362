import type { ServerEventMessage } from '../protocol.js';

/** A message as handed to handlers: the parsed data line plus its event id. */
export interface ReceivedMessage extends ServerEventMessage {
  /** The SSE `id:` of the frame. */
  eventId: number;
}

/** What `cmd.onConnect` carries, with the two intervals as numbers. */
export interface ConnectionInfo {
  id: string;
  userId: string;
  displayName: string;
  channels: string;
  createdAt: string;
  profileUrl: string;
  isAuthenticated: string;
  unRegisterUrl?: string;
  heartbeatUrl?: string;
  updateSubscriberUrl?: string;
  heartbeatIntervalMs: number;
  idleTimeoutMs: number;
  [key: string]: unknown;
}

/** Callbacks, by the name of a `cmd.*` target or a lifecycle event. */
export interface Handlers {
  onConnect?: (info: ConnectionInfo, message: ReceivedMessage) => void;
  onJoin?: (message: ReceivedMessage) => void;
  onLeave?: (message: ReceivedMessage) => void;
  onUpdate?: (message: ReceivedMessage) => void;
  onHeartbeat?: (message: ReceivedMessage) => void;
  /** Every message that is not one of the five lifecycle commands. */
  onMessage?: (message: ReceivedMessage) => void;
  /** Errors: a failed connection, heartbeat or handler. */
  onException?: (error: unknown) => void;
  /** A new stream is being opened after the previous one ended. */
  onReconnect?: (error: unknown) => void;
  /**
   * `cmd.onReset`: events may have been missed and cannot be replayed (the
   * server's history no longer holds them). Reload the app's state.
   */
  onReset?: (body: { reason: string; lastEventId?: string }, message: ReceivedMessage) => void;
  /** Any other `cmd.{name}` message: called with its body. */
  [name: string]: ((...args: any[]) => void) | undefined;
}

/** An object whose members are called or set by `{receiverName}.{member}` messages. */
export type Receiver = Record<string, unknown> | object;

const lifecycle = new Set(['onConnect', 'onJoin', 'onLeave', 'onUpdate', 'onHeartbeat']);

export function isLifecycle(message: ServerEventMessage): boolean {
  return message.op === 'cmd' && lifecycle.has(message.target);
}

/**
 * Calls or sets `receiver[member]`: a function is called with the body, a
 * property is assigned. Falls back to a case-insensitive match, then to
 * `noSuchMethod(target, message)`, as ServiceStack's clients do.
 */
export function invokeReceiver(receiver: Receiver, message: ReceivedMessage): void {
  const target = receiver as Record<string, unknown>;
  const member = findMember(target, message.target);
  if (member === undefined) {
    const fallback = target.noSuchMethod;
    if (typeof fallback === 'function') fallback.call(receiver, message.target, message);
    return;
  }
  const value = target[member];
  if (typeof value === 'function') value.call(receiver, message.body, message);
  else target[member] = message.body;
}

function findMember(target: Record<string, unknown>, name: string): string | undefined {
  if (name in target) return name;
  const lower = name.toLowerCase();
  for (let o: object | null = target; o && o !== Object.prototype; o = Object.getPrototypeOf(o)) {
    const found = Object.getOwnPropertyNames(o).find((k) => k.toLowerCase() === lower && k !== 'constructor');
    if (found) return found;
  }
  return undefined;
}

/** Applies a `css.{property}[$selector] value` message to the page; no-op outside browsers. */
export function applyCss(message: ReceivedMessage): void {
  if (typeof document === 'undefined') return;
  const elements = message.cssSelector ? Array.from(document.querySelectorAll<HTMLElement>(message.cssSelector)) : [document.body];
  const value = typeof message.body === 'string' ? message.body : message.json;
  for (const element of elements) element.style.setProperty(message.target, value);
}
