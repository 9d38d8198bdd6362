import { encodeFrame } from './protocol.js';

/**
 * What the cluster knows about one subscription: the record kept in the
 * broker's presence store, readable from every server.
 */
export interface SubscriptionInfo {
  /** The subscription id: 20 characters of `[A-Za-z0-9]`. */
  id: string;
  /** The authenticated user's id, or `-N` for anonymous user N. */
  userId: string;
  userName?: string;
  displayName: string;
  /** The `ss-id` session the stream was opened with. */
  sessionId?: string;
  channels: string[];
  /** Unix time in milliseconds. */
  createdAt: number;
  isAuthenticated: boolean;
  profileUrl: string;
  /** The client address that opened the stream. */
  userAddress?: string;
  /**
   * The public, all-string map sent in `cmd.onJoin`/`onLeave`/`onUpdate`/
   * `onHeartbeat` and listed by `/event-subscribers`: userId,
   * isAuthenticated, displayName, channels, createdAt, profileUrl, plus any
   * keys added by the `onCreated` hook.
   */
  meta: Record<string, string>;
  /** The id of the server process holding the stream. */
  serverId: string;
}

/** Where a subscription's frames go: an HTTP response, in practice. */
export interface EventSink {
  write(chunk: string): unknown;
  end(): void;
}

/** Builds the public meta map of a subscription from its fields. */
export function buildMeta(info: Omit<SubscriptionInfo, 'meta'>, extra: Record<string, string> = {}): Record<string, string> {
  return {
    userId: info.userId,
    isAuthenticated: String(info.isAuthenticated),
    displayName: info.displayName,
    channels: info.channels.join(','),
    createdAt: String(info.createdAt),
    profileUrl: info.profileUrl,
    ...extra,
  };
}

/**
 * One open event stream on this server. It numbers its frames from 1 (so
 * `cmd.onConnect` is `id: 1`) and stops writing once closed.
 */
export class EventSubscription {
  /** Extra key/values added to `cmd.onConnect` only (not to the public meta). */
  readonly connectArgs: Record<string, string> = {};
  lastPulseAt = Date.now();
  private lastEventId = 0;
  private closed = false;

  constructor(
    readonly info: SubscriptionInfo,
    private readonly sink: EventSink,
  ) {}

  get id(): string {
    return this.info.id;
  }

  get channels(): readonly string[] {
    return this.info.channels;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  hasChannel(channel: string): boolean {
    return this.info.channels.includes(channel);
  }

  /** The public meta map as JSON: the body of presence commands. */
  get metaJson(): string {
    return JSON.stringify(this.info.meta);
  }

  /** Builds the next frame for this subscription (it consumes an id). */
  nextFrame(selector: string, body: string, channel?: string): string {
    return encodeFrame(++this.lastEventId, selector, body, channel);
  }

  /** Writes a frame built by `nextFrame`; does nothing once closed. */
  write(frame: string): void {
    if (!this.closed) this.sink.write(frame);
  }

  setChannels(channels: string[]): void {
    this.info.channels = channels;
    this.info.meta.channels = channels.join(',');
  }

  /** Ends the stream. Safe to call more than once. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.sink.end();
  }
}
