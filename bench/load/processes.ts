/**
 * Several load processes as one: connections are shared out evenly, so that
 * no process holds more open files than it may.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { nextMessage } from './child-messages.js';
import type { FromLoadProcess, ToLoadProcess } from './process.js';
import type { ClientKind } from './worker.js';

export class LoadProcesses {
  private constructor(private readonly children: ChildProcess[]) {}

  static async start(count: number): Promise<LoadProcesses> {
    const children = Array.from({ length: count }, () =>
      fork(new URL('./process.ts', import.meta.url), { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }),
    );
    await Promise.all(children.map((child) => nextMessage<FromLoadProcess>(child, 'ready', 30_000)));
    return new LoadProcesses(children);
  }

  /** Opens one connection per target, shared out over the processes; `onProgress` hears the running count. */
  async connect(kind: ClientKind, targets: string[], onProgress: (connected: number) => void): Promise<void> {
    const counts = this.children.map(() => 0);
    await Promise.all(
      this.children.map(async (child, i) => {
        const mine = targets.filter((_, index) => index % this.children.length === i);
        if (mine.length === 0) return;
        const listen = (message: FromLoadProcess) => {
          if (message.type !== 'progress') return;
          counts[i] = message.connected;
          onProgress(counts.reduce((a, b) => a + b, 0));
        };
        child.on('message', listen);
        child.send({ type: 'connect', kind, targets: mine, concurrency: 32 } satisfies ToLoadProcess);
        const done = await nextMessage<FromLoadProcess>(child, 'connected', 600_000);
        child.off('message', listen);
        if (done.type === 'connected' && done.error) throw new Error(done.error);
      }),
    );
  }

  async close(): Promise<void> {
    await Promise.all(
      this.children.map(async (child) => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        child.send({ type: 'close' } satisfies ToLoadProcess);
        await nextMessage<FromLoadProcess>(child, 'closed', 10_000).catch(() => child.kill('SIGKILL'));
      }),
    );
  }
}
