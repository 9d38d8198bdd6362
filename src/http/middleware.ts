import { STATUS_CODES } from 'node:http';
import { bodyParser } from '@koa/bodyparser';
import Router from '@koa/router';
import type { Context, Middleware, Next } from 'koa';
import compose from 'koa-compose';
import { InvalidArgumentError } from '../arguments.js';
import { BrokerUnavailableError } from '../guarded-broker.js';
import { internalsOf } from '../internals.js';
import type { ServerEvents } from '../server-events.js';
import { corsMiddleware } from './cors.js';
import { sendError } from './errors.js';
import { KeepAlive } from './keep-alive.js';
import { limitQueryLength, StreamLimits } from './limits.js';
import { httpDefaults, paths, type MiddlewareOptions } from './options.js';
import { PublishRoute } from './publish.js';
import { openEventStream, streamOwner } from './stream.js';
import { SubscriberRoutes } from './subscriber-routes.js';

/** The methods the routes answer, as an `OPTIONS` request is told. */
const allowedMethods = 'GET, POST, PUT, DELETE, PATCH, HEAD, OPTIONS';

/**
 * The Server Events HTTP surface as Koa middleware, to mount in your own app:
 * `app.use(serverEventsMiddleware(events))`. Routes follow ServiceStack's, so
 * its clients (ss-utils.js, `@servicestack/client`, the C# client) work as is.
 *
 * | route | verbs |
 * |---|---|
 * | `/event-stream?channels=a,b` | GET |
 * | `/event-heartbeat?id=` | any (clients POST) |
 * | `/event-unregister?id=` | any (clients POST) |
 * | `/event-subscribers?channels=a,b` | GET |
 * | `/event-subscribers/{id}` | any (clients POST) |
 * | `/api/UpdateEventSubscriber`, `/json/reply/UpdateEventSubscriber` | any |
 * | `/api/GetEventSubscribers`, `/json/reply/GetEventSubscribers` | any |
 * | `/event-publish`, with the `publish` option | POST |
 *
 * `OPTIONS` on any of them is answered here and never reaches a route: with
 * `cors`, a preflight from an allowed origin gets its CORS headers; anything
 * else gets `204` with `Allow`.
 */
export function serverEventsMiddleware(events: ServerEvents, options: MiddlewareOptions = {}): Middleware {
  return serverEventsRoutes(events, options).middleware;
}

/** The routes as one Koa middleware, and which paths are theirs (for hosts that must decide before calling it). */
export interface ServerEventsRoutes {
  middleware: Middleware;
  /** Whether a request path (without its query) is one of the routes, the prefix included. */
  handles(path: string): boolean;
}

export function serverEventsRoutes(events: ServerEvents, options: MiddlewareOptions = {}): ServerEventsRoutes {
  const router = new Router({ prefix: options.prefix });
  const routes = new SubscriberRoutes(events, options);
  const bodyLimit = options.bodyLimit ?? httpDefaults.bodyLimit;
  const body = bodyParser({ enableTypes: ['json', 'form', 'text'], jsonLimit: bodyLimit, formLimit: bodyLimit, textLimit: bodyLimit });
  const limits = new StreamLimits(options.maxStreams ?? httpDefaults.maxStreams, options.maxStreamsPerAddress ?? httpDefaults.maxStreamsPerAddress);
  const streams = { limits, keepAlive: new KeepAlive(options.keepAliveIntervalMs ?? httpDefaults.keepAliveIntervalMs), owner: streamOwner(events, limits) };
  const limitQuery = limitQueryLength(options.maxQueryLength ?? httpDefaults.maxQueryLength);
  router.use(limitQuery);
  const errors = answerErrors(events);
  const exact = new ExactRoutes(options.prefix ?? '', limitQuery);
  const route = (method: 'get' | 'all', path: string, ...stack: Middleware[]) => {
    router[method](path, ...stack);
    exact.add(method === 'get' ? 'GET' : undefined, path, stack);
  };

  route('get', paths.stream, errors, (ctx) => openEventStream(ctx, events, options, streams));
  route('all', paths.heartbeat, errors, routes.heartbeat);
  route('all', paths.unregister, errors, body, routes.unregister);
  route('get', paths.subscribers, errors, routes.subscribers);
  router.all(`${paths.subscribers}/:id`, errors, body, routes.update);
  for (const base of ['/api', '/json/reply']) {
    route('all', `${base}/UpdateEventSubscriber`, errors, body, routes.update);
    route('all', `${base}/GetEventSubscribers`, errors, body, routes.subscribers);
  }
  if (options.publish) {
    const publish = new PublishRoute(events, options.publish);
    route('all', paths.publish, errors, publish.authorize, body, publish.publish);
  }
  const routed = router.routes() as Middleware;
  const cors = options.cors ? corsMiddleware(options.cors) : undefined;
  // The router's own matching (prefix, case) tells which requests are for these routes.
  const isOurs = (path: string) => exact.has(path) || router.match(path, 'GET').path.some((layer) => layer.methods.length > 0);
  const answerOptions: Middleware = async (ctx) => {
    ctx.set('Allow', ctx.path.endsWith(paths.publish) ? 'POST, OPTIONS' : allowedMethods);
    ctx.status = 204;
  };
  const middleware: Middleware = async (ctx, next) => {
    if (!isOurs(ctx.path)) return routed(ctx, next);
    const rest = ctx.method === 'OPTIONS' ? () => answerOptions(ctx, next) : () => (exact.find(ctx) ?? routed)(ctx, next);
    return cors ? cors(ctx, rest) : rest();
  };
  return { middleware, handles: isOurs };
}

/** Turns thrown errors into ServiceStack-style error responses; a 500 never reveals its cause. */
function answerErrors(events: ServerEvents): Middleware {
  return async (ctx: Context, next: Next) => {
    try {
      await next();
    } catch (error) {
      if (ctx.respond === false) {
        // The stream already started: nothing can be answered any more (an outage was logged once already).
        if (!(error instanceof BrokerUnavailableError)) internalsOf(events).reportError(error);
        return;
      }
      if (error instanceof InvalidArgumentError) return sendError(ctx, error.status, error.message);
      // Not a fault of this request or this server: the broker is away, and the client should retry.
      const brokerAway = () => sendError(ctx, 503, 'The broker is unavailable; try again shortly', 2);
      if (error instanceof BrokerUnavailableError) return brokerAway();
      const { status, message, expose } = error as { status?: number; message?: string; expose?: boolean };
      // A compressed body that does not inflate (zlib's Z_DATA_ERROR and friends) is the client's fault.
      if (/^Z_/.test((error as { code?: string }).code ?? '')) return sendError(ctx, 400, 'The body is not valid for its Content-Encoding');
      // Deliberate statuses (ctx.throw in a hook, body parser limits) pass through.
      if (typeof status === 'number' && status >= 400 && status <= 599 && status !== 500) {
        return sendError(ctx, status, (expose !== false && message) || STATUS_CODES[status] || 'Error');
      }
      if (!events.brokerAvailable) return brokerAway();
      internalsOf(events).reportError(error);
      sendError(ctx, 500, 'Internal Server Error');
    }
  };
}

/**
 * The routes with a fixed path, found by the path exactly as the clients
 * send it (`/event-stream`, `/event-heartbeat`...), without the router:
 * these are the requests of every connection and every heartbeat, and the
 * router's matching (each route's pattern, twice per request) was a tenth
 * of a connection's cost. Any other spelling the router accepts (another
 * case, a trailing slash, a HEAD) still goes through the router.
 */
class ExactRoutes {
  private readonly routes = new Map<string, { method?: string; run: Middleware }>();

  constructor(
    private readonly prefix: string,
    private readonly first: Middleware,
  ) {}

  /** `method` undefined: any method. */
  add(method: string | undefined, path: string, stack: Middleware[]): void {
    const routePath = this.prefix + path;
    const run = compose([this.first, ...stack]);
    this.routes.set(routePath, {
      method,
      // What the router sets on the context for a matched route, which hooks and metrics may read.
      run: (ctx, next) => {
        const params = (ctx as { params?: Record<string, string> }).params ?? {};
        Object.assign(ctx, { params, captures: [], routerPath: routePath, _matchedRoute: routePath });
        Object.assign(ctx.request, { params });
        return run(ctx, next);
      },
    });
  }

  has(path: string): boolean {
    return this.routes.has(path);
  }

  /** The route for this request, when its path and method are one of these exactly. */
  find(ctx: Context): Middleware | undefined {
    const route = this.routes.get(ctx.path);
    return route && (route.method === undefined || route.method === ctx.method) ? route.run : undefined;
  }
}
