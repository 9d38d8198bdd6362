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
 * Publishing commands go out as they are made: the history batches its own
 * (see `RedisHistory.publish`), and one held back to the end of the turn
 * would leave Redis idle while this process makes the next, and could
 * overtake a plain publish made before it.
 */
const sentAtOnce = ['publish', 'history_publish', 'publish_beside_history'];

/**
 * A new connection to `target`. Commands other than publishes are pipelined
 * automatically: those issued in one tick go out together, grouped by node
 * on a cluster (a pipeline of one's own could not span slots there).
 */
export function connectTo(target: RedisTarget, options: RedisOptions): RedisClient {
  const base: RedisOptions = { ...options, enableAutoPipelining: true, autoPipeliningIgnoredCommands: sentAtOnce };
  if (target.mode === 'single') return new Redis(target.url, base);
  if (target.mode === 'sentinel') {
    return new Redis({ ...base, sentinels: target.sentinels, name: target.name, password: target.password, db: target.db, sentinelRetryStrategy: (attempt) => Math.min(50 * 2 ** attempt, 500) });
  }
  const clusterOptions: ClusterOptions = {
    lazyConnect: base.lazyConnect,
    enableAutoPipelining: true,
    autoPipeliningIgnoredCommands: sentAtOnce,
    maxRedirections: 16,
    clusterRetryStrategy: (attempt) => Math.min(50 * 2 ** attempt, 500),
    redisOptions: { ...base, password: target.password, lazyConnect: undefined, enableAutoPipelining: undefined },
  };
  return new Cluster(target.nodes, clusterOptions);
}
