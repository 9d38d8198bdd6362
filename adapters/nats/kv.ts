import type { JetStreamManager } from '@nats-io/jetstream';
/** What a conditional write returns when another writer changed the key first. */
export const conflict = Symbol('conflict');
export type Conflict = typeof conflict;

/** How long a write keeps retrying against other writers before it gives up. */
export const retryForMs = 5000;

/**
 * Retries `attempt` while it loses compare-and-set races to other servers,
 * with a growing random pause between tries (so that many contenders take
 * turns instead of colliding again), for at most `retryForMs`; then it
 * throws, so that no caller waits for ever behind a key others keep changing.
 */
export async function untilWritten<T>(what: string, attempt: () => Promise<T | Conflict>, withinMs = retryForMs): Promise<T> {
  const deadline = Date.now() + withinMs;
  for (let i = 0; ; i++) {
    const result = await attempt();
    if (result !== conflict) return result;
    if (Date.now() >= deadline) throw new Error(`NATS: ${what} kept losing to other writers for ${withinMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, Math.random() * 2 ** Math.min(i, 7)));
  }
}

/** Key/value keys allow few characters: other names are stored hex-encoded. */
export function safeKey(name: string): string {
  return /^[A-Za-z0-9_-]+$/.test(name) ? name : `x${Buffer.from(name).toString('hex')}`;
}

/**
 * Makes (or opens) a stream or bucket, trying again for `withinMs` while
 * JetStream cannot yet: on a cluster, several servers creating the same
 * stream at once race in its meta layer ("already in use", "no suitable
 * peers"), a stream just made may not be found yet by the next call, and a
 * new stream or a cluster that lost a node answers nothing until it has
 * elected leaders (timeouts).
 */
export async function whilePlacing<T>(what: string, open: () => Promise<T>, withinMs = 20_000): Promise<T> {
  const deadline = Date.now() + withinMs;
  for (;;) {
    try {
      return await open();
    } catch (error) {
      const transient = /timeout|no suitable peers|already in use|no responders|leader|unavailable|insufficient resources|stream not found/i.test((error as Error).message);
      if (!transient || Date.now() >= deadline) throw new Error(`${what}: ${(error as Error).message}`);
      await new Promise((resolve) => setTimeout(resolve, 100 + Math.random() * 400));
    }
  }
}

/**
 * How long JetStream calls keep trying while a stream has no leader: the
 * core's bound on a call once it has said (`Broker.limitCallsTo`), so that no
 * repeat goes out after the caller was told the call failed.
 */
export class CallBudget {
  ms = 3000;

  /** What one attempt started now may take, `withinMs` after the call began. */
  attemptMs(startedAt: number): number {
    return Math.max(1, Math.min(1000, startedAt + this.ms - Date.now()));
  }
}

/**
 * A header a conditional or once-only write carries with a value of its own
 * (a random id): when JetStream answers such a write "duplicate", the stored
 * message's header says whether it was an earlier try of the same write.
 */
export const attemptHeader = 'Se-Attempt';

/** The `attemptHeader` of the message stored at `sequence` in `stream`, if any. */
export async function storedAttempt(jsm: JetStreamManager, stream: string, sequence: number, budget: CallBudget): Promise<string | undefined> {
  const stored = await throughElections(budget, () => jsm.streams.getMessage(stream, { seq: sequence }));
  return stored?.header?.get(attemptHeader) || undefined;
}

/**
 * Whether JetStream failed because nobody could answer yet: a replicated
 * stream electing a leader (a node was lost, or a loaded machine missed a
 * heartbeat) has no one to take requests, which the client reports as no
 * responders ("jetstream is not enabled") or a timeout.
 */
export function isLeaderless(error: unknown): boolean {
  return /jetstream is not enabled|no responders|timeout|temporarily unavailable|no leader|no suitable peers/i.test((error as Error)?.message ?? '');
}

/**
 * Runs a JetStream call, trying again while the stream is leaderless, within
 * the budget; each attempt is given what remains of it, at most a second.
 * Only for calls that are safe to repeat: reads, blind writes, and writes
 * that carry a message id (JetStream keeps the first).
 */
export async function throughElections<T>(budget: CallBudget, call: (attemptMs: number) => Promise<T>): Promise<T> {
  const startedAt = Date.now();
  for (let i = 0; ; i++) {
    try {
      return await call(budget.attemptMs(startedAt));
    } catch (error) {
      const pause = Math.min(50 * 2 ** i, 400);
      if (!isLeaderless(error) || Date.now() + pause >= startedAt + budget.ms) throw error;
      await new Promise((resolve) => setTimeout(resolve, pause));
    }
  }
}
