/**
 * `npm run fanout`: three Chat instances on ports 1337, 2337 and 3337 that
 * talk through one Redis (or, with --nats, one NATS), each with its own
 * background. When nothing answers at the broker address and the server is
 * installed, a private one is started for the run. With --nats-cluster,
 * --redis-sentinel or --redis-cluster, the broker's own cluster is started
 * on free loopback ports for the run. Ctrl-C stops everything.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { parseArgs } from 'node:util';
import { findBinary, startNats, startNatsCluster, startRedis, startRedisCluster, startRedisSentinel, type BrokerCluster } from './broker-processes.js';

const ports = [1337, 2337, 3337];
const usage = `Usage: npm run fanout [-- --nats] [-- --redis=redis://host:port | --nats=nats://host:port]
       npm run fanout -- --nats-cluster | --redis-sentinel | --redis-cluster

Starts Chat on ports ${ports.join(', ')}, all sharing one broker (Redis by default),
or a cluster of the broker's own started for the run: three NATS nodes with
JetStream, a Redis primary with a replica and three sentinels, or a Redis
Cluster of three masters.`;

const topologies = {
  'nats-cluster': { kind: 'nats', binary: 'nats-server', start: startNatsCluster },
  'redis-sentinel': { kind: 'redis', binary: 'redis-server', start: (binary: string) => startRedisSentinel(binary) },
  'redis-cluster': { kind: 'redis', binary: 'redis-server', start: startRedisCluster },
} as const;
type Topology = keyof typeof topologies;

const children: ChildProcess[] = [];
const cleanups: Array<() => Promise<void>> = [];
let stopping = false;

function fail(message: string): never {
  console.error(`fanout: ${message}`);
  stop(1);
}

/** Stops the instances and any private broker (removing its files), then exits. */
function stop(code = 0): never {
  stopping = true;
  for (const child of children) child.kill('SIGTERM');
  void Promise.allSettled(cleanups.map((cleanup) => cleanup())).finally(() => process.exit(code));
  // Nothing runs after a stop: park the caller until the exit above.
  throw new StopSignal();
}

class StopSignal extends Error {}
process.on('uncaughtException', (error) => {
  if (!(error instanceof StopSignal)) throw error;
});
process.on('unhandledRejection', (error) => {
  if (!(error instanceof StopSignal)) throw error;
});

function reachable(url: string): Promise<boolean> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = net.connect(Number(port), hostname);
    socket.setTimeout(1000);
    socket.once('connect', () => (socket.destroy(), resolve(true)));
    socket.once('error', () => resolve(false));
    socket.once('timeout', () => (socket.destroy(), resolve(false)));
  });
}

/** Starts one of the brokers' own clusters for this run, or says why it cannot. */
async function startPrivateCluster(topology: Topology): Promise<string> {
  const { binary: name, start } = topologies[topology];
  const binary = findBinary(name);
  if (!binary) fail(`${name} is not installed (on Debian: apt-get install ${name})`);
  if (name === 'redis-server' && !findBinary('redis-cli')) fail('redis-cli is not installed (on Debian: apt-get install redis-tools)');
  let cluster: BrokerCluster;
  try {
    cluster = await start(binary);
  } catch (error) {
    fail(`cannot start the ${topology}: ${(error as Error).message}`);
  }
  cleanups.push(() => cluster.dispose());
  console.log(`fanout: started a ${topology} for this run: ${cluster.url}`);
  return cluster.url;
}

/** Starts a private broker server for this run, or says why it cannot. */
async function startPrivateBroker(kind: 'redis' | 'nats'): Promise<string> {
  const name = kind === 'redis' ? 'redis-server' : 'nats-server';
  const binary = findBinary(name);
  if (!binary) fail(`no ${kind} answers and ${name} is not installed (on Debian: apt-get install ${name})`);
  const broker = await (kind === 'redis' ? startRedis(binary) : startNats(binary));
  cleanups.push(() => broker.dispose());
  console.log(`fanout: started a private ${name} at ${broker.url} for this run`);
  return broker.url;
}

async function main(): Promise<void> {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        redis: { type: 'string' },
        nats: { type: 'string' },
        'nats-cluster': { type: 'boolean' },
        'redis-sentinel': { type: 'boolean' },
        'redis-cluster': { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (error) {
    fail(`${(error as Error).message} (see --help)`);
  }
  if (values.help) return void console.log(usage);
  const chosen = (Object.keys(topologies) as Topology[]).filter((topology) => values[topology]);
  const brokers = chosen.length + (values.redis !== undefined ? 1 : 0) + (values.nats !== undefined ? 1 : 0);
  if (brokers > 1) fail('choose one of --redis, --nats, --nats-cluster, --redis-sentinel and --redis-cluster');
  if (chosen.length === 1) {
    const topology = chosen[0]!;
    return run(topologies[topology].kind, await startPrivateCluster(topology));
  }
  const kind = values.nats !== undefined ? 'nats' : 'redis';
  const given = kind === 'nats' ? values.nats || process.env.NATS_URL : values.redis || process.env.REDIS_URL;
  let url = given || (kind === 'nats' ? 'nats://127.0.0.1:4222' : 'redis://127.0.0.1:6379');
  if (!/^[a-z]+:\/\//.test(url)) url = `${kind}://${url}`;
  if (!(await reachable(url))) {
    if (given) fail(`cannot reach ${kind} at ${url}`);
    url = await startPrivateBroker(kind);
  }
  return run(kind, url);
}

/** Starts the three instances on `url` and waits until each serves. */
async function run(kind: 'redis' | 'nats', url: string): Promise<void> {
  process.once('SIGINT', () => stop(0));
  process.once('SIGTERM', () => stop(0));
  const ready = ports.map(
    (port, i) =>
      new Promise<void>((resolve) => {
        const child = spawn(
          process.execPath,
          ['--import', 'tsx', 'examples/chat/server.ts', `--port=${port}`, `--${kind}=${url}`, `--background=/img/bg-${i + 1}.svg`],
          { stdio: ['ignore', 'pipe', 'pipe'] },
        );
        children.push(child);
        const relay = (chunk: Buffer) => {
          for (const line of chunk.toString().split('\n').filter(Boolean)) {
            console.log(`[${port}] ${line}`);
            if (line.startsWith('chat on')) resolve();
          }
        };
        child.stdout.on('data', relay);
        child.stderr.on('data', relay);
        child.once('exit', (code) => {
          if (!stopping) fail(`the instance on port ${port} stopped (exit ${code})`);
        });
      }),
  );
  await Promise.all(ready);
  console.log(`\nThree Chat instances share ${url}. Open each in its own tab:`);
  for (const port of ports) console.log(`  http://localhost:${port}/`);
  console.log('Ctrl-C stops them all.');
}

void main();
