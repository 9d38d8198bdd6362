/**
 * `npm run bench`: every scenario for every system in one run, on brokers
 * the run starts for itself, then a table on the terminal and a JSON file
 * and a chart in bench/results/. Exits 1 if any measured window lost a
 * delivery or any system failed to run.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { findBinary, startNats, startNatsCluster, startRedis, startRedisCluster, type BrokerProcess } from '../scripts/broker-processes.js';
import { machine } from './machine.js';
import { parseOptions, usage, UsageError, type BenchOptions } from './options.js';
import { progressDone } from './progress.js';
import { latencyChart } from './report/chart.js';
import { failures, markdownReport, type BenchResults, type Outcome } from './report/table.js';
import { runCapacity } from './scenarios/capacity.js';
import { runCeiling } from './scenarios/ceiling.js';
import { runLatency } from './scenarios/latency.js';
import { runScale } from './scenarios/scale.js';
import { runStorm } from './scenarios/storm.js';
import { brokerOf, systems, type BrokerId, type BrokerUrls, type System } from './systems.js';

function fail(message: string): never {
  progressDone();
  console.error(`bench: ${message}`);
  process.exit(2);
}

const brokerBinaries: Record<BrokerId, string> = { redis: 'redis-server', nats: 'nats-server', 'nats-cluster': 'nats-server', 'redis-cluster': 'redis-server' };

/** Finds every broker binary the run needs before starting any, so that a missing one leaves nothing behind. */
function findBrokerBinaries(kinds: BrokerId[]): Partial<Record<BrokerId, string>> {
  const found: Partial<Record<BrokerId, string>> = {};
  for (const kind of kinds) {
    const binary = findBinary(brokerBinaries[kind]);
    if (!binary) fail(`${brokerBinaries[kind]} is not installed (on Debian: apt-get install ${brokerBinaries[kind]})`);
    if (kind === 'redis-cluster' && !findBinary('redis-cli')) fail('redis-cli is not installed (on Debian: apt-get install redis-tools)');
    found[kind] = binary;
  }
  return found;
}

/** Runs one system's scenario, keeping an error as a result rather than ending the run. */
async function attempt<T>(run: () => Promise<T>): Promise<Outcome<T>> {
  try {
    return { ok: true, value: await run() };
  } catch (error) {
    return { ok: false, error: (error as Error).message };
  } finally {
    progressDone();
  }
}

async function runAll(options: BenchOptions, brokers: BrokerUrls, pids: Partial<Record<BrokerId, number[]>>): Promise<BenchResults> {
  const chosen = options.systems.map((id) => systems[id]);
  let clusters = 0;
  const prefix = () => `bench${Date.now().toString(36)}${clusters++}`;
  const brokerPids = (system: System) => {
    const broker = brokerOf(system.id);
    return (broker && pids[broker]) || [];
  };
  const results: BenchResults = { startedAt: new Date().toISOString(), machine: machine(), options, fanout: {}, burst: {}, hop: {}, capacity: {}, ceiling: {}, scale: {}, storm: {} };

  // A system that differs only in how the routes are mounted is measured where that shows: connection capacity.
  const measured = chosen.filter((candidate) => !candidate.capacityOnly);
  if (options.scenarios.includes('fanout')) {
    for (const system of measured.filter((candidate) => candidate.crossServer)) {
      results.fanout[system.id] = await attempt(() =>
        runLatency(
          system,
          {
            servers: options.servers,
            subscribers: options.subscribers,
            rate: options.rate,
            durationS: options.durationS,
            padBytes: options.padBytes,
            threads: options.threads,
            saturation:
              options.saturationSteps > 0
                ? { stepS: options.saturationStepS, factor: options.saturationFactor, maxSteps: options.saturationSteps, p99LimitMs: options.p99LimitMs }
                : undefined,
            brokers,
            brokerPids: brokerPids(system),
            prefix: prefix(),
          },
          `fan-out ${system.label}`,
        ),
      );
    }
  }
  // The clusters are measured where they differ: across servers, next to the single-process brokers.
  const single = measured.filter((candidate) => !candidate.clustered);
  if (options.scenarios.includes('burst')) {
    for (const system of single.filter((candidate) => candidate.crossServer)) {
      results.burst[system.id] = await attempt(() =>
        runLatency(
          system,
          {
            // One server: three would saturate a two-core machine, and a saturated CPU says nothing about what a delivery costs.
            servers: 1,
            subscribers: options.burstSubscribers,
            rate: options.burstRate,
            durationS: Math.min(options.durationS, 3),
            padBytes: options.padBytes,
            threads: options.threads,
            brokers,
            brokerPids: brokerPids(system),
            prefix: prefix(),
          },
          `burst ${system.label}`,
        ),
      );
    }
  }
  if (options.scenarios.includes('hop')) {
    for (const system of single) {
      results.hop[system.id] = await attempt(() =>
        runLatency(
          system,
          {
            servers: 1,
            subscribers: options.subscribers,
            rate: options.rate,
            durationS: options.durationS,
            padBytes: options.padBytes,
            threads: options.threads,
            brokers,
            brokerPids: brokerPids(system),
            prefix: prefix(),
          },
          `broker hop ${system.label}`,
        ),
      );
    }
  }
  if (options.scenarios.includes('capacity')) {
    for (const system of chosen.filter((candidate) => !candidate.clustered)) {
      results.capacity[system.id] = await attempt(() =>
        runCapacity(system, { connections: options.connections, threads: options.threads, brokers, brokerPids: brokerPids(system), housekeepingMs: options.housekeepingMs, prefix: prefix() }, `capacity ${system.label}`),
      );
    }
  }
  if (options.scenarios.includes('ceiling')) {
    for (const system of single) {
      results.ceiling[system.id] = await attempt(() =>
        runCeiling(
          system,
          { seconds: options.ceilingSeconds, inFlight: options.inFlight, padBytes: options.padBytes, brokers, brokerPids: brokerPids(system), prefix: prefix() },
          `ceiling ${system.label}`,
        ),
      );
    }
  }
  if (options.scenarios.includes('scale')) {
    for (const system of chosen.filter((candidate) => candidate.id === 'redis' || candidate.id === 'nats')) {
      results.scale[system.id] = await attempt(() => runScale(system, { steps: options.scaleSteps, brokers, prefix: prefix() }, `scale ${system.label}`));
    }
  }
  const stormSteady = Math.min(300, Math.max(4, Math.round(options.stormSubscribers / 16)));
  if (options.scenarios.includes('storm')) {
    for (const system of chosen.filter((candidate) => candidate.id === 'redis' || candidate.id === 'nats')) {
      (results.storm ??= {})[system.id] = await attempt(() =>
        runStorm(
          system,
          {
            moving: options.stormSubscribers,
            // Some clients stay where they are (300 in the full run): their latency says what the storm costs everyone else.
            steady: stormSteady,
            rate: options.stormRate,
            // 100 clients a room: every tick fans out to a hundred, and the machine measures the storm, not its own load generator.
            rooms: Math.max(1, Math.round((options.stormSubscribers + stormSteady) / 100)),
            processes: 4,
            beforeS: 2,
            afterS: options.stormSeconds,
            padBytes: options.padBytes,
            brokers,
            brokerPids: brokerPids(system),
            prefix: prefix(),
          },
          `storm ${system.label}`,
        ),
      );
    }
  }
  return results;
}

async function main(): Promise<void> {
  let options;
  try {
    options = parseOptions(process.argv.slice(2));
  } catch (error) {
    if (error instanceof UsageError) fail(`${error.message} (see --help)`);
    throw error;
  }
  if (options === 'help') return void console.log(usage);

  const needs = [...new Set(options.systems.map(brokerOf))].filter((kind) => kind !== undefined);
  const binaries = findBrokerBinaries(needs);
  const brokers: BrokerProcess[] = [];
  const disposeBrokers = () => Promise.all(brokers.map((broker) => broker.dispose()));
  // Ctrl-C or a kill must not leave the run's brokers (and NATS's storage) behind; the app servers follow their IPC channel.
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      progressDone();
      void disposeBrokers().finally(() => process.exit(130));
    });
  }
  const urls: BrokerUrls = { redis: '', nats: '', 'nats-cluster': '', 'redis-cluster': '' };
  const pids: Partial<Record<BrokerId, number[]>> = {};
  const own = (kind: BrokerId, url: string, processes: BrokerProcess[]) => {
    urls[kind] = url;
    pids[kind] = processes.map((p) => p.pid).filter((pid) => pid !== undefined);
  };
  if (binaries.redis) {
    const redis = await startRedis(binaries.redis);
    brokers.push(redis);
    own('redis', redis.url, [redis]);
  }
  if (binaries.nats) {
    const nats = await startNats(binaries.nats);
    brokers.push(nats);
    own('nats', nats.url, [nats]);
  }
  for (const kind of ['nats-cluster', 'redis-cluster'] as const) {
    const binary = binaries[kind];
    if (!binary) continue;
    const cluster = await (kind === 'nats-cluster' ? startNatsCluster(binary) : startRedisCluster(binary));
    brokers.push({ dispose: () => cluster.dispose() } as BrokerProcess);
    own(kind, cluster.url, cluster.nodes);
  }
  const started = Date.now();
  try {
    const results = await runAll(options, urls, pids);
    results.seconds = Math.round((Date.now() - started) / 1000);
    const report = markdownReport(results);
    console.log(report);

    mkdirSync(options.out, { recursive: true });
    const stamp = results.startedAt.replace(/[:.]/g, '-');
    const files = {
      json: join(options.out, `${stamp}.json`),
      markdown: join(options.out, `${stamp}.md`),
      chart: join(options.out, `${stamp}.svg`),
    };
    writeFileSync(files.json, `${JSON.stringify(results, null, 2)}\n`);
    writeFileSync(files.markdown, report);
    writeFileSync(files.chart, latencyChart(results));
    console.log(`\nWritten: ${files.json}, ${files.markdown}, ${files.chart}`);

    const problems = failures(results);
    if (problems.length > 0) {
      for (const problem of problems) console.error(`bench: ${problem}`);
      process.exitCode = 1;
    }
  } finally {
    await disposeBrokers();
  }
}

await main();
