import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import test from 'ava';
import Koa from 'koa';
import { parseOrigins } from '../../src/http/cors.js';
import { browserTest, launchChromium, newPage, screenshotPath } from '../helpers/browser.js';
import { memoryClusters } from '../helpers/cluster.js';
import { delay, request, startServer } from '../helpers/server.js';
import { only, SseStream } from '../helpers/sse.js';

const app = 'http://app.test';
const preflight = (origin: string, method = 'POST') => ({
  headers: { Origin: origin, 'Access-Control-Request-Method': method, 'Access-Control-Request-Headers': 'content-type' },
});

test('with cors, every route answers a preflight from an allowed origin, and only from it', async (t) => {
  const cluster = await memoryClusters.create();
  const server = await startServer(cluster, { http: { cors: { origins: [app] } } });
  t.teardown(() => server.close());
  const stream = await SseStream.open(`${server.url}/event-stream?channels=home`, { Origin: app });
  t.teardown(() => stream.close());
  await stream.connected();
  t.is(stream.headers['access-control-allow-origin'], app, 'the stream itself carries the headers');
  t.is(stream.headers['access-control-allow-credentials'], 'true');

  const routes = [
    '/event-stream?channels=home',
    `/event-heartbeat?id=${stream.id}`,
    `/event-unregister?id=${stream.id}`,
    '/event-subscribers?channels=home',
    `/event-subscribers/${stream.id}`,
    '/api/UpdateEventSubscriber',
    '/json/reply/UpdateEventSubscriber',
    '/api/GetEventSubscribers',
    '/json/reply/GetEventSubscribers',
  ];
  for (const route of routes) {
    const allowed = await request('OPTIONS', `${server.url}${route}`, preflight(app));
    t.is(allowed.status, 204, route);
    t.is(allowed.headers.get('access-control-allow-origin'), app, route);
    t.is(allowed.headers.get('access-control-allow-credentials'), 'true', route);
    t.regex(allowed.headers.get('access-control-allow-headers') ?? '', /Content-Type/, route);
    t.regex(allowed.headers.get('access-control-allow-methods') ?? '', /POST/, route);
    t.is(allowed.headers.get('access-control-max-age'), '600', route);
    const refused = await request('OPTIONS', `${server.url}${route}`, preflight('http://evil.test'));
    t.is(refused.headers.get('access-control-allow-origin'), null, `${route} from another origin`);
  }
  await delay(50);
  t.is(stream.frames.filter(only('cmd.onHeartbeat')).length, 0, 'an OPTIONS request never reaches the heartbeat route');
  t.truthy(await server.events.getSubscriptionInfo(stream.id), 'nor the unregister route');

  const error = await request('POST', `${server.url}/event-heartbeat?id=nope`, { headers: { Origin: app } });
  t.is(error.status, 404);
  t.is(error.headers.get('access-control-allow-origin'), app, 'a page can read the error too');
});

test('without cors no route sends CORS headers, and an OPTIONS request is answered with Allow, not run', async (t) => {
  const cluster = await memoryClusters.create();
  const server = await startServer(cluster);
  t.teardown(() => server.close());
  const stream = await SseStream.open(`${server.url}/event-stream?channels=home`, { Origin: app });
  t.teardown(() => stream.close());
  await stream.connected();
  t.is(stream.headers['access-control-allow-origin'], undefined);
  const options = await request('OPTIONS', `${server.url}/event-heartbeat?id=${stream.id}`, preflight(app));
  t.is(options.status, 204);
  t.regex(options.headers.get('allow') ?? '', /POST/);
  t.is(options.headers.get('access-control-allow-origin'), null);
  await delay(50);
  t.is(stream.frames.filter(only('cmd.onHeartbeat')).length, 0);
});

test('under a prefix, cors covers the routes and nothing else of the app', async (t) => {
  const cluster = await memoryClusters.create();
  const server = await startServer(cluster, { http: { prefix: '/api/sse', cors: { origins: [app] } } });
  t.teardown(() => server.close());
  const ours = await request('OPTIONS', `${server.url}/event-heartbeat?id=x`, preflight(app));
  t.is(ours.status, 204);
  t.is(ours.headers.get('access-control-allow-origin'), app);
  const elsewhere = await request('GET', server.url.replace('/api/sse', '/somewhere-else'), { headers: { Origin: app } });
  t.is(elsewhere.headers.get('access-control-allow-origin'), null, "the app's other routes are the app's business");
});

test('origins are checked as origins, and written as browsers send them', (t) => {
  t.deepEqual(parseOrigins('https://a.example, http://localhost:8080'), ['https://a.example', 'http://localhost:8080']);
  t.deepEqual(parseOrigins('https://App.Example.com:443,HTTP://localhost:80'), ['https://app.example.com', 'http://localhost']);
  t.throws(() => parseOrigins('https://a.example/path'), { message: "'https://a.example/path' is not an origin: leave out the path, query and trailing slash (https://a.example)" });
  t.throws(() => parseOrigins('https://a.example/'), { message: /trailing slash/ });
  t.throws(() => parseOrigins('a.example'), { message: "'a.example' is not an origin: write it as scheme://host[:port]" });
  t.throws(() => parseOrigins('ftp://a.example'), { message: /must start with http/ });
  t.throws(() => parseOrigins(' , '), { message: /at least one origin/ });
});

/** A page server on its own origin: the page, and ServiceStack's browser client beside it. */
async function pageServer(): Promise<{ port: number; close: () => Promise<void> }> {
  const require = createRequire(import.meta.url);
  const client = readFileSync(require.resolve('@servicestack/client'), 'utf8');
  const pages = new Koa();
  pages.use((ctx) => {
    if (ctx.path === '/servicestack-client.js') {
      ctx.type = 'text/javascript';
      ctx.body = client;
    } else {
      ctx.type = 'text/html';
      ctx.body = '<!doctype html><title>page elsewhere</title><script src="/servicestack-client.js"></script>';
    }
  });
  const server: Server = await new Promise((resolve) => {
    const s = pages.listen(0, '127.0.0.1', () => resolve(s));
  });
  return { port: (server.address() as AddressInfo).port, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

browserTest('a page on another origin uses ServiceStack\'s own browser client with credentials: stream, heartbeats, channel updates, listing', {}, async (t) => {
  const pages = await pageServer();
  t.teardown(() => pages.close());
  // localhost and 127.0.0.1 are different origins: one is allowed, the other is not.
  const allowed = `http://localhost:${pages.port}`;
  const cluster = await memoryClusters.create();
  const server = await startServer(cluster, {
    events: { heartbeatIntervalMs: 300 },
    // With validateUserSession a heartbeat without the stream's ss-id cookie is 403: credentials must travel.
    http: { cors: { origins: [allowed] }, validateUserSession: true },
  });
  t.teardown(() => server.close());
  const api = server.url.replace('127.0.0.1', 'localhost');

  const browser = await launchChromium(t);
  const page = await newPage(browser);
  const errors: string[] = [];
  page.on('pageerror', (error) => errors.push(error.message));
  await page.goto(`${allowed}/`);
  const result = await page.evaluate(async (base) => {
    const { ServerEventsClient } = (window as any)['@servicestack/client'];
    const seen: string[] = [];
    const failures: string[] = [];
    let heartbeats = 0;
    let resolveUpdate: () => void = () => {};
    const updated = new Promise<void>((resolve) => (resolveUpdate = resolve));
    const client = new ServerEventsClient(base, ['home'], {
      handlers: {
        onConnect: () => seen.push('onConnect'),
        onHeartbeat: () => heartbeats++,
        onUpdate: () => resolveUpdate(),
      },
      onException: (error: unknown) => failures.push(String(error)),
    });
    client.start();
    for (let i = 0; i < 100 && heartbeats < 2; i++) await new Promise((r) => setTimeout(r, 50));
    await client.subscribeToChannels('news');
    await updated;
    const users = await client.getChannelSubscribers();
    await client.stop();
    return { seen, heartbeats, failures, channels: users[0]?.channels, withCredentials: client.eventSource.withCredentials };
  }, api);
  t.deepEqual(result.seen, ['onConnect']);
  t.true(result.heartbeats >= 2, `heartbeats went through, with the session cookie (${result.heartbeats})`);
  t.deepEqual(result.channels, ['home', 'news'], 'the JSON update (a preflighted request) and the listing worked');
  t.true(result.withCredentials);
  t.deepEqual(result.failures, []);
  await page.screenshot({ path: screenshotPath('cors-page') });

  // The same page on an origin that is not allowed gets nothing.
  const other = await newPage(browser);
  await other.goto(`http://127.0.0.1:${pages.port}/`);
  const refused = await other.evaluate(async (base) => {
    const source = new EventSource(`${base}/event-stream?channels=home`, { withCredentials: true });
    const outcome = await new Promise<string>((resolve) => {
      source.onmessage = () => resolve('message');
      source.onerror = () => resolve('error');
    });
    source.close();
    const listing = await fetch(`${base}/event-subscribers`, { credentials: 'include' }).then(() => 'read', () => 'refused');
    return { outcome, listing };
  }, api);
  t.deepEqual(refused, { outcome: 'error', listing: 'refused' });
  t.deepEqual(errors, []);
});
