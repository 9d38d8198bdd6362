/**
 * Connection capacity: one server, C idle subscribers. What each connection
 * costs the server in memory (RSS and V8 heap, both after a full collection)
 * and how fast the server accepts them.
 */
import { Cluster } from '../cluster.js';
import { coresUsed, ownCpuSeconds, totalCpuSeconds } from '../cpu.js';
import { LoadGenerator } from '../load/generator.js';
import { progress } from '../progress.js';
import type { BrokerUrls, System } from '../systems.js';

export interface CapacityRun {
  connections: number;
  connectSeconds: number;
  connectsPerSecond: number;
  /** Bytes per connection. */
  rssPerConnection: number;
  heapPerConnection: number;
  /** Server RSS with every connection open, in bytes. */
  rss: number;
  /** Cores used while connecting. */
  cpu: { generator: number; servers?: number };
}

export interface CapacitySettings {
  connections: number;
  threads: number;
  brokers: BrokerUrls;
  prefix: string;
}

export async function runCapacity(system: System, settings: CapacitySettings, phase: string): Promise<CapacityRun> {
  const cluster = await Cluster.start(system.spec(settings.brokers, settings.prefix), 1);
  const load = new LoadGenerator(system.client, Array(settings.connections).fill(system.target(cluster.ports[0]!)), settings.threads, 128);
  try {
    await load.ready();
    const before = await cluster.ask<'memory'>(0, { type: 'memory' });
    const cpuBefore = { generator: ownCpuSeconds(), servers: totalCpuSeconds(cluster.pids) };
    const started = performance.now();
    await load.connect((connected) => progress(phase, `${connected}/${settings.connections} connected`));
    const connectSeconds = (performance.now() - started) / 1000;
    const cpuAfter = { generator: ownCpuSeconds(), servers: totalCpuSeconds(cluster.pids) };
    progress(phase, 'measuring memory');
    const after = await cluster.ask<'memory'>(0, { type: 'memory' });
    return {
      connections: settings.connections,
      connectSeconds,
      connectsPerSecond: Math.round(settings.connections / connectSeconds),
      rssPerConnection: Math.round((after.rss - before.rss) / settings.connections),
      heapPerConnection: Math.round((after.heapUsed - before.heapUsed) / settings.connections),
      rss: after.rss,
      cpu: {
        generator: (cpuAfter.generator - cpuBefore.generator) / connectSeconds,
        servers: coresUsed(cpuBefore.servers, cpuAfter.servers, connectSeconds),
      },
    };
  } finally {
    await load.close();
    await cluster.stop();
  }
}
