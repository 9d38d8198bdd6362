import { MemoryBroker } from '../adapters/memory.js';
import type { Broker } from './broker.js';

/** A configuration mistake a person can fix; its message is one line. */
export class ConfigError extends Error {}

const brokerNames = ['memory', 'redis', 'nats'] as const;

/**
 * The broker chosen by environment variables: `BROKER=memory|redis|nats`,
 * or `redis`/`nats` implied by `REDIS_URL`/`NATS_URL` alone. Default: memory.
 */
export function brokerFromEnv(env: NodeJS.ProcessEnv = process.env): Broker {
  const requested = env.BROKER?.trim().toLowerCase() || (env.REDIS_URL ? 'redis' : env.NATS_URL ? 'nats' : 'memory');
  if (!(brokerNames as readonly string[]).includes(requested)) {
    throw new ConfigError(`unknown BROKER '${env.BROKER}': use one of ${brokerNames.join(', ')}`);
  }
  if (requested === 'memory') return new MemoryBroker();
  throw new ConfigError(`BROKER=${requested} is not available in this version: only the memory broker is (unset BROKER to use it)`);
}
