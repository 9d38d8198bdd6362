import { MemoryBroker, MemoryHub } from '../../adapters/memory.js';
import type { Broker } from '../../src/broker.js';

/** One isolated backend: every broker it hands out is a connection to it. */
export interface Cluster {
  broker(): Broker;
  close(): Promise<void>;
}

/** How the conformance suite gets a fresh backend for each test. */
export interface ClusterFactory {
  name: string;
  create(): Promise<Cluster>;
}

export const memoryClusters: ClusterFactory = {
  name: 'memory',
  async create() {
    const hub = new MemoryHub();
    return { broker: () => new MemoryBroker({ hub }), close: async () => {} };
  },
};
