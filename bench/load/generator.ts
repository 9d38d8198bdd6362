/**
 * The load generator as the runner sees it: a few worker threads that share
 * the connections between them, and sums of what they report.
 */
import { createHistogram, type RecordableHistogram } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import type { ClientKind, FromWorker, ToWorker, WorkerSetup, WorkerStats } from './worker.js';

// The worker is TypeScript: load it through tsx's hooks, registered inside the new thread.
const bootstrap = `import('tsx/esm/api').then(({ register }) => { register(); return import(${JSON.stringify(new URL('./worker.ts', import.meta.url).href)}); })`;

export interface Totals extends Omit<WorkerStats, 'histogram'> {
  connections: number;
}

export class LoadGenerator {
  private readonly workers: Worker[] = [];
  private readonly shares: number[] = [];
  /** Rejects when any thread dies, so that no wait outlives it. */
  private readonly broken: Promise<never>;
  private closing = false;

  /** Spreads `targets` (one URL per connection) over `threads` worker threads. */
  constructor(kind: ClientKind, targets: string[], threads: number, concurrency = 64) {
    for (let i = 0; i < threads; i++) {
      const mine = targets.filter((_, index) => index % threads === i);
      if (mine.length === 0) continue;
      const setup: WorkerSetup = { kind, targets: mine, concurrency };
      this.workers.push(new Worker(bootstrap, { eval: true, workerData: setup }));
      this.shares.push(mine.length);
    }
    this.broken = new Promise<never>((_, reject) => {
      for (const worker of this.workers) {
        worker.once('error', (error) => reject(new Error(`a load-generator thread failed: ${error.message}`)));
        worker.once('exit', (code) => this.closing || reject(new Error(`a load-generator thread exited with code ${code}`)));
      }
    });
    this.broken.catch(() => {});
  }

  /** Resolves once every thread has started, so that thread start-up is not timed as connecting. */
  async ready(): Promise<void> {
    const started = this.workers.map((worker) => new Promise<void>((resolve) => worker.once('message', () => resolve())));
    await Promise.race([Promise.all(started), this.broken]);
  }

  /** Opens every connection; `onProgress` hears the running count. Fails if any connection failed. */
  async connect(onProgress: (connected: number) => void): Promise<void> {
    const counts = this.workers.map(() => 0);
    const done = this.workers.map(
      (worker, i) =>
        new Promise<void>((resolve, reject) => {
          const listen = (message: FromWorker) => {
            if (message.type !== 'progress' && message.type !== 'connected') return;
            counts[i] = message.connected;
            onProgress(counts.reduce((a, b) => a + b, 0));
            if (message.type !== 'connected') return;
            worker.off('message', listen);
            if (message.failed > 0) reject(new Error(`${message.failed} connections failed: ${message.firstError}`));
            else resolve();
          };
          worker.on('message', listen);
          this.tell(worker, { type: 'connect' });
        }),
    );
    await Promise.race([Promise.all(done), this.broken]);
  }

  /** Starts a measured window: ticks with `seq >= from` count, the histograms start empty. */
  startWindow(from: number): void {
    for (const worker of this.workers) this.tell(worker, { type: 'window', from });
  }

  /** What every thread has seen, summed. */
  async totals(): Promise<Totals> {
    const all = await Promise.race([Promise.all(this.workers.map((worker) => this.ask(worker, false))), this.broken]);
    return {
      connections: this.shares.reduce((a, b) => a + b, 0),
      warmed: sum(all, 'warmed'),
      delivered: sum(all, 'delivered'),
      duplicates: sum(all, 'duplicates'),
      outOfOrder: sum(all, 'outOfOrder'),
      dropped: sum(all, 'dropped'),
    };
  }

  /** The latencies of the current window from every thread, in one histogram (microseconds). */
  async latencies(): Promise<RecordableHistogram> {
    const merged = createHistogram({ lowest: 1, highest: 120_000_000, figures: 3 });
    const all = await Promise.race([Promise.all(this.workers.map((worker) => this.ask(worker, true))), this.broken]);
    for (const stats of all) merged.add(stats.histogram!);
    return merged;
  }

  /** Closes every connection and ends the threads; a thread that is stuck or gone is terminated all the same. */
  async close(): Promise<void> {
    this.closing = true;
    await Promise.all(
      this.workers.map(
        (worker) =>
          new Promise<void>((resolve) => {
            const done = () => {
              clearTimeout(timer);
              resolve();
            };
            const timer = setTimeout(done, 5_000);
            worker.once('message', done);
            worker.once('exit', done);
            this.tell(worker, { type: 'close' });
          }),
      ),
    );
    await Promise.all(this.workers.map((worker) => worker.terminate()));
  }

  private tell(worker: Worker, message: ToWorker): void {
    worker.postMessage(message);
  }

  private ask(worker: Worker, histogram: boolean): Promise<WorkerStats> {
    return new Promise((resolve) => {
      const listen = (message: FromWorker) => {
        if (message.type !== 'stats') return;
        worker.off('message', listen);
        resolve(message);
      };
      worker.on('message', listen);
      this.tell(worker, { type: 'stats', histogram });
    });
  }
}

function sum(all: WorkerStats[], key: 'warmed' | 'delivered' | 'duplicates' | 'outOfOrder' | 'dropped'): number {
  return all.reduce((total, stats) => total + stats[key], 0);
}
