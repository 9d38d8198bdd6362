import type { SubscriptionInfo } from './records.js';
import { isPrivateTopic, topicsOf } from './topics.js';

/** A subscription this server sweeps: detached from a stream here, or handed over to another stream. */
export interface DetachedEntry {
  info: SubscriptionInfo;
  /** When its lease runs out, as far as this server knows (Unix ms). */
  expiresAt: number;
}

/**
 * The subscriptions detached from this server's streams, by id, and the
 * private audiences they belong to. While one is here, a sender may still
 * find this server in the presence indexes for it (a resume elsewhere is
 * under way, or has just finished), so events for those audiences that
 * reach this inbox are passed on to wherever the subscription is now.
 */
export class DetachedSubscriptions {
  private readonly entries = new Map<string, DetachedEntry>();
  private readonly audiences = new Map<string, number>();

  get size(): number {
    return this.entries.size;
  }

  get(id: string): DetachedEntry | undefined {
    return this.entries.get(id);
  }

  has(id: string): boolean {
    return this.entries.has(id);
  }

  set(id: string, entry: DetachedEntry): void {
    this.delete(id);
    this.entries.set(id, entry);
    for (const topic of privateTopicsOf(entry.info)) this.audiences.set(topic, (this.audiences.get(topic) ?? 0) + 1);
  }

  delete(id: string): void {
    const entry = this.entries.get(id);
    if (!entry) return;
    this.entries.delete(id);
    for (const topic of privateTopicsOf(entry.info)) {
      const left = (this.audiences.get(topic) ?? 1) - 1;
      if (left === 0) this.audiences.delete(topic);
      else this.audiences.set(topic, left);
    }
  }

  /** True when a subscription detached here belongs to the private audience `topic`. */
  inAudience(topic: string): boolean {
    return this.audiences.has(topic);
  }

  [Symbol.iterator](): IterableIterator<[string, DetachedEntry]> {
    return this.entries.entries();
  }

  values(): IterableIterator<DetachedEntry> {
    return this.entries.values();
  }
}

function privateTopicsOf(info: SubscriptionInfo): string[] {
  return topicsOf(info).filter(isPrivateTopic);
}
