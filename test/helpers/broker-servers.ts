import test from 'ava';
import { NatsBroker } from '../../adapters/nats/index.js';
import { RedisBroker } from '../../adapters/redis/index.js';
import type { ClusterFactory } from './cluster.js';
import { findBinary, startNats, startRedis, type BrokerProcess } from './processes.js';

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
        close: async () => {},
      };
    },
  };
  register(factory, current);
}
