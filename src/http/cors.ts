import koaCors from '@koa/cors';
import type { Context, Middleware } from 'koa';

/**
 * Cross-origin access for pages served from another origin than the
 * streams: the usual setup once the streams have a host name of their own.
 * Credentials are always allowed, as ServiceStack's own Chat allows them, so
 * a page's `EventSource(url, { withCredentials: true })` and its heartbeats
 * carry the `ss-id` session cookie. That makes an allow-list necessary: any
 * origin allowed here can act with a visitor's cookies.
 */
export interface CorsOptions {
  /**
   * The origins allowed, exactly as browsers send them (`https://app.example.com`,
   * scheme and port included), or a function that decides per origin.
   * Requests from any other origin get no CORS headers, so browsers refuse them.
   */
  origins: readonly string[] | ((origin: string) => boolean | Promise<boolean>);
  /**
   * Request headers a page may send besides the safelisted ones. Default:
   * `Content-Type` (the JSON posts of ServiceStack's typed clients),
   * `Authorization` (JWT), `Accept`, `Allow`, `Last-Event-ID` and
   * `Cache-Control` (sent by EventSource polyfills), `X-Requested-With`.
   */
  allowHeaders?: readonly string[];
  /** How long a browser may cache a preflight's answer. Default 600 seconds. */
  maxAgeSeconds?: number;
}

export const defaultCorsHeaders = ['Content-Type', 'Authorization', 'Accept', 'Allow', 'Last-Event-ID', 'Cache-Control', 'X-Requested-With', 'X-Api-Key', 'Idempotency-Key'];

/**
 * CORS as Koa middleware (`@koa/cors`), answering preflights itself. The
 * Server Events middleware applies it to its own routes when given `cors`;
 * an app can mount it in front of everything, as the Chat does for its
 * services too.
 */
export function corsMiddleware(options: CorsOptions): Middleware {
  const allowed = options.origins;
  const isAllowed = typeof allowed === 'function' ? allowed : (origin: string) => allowed.includes(origin);
  return koaCors({
    // Echo an allowed origin, as credentials require; nothing for the rest.
    origin: async (ctx: Context) => {
      const origin = ctx.get('Origin');
      return origin && (await isAllowed(origin)) ? origin : '';
    },
    credentials: true,
    allowMethods: ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH'],
    allowHeaders: [...(options.allowHeaders ?? defaultCorsHeaders)],
    maxAge: options.maxAgeSeconds ?? 600,
  }) as Middleware;
}

/**
 * Reads a comma-separated origin list, as `--cors` and `CORS_ORIGINS` take
 * it, and writes each as browsers send it (lower case, without a default
 * port): `https://App.example.com:443` becomes `https://app.example.com`.
 * Throws, saying what is wrong, on anything that is not an origin.
 */
export function parseOrigins(text: string): string[] {
  const origins = text.split(',').map((o) => o.trim()).filter(Boolean);
  if (origins.length === 0) throw new Error('name at least one origin, e.g. https://app.example.com');
  return origins.map((origin) => {
    let url: URL;
    try {
      url = new URL(origin);
    } catch {
      throw new Error(`'${origin}' is not an origin: write it as scheme://host[:port]`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error(`'${origin}' is not an origin: it must start with http:// or https://`);
    if (url.username || url.password) throw new Error(`'${origin}' is not an origin: it may not carry a user or password`);
    if (url.pathname !== '/' || url.search || url.hash || /\/$/.test(origin)) {
      throw new Error(`'${origin}' is not an origin: leave out the path, query and trailing slash (${url.origin})`);
    }
    return url.origin;
  });
}
