/**
 * Connection capacity: one server, C idle subscribers. What each connection
 * costs the server in memory (RSS and V8 heap, both after a full collection),
 * how fast the server accepts them, and how many broker subscriptions they
 * hold.
 *
 * The memory per connection is what the second half of the connections
 * added (see `checkpoints`): what one more connection costs a server that
 * already holds thousands. From an empty server the
 * figure would also hold what grows once and then stays, above all V8's
 * young generation, which doubles (16 MiB more) at some point in the first
 * thousands of connections or before them, as V8's sizing sees fit: a
 * difference of 1.6 KiB per connection between two runs of one system.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { Cluster } from '../cluster.js';
import { ownCpuSeconds, totalCpuSeconds } from '../cpu.js';
import { LoadGenerator } from '../load/generator.js';
import { progress } from '../progress.js';
import { brokerOf, type BrokerUrls, type System } from '../systems.js';

export interface CapacityRun {
  connections: number;
  connectSeconds: number;
  connectsPerSecond: number;
  /** Bytes per connection: what the second half of the connections added, over their number. */
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

/**
 * Connections are opened in `checkpoints` equal steps, memory measured after
 * each. What a connection costs is the least-squares slope of the
 * measurements from the middle on: one difference of two readings, each
 * taken after thousands of connections at once, is at the mercy of when the
 * allocator and V8 hand memory back (on NATS, identical runs read 5.7 to
 * 13.6 KiB per connection so, with the same heap).
 */
const checkpoints = 8;

export async function runCapacity(system: System, settings: CapacitySettings, phase: string): Promise<CapacityRun> {
  const spec = system.spec(settings.brokers, settings.prefix);
  const cluster = await Cluster.start({ ...spec, env: { ...spec.env, HOUSEKEEPING_MS: String(settings.housekeepingMs) } }, 1);
  const target = system.target(cluster.ports[0]!);
  const sizes = Array.from({ length: checkpoints }, (_, i) => Math.floor((settings.connections * (i + 1)) / checkpoints) - Math.floor((settings.connections * i) / checkpoints));
  const steps = sizes.map((count) => new LoadGenerator(system.client, Array(count).fill(target), settings.threads, 128));
  try {
    await Promise.all(steps.map((step) => step.ready()));
    const broker = () => (settings.brokerPids.length > 0 ? totalCpuSeconds(settings.brokerPids) : undefined);
    const cpuNow = () => ({ generator: ownCpuSeconds(), servers: totalCpuSeconds(cluster.pids), broker: broker() });
    // The connects alone are timed and their CPU counted: the pauses to measure memory between the steps are left out.
    let connectSeconds = 0;
    const spentCpu = { generator: 0, servers: 0 as number | undefined, broker: 0 as number | undefined };
    const add = (total: number | undefined, before: number | undefined, after: number | undefined) =>
      total === undefined || before === undefined || after === undefined ? undefined : total + (after - before);
    const readings: Array<{ connected: number; rss: number; heapUsed: number }> = [];
    let connected = 0;
    for (const [i, step] of steps.entries()) {
      const before = cpuNow();
      const started = performance.now();
      await step.connect((count) => progress(phase, `${connected + count}/${settings.connections} connected`));
      connectSeconds += (performance.now() - started) / 1000;
      const after = cpuNow();
      spentCpu.generator += after.generator - before.generator;
      spentCpu.servers = add(spentCpu.servers, before.servers, after.servers);
      spentCpu.broker = add(spentCpu.broker, before.broker, after.broker);
      connected += sizes[i]!;
      progress(phase, 'measuring memory');
      const memory = await cluster.ask<'memory'>(0, { type: 'memory' });
      readings.push({ connected, rss: memory.rss, heapUsed: memory.heapUsed });
    }
    const fromMiddle = readings.slice(checkpoints / 2 - 1);
    const subscriptions = await brokerSubscriptions(system, settings.brokers, cluster);
    // Registrations and heartbeats are server-events' own: only its servers are measured for them.
    const brokerCpuUs =
      spec.program === 'project'
        ? await brokerCosts(cluster, broker, settings.connections, connectSeconds, spentCpu.broker, settings.housekeepingMs + 1000, phase)
        : undefined;
    return {
      connections: settings.connections,
      connectSeconds,
      connectsPerSecond: Math.round(settings.connections / connectSeconds),
      rssPerConnection: Math.round(slope(fromMiddle.map((r) => [r.connected, r.rss]))),
      heapPerConnection: Math.round(slope(fromMiddle.map((r) => [r.connected, r.heapUsed]))),
      rss: readings.at(-1)!.rss,
      brokerSubscriptionsPerConnection: subscriptions === undefined ? undefined : subscriptions / settings.connections,
      cpu: {
        generator: spentCpu.generator / connectSeconds,
        servers: spentCpu.servers === undefined ? undefined : spentCpu.servers / connectSeconds,
      },
      brokerCpuUs,
    };
  } finally {
    await Promise.all(steps.map((step) => step.close()));
    await cluster.stop();
  }
}

/** The least-squares slope of `y` over `x`. */
function slope(points: Array<[number, number]>): number {
  const meanX = points.reduce((sum, [x]) => sum + x, 0) / points.length;
  const meanY = points.reduce((sum, [, y]) => sum + y, 0) / points.length;
  const covariance = points.reduce((sum, [x, y]) => sum + (x - meanX) * (y - meanY), 0);
  const variance = points.reduce((sum, [x]) => sum + (x - meanX) ** 2, 0);
  return covariance / variance;
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
  /** The broker's CPU seconds over the connects. */
  connectCpu: number | undefined,
  /** Long enough to hold one housekeeping run. */
  heartbeatWindowMs: number,
  phase: string,
): Promise<CapacityRun['brokerCpuUs']> {
  if (connectCpu === undefined) return undefined;
  progress(phase, 'measuring the broker idle');
  const idleFrom = broker()!;
  await sleep(heartbeatWindowMs);
  const idlePerSecond = (broker()! - idleFrom) / (heartbeatWindowMs / 1000);
  const registration = ((connectCpu - idlePerSecond * connectSeconds) * 1e6) / connections;
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
