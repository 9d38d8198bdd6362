/**
 * Every documented limit: the right status, a one-line message, and nothing
 * lost for anyone else.
 */
import test from 'ava';
import { PayloadTooLargeError } from '../../src/arguments.js';
import { memoryClusters } from '../helpers/cluster.js';
import { delay, request, startServer, type TestServerOptions } from '../helpers/server.js';
import { only, SseStream } from '../helpers/sse.js';

async function server(t: import('ava').ExecutionContext, options: TestServerOptions = {}) {
  const cluster = await memoryClusters.create();
  const started = await startServer(cluster, options);
  t.teardown(() => started.close());
  return started;
}

async function open(t: import('ava').ExecutionContext, url: string, headers: Record<string, string> = {}) {
  const stream = await SseStream.open(url, headers);
  t.teardown(() => stream.close());
  return stream;
}

test('channels per subscription: more than 64 is 400, on connect and on update', async (t) => {
  const { url, events } = await server(t);
  const many = Array.from({ length: 65 }, (_, i) => `c${i}`);
  const refused = await request('GET', `${url}/event-stream?channels=${many.join(',')}`);
  t.is(refused.status, 400);
  t.is(refused.statusText, 'Too many channels: at most 64');
  const stream = await open(t, `${url}/event-stream?channels=${many.slice(0, 64).join(',')}`);
  await stream.connected();
  const update = await request('POST', stream.connectArgs.updateSubscriberUrl!, { form: { SubscribeChannels: 'one-more' } });
  t.is(update.status, 400);
  await t.throwsAsync(events.subscribeToChannels(stream.id, ['one-more']), { message: 'Too many channels: at most 64' });
  t.is((await events.getSubscriptionInfo(stream.id))?.channels.length, 64);
});

test('channel names over 128 characters and names from authenticate with control characters are 400', async (t) => {
  const { url } = await server(t, { http: { authenticate: (ctx) => ({ userId: '7', userName: ctx.get('X-Name') }) } });
  const long = await request('GET', `${url}/event-stream?channels=${'x'.repeat(129)}`);
  t.is(long.status, 400);
  t.is(long.statusText, 'channel name is longer than 128 characters');
  const bad = await request('GET', `${url}/event-stream?channels=a`, { headers: { 'X-Name': 'eve\tmallory' } });
  t.is(bad.status, 400);
  t.is(bad.statusText, 'userName contains a control character');
  const fine = await open(t, `${url}/event-stream?channels=${'x'.repeat(128)}`, { 'X-Name': 'eve' });
  await fine.connected();
});

test('a message over maxMessageBytes is refused with PayloadTooLargeError before anything is sent; the next one arrives', async (t) => {
  const { url, events } = await server(t, { events: { maxMessageBytes: 1000 } });
  const stream = await open(t, `${url}/event-stream?channels=home`);
  await stream.connected();
  const error = await t.throwsAsync(events.notifyChannel('home', 'cmd.big', 'x'.repeat(1000)), { instanceOf: PayloadTooLargeError });
  t.is(error?.status, 413);
  t.is(error?.message, 'message of 1002 bytes is over the limit of 1000');
  await t.throwsAsync(events.notifyAll('cmd.big', 'y'.repeat(2000)), { instanceOf: PayloadTooLargeError });
  await t.throwsAsync(events.notifyUserId('-1', 'cmd.big', 'z'.repeat(2000)), { instanceOf: PayloadTooLargeError });
  await events.notifyChannel('home', 'cmd.small', 'ok');
  await stream.next(only('cmd.small'));
  t.false(stream.frames.some(only('cmd.big')));
});

test('a POST body over the limit is 413', async (t) => {
  const { url } = await server(t);
  const stream = await open(t, `${url}/event-stream?channels=home`);
  await stream.connected();
  const big = await request('POST', stream.connectArgs.updateSubscriberUrl!, { json: { SubscribeChannels: 'a', Padding: 'x'.repeat(70 * 1024) } });
  t.is(big.status, 413);
});

test('maxStreams: past it 503 with Retry-After; a closed stream gives its place back', async (t) => {
  const { url } = await server(t, { http: { maxStreams: 2 } });
  const first = await open(t, `${url}/event-stream?channels=a`);
  const second = await open(t, `${url}/event-stream?channels=a`);
  await Promise.all([first.connected(), second.connected()]);
  const full = await request('GET', `${url}/event-stream?channels=a`);
  t.is(full.status, 503);
  t.is(full.headers.get('retry-after'), '5');
  first.close();
  // The place comes back when the server sees the close; try until it has.
  for (let attempt = 0; attempt < 100; attempt++) {
    const next = await open(t, `${url}/event-stream?channels=a`);
    if (next.status === 200) {
      await next.connected();
      return t.pass();
    }
    await delay(20);
  }
  t.fail('no place came free after a stream closed');
});

test('maxStreamsPerAddress: past it 429 for that address only', async (t) => {
  const { url } = await server(t, { proxy: true, http: { maxStreamsPerAddress: 2 } });
  const from = (address: string) => ({ 'X-Forwarded-For': address });
  await (await open(t, `${url}/event-stream`, from('10.0.0.1'))).connected();
  await (await open(t, `${url}/event-stream`, from('10.0.0.1'))).connected();
  const third = await request('GET', `${url}/event-stream`, { headers: from('10.0.0.1') });
  t.is(third.status, 429);
  t.is(third.statusText, 'Too many streams from one address (at most 2)');
  await (await open(t, `${url}/event-stream`, from('10.0.0.2'))).connected();
});

test('a query string over 4,096 characters is 414 on every route', async (t) => {
  const { url } = await server(t);
  for (const path of ['/event-stream', '/event-heartbeat', '/event-subscribers', '/api/GetEventSubscribers']) {
    const reply = await request('GET', `${url}${path}?channels=${'a'.repeat(4100)}`);
    t.is(reply.status, 414, path);
  }
});
