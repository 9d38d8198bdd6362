import { randomBytes } from 'node:crypto';
// The embedded default: a server with no broker of its own is a cluster of one.
import { MemoryBroker } from '../adapters/memory.js';
import { checkChannel, checkSelector, publishOnceOf, type NotifyOptions } from './arguments.js';
import type { Broker } from './broker.js';
import { ChannelUpdates } from './channel-updates.js';
import { createCore, type Core } from './core.js';
import { Delivery } from './delivery.js';
import { GuardedBroker } from './guarded-broker.js';
import { Housekeeping } from './housekeeping.js';
import { setInternals } from './internals.js';
import { Leases } from './leases.js';
import { Lifecycle } from './lifecycle.js';
import { defaults, type ServerEventsOptions } from './options.js';
import { Outages } from './outages.js';
import { Records, type SubscriptionInfo } from './records.js';
import { ServerRegistry } from './servers.js';
import type { ServerEventsStats } from './stats.js';
import { topics } from './topics.js';

/**
 * ServiceStack's IServerEvents over a `Broker`: the API an application uses.
 * Every notification goes through the broker, also to this server's own
 * subscriptions, so one server and a cluster of servers behave the same.
 * Subscription records live in the broker's presence store, so listings,
 * heartbeats, unregisters and channel changes work from any server.
 *
 * The work is done by parts, each in its own file: `Records` (the
 * subscription record and its lease), `Lifecycle` (open, detach, resume,
 * leave), `Delivery` (the streams here, topics, inbound and outbound
 * messages, catch-up), `ChannelUpdates`, `Housekeeping` (the sweep) and
 * `Outages` (the broker going away and coming back).
 */
export class ServerEvents {
  /** The broker, as this server uses it: every call bounded by `brokerTimeoutMs`. */
  readonly broker: Broker;
  readonly serverId: string;
  readonly idleTimeoutMs: number;
  readonly heartbeatIntervalMs: number;
  readonly houseKeepingIntervalMs: number;
  readonly notifyChannelOfSubscriptions: boolean;
  readonly maxMessageBytes: number;
  readonly maxChannelsPerSubscription: number;
  private readonly core: Core;
  private readonly records: Records;
  private readonly delivery: Delivery;
  private readonly lifecycle: Lifecycle;
  private readonly channelUpdates: ChannelUpdates;
  private readonly housekeeping: Housekeeping;
  private readonly outages: Outages;
  private readonly servers: ServerRegistry;
  private started = false;
  private stopping = false;

  constructor(options: ServerEventsOptions = {}) {
    const broker = new GuardedBroker(options.broker ?? new MemoryBroker(), options.brokerTimeoutMs, defaults.brokerTimeoutMs);
    this.broker = broker;
    this.serverId = options.serverId ?? randomBytes(6).toString('hex');
    const core = (this.core = createCore(this.broker, this.serverId, options));
    ({
      idleTimeoutMs: this.idleTimeoutMs,
      heartbeatIntervalMs: this.heartbeatIntervalMs,
      houseKeepingIntervalMs: this.houseKeepingIntervalMs,
      notifyChannelOfSubscriptions: this.notifyChannelOfSubscriptions,
      maxMessageBytes: this.maxMessageBytes,
      maxChannelsPerSubscription: this.maxChannelsPerSubscription,
    } = core.settings);
    this.records = new Records(this.broker.presence, this.idleTimeoutMs);
    this.delivery = new Delivery(core, this.records);
    this.lifecycle = new Lifecycle(core, this.records, this.delivery);
    this.delivery.onSweepCheck((topic) => this.lifecycle.sweepsAudience(topic));
    this.channelUpdates = new ChannelUpdates(core, this.records, this.delivery);
    this.servers = new ServerRegistry(core, this.broker.presence, this.records, this.lifecycle);
    const leases = new Leases(core, this.records, this.delivery, this.lifecycle);
    this.outages = new Outages(core, broker, this.delivery, leases, this.servers);
    this.housekeeping = new Housekeeping(core, this.delivery, this.lifecycle, this.servers, leases, this.records, () => this.outages.brokerAvailable);
    this.delivery.onControl(async (sub, control) => {
      if (control.kind === 'pulse') this.delivery.acceptPulse(sub);
      else if (control.kind === 'close') await this.lifecycle.handOver(sub, control.connectionId);
      else await this.channelUpdates.apply(sub, control.subscribe, control.unsubscribe);
    });
    setInternals(this, {
      lifecycle: this.lifecycle,
      delivery: this.delivery,
      slowConsumerDropped: (id, address, userId, bufferedBytes) => {
        core.counters.slowConsumerDisconnects++;
        core.logger.warn(`server-events: dropped subscription ${id} (user ${userId}, ${address ?? 'unknown address'}): its client stopped reading with ${bufferedBytes} bytes unsent`);
      },
      reportError: (error) => core.reportError(error),
    });
  }

  /** Connects the broker and starts the housekeeping timer. */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    this.broker.onMessage((topic, payload, id, late) => this.delivery.receive(topic, payload, id, late));
    try {
      await this.broker.connect();
      await this.delivery.openInbox();
      // Registered before any stream opens, so that the cluster can sweep up after this server should it die.
      await this.servers.register();
    } catch (error) {
      this.started = false;
      throw error;
    }
    this.housekeeping.start();
  }

  /**
   * Ends every stream on this server (with `cmd.onLeave` to their channels),
   * stops housekeeping and closes the broker connection.
   */
  async stop(): Promise<void> {
    this.stopping = true;
    await this.housekeeping.stop();
    try {
      const removals = await Promise.allSettled(this.delivery.all().map((sub) => this.lifecycle.leaveOwn(sub)));
      const failed = removals.filter((removal) => removal.status === 'rejected');
      if (failed.length > 0) {
        // Not fatal: the records expire with their leases, and the other servers announce the leaves then.
        this.core.logger.warn(`server-events: ${failed.length} subscriptions could not be removed on stop (${String((failed[0] as PromiseRejectedResult).reason)}); their records expire within ${this.idleTimeoutMs} ms`);
      }
      await this.lifecycle.settle();
      // Subscriptions still detached here are left to the cluster: the registration lapses, and another server adopts them.
      await this.servers.deregister(this.lifecycle.detachedCount > 0).catch(() => {});
    } finally {
      await this.broker.close();
    }
  }

  /** True from the moment `stop()` is called: new streams are refused (503), so none is opened that stop() would miss. */
  get isStopping(): boolean {
    return this.stopping;
  }

  /** False while the broker connection is lost. */
  get brokerAvailable(): boolean {
    return this.outages.brokerAvailable;
  }

  /** Forgets every subscription on this server without announcing it: streams end, records go, no `cmd.onLeave`. */
  reset(): Promise<void> {
    return this.lifecycle.forgetAll();
  }

  // ---- notifications -------------------------------------------------------

  /**
   * Sends to every subscription in the cluster. Every `notify*` resolves
   * once the broker has taken the event, with `true`; with an
   * `idempotencyKey` (see `NotifyOptions`), with `false` when an event under
   * that key was taken within its window, by any server: this one is then
   * dropped. A call that rejected (the broker did not answer in time) may
   * still have been carried out: repeating it with the same key is safe.
   */
  async notifyAll(selector: string, message?: unknown, options?: NotifyOptions): Promise<boolean> {
    return this.delivery.publish(topics.all, { kind: 'notify', selector: checkSelector(selector), body: this.delivery.body(message) }, undefined, publishOnceOf(options));
  }

  /** Sends to every member of `channel`, prefixed `channel@` on the wire. */
  async notifyChannel(channel: string, selector: string, message?: unknown, options?: NotifyOptions): Promise<boolean> {
    checkChannel(channel);
    const envelope = { kind: 'notify', selector: checkSelector(selector), body: this.delivery.body(message), channel } as const;
    return this.delivery.publish(topics.channel(channel), envelope, undefined, publishOnceOf(options));
  }

  /** Sends to one subscription; with `channel`, only if it is in that channel. */
  async notifySubscription(subscriptionId: string, selector: string, message?: unknown, channel?: string, options?: NotifyOptions): Promise<boolean> {
    return this.notifyTargeted(topics.subscription(subscriptionId), selector, message, channel, options);
  }

  /** Sends to every subscription of a user id; with `channel`, only those in it. */
  async notifyUserId(userId: string, selector: string, message?: unknown, channel?: string, options?: NotifyOptions): Promise<boolean> {
    return this.notifyTargeted(topics.userId(userId), selector, message, channel, options);
  }

  /** Sends to every subscription of a user name; with `channel`, only those in it. */
  async notifyUserName(userName: string, selector: string, message?: unknown, channel?: string, options?: NotifyOptions): Promise<boolean> {
    return this.notifyTargeted(topics.userName(userName), selector, message, channel, options);
  }

  /** Sends to every subscription of a session; with `channel`, only those in it. */
  async notifySession(sessionId: string, selector: string, message?: unknown, channel?: string, options?: NotifyOptions): Promise<boolean> {
    return this.notifyTargeted(topics.session(sessionId), selector, message, channel, options);
  }

  private async notifyTargeted(topic: string, selector: string, message: unknown, filter: string | undefined, options: NotifyOptions | undefined): Promise<boolean> {
    if (filter !== undefined) checkChannel(filter);
    const envelope = { kind: 'notify', selector: checkSelector(selector), body: this.delivery.body(message), filter } as const;
    return this.delivery.publish(topic, envelope, undefined, publishOnceOf(options));
  }

  // ---- subscriptions -------------------------------------------------------

  /**
   * Records a heartbeat for a subscription on any server and pushes
   * `cmd.onHeartbeat` down its stream. Returns `false` for an unknown id.
   * A stream held here takes it without the broker (its lease follows in
   * the next batch), so heartbeats go on while the broker is away; one held
   * elsewhere needs the broker to reach it.
   */
  async pulse(subscriptionId: string): Promise<boolean> {
    const local = this.delivery.get(subscriptionId);
    if (local) {
      this.delivery.acceptPulse(local);
      return true;
    }
    const info = await this.records.read(subscriptionId);
    if (!info) return false;
    await this.delivery.sendControl(info, { kind: 'pulse' });
    return true;
  }

  /**
   * Removes a subscription held by any server: its stream ends and its
   * channels get `cmd.onLeave`. Returns its record, or `undefined` when no
   * such subscription exists.
   */
  unregister(subscriptionId: string): Promise<SubscriptionInfo | undefined> {
    return this.lifecycle.leave(subscriptionId);
  }

  /** Adds channels to a subscription on any server. Returns `false` for an unknown id. */
  subscribeToChannels(subscriptionId: string, channels: readonly string[]): Promise<boolean> {
    return this.channelUpdates.update(subscriptionId, channels, []);
  }

  /** Removes channels from a subscription on any server. Returns `false` for an unknown id. */
  unsubscribeFromChannels(subscriptionId: string, channels: readonly string[]): Promise<boolean> {
    return this.channelUpdates.update(subscriptionId, [], channels);
  }

  /**
   * Applies both lists in one change (removals first, as ServiceStack does)
   * and sends one `cmd.onUpdate` to the old and new channels.
   */
  updateChannels(subscriptionId: string, subscribe: readonly string[], unsubscribe: readonly string[]): Promise<boolean> {
    return this.channelUpdates.update(subscriptionId, subscribe, unsubscribe);
  }

  /**
   * Removes subscriptions whose last heartbeat is older than `idleTimeoutMs`:
   * this server's own, and those whose lease ran out because the server that
   * held them died. Runs on the housekeeping timer; callable at any time.
   */
  removeExpiredSubscriptions(): Promise<void> {
    return this.housekeeping.run();
  }

  // ---- listings ------------------------------------------------------------

  /** The record of a subscription on any server (this server's own streams answer from memory). */
  async getSubscriptionInfo(subscriptionId: string): Promise<SubscriptionInfo | undefined> {
    return this.delivery.get(subscriptionId)?.info ?? this.records.read(subscriptionId);
  }

  /** The records of a user's subscriptions, on every server. */
  getSubscriptionInfosByUserId(userId: string): Promise<SubscriptionInfo[]> {
    return this.records.ofUser(userId);
  }

  /** Every live subscription in the cluster. */
  getAllSubscriptionInfos(): Promise<SubscriptionInfo[]> {
    return this.records.all();
  }

  /** The public meta maps of subscriptions in any of `channels` (each once). */
  async getSubscriptionsDetails(channels: readonly string[]): Promise<Record<string, string>[]> {
    return (await this.records.inChannels(channels)).map((info) => info.meta);
  }

  /** The public meta maps of every subscription in the cluster. */
  async getAllSubscriptionsDetails(): Promise<Record<string, string>[]> {
    return (await this.records.all()).map((info) => info.meta);
  }

  /** A cluster-wide counter (e.g. anonymous user ids, chat message ids). */
  getNextSequence(name: string): Promise<number> {
    return this.broker.nextSequence(name);
  }

  stats(): ServerEventsStats {
    return {
      broker: this.broker.name,
      serverId: this.serverId,
      localSubscriptions: this.delivery.size,
      brokerTopics: this.delivery.brokerTopics,
      ...this.core.counters,
    };
  }
}
