/**
 * Fan-out latency, then saturation, on one cluster of one system: K servers,
 * N subscribers spread evenly over them, one channel, the publisher on the
 * first server.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { Cluster } from '../cluster.js';
import { LoadGenerator } from '../load/generator.js';
import { progress } from '../progress.js';
import type { BrokerUrls, System } from '../systems.js';
import { saturate } from './saturation.js';
import { measureWindow, type WindowResult } from './window.js';

export interface LatencyRun {
  servers: number;
  subscribers: number;
  /** The unmeasured second before the window: its latencies are not reported, but anything it lost is. */
  settling: WindowResult;
  window: WindowResult;
  /** Saturation attempts in order (see saturation.ts). */
  saturation?: WindowResult[];
}

export interface LatencySettings {
  servers: number;
  subscribers: number;
  rate: number;
  durationS: number;
  padBytes: number;
  threads: number;
  saturation?: { stepS: number; factor: number; maxSteps: number; p99LimitMs: number };
  brokers: BrokerUrls;
  /** The broker's processes (every node of a cluster), for their CPU time. */
  brokerPids?: number[];
  prefix: string;
}

export async function runLatency(system: System, settings: LatencySettings, phase: string): Promise<LatencyRun> {
  const cluster = await Cluster.start(system.spec(settings.brokers, settings.prefix), settings.servers);
  const targets = Array.from({ length: settings.subscribers }, (_, i) => system.target(cluster.ports[i % cluster.ports.length]!));
  const load = new LoadGenerator(system.client, targets, settings.threads);
  try {
    await load.connect((connected) => progress(phase, `${connected}/${settings.subscribers} connected`));
    await warmUp(cluster, load, phase);
    let from = 0;
    const measure = async (rate: number, seconds: number, label: string) => {
      const count = Math.max(1, Math.round(rate * seconds));
      const result = await measureWindow(cluster, load, settings, { from, count, rate }, `${phase} ${label}`);
      from += count;
      return result;
    };
    // One unmeasured second at the rate first: the JIT and the connection pools settle before the clock runs.
    const settling = await measure(settings.rate, Math.min(1, settings.durationS), 'settling');
    const window = await measure(settings.rate, settings.durationS, `${settings.rate}/s`);
    const run: LatencyRun = { servers: settings.servers, subscribers: settings.subscribers, settling, window };
    if (settings.saturation) run.saturation = await saturate({ ...settings.saturation, rate: settings.rate }, measure);
    return run;
  } finally {
    await load.close();
    await cluster.stop();
  }
}

/** Publishes warm-up ticks until every connection has had one, so that every subscription is in place. */
async function warmUp(cluster: Cluster, load: LoadGenerator, phase: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (let seq = -1; ; seq--) {
    await cluster.ask(0, { type: 'publish', from: seq, count: 1, rate: 1000, padBytes: 0 });
    await sleep(100);
    const totals = await load.totals();
    progress(phase, `warming up, ${totals.warmed}/${totals.connections}`);
    if (totals.warmed === totals.connections) return;
    if (Date.now() > deadline) throw new Error(`only ${totals.warmed} of ${totals.connections} subscribers received a warm-up tick in 30 s`);
  }
}
