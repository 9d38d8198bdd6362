/**
 * Fan-out latency and saturation, on one cluster of one system: K servers,
 * N subscribers spread evenly over them, one channel, the publisher on the
 * first server. A window publishes `count` ticks at a rate and waits until
 * every subscriber has every tick, or until deliveries stop coming.
 */
import type { RecordableHistogram } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { Cluster } from '../cluster.js';
import { ownCpuSeconds, processCpuSeconds, totalCpuSeconds } from '../cpu.js';
import { LoadGenerator } from '../load/generator.js';
import { progress } from '../progress.js';
import type { BrokerUrls, System } from '../systems.js';

export interface Percentiles {
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
}

/** CPU used during a window, in cores (1 = one core busy the whole time). */
export interface CpuUse {
  generator: number;
  servers?: number;
  broker?: number;
}

export interface WindowResult {
  rate: number;
  published: number;
  failedPublishes: number;
  firstPublishError?: string;
  expected: number;
  delivered: number;
  duplicates: number;
  outOfOrder: number;
  dropped: number;
  /** Milliseconds. */
  latency: Percentiles;
  /** Deliveries per second from the first publish to the last delivery. */
  deliveriesPerSecond: number;
  cpu: CpuUse;
}

export interface LatencyRun {
  servers: number;
  subscribers: number;
  window: WindowResult;
  /** Rate steps, in order, the last one being where the system gave out (if it did). */
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
  brokerPid?: number;
  prefix: string;
}

/** How long deliveries may pause before the missing ones count as lost. */
const STALL_MS = 3_000;

export function isLossless(window: WindowResult): boolean {
  return window.delivered === window.expected && window.failedPublishes === 0 && window.dropped === 0;
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
    await measure(settings.rate, Math.min(1, settings.durationS), 'settling');
    const window = await measure(settings.rate, settings.durationS, `${settings.rate}/s`);
    const run: LatencyRun = { servers: settings.servers, subscribers: settings.subscribers, window };
    if (settings.saturation && isLossless(window)) run.saturation = [window, ...(await saturate(settings, measure))];
    return run;
  } finally {
    await load.close();
    await cluster.stop();
  }
}

/**
 * Raises the rate step by step until p99 passes the limit or something is
 * lost. A step that fails is run once more before it counts: on a small
 * machine one collection pause can spoil a short step, and "sustained" means
 * the rate holds when asked twice.
 */
async function saturate(
  settings: LatencySettings,
  measure: (rate: number, seconds: number, label: string) => Promise<WindowResult>,
): Promise<WindowResult[]> {
  const { stepS, factor, maxSteps, p99LimitMs } = settings.saturation!;
  const holds = (step: WindowResult) => isLossless(step) && step.latency.p99 <= p99LimitMs;
  const steps: WindowResult[] = [];
  // The measured window already ran at the base rate: start one step above it.
  let rate = Math.ceil(settings.rate * factor);
  for (let i = 0; i < maxSteps; i++) {
    let step = await measure(rate, stepS, `saturation ${rate}/s`);
    if (!holds(step)) step = await measure(rate, stepS, `saturation ${rate}/s, again`);
    steps.push(step);
    if (!holds(step)) break;
    rate = Math.ceil(rate * factor);
  }
  return steps;
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

async function measureWindow(
  cluster: Cluster,
  load: LoadGenerator,
  settings: LatencySettings,
  ticks: { from: number; count: number; rate: number },
  phase: string,
): Promise<WindowResult> {
  const expected = ticks.count * settings.subscribers;
  load.startWindow(ticks.from);
  const cpuBefore = cpuNow(cluster, settings.brokerPid);
  const started = performance.now();
  const published = cluster.ask<'published'>(0, { type: 'publish', ...ticks, padBytes: settings.padBytes });
  let publishDone = false;
  void published.then(() => (publishDone = true));

  let totals = await load.totals();
  let lastProgress = performance.now();
  let lastDelivered = 0;
  let finished = started;
  while (totals.delivered < expected) {
    await sleep(100);
    totals = await load.totals();
    progress(phase, `${totals.delivered}/${expected} delivered`);
    if (totals.delivered > lastDelivered) {
      lastDelivered = totals.delivered;
      lastProgress = performance.now();
      finished = lastProgress;
    } else if (publishDone && performance.now() - lastProgress > STALL_MS) break;
  }
  if (totals.delivered >= expected) finished = performance.now();
  const publishing = await published;
  const seconds = (finished - started) / 1000;
  const cpuAfter = cpuNow(cluster, settings.brokerPid);
  const latencies = await load.latencies();
  return {
    rate: ticks.rate,
    published: ticks.count,
    failedPublishes: publishing.failed,
    firstPublishError: publishing.firstError,
    expected,
    delivered: totals.delivered,
    duplicates: totals.duplicates,
    outOfOrder: totals.outOfOrder,
    dropped: totals.dropped,
    latency: percentiles(latencies),
    deliveriesPerSecond: Math.round(totals.delivered / seconds),
    cpu: {
      generator: (cpuAfter.generator - cpuBefore.generator) / seconds,
      servers: difference(cpuAfter.servers, cpuBefore.servers, seconds),
      broker: difference(cpuAfter.broker, cpuBefore.broker, seconds),
    },
  };
}

function cpuNow(cluster: Cluster, brokerPid: number | undefined) {
  return { generator: ownCpuSeconds(), servers: totalCpuSeconds(cluster.pids), broker: processCpuSeconds(brokerPid) };
}

function difference(after: number | undefined, before: number | undefined, seconds: number): number | undefined {
  return after === undefined || before === undefined ? undefined : (after - before) / seconds;
}

/** The histogram holds microseconds; the report speaks milliseconds. */
function percentiles(histogram: RecordableHistogram): Percentiles {
  const ms = (us: number) => (histogram.count === 0 ? Number.NaN : Math.round(us) / 1000);
  return {
    p50: ms(histogram.percentile(50)),
    p90: ms(histogram.percentile(90)),
    p99: ms(histogram.percentile(99)),
    p999: ms(histogram.percentile(99.9)),
    max: ms(histogram.max),
  };
}
