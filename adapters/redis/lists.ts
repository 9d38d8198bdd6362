import type { RedisClient } from './connection.js';
import type { CappedLists } from '../../src/broker.js';

/** Lists as Redis lists, appended and trimmed in one transaction. */
export class RedisLists implements CappedLists {
  constructor(
    private readonly redis: RedisClient,
    private readonly prefix: string,
  ) {}

  async push(key: string, value: string, maxLength: number): Promise<void> {
    await this.redis.multi().rpush(this.key(key), value).ltrim(this.key(key), -maxLength, -1).exec();
  }

  async range(key: string): Promise<string[]> {
    return this.redis.lrange(this.key(key), 0, -1);
  }

  async clear(key: string): Promise<void> {
    await this.redis.del(this.key(key));
  }

  private key(key: string): string {
    return `${this.prefix}list:${key}`;
  }
}
