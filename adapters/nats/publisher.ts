import { JetStreamApiError } from '@nats-io/jetstream';
import { randomBytes } from 'node:crypto';
import { createInbox, errors, type Msg, type MsgHdrs, type NatsConnection, type Subscription } from '@nats-io/transport-node';

/** What JetStream answers a stored publish: its sequence, and whether it was a repeat of a message id it had. */
export interface PublishAck {
  seq: number;
  duplicate: boolean;
}

export interface PublishOptions {
  /** JetStream's `Nats-Msg-Id`: a repeat within the stream's duplicate window is answered with the first's sequence. */
  msgID?: string;
  timeoutMs: number;
  /** More headers, by name (`Nats-Expected-Last-Subject-Sequence`, say). */
  headers?: Record<string, string>;
  /** The stream the subject is stored in, for `settleLost`: a publish without one is left to its time-out. */
  stream?: string;
}

/**
 * A publish sent on a connection that was lost before JetStream answered
 * it: it may have been stored, or not. Only `settleLost` says so.
 */
export class AckLostError extends Error {
  override name = 'AckLostError';
  constructor() {
    super('NATS: the connection was lost before JetStream answered the publish; it may have been stored');
  }
}

/** JetStream's error code for a publish whose `Nats-Expected-Stream` is not the stream's name. */
const notThisStream = 10060;

/**
 * Ids unique to this process and to each call: a random prefix (72 bits)
 * and a counter, for message ids and write attempts. A third of a UUID's
 * length, and made without drawing random bytes each time.
 */
const ids = { prefix: randomBytes(9).toString('base64url'), count: 0 };

export function uniqueId(): string {
  return ids.prefix + (ids.count++).toString(36);
}

/**
 * A message's headers, encoded once: all `publish` asks of its `headers`
 * option is `encode()`. nats.js's own header object keeps each name in a
 * map of arrays and checks every name it is given against all the others,
 * which made up an eighth of what registering a stream allocated (three
 * headers per key/value write). The block is the NATS header format:
 * `NATS/1.0`, then a `Name: value` line each (the message id last, as
 * `Nats-Msg-Id`), then a blank line; no block when there is nothing to send.
 */
function headerBlock(fields: Record<string, string> | undefined, msgID: string | undefined): MsgHdrs | undefined {
  if (fields === undefined && msgID === undefined) return undefined;
  let text = 'NATS/1.0\r\n';
  for (const name in fields) text += headerLine(name, fields[name]!);
  if (msgID !== undefined) text += headerLine('Nats-Msg-Id', msgID);
  const encoded = utf8.encode(`${text}\r\n`);
  return { encode: () => encoded } as unknown as MsgHdrs;
}

const utf8 = new TextEncoder();
const notInName = /[\r\n:]/;
const notInValue = /[\r\n]/;

function headerLine(name: string, value: string): string {
  if (notInName.test(name) || notInValue.test(value)) throw new Error(`a NATS header cannot hold a line break (${JSON.stringify(name)})`);
  return `${name}: ${value}\r\n`;
}

interface Pending {
  resolve(ack: PublishAck): void;
  reject(error: Error): void;
  deadline: number;
  stream: string | undefined;
  /** Whether it holds a place in the window (a `settleLost` barrier does not). */
  inWindow: boolean;
}

/** How often the acknowledgements overdue are looked for: a time-out is noticed this much late at most. */
const sweepMs = 50;

/**
 * JetStream publishes, many in flight at once, at the cost of a plain NATS
 * publish each. nats.js's `js.publish` is a request: a promise, a timer,
 * headers, an error and a reply route of its own per message, which was
 * half of what a published event cost the server (29 µs of CPU per event
 * in the bench's publish ceiling; 12 µs this way). Here every publish
 * carries a reply subject under one inbox, subscribed once; its
 * acknowledgement is matched by the subject's last token, and one timer
 * finds those overdue.
 *
 * At most `window` publishes wait for their acknowledgement; the next ones
 * wait for room, so a burst cannot queue without bound in the client.
 * Publishes from one connection reach the stream in the order they were
 * made, as before; each call still resolves only once JetStream has stored
 * its message. Errors are those of `js.publish`: a timeout, "jetstream is
 * not enabled" when no stream leader answers, and JetStream's own API errors.
 */
export class JetStreamPublisher {
  private readonly pending = new Map<number, Pending>();
  private readonly waiting: Array<() => void> = [];
  /** How many of the pending publishes hold a place in the window. */
  private inWindow = 0;
  private inbox: { connection: NatsConnection; prefix: string; subscription: Subscription } | undefined;
  private nextToken = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly connection: () => NatsConnection,
    private readonly window = 1024,
  ) {}

  async publish(subject: string, payload: string, options: PublishOptions): Promise<PublishAck> {
    // Built before it waits for a place: a block refused here must not take one it would never give back.
    const marks = headerBlock(options.headers, options.msgID);
    // In turn: one that comes while others wait goes behind them, so publishes go out in the order they were made.
    if (this.inWindow < this.window && this.waiting.length === 0) this.inWindow++;
    // Woken with the place of one answered, handed to it.
    else await new Promise<void>((resolve) => this.waiting.push(resolve));
    return this.send(subject, payload, marks, options, true);
  }

  /** Sends one publish and waits for its answer; `inWindow`, it holds one of the window's places, taken already. */
  private send(subject: string, payload: string, marks: MsgHdrs | undefined, options: PublishOptions, inWindow: boolean): Promise<PublishAck> {
    let connection: NatsConnection;
    let inbox: string;
    try {
      connection = this.connection();
      inbox = this.inboxOn(connection);
    } catch (error) {
      // A place it will not use: the next one waiting may.
      if (inWindow) this.passPlace();
      return Promise.reject(error as Error);
    }
    const token = this.nextToken++;
    return new Promise<PublishAck>((resolve, reject) => {
      this.pending.set(token, { resolve, reject, deadline: performance.now() + options.timeoutMs, stream: options.stream, inWindow });
      this.timer ??= setInterval(() => this.sweep(), sweepMs).unref();
      try {
        connection.publish(subject, payload, { reply: `${inbox}.${token}`, headers: marks });
      } catch (error) {
        this.settle(token)?.reject(error as Error);
      }
    });
  }

  /**
   * After a reconnect: which publishes to `stream` were lost with the old
   * connection. A stream takes the publishes of one connection in the order
   * they were sent, and answers them in that order; so a publish refused by
   * the stream (it expects another stream's name, and stores nothing), once
   * its refusal comes, has had every earlier one still waiting answered,
   * whether nats.js sent it before the connection dropped or held it and
   * sent it on the new one. Those still waiting went out on the old
   * connection and are never answered: each fails with `AckLostError`, at
   * once rather than at its time-out. One node only: a replicated stream's
   * leader may change, and with it the order.
   */
  async settleLost(stream: string, subject: string, timeoutMs: number): Promise<void> {
    const sentBefore = this.nextToken;
    try {
      // Outside the window, which may be full of the lost ones it is to free.
      await this.send(subject, '', headerBlock({ 'Nats-Expected-Stream': '.' }, undefined), { timeoutMs }, false);
      throw new Error(`NATS: stream ${stream} stored a publish that expected no stream`);
    } catch (error) {
      if (!(error instanceof JetStreamApiError && error.code === notThisStream)) throw error;
    }
    for (const [token, waiter] of this.pending) {
      if (token >= sentBefore) break;
      if (waiter.stream === stream) this.settle(token)?.reject(new AckLostError());
    }
  }

  /** The inbox prefix on `connection`, subscribed the first time (and again should the connection be a new one). */
  private inboxOn(connection: NatsConnection): string {
    if (this.inbox?.connection === connection) return this.inbox.prefix;
    this.inbox?.subscription.unsubscribe();
    const prefix = createInbox();
    const subscription = connection.subscribe(`${prefix}.*`, {
      callback: (error, msg) => {
        if (!error) this.answered(prefix, msg);
      },
    });
    this.inbox = { connection, prefix, subscription };
    // The connection closed: nothing in flight on it will be answered.
    void subscription.closed.then(() => {
      if (this.inbox?.subscription !== subscription) return;
      this.inbox = undefined;
      for (const token of [...this.pending.keys()]) this.settle(token)?.reject(new errors.ClosedConnectionError());
      // Those waiting for a place try now, and fail on the closed connection rather than wait for ever.
      for (const wake of this.waiting.splice(0)) {
        this.inWindow++;
        wake();
      }
    });
    return prefix;
  }

  private answered(prefix: string, msg: Msg): void {
    const waiter = this.settle(Number(msg.subject.slice(prefix.length + 1)));
    if (!waiter) return;
    // A status without a body: nobody took the publish (no stream leader yet), as a request would be told.
    if (msg.headers?.hasError) {
      const noResponders = msg.headers.code === 503;
      return waiter.reject(noResponders ? notEnabled() : new Error(`JetStream publish failed: ${msg.headers.code} ${msg.headers.description}`));
    }
    try {
      const answer = msg.json<{ stream?: string; seq?: number; duplicate?: boolean; error?: ConstructorParameters<typeof JetStreamApiError>[0] }>();
      if (answer.error) return waiter.reject(new JetStreamApiError(answer.error));
      if (!answer.stream || typeof answer.seq !== 'number') return waiter.reject(new Error('invalid ack response'));
      waiter.resolve({ seq: answer.seq, duplicate: answer.duplicate === true });
    } catch (error) {
      waiter.reject(error as Error);
    }
  }

  /** Takes `token` out of the pending, and its place in the window to the next one waiting. */
  private settle(token: number): Pending | undefined {
    const waiter = this.pending.get(token);
    if (!waiter) return undefined;
    this.pending.delete(token);
    if (waiter.inWindow) this.passPlace();
    if (this.pending.size === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
    return waiter;
  }

  /** A place in the window is free: the first one waiting takes it, or it stays free. */
  private passPlace(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.inWindow--;
  }

  private sweep(): void {
    const now = performance.now();
    for (const [token, { deadline }] of this.pending) if (deadline <= now) this.settle(token)?.reject(new errors.TimeoutError());
  }
}

/** What nats.js reports for a JetStream request nobody answered. */
function notEnabled(): Error {
  return Object.assign(new Error('jetstream is not enabled'), { name: 'JetStreamNotEnabled' });
}
