/**
 * A load generator in a process of its own, for runs with more connections
 * than one process may hold open files (20,000 here): the runner forks a few
 * and hands each its share. Each `connect` opens more connections (in a
 * worker thread, as `LoadGenerator` does) and keeps them until `close`.
 */
import { LoadGenerator } from './generator.js';
import type { ClientKind } from './worker.js';

export type ToLoadProcess = { type: 'connect'; kind: ClientKind; targets: string[]; concurrency: number } | { type: 'close' };
export type FromLoadProcess =
  | { type: 'ready' }
  | { type: 'progress'; connected: number }
  | { type: 'connected'; connected: number; error?: string }
  | { type: 'closed' };

const held: LoadGenerator[] = [];
const send = (message: FromLoadProcess) => process.send?.(message);

process.on('message', (message: ToLoadProcess) => {
  if (message.type === 'close') {
    void Promise.all(held.map((load) => load.close())).then(() => {
      send({ type: 'closed' });
      process.exit(0);
    });
    return;
  }
  const load = new LoadGenerator(message.kind, message.targets, 1, message.concurrency);
  held.push(load);
  let connected = 0;
  void load
    .ready()
    .then(() => load.connect((count) => send({ type: 'progress', connected: (connected = count) })))
    .then(
      () => send({ type: 'connected', connected }),
      (error: Error) => send({ type: 'connected', connected, error: error.message }),
    );
});
// The runner's death must not leave connections behind.
process.on('disconnect', () => process.exit(0));
send({ type: 'ready' });
