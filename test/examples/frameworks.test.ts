/**
 * The routes mounted outside Koa: in the Express and Fastify examples and on
 * a bare node:http server, through `serverEventsHandler`. Each host runs the
 * checks that matter there: the stream, heartbeats, listings, unregister,
 * bodies the framework did or did not parse, the app's own routes, the
 * publish API, and a client that vanishes without closing its connection.
 */
import { once } from 'node:events';
import http, { type Server } from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import test, { type ExecutionContext } from 'ava';
import express from 'express';
import { createExpressApp } from '../../examples/express/server.js';
import { createFastifyApp } from '../../examples/fastify/server.js';
import { serverEventsHandler, type HandlerOptions } from '../../src/http/handler.js';
import type { ServerEventsOptions } from '../../src/options.js';
import { ServerEvents } from '../../src/server-events.js';
import { memoryClusters } from '../helpers/cluster.js';
import { delay, request } from '../helpers/server.js';
import { only, SseStream } from '../helpers/sse.js';

type Host = (events: ServerEvents, options: HandlerOptions) => Promise<Server>;

const hosts: Record<string, Host> = {
  express: async (events, options) => {
    const server = createExpressApp(events, options).listen(0, '127.0.0.1');
    await once(server, 'listening');
    return server;
  },
  // An app that parses bodies before the routes: they take what Express parsed.
  'express, body parser first': async (events, options) => {
    const app = express();
    app.use(express.json());
    app.use(express.urlencoded({ extended: false }));
    app.use(serverEventsHandler(events, options));
    const server = app.listen(0, '127.0.0.1');
    await once(server, 'listening');
    return server;
  },
  fastify: async (events, options) => {
    const app = createFastifyApp(events, options);
    await app.listen({ port: 0, host: '127.0.0.1' });
    return app.server;
  },
  'node:http': async (events, options) => {
    const server = http.createServer(serverEventsHandler(events, options));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    return server;
  },
};

const publishKey = 'frameworks-publish-key-0123';

async function start(t: ExecutionContext, host: Host, events: ServerEventsOptions = {}, options: HandlerOptions = {}) {
  const cluster = await memoryClusters.create();
  const serverEvents = new ServerEvents({ broker: cluster.broker(), ...events });
  await serverEvents.start();
  const server = await host(serverEvents, { publish: { apiKeys: [publishKey] }, ...options });
  const streams: SseStream[] = [];
  t.teardown(async () => {
    for (const s of streams) s.close();
    await serverEvents.stop();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}${options.prefix ?? ''}`;
  const connect = async (query: string) => {
    const stream = await SseStream.open(`${url}/event-stream${query}`);
    streams.push(stream);
    await stream.connected();
    return stream;
  };
  return { url, events: serverEvents, server, connect };
}

for (const [name, host] of Object.entries(hosts)) {
  test(`${name}: stream, heartbeat, listing and unregister behave as ServiceStack's`, async (t) => {
    const { url, connect } = await start(t, host);
    const stream = await connect('?channels=home');
    t.is(stream.status, 200);
    t.is(stream.headers['content-type'], 'text/event-stream');
    t.is(stream.headers['cache-control'], 'no-cache');
    t.regex(stream.raw, /^id: \d+\ndata: cmd\.onConnect \{/);
    const args = stream.connectArgs;
    t.is(args.heartbeatUrl, `${url}/event-heartbeat?id=${args.id}`);
    await stream.next(only('cmd.onJoin', 'home'));

    const beat = await request('POST', args.heartbeatUrl!);
    t.is(beat.status, 200);
    t.is(beat.text, '');
    await stream.next(only('cmd.onHeartbeat'));
    const unknown = await request('POST', `${url}/event-heartbeat?id=nope`);
    t.is(unknown.status, 404);
    t.is(unknown.json.responseStatus.errorCode, 'NotFound');

    const listed = await request('GET', `${url}/event-subscribers?channels=home`);
    t.is(listed.status, 200);
    t.deepEqual(listed.json.map((m: { userId: string }) => m.userId), [args.userId]);

    const unregistered = await request('POST', args.unRegisterUrl!);
    t.is(unregistered.status, 200);
    t.is(unregistered.json.userId, args.userId);
    await stream.closed();
    t.deepEqual((await request('GET', `${url}/event-subscribers?channels=home`)).json, []);
    t.is((await request('POST', args.unRegisterUrl!)).status, 404);
  });

  test(`${name}: a stream request that does not become a stream is answered as any route is: status, reason, headers and error body`, async (t) => {
    const { url } = await start(t, host, {}, {
      onInit: (ctx) => {
        if (ctx.query.boom) throw new Error('a hook that fails');
        if (ctx.query.deny) ctx.throw(403, 'Not on this route');
      },
      authenticate: (ctx) => (ctx.query.user ? { userId: String(ctx.query.user) } : undefined),
      limitToAuthenticatedUsers: true,
      maxStreams: 1,
    });
    const anonymous = await fetch(`${url}/event-stream?channels=home`);
    t.is(anonymous.status, 401);
    t.is(anonymous.statusText, 'Auth Required');
    t.deepEqual(await anonymous.json(), { responseStatus: { errorCode: 'Unauthorized', message: 'Auth Required' } });
    const denied = await fetch(`${url}/event-stream?channels=home&deny=1&user=7`);
    t.is(denied.status, 403);
    t.is(((await denied.json()) as { responseStatus: { message: string } }).responseStatus.message, 'Not on this route');
    const failed = await fetch(`${url}/event-stream?channels=home&boom=1&user=7`);
    t.is(failed.status, 500);
    t.deepEqual(await failed.json(), { responseStatus: { errorCode: 'InternalServerError', message: 'Internal Server Error' } });
    const badChannel = await fetch(`${url}/event-stream?channels=${'x'.repeat(300)}&user=7`);
    t.is(badChannel.status, 400);
    t.is(((await badChannel.json()) as { responseStatus: { errorCode: string } }).responseStatus.errorCode, 'ArgumentException');
    const stream = await SseStream.open(`${url}/event-stream?channels=home&user=7`);
    t.teardown(() => stream.close());
    await stream.connected();
    t.is(stream.connectArgs.userId, '7', 'and an admitted one is a stream');
    const full = await fetch(`${url}/event-stream?channels=home&user=8`);
    t.is(full.status, 503);
    t.is(full.headers.get('retry-after'), '5', 'with the headers the route set');
    t.is(((await full.json()) as { responseStatus: { errorCode: string } }).responseStatus.errorCode, 'ServiceUnavailable');
  });

  test(`${name}: channel updates read JSON and form bodies, whoever parsed them`, async (t) => {
    const { url, events, connect } = await start(t, host);
    const stream = await connect('?channels=home');
    const id = stream.connectArgs.id!;
    t.deepEqual((await request('POST', `${url}/event-subscribers/${id}`, { json: { subscribeChannels: ['news'] } })).json, {});
    t.deepEqual((await request('POST', `${url}/event-subscribers/${id}`, { form: { subscribeChannels: 'sport', unsubscribeChannels: 'home' } })).json, {});
    t.deepEqual((await events.getSubscriptionInfo(id))?.channels, ['news', 'sport']);
    const bad = await fetch(`${url}/event-subscribers/${id}`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{"subscribeChannels":' });
    t.is(bad.status, 400, 'a malformed body is a 400, whichever side parsed it');
  });

  test(`${name}: the publish API works, and everything else is left to the app`, async (t) => {
    const { url, connect } = await start(t, host);
    const stream = await connect('?channels=home');
    const published = await request('POST', `${url}/event-publish`, { json: { to: { channel: 'home' }, selector: 'cmd.chat', message: 'hi' }, headers: { 'X-Api-Key': publishKey } });
    t.deepEqual(published.json, { published: true });
    t.is((await stream.next(only('cmd.chat', 'home'))).body, 'hi');
    t.is((await request('POST', `${url}/event-publish`, { json: {} })).status, 401);
    if (name === 'node:http' || name === 'express, body parser first') {
      const missing = await request('GET', `${url}/somewhere-else`);
      t.is(missing.status, 404, 'a bare server answers what is not a route with 404');
      return;
    }
    const health = await request('GET', `${url}/health`);
    t.deepEqual(health.json, { broker: 'memory', available: true }, "the app's own route answers");
    const announced = await request('POST', `${url}/announce`, { json: { text: 'from the app' } });
    t.deepEqual(announced.json, { announced: true });
    t.is((await stream.next(only('cmd.announce', 'home'))).body, 'from the app');
    t.is((await request('GET', `${url}/no-such-page`)).status, 404);
  });

  test(`${name}: a client that vanishes without closing its connection is detected, leaves, and its socket is released`, async (t) => {
    const { url, server, connect } = await start(t, host, { idleTimeoutMs: 800, heartbeatIntervalMs: 200, houseKeepingIntervalMs: 100 });
    const watcher = await connect('?channels=home');
    // The watcher heartbeats, as every ServiceStack client does; the vanished client will not.
    const beating = setInterval(() => void request('POST', watcher.connectArgs.heartbeatUrl!).catch(() => {}), 200);
    t.teardown(() => clearInterval(beating));
    const { port } = new URL(url);
    // A raw connection that opens a stream, then neither reads, heartbeats nor closes: a client whose
    // machine went away without a word (no FIN, no RST).
    const socket = net.connect(Number(port), '127.0.0.1');
    await once(socket, 'connect');
    socket.write('GET /event-stream?channels=home HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n');
    let received = '';
    socket.setEncoding('utf8');
    const onData = (chunk: string) => (received += chunk);
    socket.on('data', onData);
    // Watched from the start: a paused socket that has nothing left to read still sees the server's close.
    const closing = once(socket, 'close').then(() => true);
    const userIdOf = /cmd\.onConnect \{"userId":"(-?\w+)"/;
    while (!userIdOf.test(received)) await delay(20);
    const vanished = userIdOf.exec(received)![1]!;
    socket.pause();
    const connections = () => new Promise<number>((resolve) => server.getConnections((_e, count) => resolve(count)));
    t.true((await connections()) >= 2);

    const leave = await watcher.next((f) => f.selector === 'cmd.onLeave' && (f.body as { userId?: string }).userId === vanished, 8000);
    t.is(leave.channel, 'home', 'the others are told it left');
    t.deepEqual(
      (await request('GET', `${url}/event-subscribers?channels=home`)).json.map((m: { userId: string }) => m.userId),
      [watcher.connectArgs.userId],
      'and it is no longer listed',
    );
    socket.resume();
    const closed = await Promise.race([closing, delay(5000).then(() => false)]);
    t.true(closed, 'the server closed the connection rather than keep it for keep-alive');
    socket.destroy();
  });
}
