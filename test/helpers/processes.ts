import { spawn, type ChildProcess } from 'node:child_process';

export { findBinary, freePort, startNats, startNatsCluster, startRedis, startRedisCluster, startRedisSentinel, type BrokerCluster, type BrokerProcess } from '../../scripts/broker-processes.js';

/** A server-events server in its own OS process (test/fixtures/server-process.ts). */
export interface ServerProcess {
  url: string;
  child: ChildProcess;
  /** SIGKILL: no cleanup of any kind. */
  kill(): void;
}

/** Starts a server process on `kind`'s broker at `url`, with `prefix` and optional timer settings. */
export async function startServerProcess(
  kind: 'redis' | 'nats',
  url: string,
  prefix: string,
  env: Record<string, string> = {},
): Promise<ServerProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/fixtures/server-process.ts'], {
    env: {
      ...process.env,
      BROKER: kind,
      REDIS_URL: kind === 'redis' ? url : '',
      NATS_URL: kind === 'nats' ? url : '',
      BROKER_PREFIX: kind === 'redis' ? `${prefix}:` : prefix,
      ...env,
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout!.on('data', (chunk: Buffer) => {
      const match = /listening (\d+)/.exec(chunk.toString());
      if (match) resolve(Number(match[1]));
    });
    child.once('exit', (code) => reject(new Error(`server process exited with ${code}`)));
  });
  return { url: `http://127.0.0.1:${port}`, child, kill: () => void child.kill('SIGKILL') };
}
