import { readFileSync } from 'node:fs';
import https from 'node:https';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import test from 'ava';
import { createParser } from 'eventsource-parser';
import Koa from 'koa';
import { ignoreClientDisconnects } from '../../src/http/disconnects.js';
import { serverEventsMiddleware } from '../../src/http/middleware.js';
import { closeGracefully, trackConnections } from '../../src/http/shutdown.js';
import { parseEventData, type ServerEventMessage } from '../../src/protocol.js';
import { ServerEvents } from '../../src/server-events.js';
import { memoryClusters } from '../helpers/cluster.js';
import { delay } from '../helpers/server.js';

const key = readFileSync(new URL('../fixtures/tls/key.pem', import.meta.url));
const cert = readFileSync(new URL('../fixtures/tls/cert.pem', import.meta.url));

/** One event stream over an HTTP/2 session. */
function openStream(session: http2.ClientHttp2Session, path: string) {
  const frames: ServerEventMessage[] = [];
  let ended = false;
  const request = session.request({ ':path': path, accept: 'text/event-stream' });
  const parser = createParser({ onEvent: (event) => frames.push(parseEventData(event.data)) });
  request.setEncoding('utf8');
  request.on('data', (chunk: string) => parser.feed(chunk));
  request.on('end', () => (ended = true));
  request.on('close', () => (ended = true));
  const headers = new Promise<http2.IncomingHttpHeaders>((resolve) => request.once('response', resolve));
  const waitFor = async (selector: string, count = 1): Promise<ServerEventMessage[]> => {
    for (let i = 0; i < 250; i++) {
      const matching = frames.filter((f) => f.selector === selector);
      if (matching.length >= count) return matching;
      await delay(20);
    }
    throw new Error(`no ${selector} within 5 s; got ${frames.map((f) => f.selector).join(', ')}`);
  };
  return {
    frames,
    headers,
    waitFor,
    get ended() {
      return ended;
    },
    async id(): Promise<string> {
      return ((await waitFor('cmd.onConnect'))[0]!.body as { id: string }).id;
    },
  };
}

/** A plain request over the same session: status, headers and body. */
function send(session: http2.ClientHttp2Session, method: string, path: string): Promise<{ status: number; headers: http2.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const request = session.request({ ':method': method, ':path': path, 'content-type': 'text/plain' });
    let body = '';
    let headers: http2.IncomingHttpHeaders = {};
    request.setEncoding('utf8');
    request.on('response', (h) => (headers = h));
    request.on('data', (chunk: string) => (body += chunk));
    request.on('end', () => resolve({ status: Number(headers[':status']), headers, body }));
    request.on('error', reject);
    request.end();
  });
}

test('several streams, a heartbeat and an unregister share one HTTP/2 connection, with no warning; HTTP/1.1 still works beside it', async (t) => {
  const warnings: string[] = [];
  const onWarning = (warning: Error) => warnings.push(`${warning.name}: ${warning.message}`);
  process.on('warning', onWarning);
  t.teardown(() => void process.off('warning', onWarning));

  const cluster = await memoryClusters.create();
  const events = new ServerEvents({ broker: cluster.broker() });
  await events.start();
  const app = new Koa();
  ignoreClientDisconnects(app);
  app.use(serverEventsMiddleware(events));
  const server = http2.createSecureServer({ key, cert, allowHTTP1: true }, app.callback());
  trackConnections(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const origin = `https://localhost:${(server.address() as AddressInfo).port}`;
  let closed = false;
  t.teardown(async () => {
    if (!closed) await closeGracefully(server, events);
  });

  const session = http2.connect(origin, { ca: cert });
  t.teardown(() => session.destroy());
  const [a, b, c] = [0, 1, 2].map(() => openStream(session, '/event-stream?channels=home'));
  const head = await a!.headers;
  t.is(Number(head[':status']), 200);
  t.is(head['content-type'], 'text/event-stream');
  const [idA, idB, idC] = await Promise.all([a!.id(), b!.id(), c!.id()]);
  await a!.waitFor('cmd.onJoin', 3);
  const connect = a!.frames[0]!.body as Record<string, string>;
  t.is(connect.heartbeatUrl, `${origin}/event-heartbeat?id=${idA}`, 'URLs name the HTTP/2 authority');

  const beat = await send(session, 'POST', `/event-heartbeat?id=${idA}`);
  t.is(beat.status, 200);
  t.is(beat.body, '');
  await a!.waitFor('cmd.onHeartbeat');

  const unregister = await send(session, 'POST', `/event-unregister?id=${idB}`);
  t.is(unregister.status, 200);
  t.is(JSON.parse(unregister.body).userId, (b!.frames[0]!.body as Record<string, string>).userId);
  const leaves = await c!.waitFor('cmd.onLeave');
  t.is((leaves[0]!.body as Record<string, string>).userId, JSON.parse(unregister.body).userId);
  while (!b!.ended) await delay(20);

  const unknown = await send(session, 'POST', '/event-heartbeat?id=nope');
  t.is(unknown.status, 404);
  t.deepEqual(JSON.parse(unknown.body), { responseStatus: { errorCode: 'NotFound', message: "Subscription 'nope' does not exist" } });
  const listed = await send(session, 'GET', '/event-subscribers?channels=home');
  t.is(JSON.parse(listed.body).length, 2);
  t.deepEqual(
    (await events.getSubscriptionsDetails(['home'])).map((m) => m.userId).sort(),
    [a!.frames[0]!, c!.frames[0]!].map((f) => (f.body as Record<string, string>).userId).sort(),
  );
  t.truthy(idC);

  // An HTTP/1.1 client on the same port gets ServiceStack's reason phrase, which HTTP/2 cannot carry.
  const reason = await new Promise<string | undefined>((resolve, reject) => {
    https.get(`${origin}/event-heartbeat?id=nope`, { ca: cert }, (res) => {
      res.resume();
      resolve(res.statusMessage);
    }).on('error', reject);
  });
  t.is(reason, "Subscription 'nope' does not exist");

  t.deepEqual(warnings, [], 'Node printed no warning');

  // The HTTP/2 session stays open and idle: closing must not wait for it.
  await closeGracefully(server, events);
  closed = true;
  t.true(a!.ended && c!.ended, 'every stream ended');
  await delay(50);
  t.true(session.closed || session.destroyed, 'the idle session was closed too');
});

test('closeGracefully does not wait for ever on an HTTP/2 server whose sessions were not tracked, and says why', async (t) => {
  const cluster = await memoryClusters.create();
  const events = new ServerEvents({ broker: cluster.broker() });
  await events.start();
  const app = new Koa();
  app.use(serverEventsMiddleware(events));
  const server = http2.createSecureServer({ key, cert }, app.callback());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const session = http2.connect(`https://localhost:${(server.address() as AddressInfo).port}`, { ca: cert });
  t.teardown(() => session.destroy());
  const stream = openStream(session, '/event-stream?channels=home');
  await stream.id();
  const warnings: string[] = [];
  const started = Date.now();
  await closeGracefully(server, events, { warn: (message) => warnings.push(message) });
  t.true(Date.now() - started < 3000, 'it returned');
  t.true(stream.ended, 'the stream was ended all the same');
  t.regex(warnings.join('\n'), /trackConnections/);
});
