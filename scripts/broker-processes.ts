/**
 * Broker servers (redis-server, nats-server with JetStream) of a run's own,
 * on free ports: the tests kill and restart them, the benchmark and
 * `npm run fanout` start them when nothing is there to use.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A broker server process that a test owns, and may kill and restart. */
export interface BrokerProcess {
  url: string;
  port: number;
  /** The running process's id, for reading its CPU time. */
  readonly pid: number | undefined;
  /** Kills the process (SIGKILL by default) and waits for it to exit. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Sends a signal that does not end it: SIGSTOP freezes it (its connections stay open), SIGCONT thaws it. */
  signal(signal: 'SIGSTOP' | 'SIGCONT'): void;
  /** Starts it again on the same port; NATS keeps its storage unless `wipe` is set. */
  restart(options?: { wipe?: boolean }): Promise<void>;
  /** Kills it and removes its files. */
  dispose(): Promise<void>;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** The path of an executable, looking in /usr/sbin too (Debian puts nats-server there). */
export function findBinary(name: string): string | undefined {
  for (const dir of [...(process.env.PATH ?? '').split(':'), '/usr/sbin', '/usr/local/sbin']) {
    if (dir && spawnSync('test', ['-x', join(dir, name)]).status === 0) return join(dir, name);
  }
  return undefined;
}

/** Resolves once something accepts connections on `port` (127.0.0.1), or rejects after `timeoutMs`. */
export function waitForPort(port: number, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const attempt = () => {
      const socket = net.connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve();
      });
      socket.once('error', () => {
        socket.destroy();
        if (Date.now() > deadline) reject(new Error(`nothing listens on port ${port} after ${timeoutMs} ms`));
        else setTimeout(attempt, 50);
      });
    };
    attempt();
  });
}

/** A process of the run's own on `port` (a free one when not given), started again on the same port by `restart`. */
export async function ownProcess(
  url: (port: number) => string,
  command: string,
  args: (port: number) => string[],
  cleanup = () => {},
  wipe = () => {},
  fixedPort?: number,
): Promise<BrokerProcess> {
  const port = fixedPort ?? (await freePort());
  let child: ChildProcess | undefined;
  const start = async () => {
    child = spawn(command, args(port), { stdio: 'ignore' });
    await waitForPort(port);
  };
  const kill = async (signal: NodeJS.Signals = 'SIGKILL') => {
    const running = child;
    if (!running || running.exitCode !== null || running.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      running.once('exit', () => resolve());
      running.kill(signal);
    });
  };
  await start();
  return {
    url: url(port),
    port,
    get pid() {
      return child?.pid;
    },
    kill,
    signal: (signal) => void child?.kill(signal),
    restart: async (options = {}) => {
      if (options.wipe) wipe();
      await start();
    },
    async dispose() {
      await kill();
      cleanup();
    },
  };
}

/** A redis-server of the test's own, keeping nothing on disk. */
export function startRedis(binary: string): Promise<BrokerProcess> {
  return ownProcess(
    (port) => `redis://127.0.0.1:${port}`,
    binary,
    (port) => ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
  );
}

/** A nats-server with JetStream of the test's own, with storage in a temporary folder. */
export function startNats(binary: string): Promise<BrokerProcess> {
  const storage = mkdtempSync(join(tmpdir(), 'se-nats-'));
  return ownProcess(
    (port) => `nats://127.0.0.1:${port}`,
    binary,
    (port) => ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', storage],
    () => rmSync(storage, { recursive: true, force: true }),
    () => {
      rmSync(storage, { recursive: true, force: true });
      mkdirSync(storage);
    },
  );
}

// The brokers' own clusters (three NATS nodes, Redis Sentinel, Redis Cluster) start from here too.
export { startNatsCluster, startRedisCluster, startRedisSentinel, type BrokerCluster } from './broker-clusters.js';
