import type { ExpiringKeys } from '../../src/broker.js';
import type { RedisClient } from './connection.js';

/** Sets the key unless it holds a value, and answers what it held: `SET NX GET` before Redis 7, as a script. */
const setIfAbsent = `local held = redis.call('GET', KEYS[1])
if held then return held end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false`;

/** Keys as plain Redis strings with a key expiry, so Redis itself forgets them. */
export class RedisKeys implements ExpiringKeys {
  constructor(
    private readonly redis: RedisClient,
    private readonly prefix: string,
  ) {
    redis.defineCommand('keys_setIfAbsent', { numberOfKeys: 1, lua: setIfAbsent });
  }

  async setIfAbsent(key: string, value: string, ttlMs: number): Promise<string | undefined> {
    const run = (this.redis as unknown as Record<string, (...args: unknown[]) => Promise<string | null>>).keys_setIfAbsent!;
    return (await run.call(this.redis, this.key(key), value, ttlMs)) ?? undefined;
  }

  async set(key: string, value: string, ttlMs: number): Promise<void> {
    await this.redis.set(this.key(key), value, 'PX', ttlMs);
  }

  async delete(key: string): Promise<void> {
    await this.redis.del(this.key(key));
  }

  private key(key: string): string {
    return `${this.prefix}key:${key}`;
  }
}
