import { Cluster } from 'ioredis';
import type { RedisClient } from './connection.js';
import type { PresenceStore } from '../../src/broker.js';

/** Lua that sets `now` to Redis's clock in milliseconds. */
const now = `local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
`;
/** Lua that sets `live` when the record in KEYS[1] exists and its lease runs. */
const live = `${now}local deadline = redis.call('HGET', KEYS[1], 'd')
local live = deadline and tonumber(deadline) > now
`;

/**
 * One hash per record (`r` the record, `d` its lease deadline on Redis's
 * clock, `i` the index keys it is listed under), so every script touches one
 * key, and so one hash slot: the records spread over a Redis Cluster by
 * subscription. Index entries are sets of ids, one per index key (so they
 * spread by channel, user and session), changed after the record script.
 * Commands issued together are in flight together: one round trip (per
 * node on a cluster). A record also gets a key expiry an hour past its
 * lease, so one that nobody removes does not stay for ever.
 */
const scripts = {
  put: `${now}local previous = redis.call('HGET', KEYS[1], 'i')
redis.call('HSET', KEYS[1], 'r', ARGV[1], 'i', ARGV[2], 'd', now + tonumber(ARGV[3]))
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]) + tonumber(ARGV[4]))
return previous or '[]'`,
  replace: `${live}if not live or redis.call('HGET', KEYS[1], 'r') ~= ARGV[1] then return false end
local previous = redis.call('HGET', KEYS[1], 'i')
redis.call('HSET', KEYS[1], 'r', ARGV[2], 'i', ARGV[3], 'd', now + tonumber(ARGV[4]))
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[4]) + tonumber(ARGV[5]))
return previous or '[]'`,
  get: `${live}if not live then return false end
return redis.call('HGET', KEYS[1], 'r')`,
  touch: `${live}if not live then return 0 end
redis.call('HSET', KEYS[1], 'd', now + tonumber(ARGV[1]))
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[1]) + tonumber(ARGV[2]))
return 1`,
  remove: `local found = redis.call('HMGET', KEYS[1], 'r', 'i')
if not found[1] then return false end
redis.call('DEL', KEYS[1])
return found`,
  takeExpired: `${live}if live or not deadline then return false end
local found = redis.call('HMGET', KEYS[1], 'r', 'i')
redis.call('DEL', KEYS[1])
return found`,
};

/**
 * `touch` for every record in KEYS, against one reading of Redis's clock; ARGV: the backstop, then each
 * record's lease in ms. Answers one flag per record, `1` renewed or `0` gone or run out.
 */
const touchMany = `local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local renewed = {}
for i = 1, #KEYS do
  local deadline = redis.call('HGET', KEYS[i], 'd')
  if deadline and tonumber(deadline) > now then
    local ttl = tonumber(ARGV[i + 1])
    redis.call('HSET', KEYS[i], 'd', now + ttl)
    redis.call('PEXPIRE', KEYS[i], ttl + tonumber(ARGV[1]))
    renewed[i] = '1'
  else
    renewed[i] = '0'
  end
end
return table.concat(renewed)`;

type ScriptName = keyof typeof scripts;
type Call = (...args: unknown[]) => Promise<unknown>;

/** How much longer than its lease a record's key may outlive it, for a removal to still find it. */
const backstopMs = 3_600_000;

/** The presence store on one connection; its scripts are defined on that connection. */
export class RedisPresence implements PresenceStore {
  constructor(
    private readonly redis: RedisClient,
    private readonly prefix: string,
  ) {
    // Prefixed: a script named `get` would replace ioredis's own GET on this connection.
    for (const [name, lua] of Object.entries(scripts)) redis.defineCommand(`presence_${name}`, { numberOfKeys: 1, lua });
    // The number of keys comes first in each call.
    redis.defineCommand('presence_touchMany', { lua: touchMany });
  }

  async put(id: string, record: string, indexes: readonly string[], ttlMs: number): Promise<void> {
    const previous = (await this.run('put', id, record, JSON.stringify(indexes), ttlMs, backstopMs)) as string;
    await this.reindex(id, JSON.parse(previous) as string[], indexes);
  }

  async replace(id: string, expected: string, record: string, indexes: readonly string[], ttlMs: number): Promise<boolean> {
    const previous = (await this.run('replace', id, expected, record, JSON.stringify(indexes), ttlMs, backstopMs)) as string | null;
    if (previous === null) return false;
    await this.reindex(id, JSON.parse(previous) as string[], indexes);
    return true;
  }

  async get(id: string): Promise<string | undefined> {
    return ((await this.run('get', id)) as string | null) ?? undefined;
  }

  async getMany(ids: readonly string[]): Promise<Map<string, string>> {
    const replies = await Promise.all(ids.map((id) => this.run('get', id)));
    const found = new Map<string, string>();
    ids.forEach((id, i) => {
      const record = replies[i] as string | null;
      if (record !== null) found.set(id, record);
    });
    return found;
  }

  async touch(id: string, ttlMs: number): Promise<boolean> {
    return (await this.run('touch', id, ttlMs, backstopMs)) === 1;
  }

  /**
   * One script for all of them on one Redis (or a Sentinel's primary). On a Redis Cluster a script's keys
   * must share a hash slot, and records spread over all of them: there it is one `touch` each, pipelined.
   */
  async touchMany(ids: readonly string[], ttlMs: readonly number[]): Promise<boolean[]> {
    if (this.redis instanceof Cluster) return Promise.all(ids.map((id, i) => this.touch(id, ttlMs[i]!)));
    if (ids.length === 0) return [];
    const script = (this.redis as unknown as Record<string, Call>).presence_touchMany!;
    const keys = ids.map((id) => this.recordKey(id));
    const flags = (await script.call(this.redis, keys.length, ...keys, backstopMs, ...ttlMs.map((ms) => Math.max(1, Math.round(ms))))) as string;
    return ids.map((_, i) => flags[i] === '1');
  }

  async remove(id: string): Promise<string | undefined> {
    const found = (await this.run('remove', id)) as [string, string | null] | null;
    if (!found) return undefined;
    await this.reindex(id, JSON.parse(found[1] ?? '[]') as string[], []);
    return found[0];
  }

  async takeExpired(ids: readonly string[]): Promise<string[]> {
    if (ids.length === 0) return [];
    const replies = (await Promise.all(ids.map((id) => this.run('takeExpired', id)))) as Array<[string, string | null] | null>;
    const taken: string[] = [];
    const unindexing: Promise<unknown>[] = [];
    ids.forEach((id, i) => {
      const found = replies[i];
      if (!found) return;
      taken.push(found[0]);
      for (const index of JSON.parse(found[1] ?? '[]') as string[]) unindexing.push(this.redis.srem(this.indexKey(index), id));
    });
    await Promise.all(unindexing);
    return taken;
  }

  async *members(index: string, batchSize: number): AsyncIterable<string[]> {
    let cursor = '0';
    do {
      const [next, ids] = await this.redis.sscan(this.indexKey(index), cursor, 'COUNT', batchSize);
      cursor = next;
      // COUNT is a hint (a small set comes back whole): the batches are cut to size here.
      const unique = [...new Set(ids)];
      for (let i = 0; i < unique.length; i += batchSize) yield unique.slice(i, i + batchSize);
    } while (cursor !== '0');
  }

  async unlist(index: string, ids: readonly string[]): Promise<void> {
    if (ids.length === 0) return;
    // Checked again just before: a record written since the reader looked keeps its entry.
    const exists = await Promise.all(ids.map((id) => this.redis.exists(this.recordKey(id))));
    const gone = ids.filter((_, i) => exists[i] === 0);
    if (gone.length > 0) await this.redis.srem(this.indexKey(index), ...gone);
  }

  /** Moves `id` from the index keys it had to the ones it has now (issued together: one round trip, per node on a cluster). */
  private async reindex(id: string, before: readonly string[], after: readonly string[]): Promise<void> {
    await Promise.all([
      ...after.filter((index) => !before.includes(index)).map((index) => this.redis.sadd(this.indexKey(index), id)),
      ...before.filter((index) => !after.includes(index)).map((index) => this.redis.srem(this.indexKey(index), id)),
    ]);
  }

  /** `{…}` is the hash tag: a Redis Cluster places a record by its id, an index by its key. */
  private recordKey(id: string): string {
    return `${this.prefix}sub:{${id}}`;
  }

  private indexKey(index: string): string {
    return `${this.prefix}ix:{${index}}`;
  }

  private run(name: ScriptName, id: string, ...args: Array<string | number>): Promise<unknown> {
    const script = (this.redis as unknown as Record<string, Call>)[`presence_${name}`]!;
    return script.call(this.redis, this.recordKey(id), ...args);
  }

}
