import test from 'ava';
import { ServerEventsClient as ServiceStackClient } from '@servicestack/client';
import { EventSource } from 'eventsource';
import { memoryClusters } from '../helpers/cluster.js';
import { collector } from '../helpers/collect.js';
import { CSharpClientReader, readAsCSharpClient } from '../helpers/csharp-reader.js';
import { delay, request, startServer } from '../helpers/server.js';
import { only, SseStream } from '../helpers/sse.js';

// @servicestack/client uses the browser's EventSource; Node needs a polyfill.
(globalThis as { EventSource?: unknown }).EventSource = EventSource;

/** Every block of a stream, split at its blank lines. */
const blocks = (raw: string) => raw.split('\n\n').slice(0, -1);

test('the model of the C# client flags what that client fails on, and takes well-formed frames', (t) => {
  const comment = readAsCSharpClient([{ text: 'id: 1\ndata: cmd.onConnect {}\n\n' }, { text: ':\n\n' }]);
  t.is(comment.exceptions.length, 1, 'a comment block is an event without data');
  const lone = readAsCSharpClient([{ text: ':\n' }]);
  t.is(lone.spins, 1, 'a read that ends after a comment line spins');
  const split = new CSharpClientReader();
  split.read('id: 1\ndata: cmd.chat {"a":');
  split.read('1}\n\n');
  t.deepEqual(split.events, [{ id: 1, data: 'cmd.chat {"a":1}' }]);
  t.deepEqual(split.exceptions, []);
  t.is(split.spins, 0);
});

test('a client that heartbeats is never sent a comment: a silent stream gets a cmd.onHeartbeat frame instead', async (t) => {
  const cluster = await memoryClusters.create();
  const heartbeatIntervalMs = 400;
  const server = await startServer(cluster, { events: { heartbeatIntervalMs }, http: { keepAliveIntervalMs: 120 } });
  t.teardown(() => server.close());
  const stream = await SseStream.open(`${server.url}/event-stream?channels=home`);
  t.teardown(() => stream.close());
  await stream.connected();

  // As ServiceStack's clients do: a heartbeat every interval, POST (ss-utils.js, @servicestack/client) or GET (C# on .NET 6+).
  const beats = 4;
  for (let i = 0; i < beats; i++) {
    await delay(heartbeatIntervalMs);
    t.is((await request(i % 2 === 0 ? 'POST' : 'GET', stream.connectArgs.heartbeatUrl!)).status, 200);
  }
  await delay(heartbeatIntervalMs);

  t.false(/^:/m.test(stream.raw), 'no comment line');
  t.true(blocks(stream.raw).every((block) => /^id: \d+\ndata: \S+ /.test(block)), 'every block is an id and a data line');
  const heartbeats = stream.frames.filter(only('cmd.onHeartbeat'));
  t.true(heartbeats.length > beats, `keep-alive frames between the heartbeats (${heartbeats.length} cmd.onHeartbeat for ${beats} heartbeats)`);
  t.deepEqual(heartbeats.at(-1)!.body, stream.frames.find(only('cmd.onJoin'))!.body, 'a keep-alive carries the same meta as a heartbeat echo');
  const csharp = readAsCSharpClient(stream.chunks);
  t.deepEqual(csharp.exceptions, []);
  t.is(csharp.spins, 0);
});

test('a client that has not heartbeated gets no comment before it could have, then whole comments that EventSource ignores', async (t) => {
  const cluster = await memoryClusters.create();
  const heartbeatIntervalMs = 300;
  const keepAliveIntervalMs = 100;
  const server = await startServer(cluster, { events: { heartbeatIntervalMs }, http: { keepAliveIntervalMs } });
  t.teardown(() => server.close());
  const opened = Date.now();
  const stream = await SseStream.open(`${server.url}/event-stream?channels=home`);
  t.teardown(() => stream.close());
  const messages: string[] = [];
  const source = new EventSource(`${server.url}/event-stream?channels=home`);
  source.onmessage = (event) => messages.push(event.data);
  t.teardown(() => source.close());
  await stream.connected();
  await delay(1000);

  const comments = stream.chunks.filter((chunk) => chunk.text.startsWith(':'));
  t.true(comments.length >= 3, `comments went out (${comments.length})`);
  t.true(comments[0]!.at - opened >= heartbeatIntervalMs + keepAliveIntervalMs - 20, `the first came ${comments[0]!.at - opened} ms after connecting`);
  t.true(stream.chunks.every((chunk) => chunk.text.endsWith('\n\n')), 'every write ends with its blank line');
  t.true(comments.every((chunk) => chunk.text === ':\n\n'));
  t.is(stream.frames.filter(only('cmd.onHeartbeat')).length, 0, 'no heartbeat it did not ask for');
  t.deepEqual(messages.map((m) => m.split(' ')[0]), ['cmd.onConnect', 'home@cmd.onJoin'], 'EventSource saw only the real events');
});

test('a stream with traffic gets no keep-alive, and 0 turns them off', async (t) => {
  const cluster = await memoryClusters.create();
  const busy = await startServer(cluster, { events: { heartbeatIntervalMs: 100 }, http: { keepAliveIntervalMs: 150 } });
  t.teardown(() => busy.close());
  const stream = await SseStream.open(`${busy.url}/event-stream?channels=home`);
  t.teardown(() => stream.close());
  await stream.connected();
  await request('POST', stream.connectArgs.heartbeatUrl!);
  for (let i = 0; i < 12; i++) {
    await busy.events.notifyChannel('home', 'cmd.tick', i);
    await delay(50);
  }
  await stream.count(only('cmd.tick'), 12);
  t.is(stream.frames.filter(only('cmd.onHeartbeat')).length, 1, 'only the echo of the one heartbeat');

  const off = await startServer(cluster, { events: { heartbeatIntervalMs: 20 }, http: { keepAliveIntervalMs: 0 } });
  t.teardown(() => off.close());
  const quiet = await SseStream.open(`${off.url}/event-stream?channels=home`);
  t.teardown(() => quiet.close());
  await quiet.connected();
  await delay(300);
  t.deepEqual(quiet.frames.map((f) => f.selector), ['cmd.onConnect', 'cmd.onJoin']);
  t.false(quiet.raw.includes(':\n'));
});

test('ServiceStack\'s TypeScript client, heartbeating, sees keep-alives only as heartbeats and raises nothing', async (t) => {
  const cluster = await memoryClusters.create();
  const server = await startServer(cluster, { events: { heartbeatIntervalMs: 300 }, http: { keepAliveIntervalMs: 80 } });
  t.teardown(() => server.close());
  const heartbeats = collector<unknown>();
  const messages: string[] = [];
  const errors: unknown[] = [];
  const client = new ServiceStackClient(server.url, ['home'], {
    handlers: { onHeartbeat: heartbeats.push, onMessage: (message: { selector: string }) => messages.push(message.selector) },
    onException: (error: unknown) => errors.push(error),
  });
  client.start();
  t.teardown(() => void client.stop());
  await heartbeats.atLeast(6, 5000);
  await server.events.notifyChannel('home', 'cmd.chat', 'hi');
  while (!messages.includes('cmd.chat')) await delay(20);
  t.deepEqual(errors, []);
  t.deepEqual(messages, ['cmd.chat'], 'keep-alives never reach onMessage');
});

test('the wait before a first comment follows the heartbeat interval the client was told, even when a hook changed it', async (t) => {
  const cluster = await memoryClusters.create();
  const server = await startServer(cluster, {
    events: { heartbeatIntervalMs: 100 },
    http: {
      keepAliveIntervalMs: 100,
      onConnect: (_sub, connectArgs) => {
        connectArgs.heartbeatIntervalMs = '1000';
      },
    },
  });
  t.teardown(() => server.close());
  const opened = Date.now();
  const stream = await SseStream.open(`${server.url}/event-stream?channels=home`);
  t.teardown(() => stream.close());
  await stream.connected();
  t.is(stream.connectArgs.heartbeatIntervalMs, '1000');
  await delay(1300);
  const first = stream.chunks.find((chunk) => chunk.text.startsWith(':'));
  t.truthy(first, 'a client that never heartbeats still gets comments');
  t.true(first!.at - opened >= 1100 - 20, `not before 1000 + 100 ms (after ${first!.at - opened} ms)`);
});

test('keep-alives start with the stream, not after a slow onSubscribe hook', async (t) => {
  const cluster = await memoryClusters.create();
  const server = await startServer(cluster, {
    events: { heartbeatIntervalMs: 50, onSubscribe: async () => void (await delay(800)) },
    http: { keepAliveIntervalMs: 100 },
  });
  t.teardown(() => server.close());
  const stream = await SseStream.open(`${server.url}/event-stream?channels=home`);
  t.teardown(() => stream.close());
  await stream.connected();
  await delay(500);
  t.false(stream.frames.some(only('cmd.onJoin')), 'the hook is still running');
  t.true(stream.chunks.some((chunk) => chunk.text === ':\n\n'), 'yet the stream is kept alive');
});
