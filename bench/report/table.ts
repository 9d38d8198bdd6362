/**
 * The run's results, and the markdown tables printed on the terminal and
 * pasted into the README. Every figure sits beside its ratio to the floor
 * measured in the same run, because only the ratio travels between machines.
 */
import type { Machine } from '../machine.js';
import type { BenchOptions } from '../options.js';
import type { CapacityRun } from '../scenarios/capacity.js';
import type { CeilingRun } from '../scenarios/ceiling.js';
import type { LatencyRun } from '../scenarios/latency.js';
import type { ScaleRun, Stat } from '../scenarios/scale.js';
import type { StormRun } from '../scenarios/storm.js';
import { saturationSummary } from '../scenarios/saturation.js';
import { faultsOf, type WindowResult } from '../scenarios/window.js';
import { systems, type SystemId } from '../systems.js';

export type Outcome<T> = { ok: true; value: T } | { ok: false; error: string };

export interface BenchResults {
  startedAt: string;
  seconds?: number;
  machine: Machine;
  options: BenchOptions;
  fanout: Partial<Record<SystemId, Outcome<LatencyRun>>>;
  burst: Partial<Record<SystemId, Outcome<LatencyRun>>>;
  hop: Partial<Record<SystemId, Outcome<LatencyRun>>>;
  capacity: Partial<Record<SystemId, Outcome<CapacityRun>>>;
  ceiling: Partial<Record<SystemId, Outcome<CeilingRun>>>;
  scale: Partial<Record<SystemId, Outcome<ScaleRun>>>;
  storm?: Partial<Record<SystemId, Outcome<StormRun>>>;
}

type Row = string[];

function table(header: Row, rows: Row[]): string {
  const line = (cells: Row) => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map((_, i) => (i === 0 ? '---' : '---:'))), ...rows.map(line)].join('\n');
}

const ms = (value: number) => (Number.isNaN(value) ? '–' : value < 10 ? value.toFixed(2) : value.toFixed(1));
const cores = (value: number | undefined) => (value === undefined ? '–' : value.toFixed(2));
const kib = (bytes: number) => `${(bytes / 1024).toFixed(1)} KiB`;
const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(0)} MiB`;
const count = (value: number) => value.toLocaleString('en-US');
const us = (value: number | undefined) => (value === undefined || !Number.isFinite(value) ? '–' : value < 10 ? value.toFixed(2) : value.toFixed(1));

/** Server CPU microseconds per delivery in a window: what one frame to one subscriber cost the servers. */
function cpuPerDelivery(window: WindowResult): number | undefined {
  const { servers } = window.cpu;
  return servers === undefined || window.delivered === 0 ? undefined : (servers * window.seconds * 1e6) / window.delivered;
}

function ratio(value: number | undefined, floor: number | undefined): string {
  if (value === undefined || floor === undefined || !Number.isFinite(value) || !floor) return '–';
  return `×${(value / floor).toFixed(2)}`;
}

function failedRow(id: SystemId, error: string, width: number): Row {
  return [systems[id].label, `failed: ${error}`, ...Array(width - 2).fill('')];
}

function latencyTable(runs: BenchResults['fanout']): string {
  const floor = runs.floor?.ok ? runs.floor.value.window : undefined;
  const header = [
    'System',
    'p50 ms',
    'p90 ms',
    'p99 ms',
    'p99.9 ms',
    'max ms',
    'delivered / expected',
    'p50 vs floor',
    'p99 vs floor',
    'server CPU µs / delivery',
    'vs floor',
    'CPU servers',
    'CPU broker',
    'CPU generator',
  ];
  const rows = Object.entries(runs).map(([id, outcome]) => {
    if (!outcome.ok) return failedRow(id as SystemId, outcome.error, header.length);
    const { latency, delivered, expected, cpu } = outcome.value.window;
    return [
      systems[id as SystemId].label,
      ms(latency.p50),
      ms(latency.p90),
      ms(latency.p99),
      ms(latency.p999),
      ms(latency.max),
      `${count(delivered)} / ${count(expected)}`,
      id === 'floor' ? '1' : ratio(latency.p50, floor?.latency.p50),
      id === 'floor' ? '1' : ratio(latency.p99, floor?.latency.p99),
      us(cpuPerDelivery(outcome.value.window)),
      id === 'floor' ? '1' : ratio(cpuPerDelivery(outcome.value.window), floor && cpuPerDelivery(floor)),
      cores(cpu.servers),
      cores(cpu.broker),
      cores(cpu.generator),
    ];
  });
  return table(header, rows);
}

function saturationTable(runs: BenchResults['fanout'], limitMs: number): string {
  const sustained = (run: LatencyRun) => {
    const { best } = saturationSummary(run.saturation ?? [], limitMs);
    return best && best.rate * run.subscribers;
  };
  const floor = runs.floor?.ok ? sustained(runs.floor.value) : undefined;
  const header = ['System', 'highest rate held (msg/s)', 'deliveries/s', 'vs floor', 'p99 ms there', 'CPU servers / generator there', 'gave out at'];
  const rows = Object.entries(runs).map(([id, outcome]) => {
    if (!outcome.ok) return failedRow(id as SystemId, outcome.error, header.length);
    const { best, breaking } = saturationSummary(outcome.value.saturation ?? [], limitMs);
    const faults = breaking ? faultsOf(breaking) : [];
    const gaveOut = !breaking
      ? 'not within the steps run'
      : `${breaking.rate}/s: ${faults.length > 0 ? faults.join(', ') : `p99 ${ms(breaking.latency.p99)} ms`}`;
    return [
      systems[id as SystemId].label,
      best ? count(best.rate) : 'none',
      best ? count(best.rate * outcome.value.subscribers) : '–',
      id === 'floor' ? '1' : ratio(sustained(outcome.value), floor),
      best ? ms(best.latency.p99) : '–',
      best ? `${cores(best.cpu.servers)} / ${cores(best.cpu.generator)}` : '–',
      gaveOut,
    ];
  });
  return table(header, rows);
}

/** The server's CPU time per connection accepted, in µs: what connecting costs the server, whatever else shares the cores. */
function cpuPerConnect(run: CapacityRun): number | undefined {
  return run.cpu.servers === undefined ? undefined : (run.cpu.servers / run.connectsPerSecond) * 1e6;
}

function capacityTable(runs: BenchResults['capacity']): string {
  const floor = runs.floor?.ok ? runs.floor.value : undefined;
  const header = [
    'System',
    'connections',
    'connects/s',
    'vs floor',
    'server CPU µs / connect',
    'vs floor',
    'RSS per connection',
    'vs floor',
    'heap per connection',
    'vs floor',
    'broker subscriptions per connection',
    'server RSS',
    'CPU server',
    'CPU generator',
  ];
  const rows = Object.entries(runs).map(([id, outcome]) => {
    if (!outcome.ok) return failedRow(id as SystemId, outcome.error, header.length);
    const run = outcome.value;
    return [
      systems[id as SystemId].label,
      count(run.connections),
      count(run.connectsPerSecond),
      id === 'floor' ? '1' : ratio(run.connectsPerSecond, floor?.connectsPerSecond),
      us(cpuPerConnect(run)),
      id === 'floor' ? '1' : ratio(cpuPerConnect(run), floor && cpuPerConnect(floor)),
      kib(run.rssPerConnection),
      id === 'floor' ? '1' : ratio(run.rssPerConnection, floor?.rssPerConnection),
      kib(run.heapPerConnection),
      id === 'floor' ? '1' : ratio(run.heapPerConnection, floor?.heapPerConnection),
      run.brokerSubscriptionsPerConnection === undefined ? '–' : run.brokerSubscriptionsPerConnection.toFixed(4),
      mib(run.rss),
      cores(run.cpu.servers),
      cores(run.cpu.generator),
    ];
  });
  return table(header, rows);
}

function ceilingTable(runs: BenchResults['ceiling']): string {
  const floor = runs.floor?.ok ? runs.floor.value : undefined;
  const header = ['System', 'publishes/s', 'vs floor (raw ioredis PUBLISH)', 'server CPU µs / publish', 'broker CPU µs / publish', 'failed'];
  const rows = Object.entries(runs).map(([id, outcome]) => {
    if (!outcome.ok) return failedRow(id as SystemId, outcome.error, header.length);
    const run = outcome.value;
    return [
      systems[id as SystemId].label,
      count(run.publishesPerSecond),
      id === 'floor' ? '1' : ratio(run.publishesPerSecond, floor?.publishesPerSecond),
      us(run.serverCpuUs),
      us(run.brokerCpuUs),
      run.failed === 0 ? '0' : `${count(run.failed)}: ${run.firstError}`,
    ];
  });
  return table(header, rows);
}

/** One table per broker: each probe's p50 at each step, with its ratio to the first step. */
function scaleTable(run: ScaleRun): string {
  const first = run.steps[0];
  const cell = (stat: Stat, base: Stat | undefined) => `${ms(stat.p50)} (${ratio(stat.p50, base?.p50)})`;
  const header = ['subscriptions', 'list a 10-member channel, ms', 'user lookup, ms', 'resume, ms', 'heartbeat, ms', 'heartbeat via another server, ms', 'fan-out of one join, ms', 'connects/s while growing', 'failed'];
  const rows = run.steps.map((step) => [
    count(step.subscriptions),
    cell(step.list, first?.list),
    cell(step.user, first?.user),
    cell(step.resume, first?.resume),
    cell(step.heartbeat, first?.heartbeat),
    step.heartbeatElsewhere ? cell(step.heartbeatElsewhere, first?.heartbeatElsewhere) : '–',
    cell(step.join, first?.join),
    count(Math.round(step.connectsPerSecond)),
    step.failures.length === 0 ? '0' : `${step.failures.length}: ${step.failures[0]}`,
  ]);
  return table(header, rows);
}

/**
 * What one operation costs the broker, in its own CPU (the broker processes' time from /proc, idle time
 * taken out), and what one broker core can therefore carry for the whole cluster, however many servers.
 */
function brokerCostTable(results: BenchResults): string | undefined {
  const ids = (['redis', 'nats'] as const).filter((id) => results.ceiling?.[id]?.ok || results.capacity[id]?.ok);
  if (ids.length === 0) return undefined;
  const header = ['System', 'µs / publish', 'publishes/s per broker core', 'µs / registration', 'connects/s per broker core', 'µs / heartbeat', 'connections per broker core (a heartbeat every 10 s)'];
  const perCore = (costUs: number | undefined, scale = 1) => (costUs === undefined || !(costUs > 0) ? '–' : count(Math.round((1e6 / costUs) * scale)));
  const rows = ids.map((id) => {
    const ceiling = results.ceiling?.[id];
    const capacity = results.capacity[id];
    const publish = ceiling?.ok ? ceiling.value.brokerCpuUs : undefined;
    const costs = capacity?.ok ? capacity.value.brokerCpuUs : undefined;
    return [
      systems[id].label,
      us(publish),
      perCore(publish),
      us(costs?.registration),
      perCore(costs?.registration),
      us(costs?.heartbeat),
      perCore(costs?.heartbeat, 10),
    ];
  });
  return table(header, rows);
}

function stormTable(runs: NonNullable<BenchResults['storm']>): string {
  const header = ['System', 'moved', 'all back, ms', 'p50 back, ms', 'resumed (same id)', 'new subscriptions', 'never back', 'missed', 'doubled', 'resets', 'broker peak, cores', 'p99 of the others, ms'];
  const rows = Object.entries(runs).map(([id, outcome]) => {
    if (!outcome.ok) return failedRow(id as SystemId, outcome.error, header.length);
    const run = outcome.value;
    const maybe = (value: number | undefined) => (value === undefined ? '–' : ms(value));
    return [
      systems[id as SystemId].label,
      count(run.moving),
      maybe(run.allBackMs),
      maybe(run.p50BackMs),
      count(run.resumed),
      count(run.renewed),
      count(run.neverBack),
      count(run.missed),
      count(run.duplicates),
      count(run.resets),
      cores(run.brokerPeakCores),
      maybe(run.steadyP99Ms),
    ];
  });
  return table(header, rows);
}

export function markdownReport(results: BenchResults): string {
  const o = results.options;
  const m = results.machine;
  const parts = [
    `# server-events benchmark, ${results.startedAt}`,
    `${m.cores} cores (${m.cpu}), ${m.memoryGiB} GiB, Node ${m.node}, ${m.os}. Everything (servers, brokers, load generator) on this one machine${results.seconds ? `; the run took ${results.seconds} s` : ''}.`,
    `Each message carries ${o.padBytes} bytes of filler. Latency is from the publish call on server 1 to the parsed event in the subscriber. CPU is in cores (1.00 = one core busy for the whole window).`,
  ];
  if (Object.keys(results.fanout).length) {
    parts.push(
      `## Fan-out across ${o.servers} servers: ${count(o.subscribers)} subscribers, ${o.rate} msg/s for ${o.durationS} s`,
      latencyTable(results.fanout),
    );
    if (o.saturationSteps > 0) {
      parts.push(
        `## Saturation: from ${o.rate} msg/s the rate rises ×${o.saturationFactor} every ${o.saturationStepS} s until p99 passes ${o.p99LimitMs} ms (twice in a row) or anything is lost`,
        saturationTable(results.fanout, o.p99LimitMs),
      );
    }
  }
  if (Object.keys(results.burst ?? {}).length) {
    parts.push(
      `## Burst: ${count(o.burstRate)} msg/s into ${o.burstSubscribers} subscribers on one server for ${Math.min(o.durationS, 3)} s`,
      latencyTable(results.burst),
    );
  }
  if (Object.keys(results.hop).length) {
    parts.push(`## Broker hop: one server, ${count(o.subscribers)} subscribers, ${o.rate} msg/s for ${o.durationS} s`, latencyTable(results.hop));
  }
  if (Object.keys(results.capacity).length) {
    parts.push(`## Connection capacity: ${count(o.connections)} idle connections to one server`, capacityTable(results.capacity));
  }
  if (Object.keys(results.ceiling ?? {}).length) {
    parts.push(`## Publish ceiling: one server, ${o.inFlight} publishes in flight, nobody subscribed, ${o.ceilingSeconds} s`, ceilingTable(results.ceiling));
  }
  const costs = brokerCostTable(results);
  if (costs) parts.push(`## The broker's cost per operation, and the cluster-wide ceilings it implies`, costs);
  for (const [id, outcome] of Object.entries(results.scale ?? {})) {
    const heading = `## Scale: ${systems[id as SystemId].label}, 3 servers, p50 at each step (× the first step)`;
    parts.push(heading, outcome.ok ? scaleTable(outcome.value) : `failed: ${outcome.error}`);
  }
  if (Object.keys(results.storm ?? {}).length) {
    const storm = Object.values(results.storm ?? {}).find((outcome) => outcome?.ok);
    const shape = storm?.ok ? ` (${count(storm.value.steady)} others stay on the second and third; ${storm.value.rooms} rooms)` : '';
    parts.push(
      `## Reconnect storm: 3 servers, ${count(o.stormSubscribers)} subscriptions of our client on the first${shape}, which is SIGKILLed under ${o.stormRate} msg/s, each to one room`,
      stormTable(results.storm ?? {}),
    );
  }
  return `${parts.join('\n\n')}\n`;
}

/** What makes the run fail: a system that did not run, or a measured (or settling) window with any fault. */
export function failures(results: BenchResults): string[] {
  const problems: string[] = [];
  const latency = (scenario: string, runs: BenchResults['fanout']) => {
    for (const [id, outcome] of Object.entries(runs)) {
      const label = `${scenario} ${systems[id as SystemId].label}`;
      if (!outcome.ok) problems.push(`${label} failed: ${outcome.error}`);
      else {
        for (const fault of faultsOf(outcome.value.settling)) problems.push(`${label}, settling second: ${fault}`);
        for (const fault of faultsOf(outcome.value.window)) problems.push(`${label}: ${fault}`);
      }
    }
  };
  latency('fan-out', results.fanout);
  latency('burst', results.burst ?? {});
  latency('broker hop', results.hop);
  for (const [id, outcome] of Object.entries(results.ceiling ?? {})) {
    const label = `ceiling ${systems[id as SystemId].label}`;
    if (!outcome.ok) problems.push(`${label} failed: ${outcome.error}`);
    else if (outcome.value.failed > 0) problems.push(`${label}: ${outcome.value.failed} publishes failed (${outcome.value.firstError})`);
  }
  for (const [id, outcome] of Object.entries(results.capacity)) {
    if (!outcome.ok) problems.push(`capacity ${systems[id as SystemId].label} failed: ${outcome.error}`);
  }
  for (const [id, outcome] of Object.entries(results.scale ?? {})) {
    const label = `scale ${systems[id as SystemId].label}`;
    if (!outcome.ok) problems.push(`${label} failed: ${outcome.error}`);
    else for (const step of outcome.value.steps) for (const failure of step.failures) problems.push(`${label} at ${count(step.subscriptions)}: ${failure}`);
  }
  for (const [id, outcome] of Object.entries(results.storm ?? {})) {
    const label = `storm ${systems[id as SystemId].label}`;
    if (!outcome.ok) problems.push(`${label} failed: ${outcome.error}`);
    else {
      const run = outcome.value;
      if (run.missed > 0) problems.push(`${label}: ${count(run.missed)} deliveries missed`);
      if (run.duplicates > 0) problems.push(`${label}: ${count(run.duplicates)} deliveries doubled`);
      if (run.renewed + run.neverBack > 0) problems.push(`${label}: ${run.renewed} clients came back as new subscriptions, ${run.neverBack} never came back`);
      if (run.failedPublishes > 0) problems.push(`${label}: ${run.failedPublishes} publishes failed`);
    }
  }
  return problems;
}
