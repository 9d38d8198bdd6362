import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import Koa from 'koa';
import { ignoreClientDisconnects } from '../../src/http/disconnects.js';
import { serverEventsMiddleware } from '../../src/http/middleware.js';
import type { MiddlewareOptions } from '../../src/http/options.js';
import type { ServerEventsOptions } from '../../src/options.js';
import { ServerEvents } from '../../src/server-events.js';
import type { Cluster } from './cluster.js';

export interface TestServer {
  url: string;
  events: ServerEvents;
  /** Drops every open connection, as a crash or a network cut would, and accepts no more. */
  cut(): void;
  close(): Promise<void>;
}

export interface TestServerOptions {
  events?: ServerEventsOptions;
  http?: MiddlewareOptions;
  /** Trust X-Forwarded-For, so a test can pose as another client address. */
  proxy?: boolean;
  /** Mounted before server-events, e.g. the metrics middleware. */
  middleware?: (events: ServerEvents) => Koa.Middleware;
}

/** A real Koa server on a free port, with server-events mounted, on `cluster`. */
export async function startServer(cluster: Cluster, options: TestServerOptions = {}): Promise<TestServer> {
  const events = new ServerEvents({ broker: cluster.broker(), ...options.events });
  await events.start();
  const app = new Koa();
  app.proxy = options.proxy ?? false;
  ignoreClientDisconnects(app);
  if (options.middleware) app.use(options.middleware(events));
  app.use(serverEventsMiddleware(events, options.http));
  const server: Server = await new Promise((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
  });
  const { port } = server.address() as AddressInfo;
  let closed = false;
  return {
    url: `http://127.0.0.1:${port}${options.http?.prefix ?? ''}`,
    events,
    cut() {
      server.close();
      server.closeAllConnections();
    },
    async close() {
      if (closed) return;
      closed = true;
      await events.stop();
      server.closeAllConnections();
      await new Promise((resolve) => (server.listening ? server.close(resolve) : resolve(undefined)));
    },
  };
}

export interface Reply {
  status: number;
  statusText: string;
  text: string;
  json: any;
  headers: Headers;
}

/** An HTTP request that never throws on error statuses. */
export async function request(
  method: string,
  url: string,
  options: { json?: unknown; form?: Record<string, string>; headers?: Record<string, string> } = {},
): Promise<Reply> {
  const headers: Record<string, string> = { ...options.headers };
  let body: string | undefined;
  if (options.json !== undefined) {
    headers['Content-Type'] = 'application/json';
    body = JSON.stringify(options.json);
  } else if (options.form) {
    headers['Content-Type'] = 'application/x-www-form-urlencoded';
    body = new URLSearchParams(options.form).toString();
  }
  return replyOf(await fetch(url, { method, headers, body }));
}

/** A fetch response read whole, its body parsed as JSON where it is JSON. */
export async function replyOf(res: Response): Promise<Reply> {
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, statusText: res.statusText, text, json, headers: res.headers };
}

export const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
