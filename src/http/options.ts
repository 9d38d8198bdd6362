import type { Context } from 'koa';
import type { EventSubscription } from '../subscription.js';
import type { CorsOptions } from './cors.js';
import type { PublishOptions } from './publish.js';
import type { Identity } from '../identity.js';

/** Who asks to join a channel, as `authorizeChannel` sees them. */
export interface ChannelUser {
  /** Undefined for an anonymous user's first connect (its `-N` id is given after authorization). */
  userId?: string;
  userName?: string;
  isAuthenticated: boolean;
  sessionId?: string;
}

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
   * Heartbeats, unregisters and channel updates must carry the session that
   * opened the stream (the `sessionId` from `authenticate`, else the `ss-id`
   * cookie), else 403. Stronger than the address behind a shared NAT; needs
   * clients that send cookies (browsers do; Node's EventSource polyfills
   * mostly do not). Default `false`.
   */
  validateUserSession?: boolean;
  /**
   * May this user join this channel? Asked for every channel when a stream
   * opens and for every channel an update adds; `false` answers 403 and
   * changes nothing. Server-side calls (`subscribeToChannels`) are trusted
   * and not asked. Default: everyone may join everything.
   */
  authorizeChannel?: (user: ChannelUser, channel: string, ctx: Context) => boolean | Promise<boolean>;
  /**
   * A stream whose unsent output (in the response and its socket, past what
   * the kernel took) passes this many bytes is a client that stopped
   * reading: it is disconnected, counted and logged, so it can neither hold
   * server memory nor slow the others. It may reconnect and resume with
   * Last-Event-ID. Default 1 MiB.
   */
  maxBufferedBytes?: number;
  /**
   * A stream that wrote less than this many ms ago gathers its next frames
   * until then, and writes them in one piece: a busy stream (hundreds of
   * events a second) makes one system call for several frames. A stream
   * quieter than that writes each frame at once (at the end of the event
   * loop's turn, with whatever else arrived in it), so its latency does not
   * change. `0` writes every turn's frames at once. Default 2 ms.
   */
  writeCoalescingMs?: number;
  /**
   * A stream with nothing written for this long gets a keep-alive, so that
   * proxies and load balancers that close idle connections (nginx's 60 s
   * `proxy_read_timeout`, AWS ALB's 60 s, Cloudflare's 100 s) keep it open.
   * To a client that heartbeats (every ServiceStack client does) it is a
   * `cmd.onHeartbeat` frame, which it already gets after each heartbeat; to
   * one that does not, an SSE comment (`:` and its blank line). See
   * `KeepAlive` for why ServiceStack clients never get a comment. `0` turns
   * keep-alives off. Default 15,000 ms.
   */
  keepAliveIntervalMs?: number;
  /** Open event streams this server accepts; past it a new one gets 503 with Retry-After. Default 20,000. */
  maxStreams?: number;
  /** Open event streams from one client address; past it a new one gets 429. Default 500 (offices share addresses). */
  maxStreamsPerAddress?: number;
  /** Longest query string, in characters, on every route; past it 414. Default 4,096. */
  maxQueryLength?: number;
  /**
   * Cross-origin access for pages on other origins (see `CorsOptions`):
   * an allow-list of origins, credentials on, preflights answered on every
   * route. Default: none, so only same-origin pages can use the routes.
   */
  cors?: CorsOptions;
  /**
   * Serves `POST /event-publish`, through which any backend publishes with an
   * API key or a token (see `PublishRoute`). Default: off, no such route.
   */
  publish?: PublishOptions;
  /** Largest accepted POST body; past it 413. Default `64kb`. */
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

export const httpDefaults = {
  maxBufferedBytes: 1024 * 1024,
  writeCoalescingMs: 2,
  keepAliveIntervalMs: 15_000,
  maxStreams: 20_000,
  maxStreamsPerAddress: 500,
  maxQueryLength: 4096,
  bodyLimit: '64kb',
};

/** Route paths, relative to the prefix; the names ServiceStack clients expect. */
export const paths = {
  stream: '/event-stream',
  heartbeat: '/event-heartbeat',
  unregister: '/event-unregister',
  subscribers: '/event-subscribers',
  publish: '/event-publish',
};
