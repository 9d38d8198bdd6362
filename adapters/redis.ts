import { Redis, type RedisOptions } from 'ioredis';
import type { Broker, BrokerStatus, CappedLists, PresenceStore } from '../src/broker.js';

export interface RedisBrokerOptions {
  /** `redis://[:password@]host[:port][/db]`. Default `redis://127.0.0.1:6379`. */
  url?: string;
  /** Put before every key and pub/sub channel, so several apps can share one Redis. Default `se:`. */
  prefix?: string;
  /** Passed to ioredis as they are. */
  redisOptions?: RedisOptions;
}

/** SUBSCRIBE commands carry at most this many channels, to keep each reply small. */
const subscribeBatch = 512;

/**
 * Presence in two keys: a hash of records and a sorted set of lease
 * deadlines. Each script reads Redis's own clock, so leases do not depend on
 * the app servers' clocks, and runs atomically, so exactly one caller can
 * remove a given record.
 */
const scripts = {
  put: `local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[3]), ARGV[1])
return 1`,
  get: `local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local deadline = redis.call('ZSCORE', KEYS[2], ARGV[1])
if not deadline or tonumber(deadline) <= now then return false end
return redis.call('HGET', KEYS[1], ARGV[1])`,
  touch: `local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local deadline = redis.call('ZSCORE', KEYS[2], ARGV[1])
if not deadline or tonumber(deadline) <= now then return 0 end
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[2]), ARGV[1])
return 1`,
  remove: `local record = redis.call('HGET', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return record`,
  list: `local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local ids = redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. now, '+inf')
if #ids == 0 then return {} end
return redis.call('HMGET', KEYS[1], unpack(ids))`,
  takeExpired: `local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local ids = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
local taken = {}
for _, id in ipairs(ids) do
  local record = redis.call('HGET', KEYS[1], id)
  redis.call('HDEL', KEYS[1], id)
  redis.call('ZREM', KEYS[2], id)
  if record then taken[#taken + 1] = record end
end
return taken`,
};

type ScriptName = keyof typeof scripts;

class RedisPresence implements PresenceStore {
  private readonly keys: [string, string];

  constructor(
    private readonly redis: Redis,
    prefix: string,
  ) {
    this.keys = [`${prefix}presence:records`, `${prefix}presence:leases`];
  }

  async put(id: string, record: string, ttlMs: number): Promise<void> {
    await this.run('put', id, record, ttlMs);
  }

  async get(id: string): Promise<string | undefined> {
    return ((await this.run('get', id)) as string | null) ?? undefined;
  }

  async touch(id: string, ttlMs: number): Promise<boolean> {
    return (await this.run('touch', id, ttlMs)) === 1;
  }

  async remove(id: string): Promise<string | undefined> {
    return ((await this.run('remove', id)) as string | null) ?? undefined;
  }

  async list(): Promise<string[]> {
    return ((await this.run('list')) as Array<string | null>).filter((r): r is string => r !== null);
  }

  async takeExpired(limit: number): Promise<string[]> {
    return (await this.run('takeExpired', limit)) as string[];
  }

  private run(name: ScriptName, ...args: Array<string | number>): Promise<unknown> {
    return (this.redis as unknown as Record<ScriptName, (...a: unknown[]) => Promise<unknown>>)[name](...this.keys, ...args);
  }
}

/** Lists as Redis lists, appended and trimmed in one transaction. */
class RedisLists implements CappedLists {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
  ) {}

  async push(key: string, value: string, maxLength: number): Promise<void> {
    await this.redis.multi().rpush(this.key(key), value).ltrim(this.key(key), -maxLength, -1).exec();
  }

  async range(key: string): Promise<string[]> {
    return this.redis.lrange(this.key(key), 0, -1);
  }

  async clear(key: string): Promise<void> {
    await this.redis.del(this.key(key));
  }

  private key(key: string): string {
    return `${this.prefix}list:${key}`;
  }
}

/**
 * The Redis broker: topics are pub/sub channels (`{prefix}{topic}`), presence
 * and counters are keys. It holds two connections, one for commands and one
 * in subscriber mode. ioredis reconnects by itself and subscribes to every
 * channel again (`autoResubscribe`); this adapter reports the outage and the
 * recovery to the core.
 */
export class RedisBroker implements Broker {
  readonly name = 'redis';
  readonly presence: PresenceStore;
  readonly lists: CappedLists;
  readonly url: string;
  private readonly prefix: string;
  private readonly commands: Redis;
  private readonly subscriber: Redis;
  private handler: (topic: string, payload: string) => void = () => {};
  private statusHandler: (status: BrokerStatus) => void = () => {};
  private connected = false;
  private everConnected = false;
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
    this.commands = new Redis(this.url, redisOptions);
    this.subscriber = new Redis(this.url, redisOptions);
    for (const [name, lua] of Object.entries(scripts)) this.commands.defineCommand(name, { numberOfKeys: 2, lua });
    this.presence = new RedisPresence(this.commands, this.prefix);
    this.lists = new RedisLists(this.commands, this.prefix);
    this.subscriber.on('message', (channel: string, payload: string) => {
      if (channel.startsWith(this.prefix)) this.handler(channel.slice(this.prefix.length), payload);
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
    } catch (error) {
      this.closing = true;
      this.commands.disconnect();
      this.subscriber.disconnect();
      throw new Error(`cannot reach Redis at ${this.url}: ${(error as Error).message}`);
    }
  }

  async publish(topic: string, payload: string): Promise<void> {
    await this.commands.publish(this.prefix + topic, payload);
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

  onMessage(handler: (topic: string, payload: string) => void): void {
    this.handler = handler;
  }

  onStatus(handler: (status: BrokerStatus) => void): void {
    this.statusHandler = handler;
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
    if (this.connected || this.commands.status !== 'ready' || this.subscriber.status !== 'ready') return;
    this.connected = true;
    if (this.everConnected) this.statusHandler({ connected: true });
    this.everConnected = true;
  }
}
