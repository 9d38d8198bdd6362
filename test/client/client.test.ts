import test from 'ava';
import { ServerEventsClient, type ReceivedMessage } from '../../src/client/index.js';
import { memoryClusters } from '../helpers/cluster.js';
import { collector } from '../helpers/collect.js';
import { request, startServer, type TestServerOptions } from '../helpers/server.js';

async function server(t: import('ava').ExecutionContext, options: TestServerOptions = {}) {
  const s = await startServer(await memoryClusters.create(), options);
  t.teardown(() => s.close());
  return s;
}

test('connects, dispatches lifecycle handlers, cmd handlers, receivers, triggers and onMessage', async (t) => {
  const s = await server(t);
  const joins = collector<ReceivedMessage>();
  const chats = collector<unknown>();
  const messages = collector<ReceivedMessage>();
  const tv = collector<unknown>();
  const triggers = collector<unknown>();
  const fallbacks = collector<string>();
  const client = new ServerEventsClient(s.url, ['home'], {
    handlers: { onJoin: joins.push, chat: chats.push, onMessage: messages.push },
    receivers: { tv: { watch: tv.push }, doc: { noSuchMethod: (target: string) => fallbacks.push(target) } },
  });
  client.addListener('customEvent', triggers.push);
  t.teardown(() => client.stop());

  const info = await client.connect();
  t.regex(info.id, /^[A-Za-z0-9]{20}$/);
  t.is(info.heartbeatIntervalMs, 10000);
  t.is((await joins.atLeast(1))[0]!.channel, 'home');

  await s.events.notifyChannel('home', 'cmd.chat', { text: 'hi' });
  await s.events.notifyAll('tv.watch', 'https://example.test/v');
  await s.events.notifyAll('trigger.customEvent', 'arg');
  await s.events.notifyAll('doc.unknownMember', 1);
  t.deepEqual(await chats.atLeast(1), [{ text: 'hi' }]);
  t.deepEqual(await tv.atLeast(1), ['https://example.test/v']);
  t.deepEqual(await triggers.atLeast(1), ['arg']);
  t.deepEqual(await fallbacks.atLeast(1), ['unknownMember']);
  const seen = await messages.atLeast(4);
  t.deepEqual(seen.map((m) => m.selector), ['cmd.chat', 'tv.watch', 'trigger.customEvent', 'doc.unknownMember']);
  t.true(seen.every((m) => Number.isInteger(m.eventId) && m.eventId > 1));
});

test('sends heartbeats on the server\'s interval and gets cmd.onHeartbeat back', async (t) => {
  const s = await server(t, { events: { heartbeatIntervalMs: 100 } });
  const beats = collector<ReceivedMessage>();
  const client = new ServerEventsClient(s.url, ['home'], { handlers: { onHeartbeat: beats.push } });
  t.teardown(() => client.stop());
  await client.connect();
  const got = await beats.atLeast(2);
  t.is((got[0]!.body as Record<string, string>).channels, 'home');
});

test('subscribes, unsubscribes and lists channel subscribers', async (t) => {
  const s = await server(t);
  const a = new ServerEventsClient(s.url, ['home']);
  const b = new ServerEventsClient(s.url, ['home', 'other']);
  t.teardown(async () => {
    await a.stop();
    await b.stop();
  });
  const infoA = await a.connect();
  const infoB = await b.connect();
  await a.subscribeToChannels('news');
  await a.unsubscribeFromChannels('home');
  t.deepEqual(a.channels, ['news']);
  t.deepEqual((await s.events.getSubscriptionInfo(infoA.id))?.channels, ['news']);
  const users = await b.getChannelSubscribers();
  t.deepEqual(users.map((u) => u.userId), [infoB.userId]);
  t.deepEqual(users[0]!.channels, ['home', 'other']);
  t.is(users[0]!.meta.isAuthenticated, 'false');
});

test('stop() unregisters, and its channel sees the leave', async (t) => {
  const s = await server(t);
  const leaves = collector<ReceivedMessage>();
  const watcher = new ServerEventsClient(s.url, ['home'], { handlers: { onLeave: leaves.push } });
  t.teardown(() => watcher.stop());
  await watcher.connect();
  const leaver = new ServerEventsClient(s.url, ['home']);
  const info = await leaver.connect();
  await leaver.stop();
  t.is(await s.events.getSubscriptionInfo(info.id), undefined);
  const [leave] = await leaves.atLeast(1);
  t.is((leave!.body as Record<string, string>).userId, info.userId);
});

test('reconnects with back-off after the server ends the stream, keeping its updated channels', async (t) => {
  const s = await server(t);
  const reconnects = collector<unknown>();
  const connects = collector<string>();
  const client = new ServerEventsClient(s.url, ['home'], {
    reconnectDelayMs: 50,
    handlers: { onReconnect: reconnects.push, onConnect: (info) => connects.push(info.id) },
  });
  t.teardown(() => client.stop());
  const first = await client.connect();
  await client.subscribeToChannels('extra');
  await request('POST', first.unRegisterUrl!);
  const [, second] = await connects.atLeast(2);
  t.not(second, first.id);
  t.is(reconnects.values.length, 1);
  t.deepEqual((await s.events.getSubscriptionInfo(second!))?.channels, ['home', 'extra']);
});

test('a refused stream is retried until it is accepted', async (t) => {
  let refuse = 2;
  const s = await server(t, {
    http: {
      onInit: (ctx) => {
        if (refuse-- > 0) ctx.throw(503, 'Not yet');
      },
    },
  });
  const errors = collector<unknown>();
  const client = new ServerEventsClient(s.url, ['home'], { reconnectDelayMs: 20, handlers: { onException: errors.push } });
  t.teardown(() => client.stop());
  await client.connect();
  t.is(errors.values.length, 2);
  t.regex(String(errors.values[0]), /503/);
});

test('fails over to the next server, resumes its subscription and gets what it missed, once', async (t) => {
  const cluster = await memoryClusters.create();
  const a = await startServer(cluster);
  const b = await startServer(cluster);
  t.teardown(async () => {
    await a.close();
    await b.close();
  });
  const got = collector<unknown>();
  const resets = collector<unknown>();
  const client = new ServerEventsClient([a.url, b.url], ['home'], {
    reconnectDelayMs: 50,
    handlers: { msg: got.push, onReset: resets.push },
  });
  t.teardown(() => client.stop());
  const first = await client.connect();
  await b.events.notifyChannel('home', 'cmd.msg', 1);
  await got.atLeast(1);
  a.cut();
  for (let i = 2; i <= 20; i++) await b.events.notifyChannel('home', 'cmd.msg', i);
  const values = await got.atLeast(20);
  t.is(client.baseUrl, b.url);
  t.is(client.subscriptionId, first.id, 'the same subscription');
  t.deepEqual(values, Array.from({ length: 20 }, (_, i) => i + 1));
  t.deepEqual(resets.values, []);
});

test('onReset is called when the server cannot replay', async (t) => {
  const s = await server(t);
  const resets = collector<{ reason: string }>();
  const client = new ServerEventsClient(s.url, ['home'], {
    headers: { 'Last-Event-ID': '5' },
    handlers: { onReset: resets.push },
  });
  t.teardown(() => client.stop());
  await client.connect();
  const [reset] = await resets.atLeast(1);
  t.regex(reset!.reason, /no longer kept/);
});
