// nats.js v3 (`@nats-io/transport-node` with `@nats-io/kv`) is the line the
// NATS team maintains now: it supersedes the single `nats` package (v2),
// split into core, JetStream and KV modules under strict semver. Pinned to
// 3.3.x: from 3.4 its id generator declares Node 22, and this project runs on 20.
import { jetstream, jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { connect, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import { withDefaults, type Broker, type BrokerStatus, type CappedLists } from '../../src/broker.js';
import { CoalescedCounter } from './coalesced-counter.js';
import { lateHeader, NatsHistory } from './history.js';
import { withoutAttempt } from './attempts.js';
import { RecentSet } from '../../src/recent-set.js';
import { Bucket } from './bucket.js';
import { CallBudget, safeKey, throughElections, untilWritten, whilePlacing } from './kv.js';
import { NatsKeys } from './keys.js';
import { NatsLists } from './lists.js';
import { NatsPresence } from './presence.js';
import { JetStreamPublisher } from './publisher.js';

/**
 * How long a bucket remembers the message ids of conditional writes (see
 * `Bucket`): far longer than a write takes to be agreed on, and far shorter
 * than JetStream's default of two minutes, so the server keeps few of them.
 */
const bucketIdWindowMs = 30_000;

/** How long the bucket of expiring keys keeps one: the longest a key may be asked to live. */
const keysMaxAgeMs = 3_600_000;

/** Sets how long a stream remembers message ids, when it is not that already. */
async function keepIdsFor(jsm: JetStreamManager, stream: string, windowMs: number): Promise<void> {
  const { config } = await jsm.streams.info(stream);
  const window = windowMs * 1_000_000;
  if (config.duplicate_window !== window) await jsm.streams.update(stream, { duplicate_window: window });
}

const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

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
  history?: import('../../src/broker.js').HistoryRetention;
  /**
   * How many nodes keep a copy of the history stream and of each key/value
   * bucket, so that losing a node loses nothing. Default: 3 on a cluster of
   * three or more nodes (as many as there are on a smaller one), 1 on a
   * single server. Set when the stream and buckets are first made.
   */
  replicas?: number;
}

/** The bound on a call on a NATS cluster: longer than Raft's longest election (9 s on nats-server). */
const electionBoundMs = 12_000;

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
  readonly keys: NatsKeys;
  readonly history: NatsHistory;
  readonly url: string;
  private readonly prefix: string;
  private readonly presenceMaxAgeMs: number;
  private readonly replicas: number | undefined;
  /** How many copies the streams and buckets keep, once connected. */
  private copies = 1;
  private readonly budget = new CallBudget();
  /** Every JetStream write (history events, key/value writes) goes out through it. */
  private readonly publisher = new JetStreamPublisher(() => this.required(this.nc));
  private nc: NatsConnection | undefined;
  private presenceBucket: Bucket | undefined;
  private rosterBucket: Bucket | undefined;
  private sequenceBucket: Bucket | undefined;
  private listBucket: Bucket | undefined;
  /** Made on first use: only apps that use idempotency keys pay for its stream. */
  private keyBucket: Promise<Bucket> | undefined;
  private bucketMaker: ((name: string, ttl?: number) => Promise<Bucket>) | undefined;
  private jsm: JetStreamManager | undefined;
  private readonly subscriptions = new Map<string, Subscription[]>();
  /** The stream sequences this connection received lately, to tell a late copy from a missed event. */
  private readonly received = new RecentSet(16_384);
  private readonly counter = new CoalescedCounter((name, amount) => this.addToSequence(name, amount));
  private connected = false;
  private handler: (topic: string, payload: string, id?: number, late?: boolean) => void = () => {};
  private statusHandler: (status: BrokerStatus) => void = () => {};

  constructor(options: NatsBrokerOptions = {}) {
    this.url = options.url ?? 'nats://127.0.0.1:4222';
    this.prefix = options.prefix ?? 'se';
    if (!/^[A-Za-z0-9_-]+$/.test(this.prefix)) throw new Error(`NATS prefix '${this.prefix}' may contain only letters, digits, '-' and '_'`);
    this.presenceMaxAgeMs = options.presenceMaxAgeMs ?? 3_600_000;
    if (options.replicas !== undefined && !(Number.isInteger(options.replicas) && options.replicas >= 1 && options.replicas <= 5)) {
      throw new Error(`NATS replicas must be a whole number from 1 to 5, not ${options.replicas}`);
    }
    this.replicas = options.replicas;
    this.presence = new NatsPresence(
      () => this.required(this.presenceBucket),
      () => this.required(this.rosterBucket),
    );
    this.lists = new NatsLists(() => this.required(this.listBucket));
    this.keys = new NatsKeys(() => this.openKeyBucket(), keysMaxAgeMs);
    this.history = new NatsHistory(() => this.required(this.nc), this.prefix, withDefaults(options.history), this.budget, () => this.keys, this.publisher);
  }

  async connect(): Promise<void> {
    try {
      // No stack captured for every request's possible error: on a registration's few requests it took a fifth of the server's time.
      this.nc = await connect({ servers: this.url.split(','), maxReconnectAttempts: -1, reconnectTimeWait: 250, noAsyncTraces: true });
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

  limitCallsTo(ms: number): void {
    this.budget.ms = ms;
  }

  /**
   * Replicated streams lose their leader with a node, and nats-server's Raft
   * takes 4 to 9 s to elect another (measured here: 4.2 to 7.6 s on 2.9),
   * during which JetStream takes nothing: calls wait through that.
   */
  preferredTimeoutMs(): number | undefined {
    return this.copies > 1 ? electionBoundMs : undefined;
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
          if (error || !(sequence > 0)) return;
          const late = msg.headers?.has(lateHeader) === true;
          // A late copy of what the stream did republish is dropped here, once per server.
          if (!this.received.add(sequence) && late) return;
          this.handler(topic, withoutAttempt(msg.string()), this.history.idOf(sequence), late);
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

  onMessage(handler: (topic: string, payload: string, id?: number, late?: boolean) => void): void {
    this.handler = handler;
  }

  onStatus(handler: (status: BrokerStatus) => void): void {
    this.statusHandler = handler;
  }

  /** nats.js gave up (its time-out, a closed or lost connection, JetStream not answering): NATS is away, not the call at fault. */
  isUnavailable(error: unknown): boolean {
    const { name, message } = error as Error;
    return (
      ['TimeoutError', 'ClosedConnectionError', 'ConnectionError', 'DrainingConnectionError', 'NoResponders', 'RequestError'].includes(name) ||
      /timeout|timed out|unreachable|not connected|disconnect/i.test(message ?? '')
    );
  }

  /** A round trip to the server (and one to JetStream, which can stall on its own). */
  async ping(): Promise<void> {
    const nc = this.required(this.nc);
    await nc.flush();
    // The meta leader answers this one; while it is being elected, the call waits for the new one.
    const jsm = this.required(this.jsm);
    await throughElections(this.budget, () => jsm.getAccountInfo());
  }

  nextSequence(name: string): Promise<number> {
    return this.counter.next(name);
  }

  /** Raises a counter by `amount` with compare-and-set, retrying (for a bounded time) when another server wrote first. */
  private addToSequence(name: string, amount: number): Promise<number> {
    const bucket = this.required(this.sequenceBucket);
    const key = safeKey(name);
    return untilWritten(`raising counter ${name}`, async () => {
      const { entry, revision } = await bucket.read(key);
      const next = (entry ? Number(entry.string()) : 0) + amount;
      const written = await bucket.writeIf(key, String(next), revision);
      return written === true ? next : written;
    });
  }

  async close(): Promise<void> {
    const nc = this.nc;
    this.nc = undefined;
    this.subscriptions.clear();
    if (nc && !nc.isClosed()) await nc.close();
  }

  private openKeyBucket(): Promise<Bucket> {
    const make = this.required(this.bucketMaker);
    const opening = (this.keyBucket ??= make(`${this.prefix}_keys`, keysMaxAgeMs));
    // A failed attempt is not kept: the next call tries again.
    opening.catch(() => {
      if (this.keyBucket === opening) this.keyBucket = undefined;
    });
    return opening;
  }

  private async openBuckets(): Promise<void> {
    const nc = this.required(this.nc);
    // Each attempt gets a second; the buckets repeat what a leaderless moment let time out.
    const kvm = new Kvm(jetstream(nc, { timeout: 1000 }));
    const replicas = this.replicas ?? Math.min(3, Math.max(1, nc.info?.connect_urls?.length ?? 1));
    this.copies = replicas;
    // A replicated bucket answers reads from its leader: a follower's direct answer may miss
    // what another server has just written, and presence and counters read their own writes.
    const jsm = await jetstreamManager(nc);
    this.jsm = jsm;
    const bucket = async (name: string, ttl?: number) => {
      const kv = await whilePlacing(`bucket ${name}`, () => kvm.create(name, { history: 1, ttl, replicas, allow_direct: replicas === 1 }));
      await whilePlacing(`bucket ${name}`, () => keepIdsFor(jsm, `KV_${name}`, Math.min(bucketIdWindowMs, ttl ?? Infinity)));
      return new Bucket(kv, nc, name, this.budget, this.publisher);
    };
    this.presenceBucket = await bucket(`${this.prefix}_presence`, this.presenceMaxAgeMs);
    // No age limit: a roster is rewritten only when its members change, and a quiet channel's must stay.
    this.rosterBucket = await bucket(`${this.prefix}_rosters`);
    this.sequenceBucket = await bucket(`${this.prefix}_sequences`);
    this.listBucket = await bucket(`${this.prefix}_lists`);
    this.bucketMaker = bucket;
    // Opened again on first use after a reconnect: the server may have restarted without it.
    this.keyBucket = undefined;
    await whilePlacing('the history stream', () => this.history.open(jsm, replicas));
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
        // What the old connection took with it, answered or not, is found out now rather than at its time-out.
        void this.history.settleLost().catch(() => {});
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
