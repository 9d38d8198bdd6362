import { randomBytes } from 'node:crypto';
import { MemoryBroker } from '../adapters/memory.js';
import type { Broker, BrokerStatus } from './broker.js';
import { readMissed, writeMissed, type Missed } from './replay.js';
import { decodeEnvelope, encodeEnvelope, type Control, type Envelope } from './envelope.js';
import { consoleLogger, defaults, type Logger, type ServerEventsOptions } from './options.js';
import { checkChannel, checkSelector, InvalidArgumentError, PayloadTooLargeError, serializeMessage } from './arguments.js';
import { EventSubscription, nextChannels, withChannels, type SubscriptionInfo } from './subscription.js';
import { newCounters, type ServerEventsStats } from './stats.js';
import { TopicRouter, topics, topicsOf } from './topics.js';

/**
 * ServiceStack's IServerEvents over a `Broker`. Every notification goes
 * through the broker, also to this server's own subscriptions, so one server
 * and a cluster of servers behave the same. Subscription records live in the
 * broker's presence store, so listings, heartbeats, unregisters and channel
 * changes work from any server.
 */
export class ServerEvents {
  readonly broker: Broker;
  readonly serverId: string;
  readonly idleTimeoutMs: number;
  readonly heartbeatIntervalMs: number;
  readonly houseKeepingIntervalMs: number;
  readonly notifyChannelOfSubscriptions: boolean;
  readonly maxMessageBytes: number;
  readonly maxChannelsPerSubscription: number;
  private readonly options: ServerEventsOptions;
  private readonly logger: Logger;
  private readonly local = new Map<string, EventSubscription>();
  private readonly router: TopicRouter<EventSubscription>;
  private housekeeping: NodeJS.Timeout | undefined;
  private housekeepingRun: Promise<void> | undefined;
  private brokerDown = false;
  private stopping = false;
  private readonly departures = new Set<Promise<void>>();
  private readonly counters = newCounters();
  private readonly lagListeners: Array<(lagMs: number) => void> = [];

  constructor(options: ServerEventsOptions = {}) {
    this.options = options;
    this.broker = options.broker ?? new MemoryBroker();
    this.serverId = options.serverId ?? randomBytes(6).toString('hex');
    this.idleTimeoutMs = options.idleTimeoutMs ?? defaults.idleTimeoutMs;
    this.heartbeatIntervalMs = options.heartbeatIntervalMs ?? defaults.heartbeatIntervalMs;
    this.houseKeepingIntervalMs = options.houseKeepingIntervalMs ?? defaults.houseKeepingIntervalMs;
    this.notifyChannelOfSubscriptions = options.notifyChannelOfSubscriptions ?? defaults.notifyChannelOfSubscriptions;
    this.maxMessageBytes = options.maxMessageBytes ?? defaults.maxMessageBytes;
    this.maxChannelsPerSubscription = options.maxChannelsPerSubscription ?? defaults.maxChannelsPerSubscription;
    this.logger = options.logger ?? consoleLogger;
    this.router = new TopicRouter(this.broker);
  }

  /** Connects the broker and starts the housekeeping timer. */
  async start(): Promise<void> {
    if (this.housekeeping) return;
    this.broker.onMessage((topic, payload, id) => this.receive(topic, payload, id));
    this.broker.onStatus((status) => this.brokerStatusChanged(status));
    await this.broker.connect();
    this.housekeeping = setInterval(() => void this.removeExpiredSubscriptions(), this.houseKeepingIntervalMs);
    this.housekeeping.unref();
  }

  /**
   * Ends every stream on this server (with `cmd.onLeave` to their channels),
   * stops housekeeping and closes the broker connection.
   */
  async stop(): Promise<void> {
    this.stopping = true;
    clearInterval(this.housekeeping);
    this.housekeeping = undefined;
    await this.housekeepingRun;
    try {
      const removals = await Promise.allSettled([...this.local.keys()].map((id) => this.unregister(id)));
      const failed = removals.filter((removal) => removal.status === 'rejected');
      if (failed.length > 0) {
        // Not fatal: the records expire with their leases, and the other servers announce the leaves then.
        this.logger.warn(`server-events: ${failed.length} subscriptions could not be removed on stop (${String((failed[0] as PromiseRejectedResult).reason)}); their records expire within ${this.idleTimeoutMs} ms`);
      }
      await Promise.allSettled(this.departures);
    } finally {
      await this.broker.close();
    }
  }

  /** True from the moment `stop()` is called: new streams are refused (503), so none is opened that stop() would miss. */
  get isStopping(): boolean {
    return this.stopping;
  }

  /**
   * Forgets every subscription on this server without announcing it: streams
   * end, their presence records are removed, no `cmd.onLeave` is sent.
   */
  async reset(): Promise<void> {
    await Promise.all(
      [...this.local.values()].map(async (sub) => {
        await this.broker.presence.remove(sub.id);
        await this.dropLocal(sub);
      }),
    );
  }

  // ---- notifications -------------------------------------------------------

  /** Sends to every subscription in the cluster. */
  async notifyAll(selector: string, message?: unknown): Promise<void> {
    await this.publish(topics.all, { kind: 'notify', selector: checkSelector(selector), body: this.serialize(message) });
  }

  /** Sends to every member of `channel`, prefixed `channel@` on the wire. */
  async notifyChannel(channel: string, selector: string, message?: unknown): Promise<void> {
    checkChannel(channel);
    await this.publish(topics.channel(channel), {
      kind: 'notify',
      selector: checkSelector(selector),
      body: this.serialize(message),
      channel,
    });
  }

  /** Sends to one subscription; with `channel`, only if it is in that channel. */
  async notifySubscription(subscriptionId: string, selector: string, message?: unknown, channel?: string): Promise<void> {
    await this.notifyTargeted(topics.subscription(subscriptionId), selector, message, channel);
  }

  /** Sends to every subscription of a user id; with `channel`, only those in it. */
  async notifyUserId(userId: string, selector: string, message?: unknown, channel?: string): Promise<void> {
    await this.notifyTargeted(topics.userId(userId), selector, message, channel);
  }

  /** Sends to every subscription of a user name; with `channel`, only those in it. */
  async notifyUserName(userName: string, selector: string, message?: unknown, channel?: string): Promise<void> {
    await this.notifyTargeted(topics.userName(userName), selector, message, channel);
  }

  /** Sends to every subscription of a session; with `channel`, only those in it. */
  async notifySession(sessionId: string, selector: string, message?: unknown, channel?: string): Promise<void> {
    await this.notifyTargeted(topics.session(sessionId), selector, message, channel);
  }

  private async notifyTargeted(topic: string, selector: string, message: unknown, filter?: string): Promise<void> {
    if (filter !== undefined) checkChannel(filter);
    await this.publish(topic, { kind: 'notify', selector: checkSelector(selector), body: this.serialize(message), filter });
  }

  private async notifyChannels(channels: readonly string[], selector: string, body: string): Promise<void> {
    await Promise.all(channels.map((channel) => this.publish(topics.channel(channel), { kind: 'notify', selector, body, channel })));
  }

  /** Notifications go through the history when the broker has one (so they can be replayed); controls never do. */
  private async publish(topic: string, envelope: Envelope): Promise<void> {
    const payload = encodeEnvelope(envelope.kind === 'notify' ? { ...envelope, at: Date.now() } : envelope);
    if (envelope.kind === 'notify' && this.broker.history) await this.broker.history.publish(topic, payload);
    else await this.broker.publish(topic, payload);
    if (envelope.kind === 'notify') this.counters.notificationsPublished++;
  }

  private serialize(message: unknown): string {
    const body = serializeMessage(message, this.options.serialize);
    // Checked here, on every publish path, so no broker is ever handed a message it would refuse (NATS takes 1 MB).
    const bytes = Buffer.byteLength(body);
    if (bytes > this.maxMessageBytes) throw new PayloadTooLargeError(`message of ${bytes} bytes is over the limit of ${this.maxMessageBytes}`);
    return body;
  }

  // ---- subscriptions -------------------------------------------------------

  /**
   * Adds a stream opened on this server: writes `cmd.onConnect` (when
   * `connectArgs` is given), replays what the client missed after
   * `resume.lastEventId` (or sends `cmd.onReset` when that cannot be known),
   * runs `onSubscribe`, then sends `cmd.onJoin` to every member of each of
   * its channels, itself included — unless it `resume.resumed` an existing
   * subscription, which its channels never saw leave.
   */
  async register(
    sub: EventSubscription,
    connectArgs?: Record<string, string>,
    resume: { lastEventId?: number; resumed?: boolean } = {},
  ): Promise<void> {
    const previous = this.local.get(sub.id);
    if (previous && previous !== sub) await this.dropLocal(previous);
    this.local.set(sub.id, sub);
    this.counters.totalConnections++;
    const history = this.broker.history;
    sub.ownNumbering = !history;
    sub.beforeWrite = (frame) => this.beforeWrite(sub, frame);
    // Live events wait until the replay before them is written.
    sub.hold();
    let head: number | undefined;
    let missed: Missed = { entries: [] };
    let abandoned = false;
    try {
      // Read before subscribing: every event published after this arrives live.
      head = history && resume.lastEventId === undefined ? await history.head() : undefined;
      await this.broker.presence.put(sub.id, JSON.stringify(sub.info), this.idleTimeoutMs);
      await this.router.add(sub, topicsOf(sub.info));
      abandoned = sub.isClosed;
      if (!abandoned && resume.lastEventId !== undefined) missed = await readMissed(history, sub, new Set(topicsOf(sub.info)), resume.lastEventId);
    } catch (error) {
      // Without the broker the subscription cannot work: end the stream so the client retries.
      await this.dropLocal(sub).catch(() => {});
      await this.broker.presence.remove(sub.id).catch(() => {});
      throw error;
    }
    if (abandoned) return this.abandon(sub, resume.resumed === true);
    if (resume.lastEventId !== undefined) {
      // Channel events are replayed, but what was sent to the old subscription or user id cannot be.
      if (!resume.resumed) missed.gap ??= 'a new subscription: events sent to the previous one cannot be replayed';
    } else {
      if (head !== undefined) sub.lastEventId = head;
      if (resume.resumed) missed.gap = 'resumed without a Last-Event-ID';
    }
    if (connectArgs) sub.send('cmd.onConnect', JSON.stringify(connectArgs));
    this.countMissed(writeMissed(sub, missed, resume.lastEventId), missed);
    sub.release();
    if (resume.resumed) this.counters.resumedSubscriptions++;
    this.lifecycle(resume.resumed ? 'resumed' : 'opened', sub.info, { lastEventId: resume.lastEventId, replayed: missed.entries.length, gap: missed.gap });
    await this.runHook(this.options.onSubscribe, sub);
    if (this.notifyChannelOfSubscriptions && !resume.resumed) await this.notifyChannels(sub.channels, 'cmd.onJoin', sub.metaJson);
  }

  /**
   * The client left while its registration was under way: forget the stream
   * here. A new subscription's record goes too, if it still names this
   * stream (its client never learned the id). A resumed one stays, detached
   * by the close, for the client to resume again; and a newer stream (the
   * client resuming at once) keeps what is its own.
   */
  private async abandon(sub: EventSubscription, resumed: boolean): Promise<void> {
    await this.dropLocal(sub);
    if (resumed) return;
    const record = await this.broker.presence.get(sub.id);
    if (record === undefined) return;
    if ((JSON.parse(record) as SubscriptionInfo).connectionId === sub.info.connectionId) await this.unregister(sub.id);
  }

  /**
   * After the broker came back, sends every subscription on this server what
   * pub/sub may have dropped meanwhile, or `cmd.onReset` when that cannot be
   * known. The subscriptions were held since the outage began, so their last
   * ids are from before it and nothing delivered since is lost.
   */
  private async catchUp(): Promise<void> {
    for (const sub of [...this.local.values()]) {
      const from = sub.lastEventId;
      let missed: Missed;
      try {
        missed = await readMissed(this.broker.history, sub, new Set(topicsOf(sub.info)), from);
      } catch (error) {
        this.reportError(error, sub);
        missed = { entries: [], gap: 'the history could not be read after a broker outage' };
      }
      this.countMissed(writeMissed(sub, missed, from), missed);
      sub.release();
    }
  }

  private countMissed(replayed: number, missed: Missed): void {
    this.counters.replayedEvents += replayed;
    if (missed.gap !== undefined) this.counters.replayGaps++;
  }

  /**
   * Removes a subscription held by any server: its stream ends and its
   * channels get `cmd.onLeave`. Returns its record, or `undefined` when no
   * such subscription exists.
   */
  async unregister(subscriptionId: string): Promise<SubscriptionInfo | undefined> {
    const record = await this.broker.presence.remove(subscriptionId);
    if (record === undefined) {
      // Another server already removed and announced it.
      const sub = this.local.get(subscriptionId);
      if (sub) await this.dropLocal(sub);
      return undefined;
    }
    const info = JSON.parse(record) as SubscriptionInfo;
    await this.retire(info);
    return info;
  }

  /** Ends the stream of a removed record wherever it is, then announces the departure. */
  private async retire(info: SubscriptionInfo): Promise<void> {
    this.counters.totalUnsubscriptions++;
    this.lifecycle('left', info);
    const sub = this.local.get(info.id);
    if (sub) await this.dropLocal(sub);
    else await this.publish(topics.subscription(info.id), { kind: 'close', connectionId: info.connectionId });
    if (this.notifyChannelOfSubscriptions) await this.notifyChannels(info.channels, 'cmd.onLeave', JSON.stringify(info.meta));
  }

  private isLocal(sub: EventSubscription): boolean {
    return this.local.get(sub.id) === sub;
  }

  /** Forgets a stream of this server; `unsubscribed` is false when the subscription lives on (detached or resumed). */
  private async dropLocal(sub: EventSubscription, unsubscribed = true): Promise<void> {
    const wasLocal = this.isLocal(sub);
    if (wasLocal) this.local.delete(sub.id);
    sub.close();
    // Also when it is no longer local: a registration that raced its client's departure may have added it to
    // the router after it was dropped, and there it would be held, collecting every event, for ever.
    await this.router.remove(sub, topicsOf(sub.info));
    if (wasLocal && unsubscribed) await this.runHook(this.options.onUnsubscribe, sub);
  }

  /**
   * Called when the client of a stream on this server went away. The
   * subscription is detached, not removed: its record stays (listed, with
   * its lease running) so the client can resume it on any server within the
   * idle timeout, without its channels seeing it leave and join again. If it
   * does not come back, the lease runs out and `cmd.onLeave` goes out then.
   * The work runs in the background, tracked so that `stop()` waits for it.
   */
  streamClosed(sub: EventSubscription): void {
    sub.close();
    // Already removed by this server (the close is the echo of its own end()).
    if (!this.isLocal(sub)) return;
    this.lifecycle('detached', sub.info);
    const departure = this.detach(sub)
      .catch((error) => this.reportError(error, sub))
      .finally(() => this.departures.delete(departure));
    this.departures.add(departure);
  }

  /**
   * Called by the HTTP side when a client stopped reading and its unsent
   * output passed the limit; the stream is being closed, which detaches the
   * subscription as any dropped connection does.
   */
  slowConsumerDropped(sub: EventSubscription, bufferedBytes: number): void {
    this.counters.slowConsumerDisconnects++;
    this.logger.warn(
      `server-events: dropped subscription ${sub.id} (user ${sub.info.userId}, ${sub.info.userAddress ?? 'unknown address'}): its client stopped reading with ${bufferedBytes} bytes unsent`,
    );
  }

  private async detach(sub: EventSubscription): Promise<void> {
    await this.dropLocal(sub, false);
    const record = await this.broker.presence.get(sub.id);
    if (record === undefined) return;
    const current = JSON.parse(record) as SubscriptionInfo;
    // Resumed elsewhere meanwhile: the record is no longer this stream's.
    if (current.connectionId !== sub.info.connectionId) return;
    // Conditional, so an unregister or a resume landing meanwhile wins.
    await this.broker.presence.replace(sub.id, record, JSON.stringify({ ...current, detached: true }), this.idleTimeoutMs);
  }

  /**
   * Ends the stream that holds a subscription now, wherever it is, without
   * announcing a departure: a client is resuming it on a new stream.
   */
  async takeOver(info: SubscriptionInfo): Promise<void> {
    const local = this.local.get(info.id);
    if (local) await this.dropLocal(local, false);
    else if (!info.detached) await this.publish(topics.subscription(info.id), { kind: 'close', connectionId: info.connectionId });
  }

  /**
   * A detached subscription of `sessionId` with exactly these channels: what
   * a browser's own EventSource reconnect (same URL, same cookie) resumes.
   */
  async findDetached(sessionId: string, channels: readonly string[]): Promise<SubscriptionInfo | undefined> {
    const wanted = [...channels].sort().join(',');
    const infos = await this.getAllSubscriptionInfos();
    return infos.find((i) => i.detached && i.sessionId === sessionId && [...i.channels].sort().join(',') === wanted);
  }

  /**
   * Records a heartbeat for a subscription on any server and pushes
   * `cmd.onHeartbeat` down its stream. Returns `false` for an unknown id.
   */
  async pulse(subscriptionId: string): Promise<boolean> {
    if (!(await this.broker.presence.touch(subscriptionId, this.idleTimeoutMs))) return false;
    const sub = this.local.get(subscriptionId);
    if (sub) this.acceptPulse(sub);
    else await this.publish(topics.subscription(subscriptionId), { kind: 'pulse' });
    return true;
  }

  private acceptPulse(sub: EventSubscription): void {
    sub.lastPulseAt = Date.now();
    sub.heartbeats++;
    sub.send('cmd.onHeartbeat', sub.metaJson);
  }

  /** Adds channels to a subscription on any server. Returns `false` for an unknown id. */
  subscribeToChannels(subscriptionId: string, channels: readonly string[]): Promise<boolean> {
    return this.updateChannels(subscriptionId, channels, []);
  }

  /** Removes channels from a subscription on any server. Returns `false` for an unknown id. */
  unsubscribeFromChannels(subscriptionId: string, channels: readonly string[]): Promise<boolean> {
    return this.updateChannels(subscriptionId, [], channels);
  }

  /**
   * Applies both lists in one change (removals first, as ServiceStack does)
   * and sends one `cmd.onUpdate` to the old and new channels.
   */
  async updateChannels(subscriptionId: string, subscribe: readonly string[], unsubscribe: readonly string[]): Promise<boolean> {
    [...subscribe, ...unsubscribe].forEach(checkChannel);
    const sub = this.local.get(subscriptionId);
    if (sub) {
      this.checkChannelCount(nextChannels(sub.channels, subscribe, unsubscribe));
      await this.applyChannels(sub, subscribe, unsubscribe);
      return true;
    }
    const record = await this.broker.presence.get(subscriptionId);
    if (record === undefined) return false;
    const info = JSON.parse(record) as SubscriptionInfo;
    this.checkChannelCount(nextChannels(info.channels, subscribe, unsubscribe));
    if (info.detached) return this.updateDetached(record, info, subscribe, unsubscribe);
    await this.publish(topics.subscription(subscriptionId), {
      kind: 'channels',
      subscribe: [...subscribe],
      unsubscribe: [...unsubscribe],
    });
    return true;
  }

  private checkChannelCount(channels: readonly string[]): void {
    if (channels.length > this.maxChannelsPerSubscription) throw new InvalidArgumentError(`Too many channels: at most ${this.maxChannelsPerSubscription}`);
  }

  /** No stream holds it: change the record itself (conditionally), and tell the channels. */
  private async updateDetached(record: string, info: SubscriptionInfo, subscribe: readonly string[], unsubscribe: readonly string[]): Promise<boolean> {
    const before = info.channels;
    const after = nextChannels(before, subscribe, unsubscribe);
    const updated = withChannels(info, after);
    if (!(await this.broker.presence.replace(info.id, record, JSON.stringify(updated), this.idleTimeoutMs))) {
      // Changed meanwhile (resumed, updated or removed): try again from the current state.
      return this.updateChannels(info.id, subscribe, unsubscribe);
    }
    if (this.notifyChannelOfSubscriptions) {
      await this.notifyChannels([...new Set([...before, ...after])], 'cmd.onUpdate', JSON.stringify(updated.meta));
    }
    return true;
  }

  private async applyChannels(sub: EventSubscription, subscribe: readonly string[], unsubscribe: readonly string[]): Promise<void> {
    const before = [...sub.channels];
    const after = nextChannels(before, subscribe, unsubscribe);
    if (after.length === before.length && after.every((c) => before.includes(c))) return;

    sub.setChannels(after);
    await this.router.add(sub, after.filter((c) => !before.includes(c)).map(topics.channel));
    await this.router.remove(sub, before.filter((c) => !after.includes(c)).map(topics.channel));
    // An unregister may have run meanwhile: writing the record then would bring it back.
    if (!this.isLocal(sub)) return;
    await this.broker.presence.put(sub.id, JSON.stringify(sub.info), this.idleTimeoutMs);
    if (!this.isLocal(sub)) {
      await this.broker.presence.remove(sub.id);
      return;
    }
    await this.runHook(this.options.onUpdate, sub);
    if (this.notifyChannelOfSubscriptions) {
      const merged = [...new Set([...before, ...after])];
      await this.notifyChannels(merged, 'cmd.onUpdate', sub.metaJson);
    }
  }

  // ---- listings ------------------------------------------------------------

  /** The record of a subscription on any server. */
  async getSubscriptionInfo(subscriptionId: string): Promise<SubscriptionInfo | undefined> {
    const record = await this.broker.presence.get(subscriptionId);
    return record === undefined ? undefined : (JSON.parse(record) as SubscriptionInfo);
  }

  async getSubscriptionInfosByUserId(userId: string): Promise<SubscriptionInfo[]> {
    return (await this.getAllSubscriptionInfos()).filter((info) => info.userId === userId);
  }

  /** Every live subscription in the cluster. */
  async getAllSubscriptionInfos(): Promise<SubscriptionInfo[]> {
    return (await this.broker.presence.list()).map((record) => JSON.parse(record) as SubscriptionInfo);
  }

  /** The public meta maps of subscriptions in any of `channels` (each once). */
  async getSubscriptionsDetails(channels: readonly string[]): Promise<Record<string, string>[]> {
    const infos = await this.getAllSubscriptionInfos();
    return infos.filter((info) => info.channels.some((c) => channels.includes(c))).map((info) => info.meta);
  }

  /** The public meta maps of every subscription in the cluster. */
  async getAllSubscriptionsDetails(): Promise<Record<string, string>[]> {
    return (await this.getAllSubscriptionInfos()).map((info) => info.meta);
  }

  /** False while the broker connection is lost (see `brokerStatusChanged`). */
  get brokerAvailable(): boolean {
    return !this.brokerDown;
  }

  /** How many of this server's streams are in each channel. */
  localChannelCounts(): Map<string, number> {
    const counts = new Map<string, number>();
    for (const sub of this.local.values()) for (const channel of sub.channels) counts.set(channel, (counts.get(channel) ?? 0) + 1);
    return counts;
  }

  /** A subscription whose stream is held by this server. */
  getLocalSubscription(subscriptionId: string): EventSubscription | undefined {
    return this.local.get(subscriptionId);
  }

  /** A cluster-wide counter (e.g. anonymous user ids, chat message ids). */
  getNextSequence(name: string): Promise<number> {
    return this.broker.nextSequence(name);
  }

  stats(): ServerEventsStats {
    return {
      broker: this.broker.name,
      serverId: this.serverId,
      localSubscriptions: this.local.size,
      brokerTopics: this.router.subscribedTopics.size,
      ...this.counters,
    };
  }

  // ---- housekeeping and delivery -------------------------------------------

  /**
   * Removes subscriptions whose last heartbeat is older than `idleTimeoutMs`:
   * this server's own, and those whose lease ran out because the server that
   * held them died. Runs on the housekeeping timer; exposed for tests.
   */
  removeExpiredSubscriptions(): Promise<void> {
    this.housekeepingRun ??= this.sweep()
      .catch((error) => this.reportError(error))
      .finally(() => (this.housekeepingRun = undefined));
    return this.housekeepingRun;
  }

  private async sweep(): Promise<void> {
    // Nothing can be removed while the broker is away; the outage was logged once already.
    if (this.brokerDown) return;
    const deadline = Date.now() - this.idleTimeoutMs;
    const idle = [...this.local.values()].filter((sub) => sub.lastPulseAt < deadline);
    for (const sub of idle) {
      this.counters.expiredSubscriptions++;
      this.lifecycle('expired', sub.info);
      await this.unregister(sub.id);
    }
    const batch = 100;
    for (;;) {
      const expired = await this.broker.presence.takeExpired(batch);
      for (const record of expired) {
        this.counters.expiredSubscriptions++;
        const info = JSON.parse(record) as SubscriptionInfo;
        this.lifecycle('expired', info);
        await this.retire(info);
      }
      if (expired.length < batch) break;
    }
  }

  /**
   * While the broker is away the streams stay open and notifications fail;
   * once it is back, this server's records are written again, since the
   * backend may have restarted empty.
   */
  private brokerStatusChanged(status: BrokerStatus): void {
    if (!status.connected) {
      if (this.brokerDown) return;
      this.brokerDown = true;
      this.counters.brokerOutages++;
      // Whatever arrives after the reconnect waits until the catch-up has written what came before it.
      for (const sub of this.local.values()) sub.hold();
      this.logger.warn(
        `server-events: lost the ${this.broker.name} broker (${status.reason ?? 'connection closed'}); keeping ${this.local.size} streams open and retrying`,
      );
      return;
    }
    if (!this.brokerDown) return;
    this.brokerDown = false;
    this.logger.warn(`server-events: the ${this.broker.name} broker is back; restoring ${this.local.size} presence records`);
    void Promise.all([
      ...[...this.local.values()].map((sub) => this.broker.presence.put(sub.id, JSON.stringify(sub.info), this.idleTimeoutMs)),
      this.router
        .retry()
        .catch((error) => this.reportError(error))
        .then(() => this.catchUp()),
    ]).catch((error) => this.reportError(error));
  }

  private receive(topic: string, payload: string, id?: number): void {
    this.counters.brokerMessagesReceived++;
    let envelope: Envelope;
    try {
      envelope = decodeEnvelope(payload);
    } catch (error) {
      this.reportError(new Error(`ignored a malformed payload on topic ${topic}: ${String(error)}`));
      return;
    }
    const members = this.router.membersOf(topic);
    if (!members) return;
    if (envelope.kind !== 'notify') {
      for (const sub of members) void this.control(sub, envelope).catch((error) => this.reportError(error, sub));
      return;
    }
    const { selector, body, channel, filter, at } = envelope;
    let delivered = 0;
    for (const sub of members) {
      if (filter === undefined || sub.hasChannel(filter)) {
        sub.deliver(id, selector, body, channel);
        delivered++;
      }
    }
    // Once per message and server, after the last local write: the servers' clocks must agree for this to mean much.
    if (at !== undefined && delivered > 0) for (const listener of this.lagListeners) listener(Date.now() - at);
  }

  /**
   * Calls `listener` with the delivery lag in milliseconds (publish on any
   * server to the last write on this one) of every notification this server
   * delivers. For metrics; see `serverEventsMetrics`.
   */
  observeDeliveryLag(listener: (lagMs: number) => void): void {
    this.lagListeners.push(listener);
  }

  private async control(sub: EventSubscription, control: Control): Promise<void> {
    if (control.kind === 'pulse') this.acceptPulse(sub);
    else if (control.kind === 'close') {
      // A close names the stream it is for: a newer stream of a resumed subscription stays.
      if (control.connectionId === undefined || control.connectionId === sub.info.connectionId) await this.dropLocal(sub, false);
    }
    else await this.applyChannels(sub, control.subscribe, control.unsubscribe);
  }

  private beforeWrite(sub: EventSubscription, frame: string): void {
    this.counters.framesWritten++;
    try {
      this.options.onPublish?.(sub, frame);
    } catch (error) {
      this.reportError(error, sub);
    }
  }

  private async runHook(hook: ((sub: EventSubscription) => void | Promise<void>) | undefined, sub: EventSubscription): Promise<void> {
    try {
      await hook?.(sub);
    } catch (error) {
      this.reportError(error, sub);
    }
  }

  /** One debug line per step in a subscription's life, for loggers that have `debug` (pino does). */
  private lifecycle(event: string, info: SubscriptionInfo, extra: Record<string, unknown> = {}): void {
    this.logger.debug?.(
      { event, id: info.id, userId: info.userId, address: info.userAddress, channels: info.channels, server: this.serverId, ...extra },
      `subscription ${event}`,
    );
  }

  /** Reports an error through `onError`, or logs it. */
  reportError(error: unknown, sub?: EventSubscription): void {
    this.counters.errors++;
    if (this.options.onError) this.options.onError(error, sub);
    else this.logger.error(`server-events: ${error instanceof Error ? error.message : String(error)}`);
  }
}
