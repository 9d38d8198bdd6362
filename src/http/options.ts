import type { Context } from 'koa';
import type { EventSubscription } from '../subscription.js';
import type { Identity } from './identity.js';

/**
 * Options of `serverEventsMiddleware(events, options)`: the HTTP side.
 * A hook denies a request by throwing, e.g. `ctx.throw(403, 'Not allowed')`.
 */
export interface MiddlewareOptions {
  /** Mounts every route under this path, e.g. `/api`. Default: none. */
  prefix?: string;
  /** Maps a request to its user; `undefined` means anonymous. */
  authenticate?: (ctx: Context) => Identity | undefined | Promise<Identity | undefined>;
  /** Answer 401 to streams from users that are not authenticated. Default `false`. */
  limitToAuthenticatedUsers?: boolean;
  /**
   * Heartbeats, unregisters and channel updates must come from the address
   * that opened the stream, else 403. Default `true`, as in ServiceStack.
   */
  validateUserAddress?: boolean;
  /**
   * A stream whose unsent output (in the response and its socket, past what
   * the kernel took) passes this many bytes is a client that stopped
   * reading: it is disconnected, counted and logged, so it can neither hold
   * server memory nor slow the others. It may reconnect and resume with
   * Last-Event-ID. Default 1 MiB.
   */
  maxBufferedBytes?: number;
  /** Largest accepted POST body. Default `64kb`. */
  bodyLimit?: string;
  /** Before anything else on a stream request. */
  onInit?: (ctx: Context) => void | Promise<void>;
  /** At the start of each heartbeat request. */
  onHeartbeatInit?: (ctx: Context) => void | Promise<void>;
  /** After the subscription is built: may add keys to `sub.info.meta` or `sub.connectArgs`. */
  onCreated?: (sub: EventSubscription, ctx: Context) => void | Promise<void>;
  /** May edit the `cmd.onConnect` payload before it is sent. */
  onConnect?: (sub: EventSubscription, connectArgs: Record<string, string>) => void | Promise<void>;
}

/** Route paths, relative to the prefix; the names ServiceStack clients expect. */
export const paths = {
  stream: '/event-stream',
  heartbeat: '/event-heartbeat',
  unregister: '/event-unregister',
  subscribers: '/event-subscribers',
};
