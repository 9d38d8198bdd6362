import type { CappedLists } from '../../src/broker.js';
import type { Bucket } from './bucket.js';
import { safeKey, untilWritten } from './kv.js';

/**
 * Lists as JSON arrays in a key/value bucket, changed by compare-and-set.
 * A list must fit in one NATS message (1 MB by default).
 */
export class NatsLists implements CappedLists {
  constructor(private readonly bucket: () => Bucket) {}

  push(key: string, value: string, maxLength: number): Promise<void> {
    const name = safeKey(key);
    return untilWritten(`appending to list ${key}`, async () => {
      const bucket = this.bucket();
      const { entry, revision } = await bucket.read(name);
      const list = JSON.stringify([...(entry?.json<string[]>() ?? []), value].slice(-maxLength));
      const written = await bucket.writeIf(name, list, revision);
      return written === true ? undefined : written;
    });
  }

  async range(key: string): Promise<string[]> {
    return (await this.bucket().get(safeKey(key)))?.json<string[]>() ?? [];
  }

  async clear(key: string): Promise<void> {
    await this.bucket().delete(safeKey(key));
  }
}
