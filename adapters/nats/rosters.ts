import { createHash, randomBytes } from 'node:crypto';
import type { Bucket } from './bucket.js';
import { conflict, type Conflict, untilWritten } from './kv.js';

/** A roster key's value: the ids themselves, or where they went when the roster grew. */
type Stored = { ids: string[] } | { shards: number; split: string };

/** Past this many ids a roster is split; shards are never split again (one holds some 20,000 ids in 1 MB). */
const splitAt = 500;
const shardCount = 64;

/** How many keys `Rosters` remembers as it wrote them, the least recently written forgotten first. */
const knownAtMost = 1024;

interface KeyKnown {
  value: Stored;
  revision: number;
}

interface Pending {
  op: 'add' | 'remove';
  id: string;
  done: { resolve(): void; reject(error: unknown): void };
}

/**
 * Sets of ids in a key/value bucket, one per index key: what NATS key/value
 * lacks, and what a lookup by channel, user or session needs. Listing keys
 * by a wildcard costs what the whole bucket holds on nats-server 2.9, so a
 * set is instead a few keys read directly: one key with the ids as a JSON
 * list, and once it passes `splitAt` ids, `shardCount` keys chosen by a hash
 * of the id, the first key only saying so. A lookup reads the first key and,
 * for a large set, its shards; it costs what the set holds.
 *
 * Every change is a compare-and-set on the key's revision, retried a bounded
 * number of times when another server wrote first. Changes to one key from
 * this connection are queued and written together, so that a burst of
 * joins on one channel costs a few writes, not one fight per join.
 */
export class Rosters {
  private readonly queues = new Map<string, Pending[]>();
  /** Keys as this connection last wrote them, with the bucket they were written to (see `current`). */
  private readonly known = new Map<string, KeyKnown>();
  private knownIn: Bucket | undefined;
  /** Keys guessed new lately (see `current`). */
  private readonly guessed = new Set<string>();

  constructor(private readonly bucket: () => Bucket) {}

  add(index: string, id: string): Promise<void> {
    return this.enqueue(rosterKey(index), 'add', id);
  }

  remove(index: string, id: string): Promise<void> {
    return this.enqueue(rosterKey(index), 'remove', id);
  }

  /** The ids of a roster, a key (the list, or one shard) at a time. */
  async *members(index: string): AsyncIterable<string[]> {
    const stored = await this.read(rosterKey(index));
    if (!stored.value) return;
    if ('ids' in stored.value) {
      if (stored.value.ids.length > 0) yield stored.value.ids;
      return;
    }
    for (let shard = 0; shard < stored.value.shards; shard++) {
      const part = await this.read(shardKey(rosterKey(index), stored.value.split, shard));
      if (part.value && 'ids' in part.value && part.value.ids.length > 0) yield part.value.ids;
    }
  }

  private enqueue(key: string, op: Pending['op'], id: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const queue = this.queues.get(key);
      if (queue) return void queue.push({ op, id, done: { resolve, reject } });
      this.queues.set(key, [{ op, id, done: { resolve, reject } }]);
      void this.drain(key);
    });
  }

  /** Writes the queued changes of `key`, all that arrived meanwhile at once, until none is left. */
  private async drain(key: string): Promise<void> {
    for (let queue = this.queues.get(key); queue && queue.length > 0; queue = this.queues.get(key)) {
      const batch = queue.splice(0);
      try {
        await untilWritten(`changing roster ${key}`, () => this.apply(key, batch));
        for (const change of batch) change.done.resolve();
      } catch (error) {
        for (const change of batch) change.done.reject(error);
      }
    }
    this.queues.delete(key);
  }

  /** One attempt at applying `batch` to `key` (or to the shards it points to). */
  private async apply(key: string, batch: Pending[]): Promise<true | Conflict> {
    const bucket = this.bucket();
    const stored = await this.current(key, onlyAdds(batch));
    if (stored.value && 'shards' in stored.value) {
      const { shards, split } = stored.value;
      const byShard = new Map<number, Pending[]>();
      for (const change of batch) {
        const shard = shardOf(change.id, shards);
        byShard.set(shard, [...(byShard.get(shard) ?? []), change]);
      }
      // Each shard is a roster of its own; a lost race on one is retried there.
      await Promise.all([...byShard].map(([shard, changes]) => untilWritten(`changing roster ${key}`, () => this.applyToList(shardKey(key, split, shard), changes))));
      // A split roster stays split: what the first key says holds until the roster is gone.
      this.remember(key, stored.value, stored.revision);
      return true;
    }
    const ids = changed(stored.value && 'ids' in stored.value ? stored.value.ids : [], batch);
    if (ids.length > splitAt) return this.split(key, ids, stored.revision);
    if (ids.length === 0) return stored.value ? bucket.deleteIf(key, stored.revision) : true;
    return this.writeList(key, ids, stored.revision);
  }

  private async applyToList(key: string, batch: Pending[]): Promise<true | Conflict> {
    const stored = await this.current(key, onlyAdds(batch));
    return this.writeList(key, changed(stored.value && 'ids' in stored.value ? stored.value.ids : [], batch), stored.revision);
  }

  private async writeList(key: string, ids: string[], revision: number): Promise<true | Conflict> {
    const value: Stored = { ids };
    const written = await this.bucket().writeIfAt(key, JSON.stringify(value), revision);
    if (written === conflict) return conflict;
    this.remember(key, value, written);
    return true;
  }

  /**
   * The key as this connection wrote it last, when it knows that; else, for
   * a batch that only adds, a guess that the key is new (the roster of a new
   * user or session); else as read. A change then costs one write instead
   * of a read and a write: the write names the revision, so if the key is
   * not as taken it fails, and the retry reads (what is known or guessed is
   * used once, never twice).
   */
  private async current(key: string, onlyAdds: boolean): Promise<{ value: Stored | undefined; revision: number }> {
    const bucket = this.bucket();
    if (this.knownIn !== bucket) {
      // A bucket made anew (the broker lost its storage) numbers its revisions afresh.
      this.known.clear();
      this.knownIn = bucket;
    }
    const known = this.known.get(key);
    this.known.delete(key);
    if (known) return known;
    if (onlyAdds && !this.guessed.has(key)) {
      this.guess(key);
      return { value: undefined, revision: 0 };
    }
    return this.read(key);
  }

  /** Guesses a key new once: if the guess was wrong, the retry reads. */
  private guess(key: string): void {
    this.guessed.add(key);
    if (this.guessed.size > knownAtMost) this.guessed.delete(this.guessed.values().next().value!);
  }

  /**
   * Worth remembering: keys changed over and over (a server's roster, a
   * busy channel's, a split roster's first key), not the one-member rosters
   * of a user or a session, which would cost memory per connection.
   */
  private remember(key: string, value: Stored, revision: number): void {
    if ('ids' in value && value.ids.length < 2) return;
    this.known.delete(key);
    this.known.set(key, { value, revision });
    if (this.known.size > knownAtMost) this.known.delete(this.known.keys().next().value!);
  }

  /**
   * Writes the shards under a name of this attempt's own, then points the
   * first key at them. Losing that last step to another writer leaves the
   * shards unused; they are removed again.
   */
  private async split(key: string, ids: string[], revision: number): Promise<true | Conflict> {
    const bucket = this.bucket();
    const split = randomBytes(4).toString('hex');
    const parts = Array.from({ length: shardCount }, () => [] as string[]);
    for (const id of ids) parts[shardOf(id, shardCount)]!.push(id);
    await Promise.all(parts.map((part, shard) => bucket.put(shardKey(key, split, shard), JSON.stringify({ ids: part } satisfies Stored))));
    const marker = JSON.stringify({ shards: shardCount, split } satisfies Stored);
    const pointed = await bucket.writeIf(key, marker, revision);
    if (pointed === conflict) await Promise.allSettled(parts.map((_, shard) => bucket.delete(shardKey(key, split, shard))));
    return pointed;
  }

  private async read(key: string): Promise<{ value: Stored | undefined; revision: number }> {
    const { entry, revision } = await this.bucket().read(key);
    return { value: entry?.json<Stored>(), revision };
  }
}

function onlyAdds(batch: readonly Pending[]): boolean {
  return batch.every((change) => change.op === 'add');
}

/** The list after a batch of changes, in order. */
function changed(ids: readonly string[], batch: readonly Pending[]): string[] {
  const set = new Set(ids);
  for (const { op, id } of batch) {
    if (op === 'add') set.add(id);
    else set.delete(id);
  }
  return [...set];
}

const rosterKey = (index: string) => `x.${Buffer.from(index).toString('hex')}`;
const shardKey = (key: string, split: string, shard: number) => `${key}.${split}.${shard}`;
const shardOf = (id: string, shards: number) => createHash('sha1').update(id).digest().readUInt32BE(0) % shards;
