import type { Broker } from './broker.js';
import type { EventSubscription } from './subscription.js';

/**
 * Where server-events writes: faults at `warn` and `error`, and, when the
 * logger has `debug`, one structured line per subscription lifecycle step.
 * A pino logger fits (see `createLogger`), and so does `console`.
 */
export interface Logger {
  warn(message: string, ...details: unknown[]): void;
  error(message: string, ...details: unknown[]): void;
  debug?(details: Record<string, unknown>, message: string): void;
}

/** The default: faults to the console, no lifecycle lines. */
export const consoleLogger: Logger = {
  warn: (message, ...details) => console.warn(message, ...details),
  error: (message, ...details) => console.error(message, ...details),
};

/** Options of `new ServerEvents(...)`. Every field is optional. */
export interface ServerEventsOptions {
  /** The broker that connects this server to the others. Default: a private `MemoryBroker`. */
  broker?: Broker;
  /** A subscription with no heartbeat for this long is removed. Default 30,000 ms. */
  idleTimeoutMs?: number;
  /** How often clients are told to send heartbeats (`heartbeatIntervalMs` in `cmd.onConnect`). Default 10,000 ms. */
  heartbeatIntervalMs?: number;
  /** How often the housekeeping timer removes idle and orphaned subscriptions (and renews leases). Default 5,000 ms. */
  houseKeepingIntervalMs?: number;
  /**
   * The longest any broker operation may take. Past it the request answers
   * 503 with Retry-After and the broker counts as away (as after a lost
   * connection) until a ping, sent every half of this, goes through again.
   * Default 3,000 ms, or what the broker asks for: 12,000 ms on a NATS
   * cluster, longer than its replicated streams take to elect a new leader.
   */
  brokerTimeoutMs?: number;
  /** Send `cmd.onJoin`, `cmd.onLeave` and `cmd.onUpdate` to channel members. Default `true`. */
  notifyChannelOfSubscriptions?: boolean;
  /**
   * The largest message body (serialized, in bytes) any notify call accepts;
   * a larger one throws `PayloadTooLargeError` (HTTP 413) and nothing is
   * sent. Default 512 KiB, safely under NATS's default 1 MB payload limit.
   */
  maxMessageBytes?: number;
  /** The most channels one subscription may hold, on connect and after updates; more is refused (400). Default 64. */
  maxChannelsPerSubscription?: number;
  /**
   * How many streams register at once (a new subscription's or a resumed
   * one's broker calls, and their hooks); the others wait their turn. When a
   * server dies, thousands of clients resume on the rest at once: without a
   * bound, their calls queue in the broker and in this server, and the last
   * ones, and any publish behind them, take longer than `brokerTimeoutMs`.
   * Default 128.
   */
  maxRegistrationsInFlight?: number;
  /** Turns a message into the body text. Default `JSON.stringify`; `null`/`undefined` become an empty body. */
  serialize?: (message: unknown) => string;
  /** Identifies this process in presence records. Default: random. */
  serverId?: string;
  /** Default: warnings and errors to the console. */
  logger?: Logger;
  /** After registration, before `cmd.onJoin`: a good place for a welcome message. */
  onSubscribe?: (sub: EventSubscription) => void | Promise<void>;
  /** After a subscription on this server is removed, before `cmd.onLeave`. */
  onUnsubscribe?: (sub: EventSubscription) => void | Promise<void>;
  /** After a subscription on this server changed its channels, before `cmd.onUpdate`. */
  onUpdate?: (sub: EventSubscription) => void | Promise<void>;
  /** Just before each frame is written to a subscription on this server. */
  onPublish?: (sub: EventSubscription, frame: string) => void;
  /** Errors raised by hooks, broker payloads or housekeeping. Default: logged with `logger.error`. */
  onError?: (error: unknown, sub?: EventSubscription) => void;
}

export const defaults = {
  idleTimeoutMs: 30_000,
  heartbeatIntervalMs: 10_000,
  houseKeepingIntervalMs: 5_000,
  brokerTimeoutMs: 3_000,
  notifyChannelOfSubscriptions: true,
  maxMessageBytes: 512 * 1024,
  maxChannelsPerSubscription: 64,
  maxRegistrationsInFlight: 128,
};
