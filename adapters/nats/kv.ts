import type { KV, KvEntry } from '@nats-io/kv';

/** What a conditional write returns when another writer changed the key first. */
export const conflict = Symbol('conflict');
export type Conflict = typeof conflict;

/** Runs a conditional write (an `update` with a revision, a `create`, a delete with `previousSeq`); `conflict` when it lost. */
export async function compareAndSet(write: () => Promise<unknown>): Promise<true | Conflict> {
  try {
    await write();
    return true;
  } catch (error) {
    if (/wrong last sequence|key exists/i.test((error as Error).message)) return conflict;
    throw error;
  }
}

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

/** The entry of `key` when it holds a value (not a delete marker). */
export async function liveEntry(bucket: KV, key: string): Promise<KvEntry | undefined> {
  const entry = await bucket.get(key);
  return entry && entry.operation === 'PUT' ? entry : undefined;
}

/** Key/value keys allow few characters: other names are stored hex-encoded. */
export function safeKey(name: string): string {
  return /^[A-Za-z0-9_-]+$/.test(name) ? name : `x${Buffer.from(name).toString('hex')}`;
}
