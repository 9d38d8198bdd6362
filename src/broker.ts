/**
 * The contract between the server-events core and a message broker.
 *
 * A broker knows nothing about SSE, HTTP, channels or users: it moves opaque
 * string payloads between named topics and keeps a small amount of shared
 * state (presence leases and counters). Everything else — which topics a
 * server needs, reference counting of local interest, what a payload means —
 * lives in the core, so that an adapter stays a thin translation onto Redis,
 * NATS or an in-process hub.
 *
 * One `Broker` object is one server's connection. Several connections to the
 * same backend (several app servers, or several `MemoryBroker`s sharing one
 * `MemoryHub` in a test) form a cluster.
 *
 * Capabilities are separate objects: `presence` (required), `history`
 * (optional: a backend without it cannot replay, and clients are told so
 * with `cmd.onReset`) and `lists` (optional: only applications use them, such
 * as the Chat for its recent messages; the core never does).
 */
export interface Broker {
  /** Short name for logs and stats, e.g. `memory`, `redis`, `nats`. */
  readonly name: string;

  /** Shared subscription records with expiring leases. */
  readonly presence: PresenceStore;

  /** Short shared lists for applications (a chat's recent messages, say). The core does not use them. */
  readonly lists?: CappedLists;
  /** Short-lived shared keys, claimed once across the cluster: what the publish API's idempotency keys need. */
  readonly keys?: ExpiringKeys;

  /** The ordered event history behind Last-Event-ID replay, when the backend has one. */
  readonly history?: EventHistory;

  /**
   * Opens the connection. Rejects with an `Error` whose message is one line a
   * person can act on (e.g. "cannot reach Redis at 127.0.0.1:6379") when the
   * backend is unreachable. Called once by `ServerEvents.start()`.
   */
  connect(): Promise<void>;

  /**
   * Publishes `payload` on `topic` to every connection in the cluster that is
   * subscribed to it, including this one.
   *
   * Delivery is at most once: a connection that is not subscribed at the
   * moment of publishing, or that is disconnected from the backend, does not
   * receive the payload later. Payloads published by one connection on one
   * topic arrive at each subscriber in publishing order; there is no ordering
   * across topics or across publishers. Resolves once the backend has accepted
   * the payload; rejects if it could not be handed to the backend.
   */
  publish(topic: string, payload: string): Promise<void>;

  /**
   * Starts receiving payloads for `topics`. Idempotent per topic: the core
   * counts local interest and calls this only when a topic gains its first
   * local listener. Resolves once payloads published afterwards are certain to
   * be delivered. On a NATS cluster that holds for publishers on the same
   * node: another node learns of the interest a moment later (nats-server
   * passes it along its routes without being asked), so what it relays in
   * that moment is missed live. The core batches topics into one call where
   * it can.
   */
  subscribe(topics: readonly string[]): Promise<void>;

  /** Stops receiving payloads for `topics`. Idempotent per topic. */
  unsubscribe(topics: readonly string[]): Promise<void>;

  /**
   * Sets the one function that receives every payload for a subscribed topic,
   * with its history id when it was published through `history`. It is
   * called synchronously from the adapter's reader and must not block; it
   * never receives topics this connection is not subscribed to. `late` marks
   * an event the history took a while ago that live delivery may have
   * skipped (NATS: a stream that changed leader stores what its old leader
   * was sent without republishing it); the adapter hands it over once, and
   * only to a connection that has not had it.
   */
  onMessage(handler: (topic: string, payload: string, id?: number, late?: boolean) => void): void;

  /**
   * Sets the one function told when the connection to the backend is lost
   * (`connected: false`, with the reason) and when it is back
   * (`connected: true`). While it is lost the adapter keeps retrying; once it
   * is back, the adapter has subscribed to every topic again, and the core
   * writes its presence records again (the backend may have restarted empty).
   */
  onStatus(handler: (status: BrokerStatus) => void): void;

  /**
   * Resolves once the backend has answered a round trip on every connection
   * this broker holds, so that a stalled or cut-off backend (one that keeps
   * its TCP connections open but answers nothing) can be told from an idle
   * one. Optional: the core pings with a cheap presence read otherwise.
   */
  ping?(): Promise<void>;

  /**
   * True for an error that says the backend could not be reached or did not
   * answer (a client library's own timeout, a closed connection), as opposed
   * to a fault of the call itself. The core answers those with 503 and takes
   * the broker for away until a ping goes through. Optional: without it only
   * the core's own bound counts.
   */
  isUnavailable?(error: unknown): boolean;

  /**
   * Tells the adapter how long its caller waits for a call (the core's
   * `brokerTimeoutMs`), so that whatever it repeats by itself (as NATS does
   * while a replicated stream elects a leader) stops by then, and a publish
   * the caller was told failed is not carried out later by a repeat.
   * Optional.
   */
  limitCallsTo?(ms: number): void;

  /**
   * The bound on a call this backend needs by default, asked once it is
   * connected: a replicated NATS stream takes several seconds to elect a new
   * leader after losing a node, and calls must outlast that rather than fail.
   * An app's own `brokerTimeoutMs` wins. Optional: 3,000 ms without it.
   */
  preferredTimeoutMs?(): number | undefined;

  /**
   * Returns the next value of a cluster-wide counter named `name`, starting
   * at 1. Atomic across the cluster: no two calls get the same value.
   */
  nextSequence(name: string): Promise<number>;

  /**
   * Closes the connection. Subscriptions end; presence records written through
   * it stay until their leases expire (the core removes its own first).
   */
  close(): Promise<void>;
}

/** A change in a broker's connection to its backend. */
export interface BrokerStatus {
  connected: boolean;
  /** Why the connection was lost. */
  reason?: string;
}

/**
 * A shared map from id to an opaque record, where every record holds a lease
 * that expires unless it is renewed, and is listed under the index keys it
 * was written with. It lets any server in a cluster look up, validate, renew
 * or remove any subscription, and find the subscriptions of a channel, a
 * user or a session at a cost that grows with what it finds, not with the
 * cluster.
 *
 * An index key is an opaque name the core chooses (`ch:home`, `uid:42`);
 * the store only keeps, per index key, the set of ids written under it.
 * Index entries are kept beside the records, not in them, and are updated
 * after the record, so a reader may meet an id whose record is gone, expired
 * or has just been moved to other indexes: it checks the record, leaves out
 * what does not match, and may `unlist` ids that have no record.
 *
 * Leases are measured on the backend's clock where it has one. Every method
 * is atomic per record; nothing is atomic across records, so that each
 * record and each index can live on a shard of its own (Redis Cluster).
 */
export interface PresenceStore {
  /**
   * Inserts or replaces the record of `id`, with a lease of `ttlMs`, listed
   * under exactly `indexes` from now on (entries under indexes it no longer
   * names are removed).
   */
  put(id: string, record: string, indexes: readonly string[], ttlMs: number): Promise<void>;

  /**
   * Replaces the record of `id` with `record` (and its indexes with
   * `indexes`) and renews its lease, but only if the stored record is still
   * exactly `expected` and its lease running. Returns whether it did: a
   * compare-and-set, so that a change made from a stale read (a disconnect
   * racing an unregister, say) never brings back or overwrites a newer state.
   */
  replace(id: string, expected: string, record: string, indexes: readonly string[], ttlMs: number): Promise<boolean>;

  /** The record of `id`, or `undefined` when absent or its lease has run out. */
  get(id: string): Promise<string | undefined>;

  /** The records of those of `ids` that exist with a running lease, by id. At most a few hundred ids a call. */
  getMany(ids: readonly string[]): Promise<Map<string, string>>;

  /**
   * Renews the lease of `id` to `ttlMs` from now. Returns `false`, and renews
   * nothing, when the record is absent or its lease has already run out.
   */
  touch(id: string, ttlMs: number): Promise<boolean>;
  /**
   * `touch` for many records at once (`ttlMs[i]` for `ids[i]`), with the
   * same answer per record, in as few backend calls as it can: what a
   * server's batch of lease renewals needs. At most a few hundred ids a
   * call. Optional: without it, one `touch` per record.
   */
  touchMany?(ids: readonly string[], ttlMs: readonly number[]): Promise<boolean[]>;

  /**
   * Removes the record of `id` (and its index entries) and returns it. When
   * several servers race to remove the same record, exactly one of them
   * receives it; the others get `undefined`. That winner is the one that
   * announces the departure.
   */
  remove(id: string): Promise<string | undefined>;

  /**
   * Removes those of `ids` whose lease has run out, with their index
   * entries, and returns their records. Like `remove`, each expired record is
   * handed to exactly one caller across the cluster, so its departure is
   * announced once; a record whose lease runs is left alone.
   */
  takeExpired(ids: readonly string[]): Promise<string[]>;

  /**
   * The ids listed under `index`, in batches of at most `batchSize`, each id
   * once per batch (a store that reorganises itself meanwhile may repeat one
   * in a later batch). Ids whose record is gone may be among them. Empty for
   * an index nobody wrote.
   */
  members(index: string, batchSize: number): AsyncIterable<string[]>;

  /** Removes `ids` from `index`: entries a reader found without a live record. */
  unlist(index: string, ids: readonly string[]): Promise<void>;
}

/**
 * Short lists that keep only their newest entries, shared by every server of
 * a cluster: for state an application wants the same everywhere, such as a
 * chat's last hundred messages per channel. Not for large data: a list is
 * read whole.
 */
export interface CappedLists {
  /** Appends `value` to list `key` and drops all but its newest `maxLength` entries, atomically. */
  push(key: string, value: string, maxLength: number): Promise<void>;
  /** The entries of `key`, oldest first; empty when there is no such list. */
  range(key: string): Promise<string[]>;
  /** Removes list `key`. */
  clear(key: string): Promise<void>;
}

/**
 * Small values under keys that expire, shared by the cluster, with one
 * atomic claim: for remembering, across every server, that a request was
 * already taken (an idempotency key). Not for data that must last.
 */
export interface ExpiringKeys {
  /**
   * Sets `key` to `value` for `ttlMs`, unless it already holds an unexpired
   * value: then it changes nothing and returns that value. Atomic across the
   * cluster: of several racing callers, exactly one gets `undefined`.
   */
  setIfAbsent(key: string, value: string, ttlMs: number): Promise<string | undefined>;
  /** Sets `key` to `value` for `ttlMs`, whatever it held. */
  set(key: string, value: string, ttlMs: number): Promise<void>;
  /** Removes `key`. */
  delete(key: string): Promise<void>;
}

/** What makes a publish a repeat: see `EventHistory.publish`. */
export interface PublishOnce {
  /** Unique per publish the caller means (printable, at most a few hundred characters). */
  key: string;
  /** How long a key is remembered, from its first publish. At most an hour. */
  windowMs: number;
}

/** One event as the history keeps it. */
export interface HistoryEntry {
  id: number;
  topic: string;
  payload: string;
}

/**
 * What `EventHistory.read` found: facts about the history, not a verdict.
 * Whether a replay is complete or has a gap is decided once, by the core
 * (`src/replay.ts`), from `first` and `head`.
 */
export interface HistoryRead {
  /** The events after the requested id whose topic was asked for, oldest first. */
  entries: HistoryEntry[];
  /**
   * Where the kept events begin, as far as this read can tell: nothing
   * before `first` is kept (trimmed by length or age, lost when the backend
   * restarted empty, or trimmed while the read ran), and every kept event
   * from `afterId + 1` to `head` was looked at. A read that found
   * `afterId + 1` itself may report just that. `head + 1` when nothing after
   * `afterId` is kept.
   */
  first: number;
  /** The id of the newest event when the read began. */
  head: number;
}

/**
 * An ordered, bounded log of published events, shared by the cluster.
 *
 * Ids are integers that increase by one per event within an epoch. A backend
 * that lost its history starts a new epoch above every earlier id (from its
 * clock, in microseconds), so an id from before the loss is recognisably
 * older than everything kept and is never confused with a newer event.
 */
export interface EventHistory {
  /**
   * Appends `payload` under `topic` and publishes it, as one atomic step, so
   * the order of ids is the order in which every subscriber receives the
   * payloads. It is published on `topic`, or, when `deliverOn` is given, on
   * each of those topics instead (the inboxes of the servers that hold a
   * private audience; none at all for an empty list), while a `read` still
   * finds it under `topic`. An adapter that cannot publish on other topics
   * in the same atomic step (NATS) sends those copies once the history has
   * taken the event, marked late. Resolves with the id; rejects if the
   * backend did not take it.
   *
   * With `once`, an event under the same key taken within `once.windowMs`
   * before (by any server, also one whose caller was told it failed, as a
   * call that timed out may still be carried out) makes this one a repeat:
   * it is neither kept nor published, and the call resolves with
   * `undefined`. The check and the append are one atomic step where the
   * backend allows (memory, Redis); NATS drops a repeat within its
   * duplicate window (10 s) atomically, and within the rest of the window
   * by a key it writes once the event is taken.
   */
  publish(topic: string, payload: string, deliverOn?: readonly string[], once?: PublishOnce): Promise<number | undefined>;
  /**
   * The shortest a once-key is remembered whatever its window (NATS:
   * JetStream's duplicate window, 10 s); a longer window holds as asked.
   * Absent: exactly the window.
   */
  readonly onceAtLeastMs?: number;

  /**
   * The events after `afterId` whose topic is in `topics`, oldest first, with
   * the bounds of what is kept. Events older than the retention's `maxAgeMs`
   * count as gone, whether or not the backend has dropped them yet.
   */
  read(afterId: number, topics: ReadonlySet<string>): Promise<HistoryRead>;

  /** The id of the newest event, or 0 before the first. */
  head(): Promise<number>;
}

/** How much history a broker keeps. */
export interface HistoryRetention {
  /** Events kept at most. Default 10,000. */
  maxLength?: number;
  /** Events older than this are not replayed. Default 300,000 ms (5 minutes). */
  maxAgeMs?: number;
}

export const defaultRetention = { maxLength: 10_000, maxAgeMs: 300_000 };

/** `retention` with the defaults where it leaves a field unset. */
export function withDefaults(retention: HistoryRetention = {}): Required<HistoryRetention> {
  return { maxLength: retention.maxLength ?? defaultRetention.maxLength, maxAgeMs: retention.maxAgeMs ?? defaultRetention.maxAgeMs };
}

/** The first id of a new epoch: above every id of an earlier one. */
export function epochStart(): number {
  return Date.now() * 1000;
}
