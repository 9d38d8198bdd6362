import type { IncomingMessage, ServerResponse } from 'node:http';
import Koa, { type Context, type Next } from 'koa';
import type { ServerEvents } from '../server-events.js';
import { ignoreClientDisconnects } from './disconnects.js';
import { serverEventsRoutes } from './middleware.js';
import type { MiddlewareOptions } from './options.js';

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
  const handler = (req: IncomingMessage, res: ServerResponse, next?: (error?: unknown) => void) => {
    if (routes.handles(pathOf(req.url))) return void run(req, res);
    if (next) return next();
    res.statusCode = 404;
    res.setHeader('Content-Type', 'application/json; charset=utf-8');
    res.end(JSON.stringify({ responseStatus: { errorCode: 'NotFound', message: `No route for ${pathOf(req.url)}` } }));
  };
  return Object.assign(handler, { handles: (url: string | undefined) => routes.handles(pathOf(url)) });
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
