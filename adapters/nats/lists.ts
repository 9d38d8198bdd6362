import type { KV } from '@nats-io/kv';
import type { CappedLists } from '../../src/broker.js';
import { compareAndSet, liveEntry, safeKey, untilWritten } from './kv.js';

/**
 * Lists as JSON arrays in a key/value bucket, changed by compare-and-set.
 * A list must fit in one NATS message (1 MB by default).
 */
export class NatsLists implements CappedLists {
  constructor(private readonly bucket: () => KV) {}

  push(key: string, value: string, maxLength: number): Promise<void> {
    const name = safeKey(key);
    return untilWritten(`appending to list ${key}`, async () => {
      const bucket = this.bucket();
      const entry = await bucket.get(name);
      const current = entry && entry.operation === 'PUT' ? entry.json<string[]>() : [];
      const list = JSON.stringify([...current, value].slice(-maxLength));
      const written = await compareAndSet(() => (entry ? bucket.update(name, list, entry.revision) : bucket.create(name, list)));
      return written === true ? undefined : written;
    });
  }

  async range(key: string): Promise<string[]> {
    return (await liveEntry(this.bucket(), safeKey(key)))?.json<string[]>() ?? [];
  }

  async clear(key: string): Promise<void> {
    await this.bucket().delete(safeKey(key));
  }
}
