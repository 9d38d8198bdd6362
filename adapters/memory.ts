import type { Broker, CappedLists, PresenceStore } from '../src/broker.js';

type Listener = (topic: string, payload: string) => void;

/**
 * The shared state of an in-process cluster: topic listeners, presence
 * records and counters. One hub stands for one Redis or NATS server; every
 * `MemoryBroker` attached to it is one app server's connection.
 */
export class MemoryHub {
  readonly topics = new Map<string, Set<Listener>>();
  readonly presence = new MemoryPresence();
  readonly lists = new MemoryLists();
  readonly sequences = new Map<string, number>();
}

class MemoryLists implements CappedLists {
  private readonly lists = new Map<string, string[]>();

  async push(key: string, value: string, maxLength: number): Promise<void> {
    const list = [...(this.lists.get(key) ?? []), value];
    this.lists.set(key, list.slice(Math.max(0, list.length - maxLength)));
  }

  async range(key: string): Promise<string[]> {
    return [...(this.lists.get(key) ?? [])];
  }

  async clear(key: string): Promise<void> {
    this.lists.delete(key);
  }
}

interface Lease {
  record: string;
  expiresAt: number;
}

/** Presence records in a `Map`, with leases checked against `Date.now()`. */
class MemoryPresence implements PresenceStore {
  private readonly leases = new Map<string, Lease>();

  async put(id: string, record: string, ttlMs: number): Promise<void> {
    this.leases.set(id, { record, expiresAt: Date.now() + ttlMs });
  }

  async get(id: string): Promise<string | undefined> {
    return this.live(id)?.record;
  }

  async touch(id: string, ttlMs: number): Promise<boolean> {
    const lease = this.live(id);
    if (!lease) return false;
    lease.expiresAt = Date.now() + ttlMs;
    return true;
  }

  async remove(id: string): Promise<string | undefined> {
    const lease = this.leases.get(id);
    this.leases.delete(id);
    return lease?.record;
  }

  async list(): Promise<string[]> {
    const now = Date.now();
    return [...this.leases.values()].filter((l) => l.expiresAt > now).map((l) => l.record);
  }

  async takeExpired(limit: number): Promise<string[]> {
    const now = Date.now();
    const taken: string[] = [];
    for (const [id, lease] of this.leases) {
      if (taken.length >= limit) break;
      if (lease.expiresAt <= now) {
        this.leases.delete(id);
        taken.push(lease.record);
      }
    }
    return taken;
  }

  private live(id: string): Lease | undefined {
    const lease = this.leases.get(id);
    return lease && lease.expiresAt > Date.now() ? lease : undefined;
  }
}

/**
 * The embedded broker: a cluster that lives inside one process. With no
 * arguments it has a hub of its own (a single server); pass a shared
 * `MemoryHub` to run several `ServerEvents` instances as one cluster.
 *
 * Payloads are delivered on a later microtask, never inside `publish`, so a
 * publisher never re-enters its own message handler.
 */
export class MemoryBroker implements Broker {
  readonly name = 'memory';
  readonly hub: MemoryHub;
  private handler: Listener = () => {};
  private readonly listener: Listener = (topic, payload) => this.handler(topic, payload);
  private readonly subscribed = new Set<string>();

  constructor(options: { hub?: MemoryHub } = {}) {
    this.hub = options.hub ?? new MemoryHub();
  }

  get presence(): PresenceStore {
    return this.hub.presence;
  }

  get lists(): CappedLists {
    return this.hub.lists;
  }

  async connect(): Promise<void> {}

  async publish(topic: string, payload: string): Promise<void> {
    const listeners = this.hub.topics.get(topic);
    if (!listeners) return;
    // Snapshot now: a connection subscribing after this publish must not get it.
    const targets = [...listeners];
    queueMicrotask(() => {
      for (const deliver of targets) deliver(topic, payload);
    });
  }

  async subscribe(topics: readonly string[]): Promise<void> {
    for (const topic of topics) {
      if (this.subscribed.has(topic)) continue;
      this.subscribed.add(topic);
      let listeners = this.hub.topics.get(topic);
      if (!listeners) this.hub.topics.set(topic, (listeners = new Set()));
      listeners.add(this.listener);
    }
  }

  async unsubscribe(topics: readonly string[]): Promise<void> {
    for (const topic of topics) {
      if (!this.subscribed.delete(topic)) continue;
      const listeners = this.hub.topics.get(topic);
      listeners?.delete(this.listener);
      if (listeners?.size === 0) this.hub.topics.delete(topic);
    }
  }

  onMessage(handler: Listener): void {
    this.handler = handler;
  }

  /** An in-process hub is never unreachable. */
  onStatus(): void {}

  async nextSequence(name: string): Promise<number> {
    const next = (this.hub.sequences.get(name) ?? 0) + 1;
    this.hub.sequences.set(name, next);
    return next;
  }

  async close(): Promise<void> {
    await this.unsubscribe([...this.subscribed]);
    this.handler = () => {};
  }
}
