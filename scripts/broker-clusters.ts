/**
 * The brokers' own clusters, on free loopback ports, for the tests, the
 * benchmark and `npm run fanout`: three nats-server nodes with JetStream,
 * a Redis primary with a replica watched by three sentinels, and a Redis
 * Cluster of three masters. Each node is a `BrokerProcess` that a test may
 * kill and restart.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import net from 'node:net';
import { Redis } from 'ioredis';
import { findBinary, freePort, ownProcess, type BrokerProcess } from './broker-processes.js';

export interface BrokerCluster {
  /** What servers connect with: several `nats://` URLs, `redis+sentinel://…` or `redis+cluster://…`. */
  url: string;
  /** The data nodes, in start order. */
  nodes: BrokerProcess[];
  /** Sentinels, for Redis Sentinel. */
  sentinels: BrokerProcess[];
  dispose(): Promise<void>;
}

const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function disposeAll(processes: BrokerProcess[], folder: string): Promise<void> {
  await Promise.all(processes.map((p) => p.dispose()));
  rmSync(folder, { recursive: true, force: true });
}

/** Three nats-server nodes with JetStream, routed to each other, each with its own storage. */
export async function startNatsCluster(binary: string, size = 3): Promise<BrokerCluster> {
  const folder = mkdtempSync(join(tmpdir(), 'se-natsc-'));
  const clientPorts = await Promise.all(Array.from({ length: size }, freePort));
  const routePorts = await Promise.all(Array.from({ length: size }, freePort));
  const routes = routePorts.map((port) => `nats://127.0.0.1:${port}`).join(',');
  const nodes: BrokerProcess[] = [];
  for (let i = 0; i < size; i++) {
    const storage = join(folder, `node${i + 1}`);
    mkdirSync(storage);
    nodes.push(
      await ownProcess(
        (port) => `nats://127.0.0.1:${port}`,
        binary,
        (port) => ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', storage, '-n', `node${i + 1}`, '--cluster_name', 'se', '--cluster', `nats://127.0.0.1:${routePorts[i]}`, '--routes', routes],
        () => {},
        () => {
          rmSync(storage, { recursive: true, force: true });
          mkdirSync(storage);
        },
        clientPorts[i],
      ),
    );
  }
  // JetStream needs a meta leader before it takes streams and buckets.
  await waitForJetStream(nodes.map((node) => node.url)).catch(async (error: unknown) => {
    await disposeAll(nodes, folder);
    throw error;
  });
  return { url: nodes.map((node) => node.url).join(','), nodes, sentinels: [], dispose: () => disposeAll(nodes, folder) };
}

/** Waits until the cluster can place a stream on every node: a meta leader alone is not enough. */
async function waitForJetStream(urls: string[]): Promise<void> {
  const { connect } = await import('@nats-io/transport-node');
  const { jetstreamManager } = await import('@nats-io/jetstream');
  const nc = await connect({ servers: urls });
  try {
    for (let attempt = 0; ; attempt++) {
      try {
        const jsm = await jetstreamManager(nc);
        await jsm.streams.add({ name: 'se_probe', subjects: ['se_probe'], num_replicas: urls.length });
        await jsm.streams.delete('se_probe');
        return;
      } catch (error) {
        if (attempt > 150) throw new Error(`the NATS cluster cannot place a stream on ${urls.length} nodes after 15 s: ${(error as Error).message}`);
        await delay(100);
      }
    }
  } finally {
    await nc.close();
  }
}

export interface SentinelOptions {
  /** The master name the sentinels monitor. Default `mymaster`. */
  name?: string;
  /**
   * The port everyone (sentinels, the replica, clients) knows the primary
   * by: one of the caller's, such as a relay a fault test can cut, in front
   * of the primary's own. Default: the primary's own.
   */
  primaryVia?: (primaryPort: number) => Promise<number>;
}

/** A Redis primary and one replica, watched by three sentinels that fail over within a couple of seconds. */
export async function startRedisSentinel(binary: string, options: SentinelOptions = {}): Promise<BrokerCluster> {
  const name = options.name ?? 'mymaster';
  const folder = mkdtempSync(join(tmpdir(), 'se-sentinel-'));
  const redisArgs = (port: number) => ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', folder];
  const primary = await ownProcess((port) => `redis://127.0.0.1:${port}`, binary, redisArgs);
  const primaryPort = options.primaryVia ? await options.primaryVia(primary.port) : primary.port;
  const replica = await ownProcess((port) => `redis://127.0.0.1:${port}`, binary, (port) => [...redisArgs(port), '--replicaof', '127.0.0.1', String(primaryPort)]);
  const sentinels: BrokerProcess[] = [];
  for (let i = 0; i < 3; i++) {
    const config = join(folder, `sentinel${i}.conf`);
    writeFileSync(
      config,
      [
        `sentinel monitor ${name} 127.0.0.1 ${primaryPort} 2`,
        `sentinel down-after-milliseconds ${name} 1000`,
        `sentinel failover-timeout ${name} 3000`,
        `sentinel parallel-syncs ${name} 1`,
        '',
      ].join('\n'),
    );
    sentinels.push(await ownProcess((port) => `redis://127.0.0.1:${port}`, binary, (port) => [config, '--sentinel', '--port', String(port), '--bind', '127.0.0.1']));
  }
  await waitUntil(async () => (await infoOf(replica.port, 'replication')).includes('master_link_status:up'), 'the replica to follow the primary').catch(async (error: unknown) => {
    await disposeAll([...sentinels, replica, primary], folder);
    throw error;
  });
  const url = `redis+sentinel://${sentinels.map((s) => `127.0.0.1:${s.port}`).join(',')}/${name}`;
  return { url, nodes: [primary, replica], sentinels, dispose: () => disposeAll([...sentinels, replica, primary], folder) };
}

/**
 * A free port for a Redis Cluster node: its cluster bus listens 10,000
 * above it, so the port must be at most 55,535 and that one free too.
 */
async function clusterNodePort(): Promise<number> {
  for (;;) {
    const port = await freePort();
    if (port <= 55_535 && (await isFree(port + 10_000))) return port;
  }
}

function isFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/** A Redis Cluster of three masters without replicas, all 16,384 slots assigned. */
export async function startRedisCluster(binary: string, size = 3): Promise<BrokerCluster> {
  const folder = mkdtempSync(join(tmpdir(), 'se-rcluster-'));
  const nodes: BrokerProcess[] = [];
  try {
    return await formRedisCluster(binary, size, folder, nodes);
  } catch (error) {
    // Nothing half-made stays behind: the caller has no cluster to dispose of.
    await disposeAll(nodes, folder);
    throw error;
  }
}

async function formRedisCluster(binary: string, size: number, folder: string, nodes: BrokerProcess[]): Promise<BrokerCluster> {
  for (let i = 0; i < size; i++) {
    const dir = join(folder, `node${i + 1}`);
    mkdirSync(dir);
    nodes.push(
      await ownProcess(
        (port) => `redis://127.0.0.1:${port}`,
        binary,
        (port) => ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-node-timeout', '2000'],
        () => {},
        () => {},
        await clusterNodePort(),
      ),
    );
  }
  const cli = findBinary('redis-cli');
  if (!cli) throw new Error('redis-cli is not installed (on Debian it comes with redis-tools)');
  const created = spawnSync(cli, ['--cluster', 'create', ...nodes.map((node) => `127.0.0.1:${node.port}`), '--cluster-replicas', '0', '--cluster-yes'], { encoding: 'utf8' });
  if (created.status !== 0) throw new Error(`redis-cli --cluster create failed: ${created.stderr || created.stdout}`);
  for (const node of nodes) await waitUntil(async () => (await infoOf(node.port, 'cluster')).includes('cluster_state:ok'), 'the cluster to be ready');
  const url = `redis+cluster://${nodes.map((node) => `127.0.0.1:${node.port}`).join(',')}`;
  return { url, nodes, sentinels: [], dispose: () => disposeAll(nodes, folder) };
}

/** `INFO <section>` of the Redis on `port` (`CLUSTER INFO` for `cluster`), or '' when it does not answer. */
async function infoOf(port: number, section: 'replication' | 'cluster'): Promise<string> {
  const redis = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  try {
    await redis.connect();
    return section === 'cluster' ? String(await redis.cluster('INFO')) : await redis.info(section);
  } catch {
    return '';
  } finally {
    redis.disconnect();
  }
}

async function waitUntil(check: () => Promise<boolean>, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await delay(100);
  }
}
