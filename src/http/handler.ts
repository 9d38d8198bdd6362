import type { IncomingMessage, ServerResponse } from 'node:http';
import Koa, { type Context, type Middleware, type Next } from 'koa';
import type { ServerEvents } from '../server-events.js';
import { ignoreClientDisconnects } from './disconnects.js';
import { serverEventsRoutes } from './middleware.js';
import { paths, type MiddlewareOptions } from './options.js';

export interface HandlerOptions extends MiddlewareOptions {
  /**
   * Trust `X-Forwarded-For`, `-Proto` and `-Host` from a proxy in front, for
   * the client address (which heartbeats are checked against) and the URLs
   * in `cmd.onConnect`. Default `false`.
   */
  proxy?: boolean;
  /** Where errors the routes could not answer are logged. Default `console.error`. */
  log?: (message: string) => void;
}

/**
 * A `node:http` request handler, `(req, res, next?)`: what Express, Fastify,
 * Connect or a bare `http.createServer` can mount. `handles(path)` tells
 * whether a path is one of the routes; the handler passes any other request
 * to `next` (or answers it 404 when there is none).
 */
export interface ServerEventsHandler {
  (req: IncomingMessage, res: ServerResponse, next?: (error?: unknown) => void): void;
  /** Whether a request URL (a path, with or without its query) is for one of the routes. */
  handles(url: string | undefined): boolean;
}

/**
 * The Server Events routes for any Node HTTP framework. The routes are the
 * same as `serverEventsMiddleware`'s, run by a Koa application of their own
 * on the raw request and response, so hooks still get a Koa context
 * (`ctx.req` is the framework's request, with whatever it put there, such as
 * Express's `req.user`). A body the framework has already parsed (Express's
 * `express.json()`, say) is taken as it is; otherwise the routes read it.
 * Mount it at the root, and use `prefix` for a sub-path: the URLs a stream
 * is told (heartbeat, unregister) are built from it.
 */
export function serverEventsHandler(events: ServerEvents, options: HandlerOptions = {}): ServerEventsHandler {
  const app = new Koa({ proxy: options.proxy ?? false });
  ignoreClientDisconnects(app, options.log);
  const routes = serverEventsRoutes(events, options);
  app.use(takeParsedBody);
  app.use(routes.middleware);
  const run = app.callback();
  const streamPath = `${options.prefix ?? ''}${paths.stream}`;
  const streams = new StreamRequests(app, routes.middleware, options.log);
  const handler = (req: IncomingMessage, res: ServerResponse, next?: (error?: unknown) => void) => {
    const path = pathOf(req.url);
    if (req.method === 'GET' && path === streamPath) return void streams.open(req, res);
    if (routes.handles(path)) return void run(req, res);
    if (next) return next();
    res.statusCode = 404;
    res.setHeader('Content-Type', 'application/json; charset=utf-8');
    res.end(JSON.stringify({ responseStatus: { errorCode: 'NotFound', message: `No route for ${pathOf(req.url)}` } }));
  };
  return Object.assign(handler, { handles: (url: string | undefined) => routes.handles(pathOf(url)) });
}

/** What a stream request that did not become a stream is answered with. */
interface Answer {
  status: number;
  message: string;
  body: unknown;
}

/**
 * Stream requests, run on a Koa context of their own rather than through
 * Koa's request handling, which keeps the context (and the listeners it
 * puts on the response) until the response ends: some 3 KB for each stream,
 * held for hours. Hooks get the same context as on any other route. A
 * request that does not become a stream (a refusal, an error) is answered
 * through Koa, with the status, reason and body the route gave it (its
 * headers are on the response already).
 */
class StreamRequests {
  private readonly answers = new WeakMap<IncomingMessage, Answer>();
  private readonly answer: (req: IncomingMessage, res: ServerResponse) => unknown;

  constructor(
    private readonly app: Koa,
    private readonly route: Middleware,
    log: ((message: string) => void) | undefined,
  ) {
    const answering = new Koa({ proxy: app.proxy });
    ignoreClientDisconnects(answering, log);
    answering.use((ctx) => {
      const answer = this.answers.get(ctx.req)!;
      ctx.status = answer.status;
      if (ctx.req.httpVersionMajor < 2 && answer.message) ctx.message = answer.message;
      ctx.body = answer.body;
    });
    this.answer = answering.callback();
  }

  async open(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const ctx = this.app.createContext(req, res);
    // As Koa starts every request.
    res.statusCode = 404;
    try {
      await takeParsedBody(ctx, () => this.route(ctx, async () => {}));
    } catch (error) {
      // The routes answer their own errors: what escapes them is reported, as Koa would, and answered 500.
      this.app.emit('error', error, ctx);
      this.answers.set(req, { status: 500, message: '', body: { responseStatus: { errorCode: 'InternalServerError', message: 'Internal Server Error' } } });
      return void this.answer(req, res);
    }
    if (ctx.respond === false) return;
    // HTTP/2 has no reason phrase (Node warns when one is read).
    const message = req.httpVersionMajor < 2 ? res.statusMessage : '';
    this.answers.set(req, { status: res.statusCode, message, body: ctx.body });
    this.answer(req, res);
  }
}

/** The path of a request URL, as Koa's `ctx.path` reads it: up to the query, not decoded. */
function pathOf(url: string | undefined): string {
  const raw = url ?? '/';
  const query = raw.indexOf('?');
  return query < 0 ? raw : raw.slice(0, query);
}

/** A framework that read the body already left it on the request: the routes take it from there. */
async function takeParsedBody(ctx: Context, next: Next): Promise<void> {
  const req = ctx.req as IncomingMessage & { body?: unknown };
  if (req.body !== undefined && req.readableEnded) ctx.request.body = req.body;
  await next();
}
