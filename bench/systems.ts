/**
 * The systems a run compares. Each is a server program plus the client that
 * its users would connect with.
 */
import type { ServerSpec } from './cluster.js';
import type { ClientKind } from './load/worker.js';

export type SystemId = 'memory' | 'redis' | 'nats' | 'floor' | 'socketio';

export interface System {
  id: SystemId;
  label: string;
  /** The memory broker lives inside one process, so it has no cross-server run. */
  crossServer: boolean;
  client: ClientKind;
  spec(brokers: BrokerUrls, prefix: string): ServerSpec;
  /** The URL a subscriber connects to on the server at `port`. */
  target(port: number): string;
}

export interface BrokerUrls {
  redis: string;
  nats: string;
}

const project = (broker: 'memory' | 'redis' | 'nats'): System => ({
  id: broker,
  label: `server-events (${broker})`,
  crossServer: broker !== 'memory',
  client: 'sse',
  spec: (brokers, prefix) => ({
    program: 'project',
    env: {
      BROKER: broker,
      REDIS_URL: broker === 'redis' ? brokers.redis : '',
      NATS_URL: broker === 'nats' ? brokers.nats : '',
      // Each cluster gets fresh keys and streams, so no run reads another's history.
      BROKER_PREFIX: broker === 'redis' ? `${prefix}:` : prefix,
    },
  }),
  target: (port) => `http://127.0.0.1:${port}/event-stream?channels=bench`,
});

export const systems: Record<SystemId, System> = {
  memory: project('memory'),
  redis: project('redis'),
  nats: project('nats'),
  floor: {
    id: 'floor',
    label: 'floor (node:http + ioredis)',
    crossServer: true,
    client: 'sse',
    spec: (brokers) => ({ program: 'floor', env: { REDIS_URL: brokers.redis } }),
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

/** Which broker process a system's messages cross, for its CPU time. */
export function brokerOf(id: SystemId): 'redis' | 'nats' | undefined {
  if (id === 'nats') return 'nats';
  return id === 'memory' ? undefined : 'redis';
}
