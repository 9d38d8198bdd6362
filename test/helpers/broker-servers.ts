import test from 'ava';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { NatsBroker } from '../../adapters/nats/index.js';
import { RedisBroker } from '../../adapters/redis/index.js';
import type { ClusterFactory } from './cluster.js';
import { findBinary, startNats, startNatsCluster, startRedis, startRedisCluster, startRedisSentinel, type BrokerCluster, type BrokerProcess } from './processes.js';

export type BrokerKind = 'redis' | 'nats';

const binaries: Record<BrokerKind, string> = { redis: 'redis-server', nats: 'nats-server' };

/**
 * Starts a broker server of this test file's own (so fault tests can kill
 * it) and hands `register` a factory of isolated clusters on it: each cluster
 * has its own key/subject prefix. Without the binary the tests are skipped
 * with a printed reason, except under CI=true, where that is a failure.
 */
export function withBrokerServer(kind: BrokerKind, register: (factory: ClusterFactory, server: () => BrokerProcess) => void): void {
  const binary = findBinary(binaries[kind]);
  if (!binary) {
    const reason = `${binaries[kind]} is not installed (on Debian: apt-get install ${binaries[kind]})`;
    if (process.env.CI === 'true') {
      test(`${kind}: the broker server is available`, (t) => t.fail(reason));
    } else {
      console.log(`skipping the ${kind} tests: ${reason}`);
      test.skip(`${kind}: ${reason}`, () => {});
    }
    return;
  }
  let server: BrokerProcess | undefined;
  test.before(async () => {
    server = kind === 'redis' ? await startRedis(binary) : await startNats(binary);
  });
  test.after.always(() => server?.dispose());
  const current = () => {
    if (!server) throw new Error(`the ${kind} server did not start`);
    return server;
  };
  let clusters = 0;
  const factory: ClusterFactory = {
    name: kind,
    async create(options = {}) {
      const prefix = `t${++clusters}`;
      const { history } = options;
      return {
        broker: () =>
          kind === 'redis'
            ? new RedisBroker({ url: current().url, prefix: `${prefix}:`, history })
            : new NatsBroker({ url: current().url, prefix, history }),
        close: () => (kind === 'nats' ? dropNatsStreams(current().url, prefix) : Promise.resolve()),
      };
    },
  };
  register(factory, current);
}

export type Topology = 'nats-cluster' | 'redis-sentinel' | 'redis-cluster';

const topologies: Record<Topology, { kind: BrokerKind; start: (binary: string) => Promise<BrokerCluster> }> = {
  'nats-cluster': { kind: 'nats', start: startNatsCluster },
  'redis-sentinel': { kind: 'redis', start: startRedisSentinel },
  'redis-cluster': { kind: 'redis', start: startRedisCluster },
};

/**
 * As `withBrokerServer`, on one of the brokers' own clusters started for
 * this test file: three NATS nodes with JetStream, a Redis primary with a
 * replica and three sentinels, or a Redis Cluster of three masters.
 */
export function withBrokerCluster(topology: Topology, register: (factory: ClusterFactory, cluster: () => BrokerCluster) => void): void {
  const { kind, start } = topologies[topology];
  const binary = findBinary(binaries[kind]);
  const cli = kind === 'redis' ? findBinary('redis-cli') : 'unused';
  if (!binary || !cli) {
    const reason = `${binary ? 'redis-cli' : binaries[kind]} is not installed (on Debian: apt-get install ${binary ? 'redis-tools' : binaries[kind]})`;
    if (process.env.CI === 'true') test(`${topology}: the broker cluster is available`, (t) => t.fail(reason));
    else test.skip(`${topology}: ${reason}`, () => {});
    return;
  }
  let cluster: BrokerCluster | undefined;
  test.before(async () => {
    cluster = await start(binary);
  });
  test.after.always(() => cluster?.dispose());
  const current = () => {
    if (!cluster) throw new Error(`the ${topology} did not start`);
    return cluster;
  };
  let made = 0;
  const factory: ClusterFactory = {
    name: topology,
    async create(options = {}) {
      const prefix = `t${++made}`;
      const { history } = options;
      return {
        broker: () =>
          kind === 'redis'
            ? new RedisBroker({ url: current().url, prefix: `${prefix}:`, history })
            : new NatsBroker({ url: current().url, prefix, history }),
        close: () => (kind === 'nats' ? dropNatsStreams(current().url, prefix) : Promise.resolve()),
      };
    },
  };
  register(factory, current);
}

/**
 * Deletes the streams a test's prefix made. On a NATS cluster each is a
 * replicated group that keeps electing and heartbeating while it exists;
 * hundreds of finished tests' groups would load the machine for the rest.
 */
async function dropNatsStreams(url: string, prefix: string): Promise<void> {
  const nc = await connect({ servers: url.split(',') });
  try {
    const jsm = await jetstreamManager(nc);
    const names = [`KV_${prefix}_presence`, `KV_${prefix}_rosters`, `KV_${prefix}_sequences`, `KV_${prefix}_lists`, `${prefix}_history`];
    await Promise.allSettled(names.map((name) => jsm.streams.delete(name)));
  } finally {
    await nc.close();
  }
}
