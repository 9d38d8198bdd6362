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
  /** Names the HTTP stream that holds the subscription now; a resume gives it a new one. */
  connectionId?: string;
  /** Set while no stream holds it: the client may resume it until its lease runs out. */
  detached?: boolean;
}

/**
 * The channel list after a change: removals first, as ServiceStack does,
 * then additions in order, each once.
 */
export function nextChannels(before: readonly string[], subscribe: readonly string[], unsubscribe: readonly string[]): string[] {
  const after = before.filter((c) => !unsubscribe.includes(c));
  for (const channel of subscribe) if (!after.includes(channel)) after.push(channel);
  return after;
}

/** The meta map of `info` with its channel list changed. */
export function withChannels(info: SubscriptionInfo, channels: string[]): SubscriptionInfo {
  return { ...info, channels, meta: { ...info.meta, channels: channels.join(',') } };
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

/** An event that arrived while the subscription was held (during replay). */
interface HeldEvent {
  id: number | undefined;
  selector: string;
  body: string;
  channel?: string;
}

/**
 * One open event stream on this server.
 *
 * Frame ids: with a broker history, an event's id is its cluster-wide
 * history id, and frames outside the history (`cmd.onConnect`,
 * `cmd.onHeartbeat`, `cmd.onReset`, `send`) repeat the last id, so a
 * client's Last-Event-ID always names the last event it got. Without a
 * history, frames are numbered 1, 2, 3... per subscription, as ServiceStack
 * does. An event whose id is not above the last one written is a duplicate
 * (seen in a replay already) and is dropped.
 */
export class EventSubscription {
  /** Extra key/values added to `cmd.onConnect` only (not to the public meta). */
  readonly connectArgs: Record<string, string> = {};
  lastPulseAt = Date.now();
  /** Heartbeats this stream's client has sent: clients that send them are ServiceStack-style clients. */
  heartbeats = 0;
  /** The id of the last frame written. */
  lastEventId = 0;
  /** Numbers frames itself, for brokers without history. Set by `ServerEvents.register`. */
  ownNumbering = true;
  /** Called with every frame just before it is written. Set by `ServerEvents.register`. */
  beforeWrite: ((frame: string) => void) | undefined;
  private held: HeldEvent[] | undefined;
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

  /** Writes a frame outside the event history, e.g. a greeting from the `onSubscribe` hook. */
  send(selector: string, body: string, channel?: string): void {
    if (this.ownNumbering) this.lastEventId++;
    this.write(encodeFrame(this.lastEventId, selector, body, channel));
  }

  /** Writes a live event (or holds it back while held); drops one already written. */
  deliver(id: number | undefined, selector: string, body: string, channel?: string): void {
    if (this.held) this.held.push({ id, selector, body, channel });
    else this.replay(id, selector, body, channel);
  }

  /** Writes an event now, held or not (a replay goes before the held events); drops one already written. */
  replay(id: number | undefined, selector: string, body: string, channel?: string): void {
    const next = id ?? this.lastEventId + 1;
    if (next <= this.lastEventId) return;
    this.lastEventId = next;
    this.write(encodeFrame(next, selector, body, channel));
  }

  /** Keeps live events back (while history is replayed before them). */
  hold(): void {
    this.held ??= [];
  }

  /** Writes the events held back, skipping those the replay already sent. */
  release(): void {
    const held = this.held ?? [];
    this.held = undefined;
    for (const event of held) this.replay(event.id, event.selector, event.body, event.channel);
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

  private write(frame: string): void {
    if (this.closed) return;
    this.beforeWrite?.(frame);
    this.sink.write(frame);
  }
}
