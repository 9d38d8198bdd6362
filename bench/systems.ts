/**
 * The systems a run compares. Each is a server program plus the client that
 * its users would connect with.
 */
import type { ServerSpec } from './cluster.js';
import type { ClientKind } from './load/worker.js';

export type SystemId = 'memory' | 'memory-http' | 'redis' | 'redis-http' | 'nats' | 'nats-http' | 'nats-cluster' | 'redis-cluster' | 'floor' | 'koa-floor' | 'socketio';

/** What a system's messages cross: a broker server, or a cluster of the broker's own. */
export type BrokerId = 'redis' | 'nats' | 'nats-cluster' | 'redis-cluster';

export interface System {
  id: SystemId;
  label: string;
  /** The memory broker lives inside one process, so it has no cross-server run. */
  crossServer: boolean;
  /** On a broker cluster: measured in the fan-out across servers only, next to the single-process brokers. */
  clustered?: boolean;
  /** Measured for connection capacity only: it differs from another system in how the routes are mounted, which shows there. */
  capacityOnly?: boolean;
  client: ClientKind;
  spec(brokers: BrokerUrls, prefix: string): ServerSpec;
  /** The URL a subscriber connects to on the server at `port`. */
  target(port: number): string;
}

/** Where each broker the run started answers ('' when the run needs none). */
export type BrokerUrls = Record<BrokerId, string>;

/** server-events on a broker, as Koa middleware, or with `http` on a bare node:http server through `serverEventsHandler`. */
const project = (broker: 'memory' | 'redis' | 'nats', mount: 'koa' | 'http' = 'koa'): System => ({
  id: mount === 'http' ? `${broker}-http` as SystemId : broker,
  label: mount === 'http' ? `server-events (${broker}, on node:http)` : `server-events (${broker})`,
  crossServer: broker !== 'memory',
  capacityOnly: mount === 'http',
  client: 'sse',
  spec: (brokers, prefix) => ({
    program: 'project',
    env: {
      BROKER: broker,
      REDIS_URL: broker === 'redis' ? brokers.redis : '',
      NATS_URL: broker === 'nats' ? brokers.nats : '',
      // Each cluster gets fresh keys and streams, so no run reads another's history.
      BROKER_PREFIX: broker === 'redis' ? `${prefix}:` : prefix,
      MOUNT: mount,
    },
  }),
  target: (port) => `http://127.0.0.1:${port}/event-stream?channels=bench`,
});

/** server-events on one of the brokers' own clusters: three NATS nodes (streams and buckets in 3 replicas), or a Redis Cluster of three masters. */
const clustered = (id: 'nats-cluster' | 'redis-cluster'): System => ({
  id,
  label: id === 'nats-cluster' ? 'server-events (NATS cluster, 3 nodes)' : 'server-events (Redis Cluster, 3 masters)',
  crossServer: true,
  clustered: true,
  client: 'sse',
  spec: (brokers, prefix) => {
    const redis = id === 'redis-cluster';
    return {
      program: 'project',
      env: {
        BROKER: redis ? 'redis' : 'nats',
        REDIS_URL: redis ? brokers[id] : '',
        NATS_URL: redis ? '' : brokers[id],
        BROKER_PREFIX: redis ? `${prefix}:` : prefix,
      },
    };
  },
  target: (port) => `http://127.0.0.1:${port}/event-stream?channels=bench`,
});

export const systems: Record<SystemId, System> = {
  memory: project('memory'),
  'memory-http': project('memory', 'http'),
  redis: project('redis'),
  'redis-http': project('redis', 'http'),
  nats: project('nats'),
  'nats-http': project('nats', 'http'),
  'nats-cluster': clustered('nats-cluster'),
  'redis-cluster': clustered('redis-cluster'),
  floor: {
    id: 'floor',
    label: 'floor (node:http + ioredis)',
    crossServer: true,
    client: 'sse',
    spec: (brokers) => ({ program: 'floor', env: { REDIS_URL: brokers.redis } }),
    target: (port) => `http://127.0.0.1:${port}/event-stream`,
  },
  'koa-floor': {
    id: 'koa-floor',
    label: 'floor on Koa (what Koa adds)',
    crossServer: true,
    client: 'sse',
    spec: (brokers) => ({ program: 'floor', env: { REDIS_URL: brokers.redis, FLOOR_ON: 'koa' } }),
    target: (port) => `http://127.0.0.1:${port}/event-stream`,
  },
  socketio: {
    id: 'socketio',
    label: 'socket.io (redis-adapter)',
    crossServer: true,
    client: 'socketio',
    spec: (brokers) => ({ program: 'socketio', env: { REDIS_URL: brokers.redis } }),
    target: (port) => `http://127.0.0.1:${port}`,
  },
};

/** Which broker a system's messages cross, for its CPU time. */
export function brokerOf(id: SystemId): BrokerId | undefined {
  if (id === 'nats' || id === 'nats-cluster' || id === 'redis-cluster') return id;
  if (id === 'nats-http') return 'nats';
  return id === 'memory' || id === 'memory-http' ? undefined : 'redis';
}
