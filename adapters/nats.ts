// nats.js v3 (`@nats-io/transport-node` with `@nats-io/kv`) is the line the
// NATS team maintains now: it supersedes the single `nats` package (v2),
// split into core, JetStream and KV modules under strict semver. Pinned to
// 3.3.x: from 3.4 its id generator declares Node 22, and this project runs on 20.
import { DeliverPolicy, jetstream, jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { Kvm, type KV, type KvWatchEntry } from '@nats-io/kv';
import { connect, type NatsConnection, type QueuedIterator, type Subscription } from '@nats-io/transport-node';
import { CoalescedCounter } from '../src/coalesced-counter.js';
import {
  withDefaults,
  type Broker,
  type BrokerStatus,
  type CappedLists,
  type EventHistory,
  type HistoryRead,
  type HistoryRetention,
  type PresenceStore,
} from '../src/broker.js';

export interface NatsBrokerOptions {
  /** `nats://host:port`, or several separated by commas. Default `nats://127.0.0.1:4222`. */
  url?: string;
  /**
   * Put before every subject and KV bucket name, so several apps can share
   * one NATS. Letters, digits, `-` and `_` only (a `.` ends it on subjects).
   * Default `se`.
   */
  prefix?: string;
  /**
   * How long the presence bucket keeps a record nobody renews, as a backstop
   * behind the leases; it must exceed the idle timeout. Default 1 hour.
   */
  presenceMaxAgeMs?: number;
  /** How much event history to keep for Last-Event-ID replay. Default 10,000 events, 5 minutes. */
  history?: HistoryRetention;
}

interface Lease {
  record: string;
  expiresAt: number;
}

/** How often a compare-and-set is retried when another server changed the key first. */
const casAttempts = 5;

/**
 * Presence in a JetStream key/value bucket. A record's value carries its
 * lease deadline; every change is a compare-and-set on the key's revision,
 * so exactly one server wins a removal. Each server follows the bucket with a
 * watch into a local mirror, so listing and sweeping read memory instead of
 * the bucket (the mirror trails the bucket by the time a message takes to
 * arrive). Deadlines use the app servers' clocks, which must agree within a
 * fraction of the idle timeout.
 */
class NatsPresence implements PresenceStore {
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
    await this.bucket().put(id, JSON.stringify({ record, expiresAt: Date.now() + ttlMs }));
  }

  async replace(id: string, expected: string, record: string, ttlMs: number): Promise<boolean> {
    const found = await this.read(id);
    if (!found || found.lease.expiresAt <= Date.now() || found.lease.record !== expected) return false;
    const next = JSON.stringify({ record, expiresAt: Date.now() + ttlMs });
    return compareAndSet(() => this.bucket().update(id, next, found.revision));
  }

  async get(id: string): Promise<string | undefined> {
    const found = await this.read(id);
    return found && found.lease.expiresAt > Date.now() ? found.lease.record : undefined;
  }

  async touch(id: string, ttlMs: number): Promise<boolean> {
    for (let attempt = 0; attempt < casAttempts; attempt++) {
      const found = await this.read(id);
      if (!found || found.lease.expiresAt <= Date.now()) return false;
      const renewed = JSON.stringify({ record: found.lease.record, expiresAt: Date.now() + ttlMs });
      if (await compareAndSet(() => this.bucket().update(id, renewed, found.revision))) return true;
    }
    return false;
  }

  async remove(id: string): Promise<string | undefined> {
    for (let attempt = 0; attempt < casAttempts; attempt++) {
      const found = await this.read(id);
      if (!found) return undefined;
      if (await compareAndSet(() => this.bucket().delete(id, { previousSeq: found.revision }))) return found.lease.record;
    }
    return undefined;
  }

  async list(): Promise<string[]> {
    const now = Date.now();
    return [...this.mirror.values()].filter((m) => m.lease.expiresAt > now).map((m) => m.lease.record);
  }

  async takeExpired(limit: number): Promise<string[]> {
    const now = Date.now();
    const expired = [...this.mirror].filter(([, m]) => m.lease.expiresAt <= now).slice(0, limit);
    const taken: string[] = [];
    for (const [id, { lease, revision }] of expired) {
      // A renewal since the mirror saw it changes the revision, and then the delete fails, as it should.
      if (await compareAndSet(() => this.bucket().delete(id, { previousSeq: revision }))) taken.push(lease.record);
    }
    return taken;
  }

  private async read(id: string): Promise<{ lease: Lease; revision: number } | undefined> {
    const entry = await this.bucket().get(id);
    if (!entry || entry.operation !== 'PUT') return undefined;
    return { lease: entry.json<Lease>(), revision: entry.revision };
  }
}

/**
 * Lists as JSON arrays in a key/value bucket, changed by compare-and-set.
 * A list must fit in one NATS message (1 MB by default).
 */
class NatsLists implements CappedLists {
  constructor(private readonly bucket: () => KV) {}

  async push(key: string, value: string, maxLength: number): Promise<void> {
    const name = safeKey(key);
    for (;;) {
      const entry = await this.bucket().get(name);
      const live = entry && entry.operation === 'PUT';
      const list = [...(live ? entry.json<string[]>() : []), value].slice(-maxLength);
      const write = entry
        ? () => this.bucket().update(name, JSON.stringify(list), entry.revision)
        : () => this.bucket().create(name, JSON.stringify(list));
      if (await compareAndSet(write)) return;
    }
  }

  async range(key: string): Promise<string[]> {
    const entry = await this.bucket().get(safeKey(key));
    return entry && entry.operation === 'PUT' ? entry.json<string[]>() : [];
  }

  async clear(key: string): Promise<void> {
    await this.bucket().delete(safeKey(key));
  }
}

/** Key/value keys allow few characters: other names are stored hex-encoded. */
function safeKey(name: string): string {
  return /^[A-Za-z0-9_-]+$/.test(name) ? name : `x${Buffer.from(name).toString('hex')}`;
}

/**
 * The event history as a JetStream stream on `{prefix}.h.>`. The stream
 * republishes every message it stored, in its order and with its sequence, on
 * `{prefix}.r.>`: live subscribers listen there, so they get exactly the
 * messages the history took, numbered as the history numbers them. An id is
 * the stream's creation time in microseconds plus the sequence, so a stream
 * created anew (storage lost) starts a new epoch above every earlier id.
 */
class NatsHistory implements EventHistory {
  private epoch = 0;

  constructor(
    private readonly connection: () => NatsConnection,
    private readonly prefix: string,
    private readonly retention: Required<HistoryRetention>,
  ) {}

  get stream(): string {
    return `${this.prefix}_history`;
  }

  /** Opens the stream, creating it when missing. */
  async open(jsm: JetStreamManager): Promise<void> {
    const config = {
      name: this.stream,
      subjects: [`${this.prefix}.h.>`],
      max_msgs: this.retention.maxLength,
      max_age: this.retention.maxAgeMs * 1_000_000,
      republish: { src: `${this.prefix}.h.>`, dest: `${this.prefix}.r.>` },
    };
    let info;
    try {
      info = await jsm.streams.info(this.stream);
    } catch {
      info = await jsm.streams.add(config);
    }
    const current = info.config;
    if (current.max_msgs !== config.max_msgs || current.max_age !== config.max_age || current.republish?.dest !== config.republish.dest) {
      // Retention changed, or a stream made elsewhere: live delivery depends on the republish.
      info = await jsm.streams.update(this.stream, config);
    }
    // Created times carry nanoseconds; Date understands milliseconds.
    this.epoch = new Date(info.created.replace(/(\.\d{3})\d*/, '$1')).getTime() * 1000;
  }

  /** The id of a republished message, from its stream sequence. */
  idOf(sequence: number): number {
    return this.epoch + sequence;
  }

  async publish(topic: string, payload: string): Promise<number> {
    // A stored message is acknowledged in milliseconds; past 2 s the caller learns it failed.
    const ack = await jetstream(this.connection(), { timeout: 2000 }).publish(`${this.prefix}.h.${topic}`, payload);
    return this.idOf(ack.seq);
  }

  async read(afterId: number, topics: ReadonlySet<string>): Promise<HistoryRead> {
    const { state } = await (await jetstreamManager(this.connection())).streams.info(this.stream);
    const after = afterId - this.epoch;
    if (after < 0 || after > state.last_seq) return { complete: false, entries: [] };
    if (after === state.last_seq) return { complete: true, entries: [] };
    if (after + 1 < state.first_seq) return { complete: false, entries: [] };
    const consumer = await jetstream(this.connection()).consumers.get(this.stream, {
      deliver_policy: DeliverPolicy.StartSequence,
      opt_start_seq: after + 1,
    });
    const entries = [];
    const subjectStart = `${this.prefix}.h.`.length;
    for (let next = after + 1; next <= state.last_seq; ) {
      const batch = await consumer.fetch({ max_messages: Math.min(state.last_seq - next + 1, 1000), expires: 5000 });
      let got = 0;
      for await (const message of batch) {
        got++;
        // Messages aged out or trimmed since the snapshot above: the consumer skips them, so check.
        if (message.seq !== next) return { complete: false, entries: [] };
        next = message.seq + 1;
        const topic = message.subject.slice(subjectStart);
        if (topics.has(topic)) entries.push({ id: this.idOf(message.seq), topic, payload: message.string() });
        if (message.seq >= state.last_seq) break;
      }
      if (got === 0) return { complete: false, entries: [] };
    }
    return { complete: true, entries };
  }

  async head(): Promise<number> {
    const { state } = await (await jetstreamManager(this.connection())).streams.info(this.stream);
    return this.idOf(state.last_seq);
  }
}

const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Runs a conditional write; `false` when another writer got there first. */
async function compareAndSet(write: () => Promise<unknown>): Promise<boolean> {
  try {
    await write();
    return true;
  } catch (error) {
    if (/wrong last sequence|key exists/i.test((error as Error).message)) return false;
    throw error;
  }
}

/**
 * The NATS broker: topics are core NATS subjects (`{prefix}.{topic}`; the
 * core percent-encodes names, so `.`, `*` and `>` in a channel name never
 * reach a subject), presence, lists and counters live in JetStream
 * key/value buckets, and the event history in a JetStream stream. It needs
 * a nats-server with JetStream. The client reconnects by itself and
 * subscribes again.
 */
export class NatsBroker implements Broker {
  readonly name = 'nats';
  readonly presence: NatsPresence;
  readonly lists: CappedLists;
  readonly history: NatsHistory;
  readonly url: string;
  private readonly prefix: string;
  private readonly presenceMaxAgeMs: number;
  private nc: NatsConnection | undefined;
  private presenceBucket: KV | undefined;
  private sequenceBucket: KV | undefined;
  private listBucket: KV | undefined;
  private readonly subscriptions = new Map<string, Subscription[]>();
  private readonly counter = new CoalescedCounter((name, amount) => this.addToSequence(name, amount));
  private connected = false;
  private handler: (topic: string, payload: string, id?: number) => void = () => {};
  private statusHandler: (status: BrokerStatus) => void = () => {};

  constructor(options: NatsBrokerOptions = {}) {
    this.url = options.url ?? 'nats://127.0.0.1:4222';
    this.prefix = options.prefix ?? 'se';
    if (!/^[A-Za-z0-9_-]+$/.test(this.prefix)) throw new Error(`NATS prefix '${this.prefix}' may contain only letters, digits, '-' and '_'`);
    this.presenceMaxAgeMs = options.presenceMaxAgeMs ?? 3_600_000;
    this.presence = new NatsPresence(() => this.required(this.presenceBucket));
    this.lists = new NatsLists(() => this.required(this.listBucket));
    this.history = new NatsHistory(() => this.required(this.nc), this.prefix, withDefaults(options.history));
  }

  async connect(): Promise<void> {
    try {
      this.nc = await connect({ servers: this.url.split(','), maxReconnectAttempts: -1, reconnectTimeWait: 250 });
    } catch (error) {
      throw new Error(`cannot reach NATS at ${this.url}: ${(error as Error).message}`);
    }
    try {
      await this.openBuckets();
    } catch (error) {
      await this.nc.close();
      throw new Error(`NATS at ${this.url} has no usable JetStream (start nats-server with -js): ${(error as Error).message}`);
    }
    this.connected = true;
    void this.watchStatus(this.nc);
  }

  async publish(topic: string, payload: string): Promise<void> {
    // nats.js would buffer it and send it late; the contract says a publish that cannot reach the server fails.
    if (!this.connected) throw new Error(`NATS at ${this.url} is unreachable: not published`);
    this.required(this.nc).publish(this.subject(topic), payload);
  }

  async subscribe(topics: readonly string[]): Promise<void> {
    const nc = this.required(this.nc);
    for (const topic of topics) {
      if (this.subscriptions.has(topic)) continue;
      // Controls arrive on the topic's own subject; events, as the history republishes them.
      const controls = nc.subscribe(this.subject(topic), {
        callback: (error, msg) => {
          if (!error) this.handler(topic, msg.string());
        },
      });
      const events = nc.subscribe(`${this.prefix}.r.${topic}`, {
        callback: (error, msg) => {
          const sequence = Number(msg.headers?.get('Nats-Sequence'));
          if (!error && sequence > 0) this.handler(topic, msg.string(), this.history.idOf(sequence));
        },
      });
      this.subscriptions.set(topic, [controls, events]);
    }
    // Once the server has answered a ping, it has every SUB sent before it.
    await nc.flush();
  }

  async unsubscribe(topics: readonly string[]): Promise<void> {
    for (const topic of topics) {
      for (const subscription of this.subscriptions.get(topic) ?? []) subscription.unsubscribe();
      this.subscriptions.delete(topic);
    }
  }

  onMessage(handler: (topic: string, payload: string, id?: number) => void): void {
    this.handler = handler;
  }

  onStatus(handler: (status: BrokerStatus) => void): void {
    this.statusHandler = handler;
  }

  nextSequence(name: string): Promise<number> {
    return this.counter.next(name);
  }

  /** Raises a counter by `amount` with compare-and-set, retrying when another server wrote first. */
  private async addToSequence(name: string, amount: number): Promise<number> {
    const bucket = this.required(this.sequenceBucket);
    const key = safeKey(name);
    for (;;) {
      const entry = await bucket.get(key);
      const next = (entry && entry.operation === 'PUT' ? Number(entry.string()) : 0) + amount;
      const write = entry ? () => bucket.update(key, String(next), entry.revision) : () => bucket.create(key, String(next));
      if (await compareAndSet(write)) return next;
    }
  }

  async close(): Promise<void> {
    const nc = this.nc;
    this.nc = undefined;
    this.subscriptions.clear();
    this.presence.stop();
    if (nc && !nc.isClosed()) await nc.close();
  }

  private async openBuckets(): Promise<void> {
    const kvm = new Kvm(this.required(this.nc));
    this.presenceBucket = await kvm.create(`${this.prefix}_presence`, { history: 1, ttl: this.presenceMaxAgeMs });
    this.sequenceBucket = await kvm.create(`${this.prefix}_sequences`, { history: 1 });
    this.listBucket = await kvm.create(`${this.prefix}_lists`, { history: 1 });
    await this.history.open(await jetstreamManager(this.required(this.nc)));
    await this.presence.follow();
  }

  private async watchStatus(nc: NatsConnection): Promise<void> {
    for await (const status of nc.status()) {
      if (status.type === 'disconnect') {
        this.connected = false;
        this.statusHandler({ connected: false, reason: `disconnected from ${status.server}` });
      } else if (status.type === 'reconnect') {
        // A restarted server without storage has lost the buckets: open (or create) them again.
        // A restarted server may have lost the buckets and the stream (and JetStream needs a moment
        // to start): open or create them before anything relies on them, the epoch above all.
        while (!nc.isClosed() && !(await this.openBuckets().then(() => true, () => false))) await delay(250);
        // The client subscribed again on reconnecting; once the server answers a ping it has them all.
        await nc.flush().catch(() => {});
        this.connected = true;
        this.statusHandler({ connected: true });
      }
    }
  }

  private subject(topic: string): string {
    return `${this.prefix}.${topic}`;
  }

  private required<T>(value: T | undefined): T {
    if (value === undefined) throw new Error('the NATS broker is not connected');
    return value;
  }
}
