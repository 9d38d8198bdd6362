import type { ClusterFactory } from '../helpers/cluster.js';
import { historyContract } from './history.js';
import { keysContract } from './keys.js';
import { messagingContract } from './messaging.js';
import { presenceContract } from './presence.js';

/**
 * The `Broker` contract (src/broker.ts), tested at the interface: each
 * store is called directly, with two connections to one backend standing
 * for two servers. Every adapter runs it unchanged.
 */
export function contractSuite(factory: ClusterFactory): void {
  presenceContract(factory);
  historyContract(factory);
  messagingContract(factory);
  keysContract(factory);
}
