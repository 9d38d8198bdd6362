import type { Redis } from 'ioredis';
import type { PresenceStore } from '../../src/broker.js';

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

/** The presence store on one connection; its scripts are defined on that connection. */
export class RedisPresence implements PresenceStore {
  private readonly keys: [string, string];

  constructor(
    private readonly redis: Redis,
    prefix: string,
  ) {
    this.keys = [`${prefix}presence:records`, `${prefix}presence:leases`];
    // Prefixed: a script named `get` would replace ioredis's own GET on this connection.
    for (const [name, lua] of Object.entries(scripts)) redis.defineCommand(`presence_${name}`, { numberOfKeys: 2, lua });
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
