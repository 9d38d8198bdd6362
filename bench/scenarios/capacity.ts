/**
 * Connection capacity: one server, C idle subscribers. What each connection
 * costs the server in memory (RSS and V8 heap, both after a full collection),
 * how fast the server accepts them, and how many broker subscriptions they
 * hold.
 *
 * The memory per connection is what the second half of the connections
 * added, measured between the halves and after: what one more connection
 * costs a server that already holds thousands. From an empty server the
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

export async function runCapacity(system: System, settings: CapacitySettings, phase: string): Promise<CapacityRun> {
  const spec = system.spec(settings.brokers, settings.prefix);
  const cluster = await Cluster.start({ ...spec, env: { ...spec.env, HOUSEKEEPING_MS: String(settings.housekeepingMs) } }, 1);
  // Two halves: memory is measured between them and after, and what a connection costs is what the second half added.
  const firstHalf = Math.floor(settings.connections / 2);
  const target = system.target(cluster.ports[0]!);
  const halves = [firstHalf, settings.connections - firstHalf].map((count) => new LoadGenerator(system.client, Array(count).fill(target), settings.threads, 128));
  try {
    await Promise.all(halves.map((half) => half.ready()));
    const broker = () => (settings.brokerPids.length > 0 ? totalCpuSeconds(settings.brokerPids) : undefined);
    let connectSeconds = 0;
    const connectHalf = async (half: LoadGenerator, offset: number) => {
      const started = performance.now();
      await half.connect((connected) => progress(phase, `${offset + connected}/${settings.connections} connected`));
      connectSeconds += (performance.now() - started) / 1000;
    };
    const cpuNow = () => ({ generator: ownCpuSeconds(), servers: totalCpuSeconds(cluster.pids), broker: broker() });
    const cpuBefore = cpuNow();
    await connectHalf(halves[0]!, 0);
    const cpuHalf = cpuNow();
    progress(phase, 'measuring memory');
    const middle = await cluster.ask<'memory'>(0, { type: 'memory' });
    const cpuResumed = cpuNow();
    await connectHalf(halves[1]!, firstHalf);
    const cpuEnd = cpuNow();
    // The CPU of the connects alone: the pause to measure memory between the halves is left out.
    const spent = (pick: (cpu: typeof cpuEnd) => number | undefined) => {
      const [a, b, c, d] = [cpuBefore, cpuHalf, cpuResumed, cpuEnd].map(pick);
      return a === undefined || b === undefined || c === undefined || d === undefined ? undefined : b - a + (d - c);
    };
    progress(phase, 'measuring memory');
    const after = await cluster.ask<'memory'>(0, { type: 'memory' });
    const secondHalf = settings.connections - firstHalf;
    const subscriptions = await brokerSubscriptions(system, settings.brokers, cluster);
    // Registrations and heartbeats are server-events' own: only its servers are measured for them.
    const brokerCpuUs =
      spec.program === 'project'
        ? await brokerCosts(cluster, broker, settings.connections, connectSeconds, spent((cpu) => cpu.broker), settings.housekeepingMs + 1000, phase)
        : undefined;
    const servers = spent((cpu) => cpu.servers);
    return {
      connections: settings.connections,
      connectSeconds,
      connectsPerSecond: Math.round(settings.connections / connectSeconds),
      rssPerConnection: Math.round((after.rss - middle.rss) / secondHalf),
      heapPerConnection: Math.round((after.heapUsed - middle.heapUsed) / secondHalf),
      rss: after.rss,
      brokerSubscriptionsPerConnection: subscriptions === undefined ? undefined : subscriptions / settings.connections,
      cpu: {
        generator: spent((cpu) => cpu.generator)! / connectSeconds,
        servers: servers === undefined ? undefined : servers / connectSeconds,
      },
      brokerCpuUs,
    };
  } finally {
    await Promise.all(halves.map((half) => half.close()));
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
