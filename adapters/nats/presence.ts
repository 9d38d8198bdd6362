import type { PresenceStore } from '../../src/broker.js';
import { isLive, leaseOf, type Lease } from '../lease.js';
import type { Bucket } from './bucket.js';
import { conflict, safeKey, untilWritten } from './kv.js';
import { Rosters } from './rosters.js';

/** A stored record: its lease and the index keys it is listed under. */
interface Stored extends Lease {
  indexes: string[];
}

/**
 * Presence in a JetStream key/value bucket: a key per record (`r.{id}`)
 * whose value carries the lease deadline and the record's index keys, and a
 * roster per index key (see `Rosters`) in a bucket of its own: the records'
 * bucket has an age limit as a backstop, which a quiet roster must outlive. Every change of a record is a
 * compare-and-set on its revision, so exactly one server wins a removal.
 * Nothing is mirrored: a lookup reads the roster it needs and the records
 * in it. Deadlines use the app servers' clocks, which must agree within a
 * fraction of the idle timeout.
 */
export class NatsPresence implements PresenceStore {
  private readonly rosters: Rosters;

  constructor(
    private readonly bucket: () => Bucket,
    rosterBucket: () => Bucket,
  ) {
    this.rosters = new Rosters(rosterBucket);
  }

  async put(id: string, record: string, indexes: readonly string[], ttlMs: number): Promise<void> {
    const value = JSON.stringify(this.stored(record, indexes, ttlMs));
    // Most puts make a new record: written if the key was never written, which needs no read first.
    if ((await this.bucket().writeIf(recordKey(id), value, 0)) !== conflict) return this.reindex(id, [], indexes);
    const previous = await this.read(id);
    await this.bucket().put(recordKey(id), value);
    await this.reindex(id, previous?.value.indexes ?? [], indexes);
  }

  async replace(id: string, expected: string, record: string, indexes: readonly string[], ttlMs: number): Promise<boolean> {
    const found = await this.read(id);
    if (!found || !isLive(found.value) || found.value.record !== expected) return false;
    const next = JSON.stringify(this.stored(record, indexes, ttlMs));
    if ((await this.bucket().writeIf(recordKey(id), next, found.revision)) === conflict) return false;
    await this.reindex(id, found.value.indexes, indexes);
    return true;
  }

  async get(id: string): Promise<string | undefined> {
    const found = await this.read(id);
    return found && isLive(found.value) ? found.value.record : undefined;
  }

  async getMany(ids: readonly string[]): Promise<Map<string, string>> {
    const now = Date.now();
    const reads = await Promise.all(ids.map((id) => this.read(id)));
    const found = new Map<string, string>();
    ids.forEach((id, i) => {
      const read = reads[i];
      if (read && isLive(read.value, now)) found.set(id, read.value.record);
    });
    return found;
  }

  touch(id: string, ttlMs: number): Promise<boolean> {
    return untilWritten(`renewing ${id}`, async () => {
      const found = await this.read(id);
      if (!found || !isLive(found.value)) return false;
      const renewed = JSON.stringify(Object.assign(found.value, leaseOf(found.value.record, ttlMs)));
      return this.bucket().writeIf(recordKey(id), renewed, found.revision);
    });
  }

  async remove(id: string): Promise<string | undefined> {
    const removed = await untilWritten(`removing ${id}`, async () => {
      const found = await this.read(id);
      if (!found) return undefined;
      const deleted = await this.bucket().deleteIf(recordKey(id), found.revision);
      return deleted === conflict ? conflict : found.value;
    });
    if (!removed) return undefined;
    await this.reindex(id, removed.indexes, []);
    return removed.record;
  }

  async takeExpired(ids: readonly string[]): Promise<string[]> {
    const now = Date.now();
    const taken = await Promise.all(
      ids.map(async (id) => {
        const found = await this.read(id);
        if (!found || isLive(found.value, now)) return undefined;
        // A renewal or removal since the read changes the revision, and then the delete loses, as it should.
        if ((await this.bucket().deleteIf(recordKey(id), found.revision)) === conflict) return undefined;
        await this.reindex(id, found.value.indexes, []);
        return found.value.record;
      }),
    );
    return taken.filter((record): record is string => record !== undefined);
  }

  async *members(index: string, batchSize: number): AsyncIterable<string[]> {
    for await (const ids of this.rosters.members(index)) {
      for (let i = 0; i < ids.length; i += batchSize) yield ids.slice(i, i + batchSize);
    }
  }

  async unlist(index: string, ids: readonly string[]): Promise<void> {
    // Checked again just before: a record written since the reader looked keeps its entry.
    const reads = await Promise.all(ids.map((id) => this.bucket().get(recordKey(id))));
    await Promise.all(ids.filter((_, i) => !reads[i]).map((id) => this.rosters.remove(index, id)));
  }

  private stored(record: string, indexes: readonly string[], ttlMs: number): Stored {
    return Object.assign(leaseOf(record, ttlMs), { indexes: [...indexes] });
  }

  /** Moves `id` from the rosters it was in to the ones it is in now. */
  private async reindex(id: string, before: readonly string[], after: readonly string[]): Promise<void> {
    await Promise.all([
      ...after.filter((index) => !before.includes(index)).map((index) => this.rosters.add(index, id)),
      ...before.filter((index) => !after.includes(index)).map((index) => this.rosters.remove(index, id)),
    ]);
  }

  private async read(id: string): Promise<{ value: Stored; revision: number } | undefined> {
    const entry = await this.bucket().get(recordKey(id));
    return entry && { value: entry.json<Stored>(), revision: entry.revision };
  }
}

const recordKey = (id: string) => `r.${safeKey(id)}`;
