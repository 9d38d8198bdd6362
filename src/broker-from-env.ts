import type { Broker, HistoryRetention } from './broker.js';
import { ConfigError } from './config-error.js';

export { ConfigError };

export const brokerKinds = ['memory', 'redis', 'nats'] as const;

/** One Redis, a Sentinel-watched primary, or a Redis Cluster. */
const redisUrl = /^(rediss?|redis\+sentinel|redis\+cluster):\/\//;
export type BrokerKind = (typeof brokerKinds)[number];

export interface BrokerSettings {
  /** `redis://…` or `nats://…` (several NATS servers separated by commas). Default: the broker's local default. */
  url?: string;
  /** Key/subject prefix, so several apps share one Redis or NATS. */
  prefix?: string;
  history?: HistoryRetention;
  /** How many copies NATS keeps of the history and the buckets (default: 3 on a cluster, 1 on one server). */
  replicas?: number;
}

/**
 * A broker of `kind`. The Redis and NATS adapters (and so ioredis and
 * nats.js) are loaded only when asked for: importing this package loads no
 * broker client. The broker connects on `ServerEvents.start()`.
 */
export async function createBroker(kind: BrokerKind, settings: BrokerSettings = {}): Promise<Broker> {
  if (kind === 'redis') {
    const url = settings.url || 'redis://127.0.0.1:6379';
    if (!redisUrl.test(url)) throw new ConfigError(`the Redis URL must start with redis://, rediss://, redis+sentinel:// or redis+cluster://, not '${url}'`);
    const { RedisBroker } = await import('../adapters/redis/index.js');
    try {
      return new RedisBroker({ url, prefix: settings.prefix ?? 'se:', history: settings.history });
    } catch (error) {
      throw new ConfigError((error as Error).message);
    }
  }
  if (kind === 'nats') {
    const { NatsBroker } = await import('../adapters/nats/index.js');
    try {
      return new NatsBroker({ url: settings.url || 'nats://127.0.0.1:4222', prefix: settings.prefix, history: settings.history, replicas: settings.replicas });
    } catch (error) {
      throw new ConfigError((error as Error).message);
    }
  }
  const { MemoryBroker } = await import('../adapters/memory.js');
  return new MemoryBroker({ history: settings.history });
}

/**
 * The broker chosen by environment variables: `BROKER=memory|redis|nats`,
 * or `redis`/`nats` implied by `REDIS_URL`/`NATS_URL` alone. Default: memory.
 * `BROKER_PREFIX` sets the key/subject prefix so several apps can share one
 * Redis or NATS; `HISTORY_MAX_LENGTH` and `HISTORY_MAX_AGE_MS` the retention.
 */
export async function brokerFromEnv(env: NodeJS.ProcessEnv = process.env): Promise<Broker> {
  const requested = env.BROKER?.trim().toLowerCase() || (env.REDIS_URL ? 'redis' : env.NATS_URL ? 'nats' : 'memory');
  if (!(brokerKinds as readonly string[]).includes(requested)) {
    throw new ConfigError(`unknown BROKER '${env.BROKER}': use one of ${brokerKinds.join(', ')}`);
  }
  const kind = requested as BrokerKind;
  const history = historyFromEnv(env);
  const url = kind === 'redis' ? env.REDIS_URL : kind === 'nats' ? env.NATS_URL : undefined;
  if (kind === 'redis' && url && !redisUrl.test(url)) throw new ConfigError(`REDIS_URL must start with redis://, rediss://, redis+sentinel:// or redis+cluster://, not '${url}'`);
  const replicasText = env.BROKER_REPLICAS?.trim();
  if (replicasText && !/^[1-5]$/.test(replicasText)) throw new ConfigError(`BROKER_REPLICAS must be a whole number from 1 to 5, not '${replicasText}'`);
  return createBroker(kind, { url, prefix: env.BROKER_PREFIX || undefined, history, replicas: replicasText ? Number(replicasText) : undefined });
}

/**
 * History retention from `HISTORY_MAX_LENGTH` (events) and
 * `HISTORY_MAX_AGE_MS`; unset means the defaults (10,000 events, 5 minutes).
 */
export function historyFromEnv(env: NodeJS.ProcessEnv = process.env): HistoryRetention {
  const read = (name: string): number | undefined => {
    const text = env[name]?.trim();
    if (!text) return undefined;
    if (!/^\d+$/.test(text) || Number(text) < 1) throw new ConfigError(`${name} must be a positive whole number, not '${text}'`);
    return Number(text);
  };
  return { maxLength: read('HISTORY_MAX_LENGTH'), maxAgeMs: read('HISTORY_MAX_AGE_MS') };
}

/** `BROKER_TIMEOUT_MS`: the bound on every broker operation (see `brokerTimeoutMs`); unset means the default. */
export function brokerTimeoutFromEnv(env: NodeJS.ProcessEnv = process.env): number | undefined {
  const text = env.BROKER_TIMEOUT_MS?.trim();
  if (!text) return undefined;
  if (!/^\d+$/.test(text) || Number(text) < 10) throw new ConfigError(`BROKER_TIMEOUT_MS must be a whole number of milliseconds, at least 10, not '${text}'`);
  return Number(text);
}
