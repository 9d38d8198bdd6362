import { MemoryBroker } from '../adapters/memory.js';
import { NatsBroker } from '../adapters/nats.js';
import { RedisBroker } from '../adapters/redis.js';
import type { Broker, HistoryRetention } from './broker.js';

/** A configuration mistake a person can fix; its message is one line. */
export class ConfigError extends Error {}

const brokerNames = ['memory', 'redis', 'nats'] as const;

/**
 * The broker chosen by environment variables: `BROKER=memory|redis|nats`,
 * or `redis`/`nats` implied by `REDIS_URL`/`NATS_URL` alone. Default: memory.
 * `BROKER_PREFIX` sets the key/subject prefix so several apps can share one
 * Redis or NATS. The broker connects on `ServerEvents.start()`.
 */
export function brokerFromEnv(env: NodeJS.ProcessEnv = process.env): Broker {
  const requested = env.BROKER?.trim().toLowerCase() || (env.REDIS_URL ? 'redis' : env.NATS_URL ? 'nats' : 'memory');
  if (!(brokerNames as readonly string[]).includes(requested)) {
    throw new ConfigError(`unknown BROKER '${env.BROKER}': use one of ${brokerNames.join(', ')}`);
  }
  const prefix = env.BROKER_PREFIX || undefined;
  const history = historyFromEnv(env);
  if (requested === 'redis') {
    const url = env.REDIS_URL || 'redis://127.0.0.1:6379';
    if (!/^rediss?:\/\//.test(url)) throw new ConfigError(`REDIS_URL must start with redis:// or rediss://, not '${url}'`);
    return new RedisBroker({ url, prefix: prefix ?? 'se:', history });
  }
  if (requested === 'nats') {
    const url = env.NATS_URL || 'nats://127.0.0.1:4222';
    try {
      return new NatsBroker({ url, prefix, history });
    } catch (error) {
      throw new ConfigError((error as Error).message);
    }
  }
  return new MemoryBroker({ history });
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
