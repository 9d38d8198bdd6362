import type { KvEntry } from '@nats-io/kv';
import type { ExpiringKeys } from '../../src/broker.js';
import type { Bucket } from './bucket.js';
import { safeKey, untilWritten } from './kv.js';

/**
 * Keys in a key/value bucket, each value stored with its deadline (on this
 * server's clock) as `{deadline} {value}`, claimed by compare-and-set on the
 * key's revision. The bucket's own age limit drops what nobody removed; no
 * key may be asked to live longer than that (`maxTtlMs`).
 */
export class NatsKeys implements ExpiringKeys {
  constructor(
    private readonly bucket: () => Promise<Bucket>,
    readonly maxTtlMs: number,
  ) {}

  setIfAbsent(key: string, value: string, ttlMs: number): Promise<string | undefined> {
    this.checkTtl(ttlMs);
    const name = safeKey(key);
    return untilWritten(`claiming key ${key}`, async () => {
      const bucket = await this.bucket();
      const { entry, revision } = await bucket.read(name);
      const held = liveValue(entry);
      if (held !== undefined) return { held };
      const written = await bucket.writeIf(name, encode(value, ttlMs), revision);
      return written === true ? { held: undefined } : written;
    }).then(({ held }) => held);
  }

  /** Whether `key` holds an unexpired value. */
  async holds(key: string): Promise<boolean> {
    return liveValue(await (await this.bucket()).get(safeKey(key))) !== undefined;
  }

  async set(key: string, value: string, ttlMs: number): Promise<void> {
    this.checkTtl(ttlMs);
    await (await this.bucket()).put(safeKey(key), encode(value, ttlMs));
  }

  async delete(key: string): Promise<void> {
    await (await this.bucket()).delete(safeKey(key));
  }

  private checkTtl(ttlMs: number): void {
    if (ttlMs > this.maxTtlMs) throw new Error(`NATS keys live at most ${this.maxTtlMs} ms (the bucket's age limit), not ${ttlMs}`);
  }
}

function encode(value: string, ttlMs: number): string {
  return `${Date.now() + ttlMs} ${value}`;
}

/** The value an entry holds, unless it has none or its deadline has passed. */
function liveValue(entry: KvEntry | undefined): string | undefined {
  const stored = entry?.string() ?? '';
  const space = stored.indexOf(' ');
  if (space < 0 || Number(stored.slice(0, space)) <= Date.now()) return undefined;
  return stored.slice(space + 1);
}
