/**
 * The benchmark runs as a user runs it, at a tiny size, so that it keeps
 * working. Nothing here asserts a timing: the numbers are the benchmark's
 * business, not the test suite's.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import type { BenchResults } from '../../bench/report/table.js';
import { findBinary } from '../helpers/processes.js';
import { runScript } from '../helpers/run-script.js';

const bench = (args: string[]) => runScript('bench/run.ts', args, {}, 240_000);

test('npm run bench refuses bad flags in one line with exit 2', async (t) => {
  const rate = await bench(['--rate', 'fast']);
  t.is(rate.status, 2);
  t.is(rate.stderr, 'bench: --rate must be a number of at least 0.1, not "fast" (see --help)');
  const system = await bench(['--systems', 'redis,kafka']);
  t.is(system.status, 2);
  t.is(system.stderr, 'bench: --systems: unknown "kafka" (one of memory, memory-http, redis, redis-http, nats, nats-http, nats-cluster, redis-cluster, floor, koa-floor, socketio) (see --help)');
  const unknown = await bench(['--nope']);
  t.is(unknown.status, 2);
  t.is(unknown.stderr.split('\n').length, 1);
  const help = await bench(['--help']);
  t.is(help.status, 0);
  t.regex(help.stdout, /^Usage: npm run bench/);
});

const missing = ['redis-server', 'redis-cli', 'nats-server'].filter((name) => !findBinary(name));
const small = missing.length === 0 || process.env.CI === 'true' ? test : test.skip;

small('a small run measures every system in every scenario, loses nothing, and writes the table, JSON and chart', async (t) => {
  t.timeout(250_000);
  t.deepEqual(missing, [], 'the benchmark starts its own redis-server and nats-server, and their clusters');
  const out = mkdtempSync(join(tmpdir(), 'se-bench-'));
  t.teardown(() => rmSync(out, { recursive: true, force: true }));
  const run = await bench([
    '--subscribers=6',
    '--rate=20',
    '--duration=0.5',
    '--saturation-steps=1',
    '--saturation-step=0.3',
    '--connections=30',
    '--burst-rate=40',
    '--burst-subscribers=2',
    '--ceiling-seconds=0.5',
    '--scale-steps=30,60',
    '--storm-subscribers=24',
    '--storm-rate=20',
    '--storm-seconds=2',
    '--housekeeping-ms=500',
    '--threads=1',
    `--out=${out}`,
  ]);
  t.is(run.status, 0, run.stderr);

  const files = readdirSync(out);
  const json = files.find((file) => file.endsWith('.json'));
  t.truthy(json);
  const results = JSON.parse(readFileSync(join(out, json!), 'utf8')) as BenchResults;
  t.deepEqual(Object.keys(results.fanout).sort(), ['floor', 'koa-floor', 'nats', 'nats-cluster', 'redis', 'redis-cluster', 'socketio']);
  t.deepEqual(Object.keys(results.hop).sort(), ['floor', 'koa-floor', 'memory', 'nats', 'redis', 'socketio']);
  t.deepEqual(Object.keys(results.capacity).sort(), ['floor', 'koa-floor', 'memory', 'memory-http', 'nats', 'nats-http', 'redis', 'redis-http', 'socketio'], 'the node:http mounts are measured for capacity only');
  for (const [scenario, runs] of [['fanout', results.fanout], ['hop', results.hop]] as const) {
    for (const [system, outcome] of Object.entries(runs)) {
      if (!outcome.ok) return t.fail(`${scenario} ${system}: ${outcome.error}`);
      const { window } = outcome.value;
      t.is(window.delivered, window.expected, `${scenario} ${system}`);
      t.is(window.expected, 6 * 10, `${scenario} ${system}: 10 ticks to 6 subscribers`);
      t.true(window.latency.p50 > 0 && window.latency.p50 <= window.latency.max);
    }
  }
  t.deepEqual(Object.keys(results.burst).sort(), ['floor', 'koa-floor', 'nats', 'redis', 'socketio']);
  for (const [system, outcome] of Object.entries(results.burst)) {
    if (!outcome.ok) return t.fail(`burst ${system}: ${outcome.error}`);
    const { window } = outcome.value;
    t.is(window.delivered, window.expected, `burst ${system}`);
    t.is(window.expected, 20 * 2, `burst ${system}: 20 ticks to 2 subscribers`);
  }
  for (const [system, outcome] of Object.entries(results.capacity)) {
    if (!outcome.ok) return t.fail(`capacity ${system}: ${outcome.error}`);
    t.is(outcome.value.connections, 30);
    t.true(outcome.value.brokerSubscriptionsPerConnection !== undefined, `capacity ${system}: broker subscriptions counted`);
  }
  t.deepEqual(Object.keys(results.ceiling).sort(), ['floor', 'koa-floor', 'memory', 'nats', 'redis', 'socketio']);
  for (const [system, outcome] of Object.entries(results.ceiling)) {
    if (!outcome.ok) return t.fail(`ceiling ${system}: ${outcome.error}`);
    t.is(outcome.value.failed, 0, `ceiling ${system}`);
    t.true(outcome.value.published > 0, `ceiling ${system}`);
  }
  t.regex(run.stdout, /## Publish ceiling: one server, 64 publishes in flight/);
  t.regex(run.stdout, /server CPU µs \/ delivery/);
  t.deepEqual(Object.keys(results.scale).sort(), ['nats', 'redis']);
  for (const [system, outcome] of Object.entries(results.scale)) {
    if (!outcome.ok) return t.fail(`scale ${system}: ${outcome.error}`);
    t.deepEqual(outcome.value.steps.map((step) => step.subscriptions), [30, 60], system);
    for (const step of outcome.value.steps) {
      t.deepEqual(step.failures, [], `scale ${system}`);
      for (const probe of ['list', 'user', 'resume', 'heartbeat', 'join'] as const) t.true(step[probe].p50 > 0, `${system} ${probe}`);
    }
  }
  t.regex(run.stdout, /## Scale: server-events \(nats\), 3 servers/);
  t.deepEqual(Object.keys(results.storm ?? {}).sort(), ['nats', 'redis']);
  for (const [system, outcome] of Object.entries(results.storm ?? {})) {
    if (!outcome.ok) return t.fail(`storm ${system}: ${outcome.error}`);
    const storm = outcome.value;
    t.is(storm.moving, 24, `storm ${system}`);
    t.is(storm.resumed, 24, `storm ${system}: every moved client resumed its subscription`);
    t.is(storm.missed + storm.duplicates, 0, `storm ${system}: nothing missed or doubled`);
  }
  for (const system of ['redis', 'nats'] as const) {
    const costs = results.capacity[system]?.ok ? results.capacity[system].value.brokerCpuUs : undefined;
    t.true(costs?.registration !== undefined && costs.heartbeat !== undefined, `capacity ${system}: the broker's cost per registration and heartbeat`);
  }
  t.regex(run.stdout, /## The broker's cost per operation/);
  t.regex(run.stdout, /## Reconnect storm: 3 servers/);
  t.regex(run.stdout, /## Fan-out across 3 servers/);
  t.regex(run.stdout, /\| socket\.io \(redis-adapter\) \|/);
  t.regex(readFileSync(join(out, files.find((file) => file.endsWith('.svg'))!), 'utf8'), /^<svg [^]*server-events \(redis\), 3 servers[^]*<\/svg>\n$/);
});

test('the README embeds a benchmark chart that exists', (t) => {
  const readme = readFileSync('README.md', 'utf8');
  const chart = /!\[[^\]]*\]\((bench\/results\/[^)]+\.svg)\)/.exec(readme);
  t.truthy(chart, 'README has a chart from bench/results');
  t.true(existsSync(chart![1]!));
});
