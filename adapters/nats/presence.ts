import type { KV, KvWatchEntry } from '@nats-io/kv';
import type { QueuedIterator } from '@nats-io/transport-node';
import type { PresenceStore } from '../../src/broker.js';
import { isLive, leaseOf, type Lease } from '../lease.js';
import { compareAndSet, conflict, liveEntry, untilWritten } from './kv.js';

/**
 * Presence in a JetStream key/value bucket. A record's value carries its
 * lease deadline; every change is a compare-and-set on the key's revision,
 * so exactly one server wins a removal. Each server follows the bucket with a
 * watch into a local mirror, so listing and sweeping read memory instead of
 * the bucket (the mirror trails the bucket by the time a message takes to
 * arrive). Deadlines use the app servers' clocks, which must agree within a
 * fraction of the idle timeout.
 */
export class NatsPresence implements PresenceStore {
  private readonly mirror = new Map<string, { lease: Lease; revision: number }>();
  private watcher: QueuedIterator<KvWatchEntry> | undefined;

  constructor(private readonly bucket: () => KV) {}

  /** Starts (again) mirroring the bucket, e.g. after the bucket was opened anew. */
  async follow(): Promise<void> {
    this.stop();
    const watcher = (this.watcher = await this.bucket().watch());
    void (async () => {
      for await (const entry of watcher) {
        if (entry.operation === 'PUT') this.mirror.set(entry.key, { lease: entry.json<Lease>(), revision: entry.revision });
        else this.mirror.delete(entry.key);
      }
    })().catch(() => {});
  }

  stop(): void {
    this.watcher?.stop();
    this.watcher = undefined;
    this.mirror.clear();
  }

  async put(id: string, record: string, ttlMs: number): Promise<void> {
    await this.bucket().put(id, JSON.stringify(leaseOf(record, ttlMs)));
  }

  async replace(id: string, expected: string, record: string, ttlMs: number): Promise<boolean> {
    const found = await this.read(id);
    if (!found || !isLive(found.lease) || found.lease.record !== expected) return false;
    const next = JSON.stringify(leaseOf(record, ttlMs));
    return (await compareAndSet(() => this.bucket().update(id, next, found.revision))) === true;
  }

  async get(id: string): Promise<string | undefined> {
    const found = await this.read(id);
    return found && isLive(found.lease) ? found.lease.record : undefined;
  }

  touch(id: string, ttlMs: number): Promise<boolean> {
    return untilWritten(`renewing ${id}`, async () => {
      const found = await this.read(id);
      if (!found || !isLive(found.lease)) return false;
      const renewed = JSON.stringify(leaseOf(found.lease.record, ttlMs));
      return compareAndSet(() => this.bucket().update(id, renewed, found.revision));
    });
  }

  remove(id: string): Promise<string | undefined> {
    return untilWritten(`removing ${id}`, async () => {
      const found = await this.read(id);
      if (!found) return undefined;
      const removed = await compareAndSet(() => this.bucket().delete(id, { previousSeq: found.revision }));
      return removed === conflict ? conflict : found.lease.record;
    });
  }

  async list(): Promise<string[]> {
    const now = Date.now();
    return [...this.mirror.values()].filter((m) => isLive(m.lease, now)).map((m) => m.lease.record);
  }

  async takeExpired(limit: number): Promise<string[]> {
    const now = Date.now();
    const expired = [...this.mirror].filter(([, m]) => !isLive(m.lease, now)).slice(0, limit);
    const taken: string[] = [];
    for (const [id, { lease, revision }] of expired) {
      // A renewal since the mirror saw it changes the revision, and then the delete loses, as it should.
      if ((await compareAndSet(() => this.bucket().delete(id, { previousSeq: revision }))) === true) taken.push(lease.record);
    }
    return taken;
  }

  private async read(id: string): Promise<{ lease: Lease; revision: number } | undefined> {
    const entry = await liveEntry(this.bucket(), id);
    return entry && { lease: entry.json<Lease>(), revision: entry.revision };
  }
}
