import test from 'ava';
import { ServerEventsClient as ServiceStackClient } from '@servicestack/client';
import { EventSource } from 'eventsource';
import { memoryClusters } from './helpers/cluster.js';
import { startServer } from './helpers/server.js';

// @servicestack/client uses the browser's EventSource; Node needs a polyfill.
(globalThis as { EventSource?: unknown }).EventSource = EventSource;

/** Resolves the first time `register` hands it a value that passes `match`. */
function waiter<T>(match: (value: T) => boolean = () => true) {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  const seen: T[] = [];
  return {
    promise,
    seen,
    register: (value: T) => {
      seen.push(value);
      if (match(value)) resolve(value);
    },
  };
}

test('the real @servicestack/client connects, joins, heartbeats, subscribes, lists, receives and unregisters', async (t) => {
  const cluster = await memoryClusters.create();
  const server = await startServer(cluster, { events: { heartbeatIntervalMs: 200 } });
  t.teardown(() => server.close());

  const connected = waiter<any>();
  const joined = waiter<any>();
  const heartbeat = waiter<any>();
  const chat = waiter<any>();
  const watched = waiter<any>();
  const triggered = waiter<any>();
  const errors: unknown[] = [];
  const client = new ServiceStackClient(server.url, ['home'], {
    handlers: {
      onConnect: connected.register,
      onJoin: joined.register,
      onHeartbeat: heartbeat.register,
      chat: (body: unknown) => chat.register(body),
    },
    receivers: { tv: { watch: (url: string) => watched.register(url) } },
    onException: (e: unknown) => errors.push(e),
  });
  client.addListener('customEvent', (request: any) => triggered.register(request.body));
  client.start();
  t.teardown(() => void client.stop());

  const info = await connected.promise;
  t.regex(info.id, /^[A-Za-z0-9]{20}$/);
  t.is(info.heartbeatIntervalMs, 200, 'the client parsed the all-string interval');
  t.is(info.channels, 'home');
  const join = await joined.promise;
  t.is(join.channel, 'home');
  t.is(join.userId, info.userId);
  await heartbeat.promise;

  await client.subscribeToChannels('news');
  t.deepEqual((await server.events.getSubscriptionInfo(info.id))?.channels, ['home', 'news']);
  t.deepEqual(client.channels, ['home', 'news']);

  const users = await client.getChannelSubscribers();
  t.is(users.length, 1);
  t.is(users[0]!.userId, info.userId);
  t.deepEqual(users[0]!.channels, ['home', 'news']);

  await server.events.notifyChannel('news', 'cmd.chat', { message: 'hello' });
  t.deepEqual(await chat.promise, { message: 'hello' });
  await server.events.notifyAll('tv.watch', 'https://example.test/v');
  t.is(await watched.promise, 'https://example.test/v');
  await server.events.notifyAll('trigger.customEvent', 'arg');
  t.is(await triggered.promise, 'arg');

  await client.stop();
  t.is(await server.events.getSubscriptionInfo(info.id), undefined, 'stop() unregistered the subscription');
  t.deepEqual(errors, []);
});
