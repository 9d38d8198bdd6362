import { Redis, type RedisOptions } from 'ioredis';
import {
  withDefaults,
  type Broker,
  type BrokerStatus,
  type CappedLists,
  type EventHistory,
  type HistoryRead,
  type HistoryRetention,
  type PresenceStore,
} from '../src/broker.js';

export interface RedisBrokerOptions {
  /** `redis://[:password@]host[:port][/db]`. Default `redis://127.0.0.1:6379`. */
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

/** Lua that sets `now` to Redis's clock in milliseconds. */
const now = `local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
`;
/** Lua that sets `deadline` to the lease deadline of record ARGV[1], or false. */
const deadline = `local deadline = redis.call('ZSCORE', KEYS[2], ARGV[1])
`;

/**
 * Presence in two keys: a hash of records and a sorted set of lease
 * deadlines. Each script reads Redis's own clock, so leases do not depend on
 * the app servers' clocks, and runs atomically, so exactly one caller can
 * remove a given record.
 */
const scripts = {
  put: `${now}redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[3]), ARGV[1])
return 1`,
  replace: `${now}${deadline}if not deadline or tonumber(deadline) <= now then return 0 end
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[4]), ARGV[1])
return 1`,
  get: `${now}${deadline}if not deadline or tonumber(deadline) <= now then return false end
return redis.call('HGET', KEYS[1], ARGV[1])`,
  touch: `${now}${deadline}if not deadline or tonumber(deadline) <= now then return 0 end
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[2]), ARGV[1])
return 1`,
  remove: `local record = redis.call('HGET', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return record`,
  list: `${now}local ids = redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. now, '+inf')
if #ids == 0 then return {} end
return redis.call('HMGET', KEYS[1], unpack(ids))`,
  takeExpired: `${now}local ids = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
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

  async replace(id: string, expected: string, record: string, ttlMs: number): Promise<boolean> {
    return (await this.run('replace', id, expected, record, ttlMs)) === 1;
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
    const script = (this.redis as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>)[`presence_${name}`]!;
    return script.call(this.redis, ...this.keys, ...args);
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
 * The history's scripts. Publishing appends to the stream and publishes in
 * one script, so ids and live delivery agree; the pub/sub message carries the
 * id: `#{id}|{payload}`. A missing counter starts a new epoch at Redis's
 * clock in microseconds, above every id of an earlier epoch.
 */
const epochLua = `if redis.call('EXISTS', KEYS[1]) == 0 then
  local t = redis.call('TIME')
  redis.call('SET', KEYS[1], string.format('%.0f', tonumber(t[1]) * 1000000 + tonumber(t[2])))
end
`;

/** The newest id; a missing counter (first use, or lost in a restart) starts a new epoch. */
const historyHead = `${epochLua}return redis.call('GET', KEYS[1])`;

const publishWithHistory = `${epochLua}local id = redis.call('INCR', KEYS[1])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local sid = string.format('%.0f', id)
redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[3], sid .. '-0', 't', ARGV[1], 'p', ARGV[2], 'at', now)
redis.call('PUBLISH', ARGV[4], '#' .. sid .. '|' .. ARGV[2])
return sid`;

/** The event history as a Redis stream whose entry ids are the event ids. */
class RedisHistory implements EventHistory {
  private readonly keys: [string, string];

  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly retention: Required<HistoryRetention>,
  ) {
    this.keys = [`${prefix}history:seq`, `${prefix}history`];
    redis.defineCommand('history_publish', { numberOfKeys: 2, lua: publishWithHistory });
    redis.defineCommand('history_head', { numberOfKeys: 1, lua: historyHead });
  }

  async publish(topic: string, payload: string): Promise<number> {
    return Number(await this.script('history_publish')(...this.keys, topic, payload, this.retention.maxLength, this.prefix + topic));
  }

  async read(afterId: number, topics: ReadonlySet<string>): Promise<HistoryRead> {
    const head = await this.head();
    if (afterId >= head) return { complete: afterId === head, entries: [] };
    const raw = await this.redis.xrange(this.keys[1], `${afterId + 1}-0`, '+');
    const first = raw[0];
    const oldestAllowed = Date.now() - this.retention.maxAgeMs;
    if (!first || parseInt(first[0], 10) !== afterId + 1 || Number(field(first[1], 'at')) < oldestAllowed) {
      return { complete: false, entries: [] };
    }
    const entries = raw
      .map(([streamId, fields]) => ({ id: parseInt(streamId, 10), topic: field(fields, 't'), payload: field(fields, 'p') }))
      .filter((entry) => topics.has(entry.topic));
    return { complete: true, entries };
  }

  async head(): Promise<number> {
    return Number(await this.script('history_head')(this.keys[0]));
  }

  private script(name: string): (...args: unknown[]) => Promise<string> {
    const script = (this.redis as unknown as Record<string, (...a: unknown[]) => Promise<string>>)[name]!;
    return (...args) => script.call(this.redis, ...args);
  }
}

/** A field of a stream entry, given as a flat [name, value, ...] list. */
function field(fields: string[], name: string): string {
  const at = fields.indexOf(name);
  return at >= 0 && at % 2 === 0 ? fields[at + 1]! : '';
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
  readonly history: EventHistory;
  readonly url: string;
  private readonly prefix: string;
  private readonly commands: Redis;
  private readonly subscriber: Redis;
  private handler: (topic: string, payload: string, id?: number) => void = () => {};
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
    // Prefixed: a script named `get` would replace ioredis's own GET on this connection.
    for (const [name, lua] of Object.entries(scripts)) this.commands.defineCommand(`presence_${name}`, { numberOfKeys: 2, lua });
    this.presence = new RedisPresence(this.commands, this.prefix);
    this.lists = new RedisLists(this.commands, this.prefix);
    this.history = new RedisHistory(this.commands, this.prefix, withDefaults(options.history));
    this.subscriber.on('message', (channel: string, message: string) => {
      if (!channel.startsWith(this.prefix)) return;
      const topic = channel.slice(this.prefix.length);
      if (!message.startsWith('#')) return this.handler(topic, message);
      const bar = message.indexOf('|');
      this.handler(topic, message.slice(bar + 1), Number(message.slice(1, bar)));
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

  onMessage(handler: (topic: string, payload: string, id?: number) => void): void {
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
    const recovered = this.everConnected;
    this.everConnected = true;
    if (!recovered) return;
    // ioredis is ready once it has sent its SUBSCRIBEs again; a PING answered on the same
    // connection proves Redis has applied them, so nothing published after this is missed.
    void this.subscriber.ping().then(
      () => this.statusHandler({ connected: true }),
      (error: Error) => this.lost(error.message),
    );
  }
}
