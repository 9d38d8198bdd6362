import { encodeFrame } from './protocol.js';
import type { SubscriptionInfo } from './records.js';

/**
 * Where a subscription's frames go: an HTTP response, in practice. Each
 * `write` is handed a whole frame (or keep-alive) and must send it in one piece.
 */
export interface EventSink {
  /** Starts the stream (sends the response headers); called once, before the first frame. */
  open(): void;
  write(chunk: string): unknown;
  end(): void;
  /** Calls `listener` once when the client goes away or the stream ends. */
  onClose(listener: () => void): void;
}

/** How a subscription numbers and reports its frames; fixed when it is made. */
export interface FrameOptions {
  /** Number frames 1, 2, 3... itself, for brokers without history. Default `true`. */
  ownNumbering?: boolean;
  /** Called with every frame just before it is written. */
  beforeWrite?: (sub: EventSubscription, frame: string) => void;
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
  lastPulseAt = Date.now();
  /** Heartbeats this stream's client has sent: clients that send them are ServiceStack-style clients. */
  heartbeats = 0;
  /** The heartbeat interval this stream's client was told in `cmd.onConnect` (a hook may have changed it). */
  heartbeatIntervalMs = 0;
  /** The heartbeat the lease in the broker was last written from (see `Leases`). */
  leasedFromPulseAt = this.lastPulseAt;
  /** The id of the last frame written. */
  lastEventId = 0;
  /**
   * The newest id this stream cannot be owed late: the history's head when it
   * began, or when the history was last read for it (a replay, a catch-up),
   * since such a read carried every event up to its head.
   */
  coveredToEventId = 0;
  private held: HeldEvent[] | undefined;
  private closed = false;
  private extraConnectArgs: Record<string, string> | undefined;

  /**
   * `frames` is shared by every subscription of a server, not copied: a
   * stream is held for hours, and each field it holds is memory per
   * connection.
   */
  constructor(
    readonly info: SubscriptionInfo,
    private readonly sink: EventSink,
    private readonly frames: FrameOptions = {},
  ) {}

  /** Extra key/values added to `cmd.onConnect` only (not to the public meta). Made when first asked for. */
  get connectArgs(): Record<string, string> {
    return (this.extraConnectArgs ??= {});
  }

  /** What hooks added to `connectArgs`, without making the map when none did. */
  get addedConnectArgs(): Readonly<Record<string, string>> | undefined {
    return this.extraConnectArgs;
  }

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
    if (this.frames.ownNumbering ?? true) this.lastEventId++;
    this.write(encodeFrame(this.lastEventId, selector, body, channel));
  }

  /** Writes a live event (or holds it back while held); drops one already written. */
  deliver(id: number | undefined, selector: string, body: string, channel?: string): void {
    if (this.held) this.held.push({ id, selector, body, channel });
    else this.replay(id, selector, body, channel);
  }

  /**
   * An event that reaches this stream after later ones (see `Broker.onMessage`):
   * written at once if the stream was open when it was published and no
   * history read since has carried it, under the
   * last id when the stream is past it, so that a resume from that id still
   * replays nothing twice. Held streams take it with the rest (the catch-up
   * that releases them reads it from the history anyway). Returns whether it
   * was written or held.
   */
  deliverLate(id: number, selector: string, body: string, channel?: string): boolean {
    if (id <= this.coveredToEventId) return false;
    if (this.held || id > this.lastEventId) {
      this.deliver(id, selector, body, channel);
      return true;
    }
    this.write(encodeFrame(this.lastEventId, selector, body, channel));
    return true;
  }

  /** Writes an event now, held or not (a replay goes before the held events); drops one already written. */
  replay(id: number | undefined, selector: string, body: string, channel?: string): void {
    const next = id ?? this.lastEventId + 1;
    if (next <= this.lastEventId) return;
    this.lastEventId = next;
    this.write(encodeFrame(next, selector, body, channel));
  }

  /**
   * Where a new stream begins: after `head`, the history's newest id, read
   * while its topics were being subscribed. An event held meanwhile arrived
   * live, so it is written even if its id is not above `head`.
   */
  beginAfter(head: number): void {
    const firstHeld = this.held?.find((event) => event.id !== undefined)?.id;
    this.lastEventId = firstHeld === undefined ? head : Math.min(head, firstHeld - 1);
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
    this.frames.beforeWrite?.(this, frame);
    this.sink.write(frame);
  }
}
