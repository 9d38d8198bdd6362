/**
 * One measured window: the publisher sends `count` ticks at a rate, and the
 * window ends when every subscriber has every tick, or when deliveries stop
 * coming. Everything a window reports is in its result.
 */
import type { RecordableHistogram } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Cluster } from '../cluster.js';
import { coresUsed, ownCpuSeconds, totalCpuSeconds } from '../cpu.js';
import type { LoadGenerator } from '../load/generator.js';
import { progress } from '../progress.js';

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
  /** How long the window took, from its first publish to its last delivery. */
  seconds: number;
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
  cpu: CpuUse;
}

export interface WindowSetup {
  subscribers: number;
  padBytes: number;
  /** The broker's processes (every node of a cluster), for their CPU time. */
  brokerPids?: number[];
}

/** How long deliveries may pause before the missing ones count as lost. */
const STALL_MS = 3_000;

/** What went wrong in a window, if anything: loss, a failed publish, a dropped connection, a duplicate or a reordering. */
export function faultsOf(window: WindowResult): string[] {
  const faults: string[] = [];
  const missing = window.expected - window.delivered;
  if (missing > 0) faults.push(`${missing} of ${window.expected} deliveries lost`);
  if (window.failedPublishes > 0) faults.push(`${window.failedPublishes} publishes failed (${window.firstPublishError})`);
  if (window.dropped > 0) faults.push(`${window.dropped} connections dropped`);
  if (window.duplicates > 0) faults.push(`${window.duplicates} duplicates`);
  if (window.outOfOrder > 0) faults.push(`${window.outOfOrder} out of order`);
  return faults;
}

export async function measureWindow(
  cluster: Cluster,
  load: LoadGenerator,
  setup: WindowSetup,
  ticks: { from: number; count: number; rate: number },
  phase: string,
): Promise<WindowResult> {
  const expected = ticks.count * setup.subscribers;
  load.startWindow(ticks.from);
  const cpuBefore = cpuNow(cluster, setup.brokerPids ?? []);
  const started = performance.now();
  const publishMs = (ticks.count / ticks.rate) * 1000;
  const published = cluster.ask<'published'>(0, { type: 'publish', ...ticks, padBytes: setup.padBytes }, publishMs + 30_000);
  let publishDone = false;
  // A publish that fails (or times out) ends the wait below; its error surfaces at the await after it.
  void published.then(
    () => (publishDone = true),
    () => (publishDone = true),
  );

  let totals = await load.totals();
  let lastProgress = performance.now();
  let lastDelivered = 0;
  while (totals.delivered < expected) {
    await sleep(100);
    totals = await load.totals();
    progress(phase, `${totals.delivered}/${expected} delivered`);
    if (totals.delivered > lastDelivered) {
      lastDelivered = totals.delivered;
      lastProgress = performance.now();
    } else if (publishDone && performance.now() - lastProgress > STALL_MS) break;
  }
  const publishing = await published;
  const seconds = (performance.now() - started) / 1000;
  const cpuAfter = cpuNow(cluster, setup.brokerPids ?? []);
  const latencies = await load.latencies();
  return {
    rate: ticks.rate,
    seconds,
    published: ticks.count,
    failedPublishes: publishing.failed,
    firstPublishError: publishing.firstError,
    expected,
    delivered: totals.delivered,
    duplicates: totals.duplicates,
    outOfOrder: totals.outOfOrder,
    dropped: totals.dropped,
    latency: percentiles(latencies),
    cpu: {
      generator: (cpuAfter.generator - cpuBefore.generator) / seconds,
      servers: coresUsed(cpuBefore.servers, cpuAfter.servers, seconds),
      broker: coresUsed(cpuBefore.broker, cpuAfter.broker, seconds),
    },
  };
}

function cpuNow(cluster: Cluster, brokerPids: number[]) {
  return { generator: ownCpuSeconds(), servers: totalCpuSeconds(cluster.pids), broker: brokerPids.length > 0 ? totalCpuSeconds(brokerPids) : undefined };
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
