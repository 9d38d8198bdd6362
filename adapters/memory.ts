import {
  epochStart,
  withDefaults,
  type Broker,
  type CappedLists,
  type ExpiringKeys,
  type PublishOnce,
  type EventHistory,
  type HistoryEntry,
  type HistoryRead,
  type HistoryRetention,
  type PresenceStore,
} from '../src/broker.js';
import { isLive, leaseOf, type Lease } from './lease.js';

type Listener = (topic: string, payload: string, id?: number) => void;

/**
 * The shared state of an in-process cluster: topic listeners, presence
 * records and counters. One hub stands for one Redis or NATS server; every
 * `MemoryBroker` attached to it is one app server's connection.
 */
export class MemoryHub {
  readonly topics = new Map<string, Set<Listener>>();
  readonly presence = new MemoryPresence();
  readonly lists = new MemoryLists();
  readonly keys = new MemoryKeys();
  readonly sequences = new Map<string, number>();
  readonly history: MemoryHistory;

  constructor(options: { history?: HistoryRetention } = {}) {
    this.history = new MemoryHistory(this, withDefaults(options.history));
  }

  /**
   * Hands `payload` to every connection subscribed to `topic` now, on a later
   * microtask, so a publisher never re-enters its own message handler.
   */
  deliver(topic: string, payload: string, id?: number): void {
    const listeners = this.topics.get(topic);
    if (!listeners) return;
    const targets = [...listeners];
    queueMicrotask(() => {
      for (const listener of targets) listener(topic, payload, id);
    });
  }
}

/** How far past its length limit the history may grow before it is trimmed. */
const trimBlock = 1024;

interface Kept extends HistoryEntry {
  at: number;
}

/** A bounded array of events; ids start a new epoch when the hub is created. */
class MemoryHistory implements EventHistory {
  private readonly kept: Kept[] = [];
  private last = epochStart();

  constructor(
    private readonly hub: MemoryHub,
    private readonly retention: Required<HistoryRetention>,
  ) {}

  async publish(topic: string, payload: string, deliverOn: readonly string[] = [topic], once?: PublishOnce): Promise<number | undefined> {
    if (once && !this.takeOnce(once)) return undefined;
    const id = ++this.last;
    this.kept.push({ id, topic, payload, at: Date.now() });
    // Trimmed in blocks, not one event at a time: shifting a long array on every publish made it the slowest broker.
    if (this.kept.length >= this.retention.maxLength + trimBlock) this.kept.splice(0, this.kept.length - this.retention.maxLength);
    for (const target of deliverOn) this.hub.deliver(target, payload, id);
    return id;
  }

  /** Whether `once.key` is free (and takes it): the hub's keys hold the window. */
  private takeOnce(once: PublishOnce): boolean {
    const key = `history-once:${once.key}`;
    if (this.hub.keys.holds(key)) return false;
    this.hub.keys.store(key, '1', once.windowMs);
    return true;
  }

  async read(afterId: number, topics: ReadonlySet<string>): Promise<HistoryRead> {
    const oldestAllowed = Date.now() - this.retention.maxAgeMs;
    // What is past the length limit counts as gone, as if trimmed already.
    const kept = this.kept.slice(-this.retention.maxLength).filter((e) => e.at >= oldestAllowed);
    const entries = kept.filter((e) => e.id > afterId && topics.has(e.topic)).map(({ id, topic, payload }) => ({ id, topic, payload }));
    return { entries, first: kept[0]?.id ?? this.last + 1, head: this.last };
  }

  async head(): Promise<number> {
    return this.last;
  }
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

/** Keys in a `Map` with deadlines on `Date.now()`; expired ones are dropped as the map grows. */
class MemoryKeys implements ExpiringKeys {
  private readonly entries = new Map<string, { value: string; deadline: number }>();
  private sweepAt = 1024;

  /** Whether `key` holds an unexpired value, synchronously. */
  holds(key: string): boolean {
    const held = this.entries.get(key);
    return held !== undefined && held.deadline > Date.now();
  }

  async setIfAbsent(key: string, value: string, ttlMs: number): Promise<string | undefined> {
    const held = this.entries.get(key);
    if (held && held.deadline > Date.now()) return held.value;
    this.store(key, value, ttlMs);
    return undefined;
  }

  async set(key: string, value: string, ttlMs: number): Promise<void> {
    this.store(key, value, ttlMs);
  }

  /** `set`, synchronously: for the history, whose check and append must be one step. */
  store(key: string, value: string, ttlMs: number): void {
    this.entries.set(key, { value, deadline: Date.now() + ttlMs });
    if (this.entries.size >= this.sweepAt) this.sweep();
  }

  async delete(key: string): Promise<void> {
    this.entries.delete(key);
  }

  private sweep(): void {
    const now = Date.now();
    for (const [key, { deadline }] of this.entries) if (deadline <= now) this.entries.delete(key);
    // The next sweep when the live keys have doubled: a sweep costs no more than the sets that led to it.
    this.sweepAt = Math.max(1024, this.entries.size * 2);
  }
}

/**
 * `text`, made one piece in memory. V8 builds a long string (what
 * `JSON.stringify` returns, a concatenation) as a tree of pieces and keeps
 * it so until something reads it whole, as converting it to a number does:
 * a 260-byte record then takes some 300 bytes instead of some 440, and one
 * is held here for every connection.
 */
function inOnePiece(text: string): string {
  Number(text);
  return text;
}

interface Entry extends Lease {
  indexes: readonly string[];
}

/**
 * Presence records in a `Map`, with leases checked against `Date.now()`, and
 * the ids of each index key: one id as it is, more in a `Set`. Most keys
 * (a user id, a session) list one subscription, and a set each would be
 * memory per connection.
 */
class MemoryPresence implements PresenceStore {
  private readonly entries = new Map<string, Entry>();
  private readonly indexes = new Map<string, string | Set<string>>();

  async put(id: string, record: string, indexes: readonly string[], ttlMs: number): Promise<void> {
    this.write(id, record, indexes, ttlMs);
  }

  async replace(id: string, expected: string, record: string, indexes: readonly string[], ttlMs: number): Promise<boolean> {
    if (this.live(id)?.record !== expected) return false;
    this.write(id, record, indexes, ttlMs);
    return true;
  }

  async get(id: string): Promise<string | undefined> {
    return this.live(id)?.record;
  }

  async getMany(ids: readonly string[]): Promise<Map<string, string>> {
    const found = new Map<string, string>();
    for (const id of ids) {
      const entry = this.live(id);
      if (entry) found.set(id, entry.record);
    }
    return found;
  }

  async touch(id: string, ttlMs: number): Promise<boolean> {
    const entry = this.live(id);
    if (!entry) return false;
    entry.expiresAt = Date.now() + ttlMs;
    return true;
  }

  async remove(id: string): Promise<string | undefined> {
    return this.delete(id)?.record;
  }

  async takeExpired(ids: readonly string[]): Promise<string[]> {
    const now = Date.now();
    const taken: string[] = [];
    for (const id of ids) {
      const entry = this.entries.get(id);
      if (entry && !isLive(entry, now)) taken.push(this.delete(id)!.record);
    }
    return taken;
  }

  async *members(index: string, batchSize: number): AsyncIterable<string[]> {
    const listed = this.indexes.get(index);
    const ids = listed === undefined ? [] : typeof listed === 'string' ? [listed] : [...listed];
    for (let i = 0; i < ids.length; i += batchSize) yield ids.slice(i, i + batchSize);
  }

  async unlist(index: string, ids: readonly string[]): Promise<void> {
    for (const id of ids) if (!this.entries.has(id)) this.unindex(index, id);
  }

  private write(id: string, record: string, indexes: readonly string[], ttlMs: number): void {
    const previous = this.entries.get(id);
    // Assigned, not spread: V8 gives each object made by a leading spread a hidden class of its own.
    this.entries.set(id, Object.assign(leaseOf(inOnePiece(record), ttlMs), { indexes: [...indexes] }));
    for (const index of previous?.indexes ?? []) if (!indexes.includes(index)) this.unindex(index, id);
    for (const index of indexes) this.index(index, id);
  }

  private index(index: string, id: string): void {
    const listed = this.indexes.get(index);
    if (listed === undefined || listed === id) this.indexes.set(index, id);
    else if (typeof listed === 'string') this.indexes.set(index, new Set([listed, id]));
    else listed.add(id);
  }

  private delete(id: string): Entry | undefined {
    const entry = this.entries.get(id);
    if (!entry) return undefined;
    this.entries.delete(id);
    for (const index of entry.indexes) this.unindex(index, id);
    return entry;
  }

  private unindex(index: string, id: string): void {
    const listed = this.indexes.get(index);
    if (listed === id) this.indexes.delete(index);
    else if (typeof listed === 'object' && listed.delete(id) && listed.size === 0) this.indexes.delete(index);
  }

  private live(id: string): Entry | undefined {
    const entry = this.entries.get(id);
    return entry && isLive(entry) ? entry : undefined;
  }
}

/**
 * The embedded broker: a cluster that lives inside one process. With no
 * arguments it has a hub of its own (a single server); pass a shared
 * `MemoryHub` to run several `ServerEvents` instances as one cluster.
 *
 * It keeps an event history (10,000 events, 5 minutes by default: set them
 * on the hub) for Last-Event-ID replay.
 */
export class MemoryBroker implements Broker {
  readonly name = 'memory';
  readonly hub: MemoryHub;
  private handler: Listener = () => {};
  private readonly listener: Listener = (topic, payload, id) => this.handler(topic, payload, id);
  private readonly subscribed = new Set<string>();

  /** `hub`: join an existing in-process cluster; otherwise a new hub with `history` retention. */
  constructor(options: { hub?: MemoryHub; history?: HistoryRetention } = {}) {
    this.hub = options.hub ?? new MemoryHub({ history: options.history });
  }

  get presence(): PresenceStore {
    return this.hub.presence;
  }

  get lists(): CappedLists {
    return this.hub.lists;
  }

  get keys(): ExpiringKeys {
    return this.hub.keys;
  }

  get history(): EventHistory {
    return this.hub.history;
  }

  async connect(): Promise<void> {}

  async publish(topic: string, payload: string): Promise<void> {
    this.hub.deliver(topic, payload);
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

  async ping(): Promise<void> {}

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
