import type { Broker, BrokerStatus, CappedLists, EventHistory, ExpiringKeys, PresenceStore } from './broker.js';

/**
 * Thrown for a broker operation that could not be done now: the broker did
 * not answer within the bound, or it is known to be away. HTTP answers 503
 * with `Retry-After`. After a timeout the outcome is unknown: a frozen
 * broker may still carry out what it was sent when it wakes up.
 */
export class BrokerUnavailableError extends Error {
  readonly status = 503;
  readonly expose = true;
}

/** What the guard tells its owner about the backend's health, beside the adapter's own connection events. */
export interface GuardEvents {
  /** A call or a ping did not finish within the bound: the broker is stalled or cut off. */
  stalled(reason: string): void;
  /** A ping went through again after a stall. */
  answering(): void;
}

/**
 * Wraps a broker so that every operation on it (and on its presence store,
 * history and lists) takes at most `timeoutMs`, and so that a stall is
 * noticed even while nothing waits on the broker: a ping (`Broker.ping`, or
 * a cheap read) goes out every half of the bound, with the same bound. Once
 * stalled, every call fails at once, so that requests answer 503 in no time
 * and nothing piles up for a frozen broker to carry out when it wakes, until
 * a ping goes through again. The adapters' own reconnect logic is left as it
 * is; this adds the bound their client libraries lack.
 */
export class GuardedBroker implements Broker {
  readonly name: string;
  readonly presence: PresenceStore;
  readonly history?: EventHistory;
  readonly lists?: CappedLists;
  readonly keys?: ExpiringKeys;
  private stalled = false;
  private pinging: NodeJS.Timeout | undefined;
  private events: GuardEvents = { stalled: () => {}, answering: () => {} };

  private timeoutMs: number;

  /**
   * @param chosenTimeoutMs the app's `brokerTimeoutMs`; when unset, what the
   *   broker asks for once connected (`Broker.preferredTimeoutMs`), else `defaultTimeoutMs`
   */
  constructor(
    readonly inner: Broker,
    private readonly chosenTimeoutMs: number | undefined,
    private readonly defaultTimeoutMs: number,
  ) {
    this.name = inner.name;
    // Settled again in connect(), once the broker can say what it needs; connecting runs under this one.
    this.timeoutMs = chosenTimeoutMs ?? defaultTimeoutMs;
    inner.limitCallsTo?.(this.timeoutMs);
    this.presence = guardedPresence(inner.presence, (what, call) => this.guard(what, call));
    const history = inner.history;
    if (history) {
      this.history = {
        publish: (topic, payload, deliverOn, once) => this.guard('history.publish', () => history.publish(topic, payload, deliverOn, once)),
        onceAtLeastMs: history.onceAtLeastMs,
        read: (afterId, topics) => this.guard('history.read', () => history.read(afterId, topics)),
        head: () => this.guard('history.head', () => history.head()),
      };
    }
    const lists = inner.lists;
    if (lists) {
      this.lists = {
        push: (key, value, maxLength) => this.guard('lists.push', () => lists.push(key, value, maxLength)),
        range: (key) => this.guard('lists.range', () => lists.range(key)),
        clear: (key) => this.guard('lists.clear', () => lists.clear(key)),
      };
    }
    const keys = inner.keys;
    if (keys) {
      this.keys = {
        setIfAbsent: (key, value, ttlMs) => this.guard('keys.setIfAbsent', () => keys.setIfAbsent(key, value, ttlMs)),
        set: (key, value, ttlMs) => this.guard('keys.set', () => keys.set(key, value, ttlMs)),
        delete: (key) => this.guard('keys.delete', () => keys.delete(key)),
      };
    }
  }

  /** The bound on every call, as settled once connected. */
  get callTimeoutMs(): number {
    return this.timeoutMs;
  }

  /** Who hears of stalls and of the broker answering again. */
  watch(events: GuardEvents): void {
    this.events = events;
  }

  /** True while calls fail at once because a call or ping timed out. */
  get isStalled(): boolean {
    return this.stalled;
  }

  async connect(): Promise<void> {
    // Connecting has its own timeouts in each adapter, and a one-line error of its own.
    await this.inner.connect();
    this.timeoutMs = this.chosenTimeoutMs ?? this.inner.preferredTimeoutMs?.() ?? this.defaultTimeoutMs;
    this.inner.limitCallsTo?.(this.timeoutMs);
    this.pinging = setInterval(() => void this.ping(), Math.max(100, Math.floor(this.timeoutMs / 2)));
    this.pinging.unref();
  }

  async close(): Promise<void> {
    clearInterval(this.pinging);
    await this.inner.close();
  }

  publish(topic: string, payload: string): Promise<void> {
    return this.guard('publish', () => this.inner.publish(topic, payload));
  }

  subscribe(topics: readonly string[]): Promise<void> {
    return this.guard('subscribe', () => this.inner.subscribe(topics));
  }

  unsubscribe(topics: readonly string[]): Promise<void> {
    return this.guard('unsubscribe', () => this.inner.unsubscribe(topics));
  }

  nextSequence(name: string): Promise<number> {
    return this.guard('nextSequence', () => this.inner.nextSequence(name));
  }

  onMessage(handler: (topic: string, payload: string, id?: number, late?: boolean) => void): void {
    this.inner.onMessage(handler);
  }

  onStatus(handler: (status: BrokerStatus) => void): void {
    this.inner.onStatus(handler);
  }

  isUnavailable(error: unknown): boolean {
    return error instanceof BrokerUnavailableError || this.inner.isUnavailable?.(error) === true;
  }

  /** One ping, bounded like any call; it is also what ends a stall. */
  async ping(): Promise<void> {
    try {
      await this.bounded('ping', () => (this.inner.ping ? this.inner.ping() : this.inner.presence.get('~ping').then(() => {})));
    } catch {
      return;
    }
    if (!this.stalled) return;
    this.stalled = false;
    this.events.answering();
  }

  /** A call that fails at once while stalled, and marks the broker stalled when it does not finish in time. */
  private async guard<T>(what: string, call: () => Promise<T>): Promise<T> {
    if (this.stalled) throw new BrokerUnavailableError(`the ${this.name} broker is not answering (${what} not attempted)`);
    return this.bounded(what, call);
  }

  private bounded<T>(what: string, call: () => Promise<T>): Promise<T> {
    const attempt = call();
    // One timer and one promise per call: this runs several times for every stream that opens.
    return new Promise<T>((resolve, reject) => {
      let settled = false;
      // Timers run before the socket reads of the same turn of the event loop: a server too busy to read
      // (thousands of clients reconnecting at once) would take an answer already waiting for a broker that
      // did not answer. So the verdict waits for the reads of the turn the timer fired in (`setImmediate`).
      const timer = setTimeout(
        () =>
          setImmediate(() => {
            if (settled) return;
            const reason = `${what} took longer than ${this.timeoutMs} ms`;
            this.markStalled(reason);
            reject(new BrokerUnavailableError(`the ${this.name} broker did not answer: ${reason}`));
          }),
        this.timeoutMs,
      );
      // What a frozen broker answers after the deadline is of no use any more, and is dropped (a settled promise ignores it).
      attempt.then(
        (value) => {
          settled = true;
          clearTimeout(timer);
          resolve(value);
        },
        (error: unknown) => {
          settled = true;
          clearTimeout(timer);
          // An adapter that says so itself: marked stalled as well, so that a ping's answer ends the outage it starts.
          if (error instanceof BrokerUnavailableError) {
            this.markStalled(`${what} failed: ${error.message}`);
            reject(error);
          } else if (this.inner.isUnavailable?.(error)) {
            // The client library gave up on its own (its time-out, a closed connection): the same as ours.
            const reason = `${what} failed: ${(error as Error).message}`;
            this.markStalled(reason);
            reject(new BrokerUnavailableError(`the ${this.name} broker did not answer: ${reason}`, { cause: error }));
          } else reject(error);
        },
      );
    });
  }

  private markStalled(reason: string): void {
    if (this.stalled) return;
    this.stalled = true;
    this.events.stalled(reason);
  }
}

type Guard = <T>(what: string, call: () => Promise<T>) => Promise<T>;

/** A presence store whose every call, and every step of a listing, is guarded. */
function guardedPresence(store: PresenceStore, guard: Guard): PresenceStore {
  return {
    put: (id, record, indexes, ttlMs) => guard('presence.put', () => store.put(id, record, indexes, ttlMs)),
    replace: (id, expected, record, indexes, ttlMs) => guard('presence.replace', () => store.replace(id, expected, record, indexes, ttlMs)),
    get: (id) => guard('presence.get', () => store.get(id)),
    getMany: (ids) => guard('presence.getMany', () => store.getMany(ids)),
    touch: (id, ttlMs) => guard('presence.touch', () => store.touch(id, ttlMs)),
    touchMany: store.touchMany && ((ids, ttlMs) => guard('presence.touchMany', () => store.touchMany!(ids, ttlMs))),
    remove: (id) => guard('presence.remove', () => store.remove(id)),
    takeExpired: (ids) => guard('presence.takeExpired', () => store.takeExpired(ids)),
    unlist: (index, ids) => guard('presence.unlist', () => store.unlist(index, ids)),
    async *members(index, batchSize) {
      let iterator: AsyncIterator<string[]> | undefined;
      try {
        for (;;) {
          const step = await guard('presence.members', () => (iterator ??= store.members(index, batchSize)[Symbol.asyncIterator]()).next());
          if (step.done) return;
          yield step.value;
        }
      } finally {
        await iterator?.return?.();
      }
    },
  };
}
