/**
 * The app servers of one system under test, each its own OS process, and
 * the commands the runner sends them.
 */
import { fork, type ChildProcess } from 'node:child_process';
import type { Command, Reply } from './servers/control.js';

const READY_TIMEOUT_MS = 30_000;

export interface ServerSpec {
  /** The server program under bench/servers/. */
  program: 'project' | 'floor' | 'socketio' | 'soak';
  env: Record<string, string>;
}

export class Cluster {
  private constructor(
    private readonly children: ChildProcess[],
    readonly ports: number[],
  ) {}

  /** Starts `count` servers and waits until each listens. */
  static async start(spec: ServerSpec, count: number): Promise<Cluster> {
    const children: ChildProcess[] = [];
    const ports = await Promise.all(
      Array.from({ length: count }, () => {
        const child = fork(new URL(`./servers/${spec.program}.ts`, import.meta.url), {
          execArgv: ['--import', 'tsx', '--expose-gc'],
          env: { ...process.env, ...spec.env },
          stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
        });
        children.push(child);
        return new Promise<number>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`the ${spec.program} server was not ready after ${READY_TIMEOUT_MS / 1000} s`)), READY_TIMEOUT_MS);
          child.once('message', (reply: Reply) => {
            clearTimeout(timer);
            if (reply.type === 'ready') resolve(reply.port);
            else reject(new Error(`unexpected ${reply.type}`));
          });
          child.once('exit', (code) => reject(new Error(`the ${spec.program} server exited with code ${code} before it was ready`)));
        });
      }),
    ).catch(async (error: unknown) => {
      await stopAll(children);
      throw error;
    });
    return new Cluster(children, ports);
  }

  get pids(): Array<number | undefined> {
    return this.children.map((child) => child.pid);
  }

  /** Asks server `index` to do `command` and waits for its reply, at most `timeoutMs`. */
  ask<T extends Reply['type']>(index: number, command: Command, timeoutMs = 30_000): Promise<Extract<Reply, { type: T }>> {
    const child = this.children[index]!;
    return new Promise((resolve, reject) => {
      const finish = () => {
        clearTimeout(timer);
        child.off('exit', onExit);
        child.off('message', onReply);
      };
      const onExit = (code: number | null) => {
        finish();
        reject(new Error(`server ${index} exited with code ${code}`));
      };
      // Commands may overlap (a memory reading during a long publish): each waits for its own kind of reply.
      const expected = command.type === 'publish' ? 'published' : command.type;
      const onReply = (reply: Reply) => {
        if (reply.type !== expected) return;
        finish();
        resolve(reply as Extract<Reply, { type: T }>);
      };
      const timer = setTimeout(() => {
        finish();
        reject(new Error(`server ${index} did not answer "${command.type}" within ${timeoutMs / 1000} s`));
      }, timeoutMs);
      child.once('exit', onExit);
      child.on('message', onReply);
      child.send(command);
    });
  }

  /** Asks every server the same and collects the replies, in server order. */
  askAll<T extends Reply['type']>(command: Command): Promise<Array<Extract<Reply, { type: T }>>> {
    return Promise.all(this.children.map((_, index) => this.ask<T>(index, command)));
  }

  /** SIGKILLs server `index`, as a crash would: no goodbye, no cleanup. Resolves once it has exited. */
  kill(index: number): Promise<void> {
    return stopAll([this.children[index]!]);
  }

  stop(): Promise<void> {
    return stopAll(this.children);
  }
}

async function stopAll(children: ChildProcess[]): Promise<void> {
  await Promise.all(
    children.map(
      (child) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve();
          child.once('exit', () => resolve());
          child.kill('SIGKILL');
        }),
    ),
  );
}
