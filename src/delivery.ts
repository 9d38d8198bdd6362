import { PayloadTooLargeError, RepeatsUnknownError, serializeMessage } from './arguments.js';
import type { PublishOnce } from './broker.js';
import type { Core } from './core.js';
import { decodeEnvelope, encodeEnvelope, type Control, type Envelope } from './envelope.js';
import { readMissed, writeMissed, type Missed } from './replay.js';
import { EventSubscription, type EventSink, type FrameOptions } from './subscription.js';
import type { Records, SubscriptionInfo } from './records.js';
import { RecentSet } from './recent-set.js';
import { isPrivateTopic, routedTopicsOf, subscriptionIdOf, TopicRouter, topics, topicsOf } from './topics.js';

/** How many times in a row a catch-up may start over before the stream it stopped at is told to reset instead. */
const catchUpRetriesBeforeReset = 3;

/**
 * Everything between the broker and this server's streams: the streams held
 * here, the topics they listen on, what is published to the broker, what
 * arrives from it (notifications written to the streams, controls handed to
 * the lifecycle), and the catch-up from the history after an outage.
 */
export class Delivery {
  private readonly local = new Map<string, EventSubscription>();
  private readonly router: TopicRouter<EventSubscription>;
  private readonly lagListeners: Array<(lagMs: number) => void> = [];
  private controlHandler: (sub: EventSubscription, control: Control) => Promise<void> = async () => {};
  private sweepsAudience: (topic: string) => boolean = () => false;
  private inboxOpen = false;
  /** Catch-ups in a row that found the broker away again (see `catchUp`). */
  private catchUpRetries = 0;
  /** How this server's subscriptions number and report their frames: one object for all of them. */
  private readonly frames: FrameOptions;
  /** The history ids of the forwarded copies this server took lately: two servers may forward the same event here. */
  private readonly forwardedSeen = new RecentSet(4096);

  constructor(
    private readonly core: Core,
    private readonly records: Records,
  ) {
    this.router = new TopicRouter(core.broker);
    this.frames = { ownNumbering: !core.broker.history, beforeWrite: (sub, frame) => this.beforeWrite(sub, frame) };
  }

  /**
   * Subscribes to this server's inbox, where the events and controls for the
   * private audiences it holds arrive, and to everyone's topic, which every
   * stream is in: held for the server's life rather than counted per stream
   * (see `routedTopicsOf`).
   */
  async openInbox(): Promise<void> {
    await this.core.broker.subscribe([topics.server(this.core.serverId), topics.all]);
    this.inboxOpen = true;
  }

  // ---- outbound ------------------------------------------------------------

  /**
   * Sends an envelope to an audience. Notifications go through the history
   * when the broker has one (so they can be replayed); controls never do. A
   * shared audience is a broker topic; a private one is reached through the
   * inbox of each server that holds a member (`holders`, when the caller
   * knows them, else found in the presence indexes).
   */
  async publish(topic: string, envelope: Envelope, holders?: readonly string[], once?: PublishOnce): Promise<boolean> {
    const { broker, counters } = this.core;
    if (once && !broker.history) throw new RepeatsUnknownError(`The ${broker.name} broker keeps no history, so it cannot tell a repeated publish`);
    const notify = envelope.kind === 'notify';
    let inboxes: string[] | undefined;
    if (isPrivateTopic(topic)) {
      const via = [...(holders ?? (await this.holdersOf(topic)))];
      envelope = Object.assign({}, envelope, { to: topic, via });
      inboxes = via.map(topics.server);
    }
    // Assigned, not spread: V8 gives each object made by a leading spread a hidden class of its own, and this runs for every event.
    if (envelope.kind === 'notify') envelope = Object.assign({}, envelope, { at: Date.now() });
    const payload = encodeEnvelope(envelope);
    if (notify && broker.history) {
      if ((await broker.history.publish(topic, payload, inboxes, once)) === undefined) return false;
    } else if (inboxes) await Promise.all(inboxes.map((inbox) => broker.publish(inbox, payload)));
    else await broker.publish(topic, payload);
    if (notify) counters.notificationsPublished++;
    return true;
  }

  /** Sends a control to the stream of a subscription, on the server its record names. */
  async sendControl(info: SubscriptionInfo, control: Control): Promise<void> {
    await this.publish(topics.subscription(info.id), control, [info.serverId]);
  }

  /** The servers holding a member of a private audience, live or detached: one record for a subscription, else its index. */
  private async holdersOf(topic: string): Promise<string[]> {
    const id = subscriptionIdOf(topic);
    if (id !== undefined) {
      if (this.local.has(id)) return [this.core.serverId];
      const info = await this.records.read(id);
      return info ? [info.serverId] : [];
    }
    const servers = new Set<string>();
    // Any record the index lists will do: a server that turns out to hold no member drops what it gets.
    for await (const batch of this.records.find(topic, () => true)) for (const info of batch) servers.add(info.serverId);
    return [...servers];
  }

  /** Sends `selector body` to each channel, prefixed with the channel: presence notices and multi-channel sends. */
  async notifyChannels(channels: readonly string[], selector: string, body: string): Promise<void> {
    await Promise.all(channels.map((channel) => this.publish(topics.channel(channel), { kind: 'notify', selector, body, channel })));
  }

  /** A message's body text, checked against `maxMessageBytes` on every path, so no broker is handed one it would refuse. */
  body(message: unknown): string {
    const body = serializeMessage(message, this.core.options.serialize);
    const bytes = Buffer.byteLength(body);
    const limit = this.core.settings.maxMessageBytes;
    if (bytes > limit) throw new PayloadTooLargeError(`message of ${bytes} bytes is over the limit of ${limit}`);
    return body;
  }

  // ---- the streams held here -----------------------------------------------

  /** A new stream's subscription, numbered and reported as this server's frames are. */
  newSubscription(info: SubscriptionInfo, sink: EventSink): EventSubscription {
    return new EventSubscription(info, sink, this.frames);
  }

  /** Makes `sub` the stream of its subscription here (the caller ends any stream it replaces first). */
  adopt(sub: EventSubscription): void {
    this.local.set(sub.id, sub);
  }

  /** Starts delivering `sub`'s topics; resolves once events published afterwards are certain to arrive. */
  listen(sub: EventSubscription): Promise<void> {
    return this.router.add(sub, routedTopicsOf(sub.info));
  }

  /** Follows a channel change of `sub` in the topics it listens on. */
  async changeChannels(sub: EventSubscription, added: readonly string[], removed: readonly string[]): Promise<void> {
    await this.router.add(sub, added.map(topics.channel));
    await this.router.remove(sub, removed.map(topics.channel));
  }

  /**
   * Ends a stream of this server and forgets it. Returns whether it was the
   * subscription's current stream here. The router forgets it in any case: a
   * registration that raced its client's departure may have added it after
   * it was dropped, and there it would be held, collecting every event.
   */
  async drop(sub: EventSubscription): Promise<boolean> {
    const current = this.isHeld(sub);
    if (current) this.local.delete(sub.id);
    sub.close();
    await this.router.remove(sub, routedTopicsOf(sub.info));
    return current;
  }

  /** True while `sub` is its subscription's stream on this server. */
  isHeld(sub: EventSubscription): boolean {
    return this.local.get(sub.id) === sub;
  }

  /** The stream of a subscription held here. */
  get(id: string): EventSubscription | undefined {
    return this.local.get(id);
  }

  /** Every stream held here (a copy). */
  all(): EventSubscription[] {
    return [...this.local.values()];
  }

  get size(): number {
    return this.local.size;
  }

  /** Broker topics this server is subscribed to: its inbox, everyone and each channel its streams are in. */
  get brokerTopics(): number {
    return this.router.subscribedTopics.size + (this.inboxOpen ? 2 : 0);
  }

  /** How many of this server's streams are in each channel. */
  channelCounts(): Map<string, number> {
    const counts = new Map<string, number>();
    for (const sub of this.local.values()) for (const channel of sub.channels) counts.set(channel, (counts.get(channel) ?? 0) + 1);
    return counts;
  }

  // ---- inbound -------------------------------------------------------------

  /** Who acts on control messages (pulse, close, channel changes) for a stream held here. */
  onControl(handler: (sub: EventSubscription, control: Control) => Promise<void>): void {
    this.controlHandler = handler;
  }

  /**
   * Tells whether a subscription detached here belongs to a private audience:
   * then what reaches this inbox for it is passed on (see `forward`).
   */
  onSweepCheck(sweepsAudience: (topic: string) => boolean): void {
    this.sweepsAudience = sweepsAudience;
  }

  /** Calls `listener` with the lag in ms (publish on any server to the last write here) of every notification delivered here. */
  observeLag(listener: (lagMs: number) => void): void {
    this.lagListeners.push(listener);
  }

  /**
   * What the broker hands over: a notification for the streams here that
   * match, or a control for one of them. A `late` one goes to the streams
   * that were open when it was published, even those already past its id.
   */
  receive(topic: string, payload: string, id?: number, late = false): void {
    this.core.counters.brokerMessagesReceived++;
    let envelope: Envelope;
    try {
      envelope = decodeEnvelope(payload);
    } catch (error) {
      this.core.reportError(new Error(`ignored a malformed payload on topic ${topic}: ${String(error)}`));
      return;
    }
    if (envelope.lateId !== undefined) {
      if (!this.forwardedSeen.add(envelope.lateId)) return;
      id = envelope.lateId;
      late = true;
    }
    const audience = envelope.to ?? topic;
    if (envelope.to !== undefined && this.sweepsAudience(audience)) {
      void this.forward(envelope, id).catch((error) => this.core.reportError(error));
    }
    const members = this.membersOf(audience);
    if (!members) return;
    if (envelope.kind !== 'notify') {
      for (const sub of members) void this.controlHandler(sub, envelope).catch((error) => this.core.reportError(error, sub));
      return;
    }
    const { selector, body, channel, filter, at } = envelope;
    let delivered = 0;
    for (const sub of members) {
      if (filter !== undefined && !sub.hasChannel(filter)) continue;
      if (late && id !== undefined) {
        if (sub.deliverLate(id, selector, body, channel)) delivered++;
        continue;
      }
      sub.deliver(id, selector, body, channel);
      delivered++;
    }
    // Once per message and server, after the last local write: the servers' clocks must agree for this to mean much.
    if (at !== undefined && delivered > 0) for (const listener of this.lagListeners) listener(Date.now() - at);
  }

  /** The streams here in an audience: every one for everyone, the one of its id for a subscription, else the router's. */
  private membersOf(audience: string): Iterable<EventSubscription> | undefined {
    if (audience === topics.all) return this.local.values();
    const id = subscriptionIdOf(audience);
    if (id === undefined) return this.router.membersOf(audience);
    const sub = this.local.get(id);
    return sub && [sub];
  }

  /**
   * Passes on what reached this inbox for a private audience one of whose
   * subscriptions was detached here: a sender that looked it up just before
   * a resume elsewhere claimed it sent it here. It goes to the servers that
   * hold the audience now and were not sent it, as the late copy of its
   * history event, which a stream takes only if its replay did not carry it.
   */
  private async forward(envelope: Envelope, id: number | undefined): Promise<void> {
    const via = envelope.via ?? [];
    const servers = (await this.holdersOf(envelope.to!)).filter((server) => server !== this.core.serverId && !via.includes(server));
    if (servers.length === 0) return;
    const copy = encodeEnvelope({ ...envelope, via: [...via, ...servers], lateId: envelope.kind === 'notify' ? id : undefined });
    await Promise.all(servers.map((server) => this.core.broker.publish(topics.server(server), copy)));
  }

  /** A heartbeat reached a stream held here: `cmd.onHeartbeat` goes down it. */
  acceptPulse(sub: EventSubscription): void {
    sub.lastPulseAt = Date.now();
    sub.heartbeats++;
    sub.send('cmd.onHeartbeat', sub.metaJson);
  }

  // ---- outages -------------------------------------------------------------

  /** Holds back live events on every stream here, until `catchUp` writes what came before them. */
  holdEvents(): void {
    for (const sub of this.local.values()) sub.hold();
  }

  /** Subscribes again to whatever topics failed to subscribe while the broker was away. */
  retryTopics(): Promise<void> {
    return this.router.retry();
  }

  /**
   * After the broker came back, sends every stream here what pub/sub may
   * have dropped meanwhile, or `cmd.onReset` when that cannot be known. The
   * streams were held since the outage began, so their last ids are from
   * before it and nothing delivered since is lost. Fails, leaving the streams
   * not yet caught up held, if the broker is found away again meanwhile.
   */
  async catchUp(): Promise<void> {
    for (const sub of this.all()) {
      const from = sub.lastEventId;
      let missed: Missed;
      try {
        missed = await readMissed(this.core.broker.history, sub, new Set(topicsOf(sub.info)), from);
      } catch (error) {
        // Gone again (a replicated history electing a leader can outlast one call): the recovery starts over once it answers, and this stream and those after it stay held until then, rather than each told to reset.
        // A few times only: a read that always outlasts the bound (a huge backlog) must not hold every stream for good.
        if (this.core.broker.isUnavailable?.(error) && this.catchUpRetries < catchUpRetriesBeforeReset) {
          this.catchUpRetries++;
          throw error;
        }
        this.core.reportError(error, sub);
        missed = { entries: [], gap: 'the history could not be read after a broker outage' };
      }
      this.countMissed(writeMissed(sub, missed, from), missed);
      sub.release();
    }
    this.catchUpRetries = 0;
  }

  /** Counts a replay: events written again, and a gap when there was one. */
  countMissed(replayed: number, missed: Missed): void {
    this.core.counters.replayedEvents += replayed;
    if (missed.gap !== undefined) this.core.counters.replayGaps++;
  }

  private beforeWrite(sub: EventSubscription, frame: string): void {
    this.core.counters.framesWritten++;
    try {
      this.core.options.onPublish?.(sub, frame);
    } catch (error) {
      this.core.reportError(error, sub);
    }
  }
}
