import { DeliverPolicy, jetstream, jetstreamManager, type JetStreamManager, type JsMsg, type StreamState } from '@nats-io/jetstream';
import { attemptHeader, storedAttempt, throughElections, type CallBudget } from './kv.js';
import { attemptOf, withAttempt, withoutAttempt } from './attempts.js';
import { headers, type NatsConnection } from '@nats-io/transport-node';
import type { EventHistory, HistoryEntry, HistoryRead, HistoryRetention, PublishOnce } from '../../src/broker.js';
import type { NatsKeys } from './keys.js';
import { AckLostError, uniqueId, type JetStreamPublisher, type PublishAck } from './publisher.js';

/** The least `maxLength` whose stream is trimmed in batches (see `NatsHistory.trim`). */
const trimsFrom = 64;

/** Marks a message republished by a publisher rather than by the stream (see `NatsHistory.publish`). */
export const lateHeader = 'Se-Late';

interface WaitingRead {
  afterId: number;
  topics: ReadonlySet<string>;
  resolve(read: HistoryRead): void;
  reject(error: unknown): void;
}

/** What one fetch found: the kept events after some id, of every topic, where the kept ones begin, and the head. */
interface FetchedRange {
  entries: HistoryEntry[];
  first: number;
  head: number;
}

/** One reader's answer from a shared fetch (which started at or before its id). */
function readOf(range: FetchedRange, afterId: number, topics: ReadonlySet<string>): HistoryRead {
  const { first, head } = range;
  if (afterId >= head || afterId + 1 < first) return { entries: [], first, head };
  return { entries: range.entries.filter((entry) => entry.id > afterId && topics.has(entry.topic)), first, head };
}

/** Publishes whose answer was lost with a connection, each looking for its attempt in the stream (see `NatsHistory.lookFor`). */
interface LookingFor {
  attempt: string;
  /** An id below any its attempt could have: of the stream's epoch then, so a stream made anew since is read whole. */
  after: number;
  resolve(sequence: number | undefined): void;
  reject(error: unknown): void;
}

function onceKey(once: PublishOnce): string {
  return `once:${once.key}`;
}

/**
 * The event history as a JetStream stream on `{prefix}.h.>`. The stream
 * republishes every message it stored, in its order and with its sequence, on
 * `{prefix}.r.>`: live subscribers listen there, so they get exactly the
 * messages the history took, numbered as the history numbers them. An id is
 * the stream's creation time in microseconds plus the sequence, so a stream
 * created anew (storage lost) starts a new epoch above every earlier id.
 */
export class NatsHistory implements EventHistory {
  private epoch = 0;
  /** Whether this server trims the stream in batches (see `trim`): on one node, and for a `maxLength` worth it. */
  private trims = false;
  /** The sequence the last trim was asked at, and whether one is under way (see `trim`). */
  private trimmedAt = 0;
  private trimming = false;
  /** Whether the stream has one copy, on a server outside any cluster: its publishes are marked, not given ids (see `publish`). */
  private oneNode = false;
  /** The highest sequence known stored (answered to this server, or the head when opened): a publish sent after is stored above it. */
  private lastStored = 0;
  private lookingFor: LookingFor[] | undefined;
  private waitingReads: WaitingRead[] | undefined;
  private fetching = false;
  private jsm: JetStreamManager | undefined;

  constructor(
    private readonly connection: () => NatsConnection,
    private readonly prefix: string,
    private readonly retention: Required<HistoryRetention>,
    private readonly budget: CallBudget,
    /** Where a once-key is remembered past JetStream's duplicate window. */
    private readonly keys: () => NatsKeys,
    private readonly publisher: JetStreamPublisher,
  ) {}

  /** JetStream drops a repeated message id for its whole duplicate window (see `open`). */
  get onceAtLeastMs(): number {
    return Math.min(10_000, this.retention.maxAgeMs);
  }

  get stream(): string {
    return `${this.prefix}_history`;
  }

  /** Opens the stream, creating it when missing, with `replicas` copies on a cluster. */
  async open(jsm: JetStreamManager, replicas: number): Promise<void> {
    const batched = replicas === 1 && this.retention.maxLength >= trimsFrom;
    const config = {
      name: this.stream,
      subjects: [`${this.prefix}.h.>`],
      // Batched, a backstop: what is past maxLength is purged in batches (see `trim`) and no longer read (see `fetchFor`).
      max_msgs: batched ? this.retention.maxLength * 2 : this.retention.maxLength,
      max_age: this.retention.maxAgeMs * 1_000_000,
      num_replicas: replicas,
      // Long enough to cover a publish's repeats (see publish), short so the server remembers few ids.
      duplicate_window: this.onceAtLeastMs * 1_000_000,
      republish: { src: `${this.prefix}.h.>`, dest: `${this.prefix}.r.>` },
    };
    let info;
    try {
      info = await jsm.streams.info(this.stream);
    } catch {
      info = await jsm.streams.add(config);
    }
    const current = info.config;
    const changed = current.max_msgs !== config.max_msgs || current.max_age !== config.max_age || current.duplicate_window !== config.duplicate_window;
    if (changed || current.republish?.dest !== config.republish.dest) {
      // Retention changed, or a stream made elsewhere: live delivery depends on the republish.
      info = await jsm.streams.update(this.stream, config);
    }
    this.oneNode = (info.config.num_replicas ?? 1) === 1;
    this.trims = batched && this.oneNode;
    // A stream made anew numbers from 1 again.
    this.trimmedAt = 0;
    this.lastStored = info.state.last_seq;
    // Created times carry nanoseconds; Date understands milliseconds.
    this.epoch = new Date(info.created.replace(/(\.\d{3})\d*/, '$1')).getTime() * 1000;
  }

  /** The id of a republished message, from its stream sequence. */
  idOf(sequence: number): number {
    return this.epoch + sequence;
  }

  async publish(topic: string, payload: string, deliverOn?: readonly string[], once?: PublishOnce): Promise<number | undefined> {
    // A repeat after JetStream's duplicate window: the key written once the first was taken.
    if (once && (await this.keys().holds(onceKey(once)))) return undefined;
    const subject = `${this.prefix}.h.${topic}`;
    const attempt = uniqueId();
    const marked = withAttempt(payload, attempt);
    const stored = marked ?? payload;
    let tries = 0;
    const ack =
      marked && !once && this.oneNode && this.connection().info?.cluster === undefined
        ? await this.publishMarked(subject, marked, attempt)
        : await throughElections(this.budget, (timeout) => {
            tries++;
            return this.publisher.publish(subject, stored, { msgID: once ? onceKey(once) : attempt, timeoutMs: timeout, headers: once && { [attemptHeader]: attempt } });
          });
    if (ack.seq > this.lastStored) this.lastStored = ack.seq;
    // The stream republishes on the topic's own subject; copies for other topics follow the ack, late.
    if (deliverOn) for (const target of deliverOn) this.republishLate(target, payload, ack.seq);
    // A duplicate means an earlier attempt was stored: perhaps by a leader that died before it
    // republished it, and a new leader stores what it inherits without republishing.
    else if (ack.duplicate) this.republishLate(topic, payload, ack.seq);
    this.trim(ack.seq);
    if (once) {
      if (ack.duplicate && !(tries > 1 && (await storedAttempt(await this.manager(), this.stream, ack.seq, this.budget)) === attempt)) return undefined;
      // Remembered for the rest of the window; should this write fail, JetStream's window alone holds.
      await this.keys().set(onceKey(once), '1', once.windowMs).catch(() => {});
    }
    return this.idOf(ack.seq);
  }

  /*
   * How a publish is made safe to repeat. On a replicated stream, or with
   * `once`, it carries a message id, tried again while the stream elects a
   * leader or after a time-out: the id makes a repeat of an attempt that was
   * stored after all (by a leader that died before it answered, or before a
   * connection dropped with its answer) a duplicate, answered with the
   * first's sequence. With `once` the id is the key's, so JetStream itself
   * drops a repeat from anyone within its window, and the attempt header
   * tells this call's own earlier tries from another publisher's event.
   *
   * On one node, the id and its header were 40% of what nats-server spent
   * per message (20 µs against 14, measured apart), so a publish goes once,
   * marked in its payload with its attempt (see `withAttempt`), and waits
   * for its answer for the whole budget: on a live connection it is answered
   * however late, so a time-out is a failure, never a repeat. It is sent
   * again only when it is known not to be stored: the stream refused it
   * while starting, or its connection was lost and the stream holds no
   * message with its attempt (see `settleLost`). One found is answered with
   * its sequence.
   */
  private async publishMarked(subject: string, marked: string, attempt: string): Promise<PublishAck> {
    const startedAt = Date.now();
    for (let i = 0; ; i++) {
      const after = this.idOf(this.lastStored);
      try {
        return await this.publisher.publish(subject, marked, { timeoutMs: Math.max(1, startedAt + this.budget.ms - Date.now()), stream: this.stream });
      } catch (error) {
        let pause = 0;
        if (error instanceof AckLostError) {
          const sequence = await this.lookFor(attempt, after);
          if (sequence !== undefined) return { seq: sequence, duplicate: true };
        } else if ((error as Error).name === 'JetStreamNotEnabled') {
          // Nobody took it: JetStream is starting on a restarted node.
          pause = Math.min(50 * 2 ** i, 400);
        } else throw error;
        if (Date.now() + pause >= startedAt + this.budget.ms) throw error;
        if (pause > 0) await new Promise((resolve) => setTimeout(resolve, pause));
      }
    }
  }

  /**
   * After a reconnect (one node): the publishes lost with the old
   * connection find out whether the stream stored them (see `publishMarked`).
   */
  async settleLost(): Promise<void> {
    if (!this.oneNode) return;
    await this.publisher.settleLost(this.stream, `${this.prefix}.h._barrier`, this.budget.ms);
  }

  /**
   * The sequence at which the stream holds `attempt`, stored above `after`,
   * or undefined if it holds none. Those that look in the same turn (every
   * publish of a lost connection) share one read, from the lowest `after`.
   * Fails when part of where it could be is gone already (trimmed or aged
   * out since): the publish is then reported failed, since it may be stored.
   */
  private lookFor(attempt: string, after: number): Promise<number | undefined> {
    return new Promise((resolve, reject) => {
      if (!this.lookingFor) {
        this.lookingFor = [];
        setImmediate(() => void this.findLookedFor());
      }
      this.lookingFor.push({ attempt, after, resolve, reject });
    });
  }

  private async findLookedFor(): Promise<void> {
    const looking = this.lookingFor ?? [];
    this.lookingFor = undefined;
    try {
      const state = await this.state();
      // An id of an earlier epoch: the stream was made anew since, and all of it is newer.
      const sequenceOf = (after: number) => (after >= this.epoch ? after - this.epoch : 0);
      const from = Math.min(...looking.map((l) => sequenceOf(l.after))) + 1;
      const found = new Map<string, number>();
      // Where the read began: what was below it (trimmed or aged out) cannot be looked at.
      let readFrom: number | undefined;
      if (from <= state.last_seq) {
        for await (const message of this.messages(from, state.last_seq)) {
          readFrom ??= message.seq;
          const marked = attemptOf(message.string());
          if (marked !== undefined) found.set(marked, message.seq);
        }
      }
      readFrom ??= Math.max(from, state.first_seq);
      for (const l of looking) {
        const sequence = found.get(l.attempt);
        if (sequence !== undefined) l.resolve(sequence);
        else if (readFrom > sequenceOf(l.after) + 1) l.reject(new AckLostError());
        else l.resolve(undefined);
      }
    } catch (error) {
      for (const l of looking) l.reject(error);
    }
  }

  /**
   * Drops the events past `maxLength`, half of it at a time: one purge per
   * `maxLength / 2` events instead of JetStream dropping the oldest at each
   * publish once the stream is full, which was a fifth of what it spent per
   * message (2.6 µs of 12). Until then the stream holds up to half as many
   * again, which no read returns (see `fetchFor`); JetStream's own limit, at
   * twice `maxLength`, holds should trims fail. Every server trims as the
   * sequences its publishes get pass the mark, so one that publishes little
   * trims little. Only on one node: a replicated stream keeps JetStream's
   * own limit, since nats-server before 2.10 could replay a purge wrongly on
   * a node that recovers (nats-server issue 4196), leaving the replicas
   * apart. And only from `trimsFrom` events: a purge per one or two
   * publishes would cost more than it saves.
   */
  private trim(sequence: number): void {
    if (!this.trims || this.trimming || sequence - this.trimmedAt < this.retention.maxLength / 2) return;
    this.trimming = true;
    this.trimmedAt = sequence;
    void this.manager()
      .then((jsm) => jsm.streams.purge(this.stream, { keep: this.retention.maxLength }))
      // Left to the next mark, or to JetStream's limit: a trim is only ever late.
      .catch(() => {})
      .finally(() => {
        this.trimming = false;
      });
  }

  /** Sends a stored message to the live subscribers of `topic` as late: each server takes it unless it had it. */
  private republishLate(topic: string, payload: string, sequence: number): void {
    const marks = headers();
    marks.set('Nats-Sequence', String(sequence));
    marks.set(lateHeader, '1');
    this.connection().publish(`${this.prefix}.r.${topic}`, payload, { headers: marks });
  }

  /**
   * Reads that come while one is being fetched wait for it, and then share
   * the next fetch, which starts at the oldest id they ask for: a storm of
   * resumes (every client of a dead server at once) costs JetStream one
   * consumer per moment rather than one per client. A read that comes alone
   * is fetched at once.
   */
  read(afterId: number, topics: ReadonlySet<string>): Promise<HistoryRead> {
    return new Promise((resolve, reject) => {
      (this.waitingReads ??= []).push({ afterId, topics, resolve, reject });
      if (!this.fetching) void this.readWaiting();
    });
  }

  private async readWaiting(): Promise<void> {
    this.fetching = true;
    try {
      while (this.waitingReads?.length) {
        const readers = this.waitingReads;
        this.waitingReads = undefined;
        try {
          const range = await this.fetchFor(readers.map((r) => r.afterId));
          for (const reader of readers) reader.resolve(readOf(range, reader.afterId, reader.topics));
        } catch (error) {
          for (const reader of readers) reader.reject(error);
        }
      }
    } finally {
      this.fetching = false;
    }
  }

  /**
   * Every kept event, of every topic, after the oldest of `afterIds` that
   * has something to read (not up to date, not past what is kept), with
   * where the kept ones begin and the head.
   */
  private async fetchFor(afterIds: number[]): Promise<FetchedRange> {
    const state = await this.state();
    const head = this.idOf(state.last_seq);
    // max_age makes JetStream drop old events itself; what is past maxLength may wait for a trim, and is not read.
    const first = state.messages > 0 ? this.idOf(Math.max(state.first_seq, state.last_seq - this.retention.maxLength + 1)) : head + 1;
    const reading = afterIds.filter((id) => id < head && id + 1 >= first);
    if (reading.length === 0) return { entries: [], first, head };
    const after = Math.min(...reading) - this.epoch;
    let entries: HistoryEntry[] = [];
    let kept = first;
    let next = after + 1;
    const subjectStart = `${this.prefix}.h.`.length;
    for await (const message of this.messages(after + 1, state.last_seq)) {
      // Aged out or trimmed since the snapshot above: the consumer skips them, and what it skipped is gone.
      if (message.seq !== next) {
        kept = this.idOf(message.seq);
        entries = [];
      }
      next = message.seq + 1;
      entries.push({ id: this.idOf(message.seq), topic: message.subject.slice(subjectStart), payload: withoutAttempt(message.string()) });
    }
    // Ended early: everything from `next` is gone since the snapshot.
    if (next <= state.last_seq) return { entries: [], first: this.idOf((await this.state()).first_seq), head };
    return { entries, first: kept, head };
  }

  /**
   * The stored messages from sequence `from` to `last`, in order, skipping
   * what is gone; the iteration ends early should everything left be gone.
   */
  private async *messages(from: number, last: number): AsyncGenerator<JsMsg> {
    const consumer = await throughElections(this.budget, () =>
      jetstream(this.connection()).consumers.get(this.stream, { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: from }),
    );
    for (let next = from; next <= last; ) {
      const batch = await consumer.fetch({ max_messages: Math.min(last - next + 1, 1000), expires: 5000 });
      let got = 0;
      for await (const message of batch) {
        got++;
        next = message.seq + 1;
        yield message;
        if (message.seq >= last) break;
      }
      if (got === 0) {
        // Nothing came: gone since it was asked for, or a stream without a leader for the moment.
        if ((await this.state()).first_seq > next) return;
        throw new Error(`NATS: the history stream sent nothing from ${next} although it holds it`);
      }
    }
  }

  async head(): Promise<number> {
    return this.idOf((await this.state()).last_seq);
  }

  private async state(): Promise<StreamState> {
    const jsm = await this.manager();
    return (await throughElections(this.budget, () => jsm.streams.info(this.stream))).state;
  }

  /** Made once: making one asks the server whether JetStream is there, a round trip per call. */
  private async manager(): Promise<JetStreamManager> {
    this.jsm ??= await jetstreamManager(this.connection(), { checkAPI: false });
    return this.jsm;
  }
}

