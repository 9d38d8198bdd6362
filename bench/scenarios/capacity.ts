/**
 * Connection capacity: one server, C idle subscribers. What each connection
 * costs the server in memory (RSS and V8 heap, both after a full collection),
 * how fast the server accepts them, and how many broker subscriptions they
 * hold.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { Cluster } from '../cluster.js';
import { coresUsed, ownCpuSeconds, totalCpuSeconds } from '../cpu.js';
import { LoadGenerator } from '../load/generator.js';
import { progress } from '../progress.js';
import { brokerOf, type BrokerUrls, type System } from '../systems.js';

export interface CapacityRun {
  connections: number;
  connectSeconds: number;
  connectsPerSecond: number;
  /** Bytes per connection. */
  rssPerConnection: number;
  heapPerConnection: number;
  /** Server RSS with every connection open, in bytes. */
  rss: number;
  /** Subscriptions the broker holds for the server, per connection (undefined where it cannot be told). */
  brokerSubscriptionsPerConnection?: number;
  /** Cores used while connecting. */
  cpu: { generator: number; servers?: number };
  /**
   * The broker's CPU µs per registration (the connects, less what the broker spends idle) and per
   * heartbeat (every stream heartbeats once, and the server renews the leases in the broker as it
   * does: in batches, on its housekeeping timer). server-events only.
   */
  brokerCpuUs?: { registration?: number; heartbeat?: number };
}

export interface CapacitySettings {
  connections: number;
  threads: number;
  brokers: BrokerUrls;
  /** The broker's processes, for its CPU time. */
  brokerPids: number[];
  /** server-events' housekeeping interval, which renews the leases. */
  housekeepingMs: number;
  prefix: string;
}

export async function runCapacity(system: System, settings: CapacitySettings, phase: string): Promise<CapacityRun> {
  const spec = system.spec(settings.brokers, settings.prefix);
  const cluster = await Cluster.start({ ...spec, env: { ...spec.env, HOUSEKEEPING_MS: String(settings.housekeepingMs) } }, 1);
  const load = new LoadGenerator(system.client, Array(settings.connections).fill(system.target(cluster.ports[0]!)), settings.threads, 128);
  try {
    await load.ready();
    const before = await cluster.ask<'memory'>(0, { type: 'memory' });
    const broker = () => (settings.brokerPids.length > 0 ? totalCpuSeconds(settings.brokerPids) : undefined);
    const cpuBefore = { generator: ownCpuSeconds(), servers: totalCpuSeconds(cluster.pids), broker: broker() };
    const started = performance.now();
    await load.connect((connected) => progress(phase, `${connected}/${settings.connections} connected`));
    const connectSeconds = (performance.now() - started) / 1000;
    const cpuAfter = { generator: ownCpuSeconds(), servers: totalCpuSeconds(cluster.pids), broker: broker() };
    progress(phase, 'measuring memory');
    const after = await cluster.ask<'memory'>(0, { type: 'memory' });
    const subscriptions = await brokerSubscriptions(system, settings.brokers, cluster);
    // Registrations and heartbeats are server-events' own: only its servers are measured for them.
    const brokerCpuUs =
      spec.program === 'project'
        ? await brokerCosts(cluster, broker, settings.connections, connectSeconds, cpuBefore.broker, cpuAfter.broker, settings.housekeepingMs + 1000, phase)
        : undefined;
    return {
      connections: settings.connections,
      connectSeconds,
      connectsPerSecond: Math.round(settings.connections / connectSeconds),
      rssPerConnection: Math.round((after.rss - before.rss) / settings.connections),
      heapPerConnection: Math.round((after.heapUsed - before.heapUsed) / settings.connections),
      rss: after.rss,
      brokerSubscriptionsPerConnection: subscriptions === undefined ? undefined : subscriptions / settings.connections,
      cpu: {
        generator: (cpuAfter.generator - cpuBefore.generator) / connectSeconds,
        servers: coresUsed(cpuBefore.servers, cpuAfter.servers, connectSeconds),
      },
      brokerCpuUs,
    };
  } finally {
    await load.close();
    await cluster.stop();
  }
}

/**
 * What registrations and heartbeats cost the broker, for a server that can
 * take a heartbeat for each of its streams (server-events): an idle window
 * first, for what the broker spends anyway, then every stream heartbeats
 * once and a window as long holds the lease renewals that follow.
 */
async function brokerCosts(
  cluster: Cluster,
  broker: () => number | undefined,
  connections: number,
  connectSeconds: number,
  beforeConnect: number | undefined,
  afterConnect: number | undefined,
  /** Long enough to hold one housekeeping run. */
  heartbeatWindowMs: number,
  phase: string,
): Promise<CapacityRun['brokerCpuUs']> {
  if (beforeConnect === undefined || afterConnect === undefined) return undefined;
  progress(phase, 'measuring the broker idle');
  const idleFrom = broker()!;
  await sleep(heartbeatWindowMs);
  const idlePerSecond = (broker()! - idleFrom) / (heartbeatWindowMs / 1000);
  const registration = (((afterConnect - beforeConnect) - idlePerSecond * connectSeconds) * 1e6) / connections;
  progress(phase, 'one heartbeat per stream');
  const busyFrom = broker()!;
  const pulsed = await cluster.ask<'pulse'>(0, { type: 'pulse' });
  if (pulsed.count <= 0) return { registration };
  await sleep(heartbeatWindowMs);
  const heartbeat = (((broker()! - busyFrom) - idlePerSecond * (heartbeatWindowMs / 1000)) * 1e6) / pulsed.count;
  return { registration, heartbeat };
}

/**
 * The broker subscriptions the server holds: counted by Redis itself for
 * the systems on Redis (every channel and pattern of every client: the run's
 * Redis serves this one server alone here); from server-events' own stats
 * for the memory broker and NATS, where each topic is two core
 * subscriptions (controls, and events as the history republishes them).
 */
async function brokerSubscriptions(system: System, brokers: BrokerUrls, cluster: Cluster): Promise<number | undefined> {
  const broker = brokerOf(system.id);
  if (broker === 'redis') {
    const redis = new Redis(brokers.redis);
    try {
      const clients = (await redis.client('LIST')) as string;
      let total = 0;
      for (const match of clients.matchAll(/ (?:sub|psub|ssub)=(\d+)/g)) total += Number(match[1]);
      return total;
    } finally {
      redis.disconnect();
    }
  }
  const stats = await cluster.ask<'stats'>(0, { type: 'stats' });
  if (stats.brokerTopics < 0) return undefined;
  return stats.brokerTopics * (broker === 'nats' ? 2 : 1);
}
