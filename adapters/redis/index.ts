import { Cluster, type RedisOptions } from 'ioredis';
import { withDefaults, type Broker, type BrokerStatus, type CappedLists, type EventHistory, type ExpiringKeys, type HistoryRetention, type PresenceStore } from '../../src/broker.js';
import { connectTo, parseRedisUrl, type RedisClient } from './connection.js';
import { parseHistoryMessage, RedisHistory } from './history.js';
import { RedisKeys } from './keys.js';
import { RedisLists } from './lists.js';
import { RedisPresence } from './presence.js';

export interface RedisBrokerOptions {
  /**
   * `redis://[:password@]host[:port][/db]` for one Redis,
   * `redis+sentinel://host:port[,host:port…]/masterName` for the primary of a
   * Sentinel setup (followed across failovers), or
   * `redis+cluster://host:port[,host:port…]` for a Redis Cluster.
   * Default `redis://127.0.0.1:6379`.
   */
  url?: string;
  /** Put before every key and pub/sub channel, so several apps can share one Redis. Default `se:`. */
  prefix?: string;
  /** How much event history to keep for Last-Event-ID replay. Default 10,000 events, 5 minutes. */
  history?: HistoryRetention;
  /** Passed to ioredis as they are. */
  redisOptions?: RedisOptions;
}

/** SUBSCRIBE commands carry at most this many channels, to keep each reply small. */
const subscribeBatch = 512;

/**
 * The Redis broker: topics are pub/sub channels (`{prefix}{topic}`), presence
 * and counters are keys. It holds two connections, one for commands and one
 * in subscriber mode, to one Redis, to the primary that Redis Sentinel names
 * (a failover is a reconnect), or to a Redis Cluster (presence and lists
 * spread over its slots; pub/sub is classic, which the cluster carries to
 * every node; the history keys share one slot, as one sequence must, and
 * every publish goes through that slot's node, so that one server's events
 * keep their order across topics as they do on one Redis). ioredis
 * reconnects by itself and subscribes to every channel again
 * (`autoResubscribe`); this adapter reports the outage and the recovery to
 * the core.
 */
export class RedisBroker implements Broker {
  readonly name = 'redis';
  readonly presence: PresenceStore;
  readonly lists: CappedLists;
  readonly keys: ExpiringKeys;
  readonly history: RedisHistory;
  readonly url: string;
  private readonly prefix: string;
  private readonly commands: RedisClient;
  private readonly subscriber: RedisClient;
  private handler: (topic: string, payload: string, id?: number) => void = () => {};
  private statusHandler: (status: BrokerStatus) => void = () => {};
  private connected = false;
  private everConnected = false;
  /** Between a reconnection and the epoch check: publishing waits for it. */
  private settling = false;
  private closing = false;

  constructor(options: RedisBrokerOptions = {}) {
    this.url = options.url ?? 'redis://127.0.0.1:6379';
    this.prefix = options.prefix ?? 'se:';
    const redisOptions: RedisOptions = {
      lazyConnect: true,
      // Commands sent during an outage fail after a few retries instead of waiting forever.
      maxRetriesPerRequest: 2,
      retryStrategy: (attempt) => Math.min(50 * 2 ** attempt, 500),
      ...options.redisOptions,
    };
    const target = parseRedisUrl(this.url);
    this.commands = connectTo(target, redisOptions);
    this.subscriber = connectTo(target, redisOptions);
    this.presence = new RedisPresence(this.commands, this.prefix);
    this.lists = new RedisLists(this.commands, this.prefix);
    this.keys = new RedisKeys(this.commands, this.prefix);
    this.history = new RedisHistory(this.commands, this.prefix, withDefaults(options.history), () => this.mayPublish());
    this.subscriber.on('message', (channel: string, message: string) => {
      if (!channel.startsWith(this.prefix)) return;
      const { id, payload } = parseHistoryMessage(message);
      this.handler(channel.slice(this.prefix.length), payload, id);
    });
    for (const connection of [this.commands, this.subscriber]) {
      connection.on('error', (error: Error) => this.lost(error.message));
      connection.on('close', () => this.lost('connection closed'));
      connection.on('ready', () => this.ready());
    }
  }

  async connect(): Promise<void> {
    try {
      await Promise.all([this.commands.connect(), this.subscriber.connect()]);
      await this.history.checkEpoch();
    } catch (error) {
      this.closing = true;
      this.commands.disconnect();
      this.subscriber.disconnect();
      throw new Error(`cannot reach Redis at ${this.url}: ${(error as Error).message}`);
    }
  }

  async publish(topic: string, payload: string): Promise<void> {
    this.mayPublish();
    if (this.commands instanceof Cluster) await this.history.publishBeside(this.prefix + topic, payload);
    else await this.commands.publish(this.prefix + topic, payload);
  }

  async subscribe(topics: readonly string[]): Promise<void> {
    for (let i = 0; i < topics.length; i += subscribeBatch) {
      await this.subscriber.subscribe(...topics.slice(i, i + subscribeBatch).map((t) => this.prefix + t));
    }
  }

  async unsubscribe(topics: readonly string[]): Promise<void> {
    for (let i = 0; i < topics.length; i += subscribeBatch) {
      await this.subscriber.unsubscribe(...topics.slice(i, i + subscribeBatch).map((t) => this.prefix + t));
    }
  }

  onMessage(handler: (topic: string, payload: string, id?: number) => void): void {
    this.handler = handler;
  }

  onStatus(handler: (status: BrokerStatus) => void): void {
    this.statusHandler = handler;
  }

  /**
   * Nothing goes out while Redis is away or the epoch is not yet checked:
   * ioredis would send it on reconnecting, perhaps to a promoted replica
   * that gives its id again.
   */
  private mayPublish(): void {
    if (!this.connected) throw new Error(`Redis at ${this.url} is reconnecting: not published`);
  }

  /** ioredis gave up (its retries ran out, the connection is closed or refused): Redis is away, not the call at fault. */
  isUnavailable(error: unknown): boolean {
    const { name, message } = error as Error;
    return name === 'MaxRetriesPerRequestError' || /Connection is closed|is reconnecting|Stream isn't writeable|ECONNREFUSED|ECONNRESET|EPIPE|ETIMEDOUT/.test(message ?? '');
  }

  /** A PING on each connection: a frozen or cut-off Redis answers neither. */
  async ping(): Promise<void> {
    await Promise.all([this.commands.ping(), this.subscriber.ping()]);
  }

  async nextSequence(name: string): Promise<number> {
    return this.commands.incr(`${this.prefix}seq:${name}`);
  }

  async close(): Promise<void> {
    this.closing = true;
    await Promise.allSettled([this.commands.quit(), this.subscriber.quit()]);
  }

  private lost(reason: string): void {
    if (this.closing || !this.connected) return;
    this.connected = false;
    this.statusHandler({ connected: false, reason });
  }

  private ready(): void {
    if (this.connected || this.settling || this.closing || this.commands.status !== 'ready' || this.subscriber.status !== 'ready') return;
    if (!this.everConnected) {
      // The first connection: connect() checks the epoch itself.
      this.everConnected = true;
      this.connected = true;
      return;
    }
    // ioredis is ready once it has sent its SUBSCRIBEs again; a PING answered on the same
    // connection proves Redis has applied them, so nothing published after this is missed.
    // A failover may have lost the history's tail: that is settled before anything is published.
    this.settling = true;
    void Promise.all([this.subscriber.ping(), this.history.checkEpoch()])
      .then(
        () => {
          this.connected = true;
          this.statusHandler({ connected: true });
        },
        () => setTimeout(() => this.ready(), 250).unref(),
      )
      .finally(() => (this.settling = false));
  }
}
