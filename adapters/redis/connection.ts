import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';

/** A connection to one Redis, a Sentinel-watched primary, or a Redis Cluster: ioredis gives all three one command API. */
export type RedisClient = Redis | Cluster;

/** Where the broker connects, read from its URL. */
export type RedisTarget =
  | { mode: 'single'; url: string }
  | { mode: 'sentinel'; sentinels: Array<{ host: string; port: number }>; name: string; password?: string; db?: number }
  | { mode: 'cluster'; nodes: Array<{ host: string; port: number }>; password?: string };

/**
 * Reads a broker URL:
 *
 * - `redis://[:password@]host[:port][/db]` (or `rediss://`): one Redis;
 * - `redis+sentinel://[:password@]host:port[,host:port…]/masterName[/db]`:
 *   the primary that those sentinels name, followed across failovers;
 * - `redis+cluster://[:password@]host:port[,host:port…]`: a Redis Cluster,
 *   found from any of its nodes.
 */
export function parseRedisUrl(url: string): RedisTarget {
  const match = /^redis\+(sentinel|cluster):\/\/(?:(?:[^:@/]*):([^@/]*)@)?([^/]+)(?:\/([^/]*))?(?:\/(\d+))?$/.exec(url);
  if (!match) {
    if (/^rediss?:\/\//.test(url)) return { mode: 'single', url };
    throw new Error(`a Redis URL starts with redis://, rediss://, redis+sentinel:// or redis+cluster://, not '${url}'`);
  }
  const [, mode, password, hostList, name, db] = match;
  const hosts = hostList!.split(',').map((entry) => {
    const [host, port] = entry.split(':');
    if (!host || !port || !/^\d+$/.test(port)) throw new Error(`'${entry}' in '${url}' is not host:port`);
    return { host, port: Number(port) };
  });
  const secret = password ? decodeURIComponent(password) : undefined;
  if (mode === 'cluster') return { mode: 'cluster', nodes: hosts, password: secret };
  if (!name) throw new Error(`a redis+sentinel:// URL names the primary after the sentinels, as in redis+sentinel://host:26379/mymaster, not '${url}'`);
  return { mode: 'sentinel', sentinels: hosts, name: decodeURIComponent(name), password: secret, db: db === undefined ? undefined : Number(db) };
}

/**
 * A new connection to `target`. Every command is written as it is made, and
 * those made together are in flight together (one round trip). ioredis's
 * automatic pipelining, which would gather a turn's commands into one write,
 * is left off: measured here it cost more than the writes it saves (a
 * listing's 250 record reads took 1.4 ms of CPU without it, 1.8 with it),
 * its per-command bookkeeping made each held stream's server about 5 KB
 * larger after registering (transient, but it stays as heap the process has
 * taken), and it held each command back to the end of the turn, leaving
 * Redis idle while the server made the next batch of publishes.
 */
export function connectTo(target: RedisTarget, options: RedisOptions): RedisClient {
  const base: RedisOptions = { ...options, enableAutoPipelining: false };
  if (target.mode === 'single') return new Redis(target.url, base);
  if (target.mode === 'sentinel') {
    return new Redis({ ...base, sentinels: target.sentinels, name: target.name, password: target.password, db: target.db, sentinelRetryStrategy: (attempt) => Math.min(50 * 2 ** attempt, 500) });
  }
  const clusterOptions: ClusterOptions = {
    lazyConnect: base.lazyConnect,
    enableAutoPipelining: false,
    maxRedirections: 16,
    clusterRetryStrategy: (attempt) => Math.min(50 * 2 ** attempt, 500),
    redisOptions: { ...base, password: target.password, lazyConnect: undefined, enableAutoPipelining: undefined },
  };
  return new Cluster(target.nodes, clusterOptions);
}
