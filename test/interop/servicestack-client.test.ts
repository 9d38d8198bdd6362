import test from 'ava';
import { ServerEventsClient as ServiceStackClient } from '@servicestack/client';
import { EventSource } from 'eventsource';
import { memoryClusters } from '../helpers/cluster.js';
import { collector } from '../helpers/collect.js';
import { startServer } from '../helpers/server.js';

// @servicestack/client uses the browser's EventSource; Node needs a polyfill.
(globalThis as { EventSource?: unknown }).EventSource = EventSource;

test('the real @servicestack/client connects, joins, heartbeats, subscribes, lists, receives and unregisters', async (t) => {
  const cluster = await memoryClusters.create();
  const server = await startServer(cluster, { events: { heartbeatIntervalMs: 200 } });
  t.teardown(() => server.close());

  const connected = collector<any>();
  const joined = collector<any>();
  const heartbeat = collector<any>();
  const chat = collector<any>();
  const watched = collector<any>();
  const triggered = collector<any>();
  const errors: unknown[] = [];
  const client = new ServiceStackClient(server.url, ['home'], {
    handlers: {
      onConnect: connected.push,
      onJoin: joined.push,
      onHeartbeat: heartbeat.push,
      chat: (body: unknown) => chat.push(body),
    },
    receivers: { tv: { watch: (url: string) => watched.push(url) } },
    onException: (e: unknown) => errors.push(e),
  });
  client.addListener('customEvent', (request: any) => triggered.push(request.body));
  client.start();
  t.teardown(() => void client.stop());

  const info = (await connected.atLeast(1))[0];
  t.regex(info.id, /^[A-Za-z0-9]{20}$/);
  t.is(info.heartbeatIntervalMs, 200, 'the client parsed the all-string interval');
  t.is(info.channels, 'home');
  const join = (await joined.atLeast(1))[0];
  t.is(join.channel, 'home');
  t.is(join.userId, info.userId);
  await heartbeat.atLeast(1);

  await client.subscribeToChannels('news');
  t.deepEqual((await server.events.getSubscriptionInfo(info.id))?.channels, ['home', 'news']);
  t.deepEqual(client.channels, ['home', 'news']);

  const users = await client.getChannelSubscribers();
  t.is(users.length, 1);
  t.is(users[0]!.userId, info.userId);
  t.deepEqual(users[0]!.channels, ['home', 'news']);

  await server.events.notifyChannel('news', 'cmd.chat', { message: 'hello' });
  t.deepEqual((await chat.atLeast(1))[0], { message: 'hello' });
  await server.events.notifyAll('tv.watch', 'https://example.test/v');
  t.is((await watched.atLeast(1))[0], 'https://example.test/v');
  await server.events.notifyAll('trigger.customEvent', 'arg');
  t.is((await triggered.atLeast(1))[0], 'arg');

  await client.stop();
  t.is(await server.events.getSubscriptionInfo(info.id), undefined, 'stop() unregistered the subscription');
  t.deepEqual(errors, []);
});
