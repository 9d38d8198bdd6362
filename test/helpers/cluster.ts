import { MemoryBroker, MemoryHub } from '../../adapters/memory.js';
import type { Broker, HistoryRetention } from '../../src/broker.js';

/** One isolated backend: every broker it hands out is a connection to it. */
export interface Cluster {
  broker(): Broker;
  close(): Promise<void>;
}

/** What a fresh backend is made with. */
export interface ClusterOptions {
  /** History retention of every broker of the cluster. */
  history?: HistoryRetention;
}

/** How the conformance and contract suites get a fresh backend for each test. */
export interface ClusterFactory {
  name: string;
  create(options?: ClusterOptions): Promise<Cluster>;
}

export const memoryClusters: ClusterFactory = {
  name: 'memory',
  async create(options = {}) {
    const hub = new MemoryHub({ history: options.history });
    return { broker: () => new MemoryBroker({ hub }), close: async () => {} };
  },
};
