import test from 'ava';
import { Slots } from '../src/limited.js';
import { memoryClusters } from './helpers/cluster.js';
import { delay, startServer } from './helpers/server.js';
import { SseStream } from './helpers/sse.js';

test('slots run at most their limit at once, the rest in the order they came; a failure frees its slot', async (t) => {
  const slots = new Slots(2);
  let running = 0;
  let most = 0;
  const order: number[] = [];
  const job = (n: number, fails = false) =>
    slots.run(async () => {
      running++;
      most = Math.max(most, running);
      order.push(n);
      await delay(20);
      running--;
      if (fails) throw new Error(`job ${n} failed`);
      return n;
    });
  const results = await Promise.allSettled([job(1), job(2, true), job(3), job(4), job(5)]);
  t.is(most, 2);
  t.deepEqual(order, [1, 2, 3, 4, 5]);
  t.deepEqual(results.map((r) => r.status), ['fulfilled', 'rejected', 'fulfilled', 'fulfilled', 'fulfilled']);
  t.is(await job(6), 6, 'every slot came back');
});

test('streams register at most maxRegistrationsInFlight at a time; one whose client left while it waited is never registered', async (t) => {
  const cluster = await memoryClusters.create();
  const broker = cluster.broker();
  let writing = 0;
  let most = 0;
  const put = broker.presence.put.bind(broker.presence);
  broker.presence.put = async (...args) => {
    writing++;
    most = Math.max(most, writing);
    await delay(150);
    writing--;
    return put(...args);
  };
  const server = await startServer(cluster, { events: { broker, maxRegistrationsInFlight: 1 } });
  t.teardown(() => server.close());

  const opening = [SseStream.open(`${server.url}/event-stream?channels=a`), SseStream.open(`${server.url}/event-stream?channels=b`)];
  // A third waits its turn behind the first two, and its client goes away meanwhile.
  const gone = new AbortController();
  const third = fetch(`${server.url}/event-stream?channels=c`, { signal: gone.signal }).catch(() => undefined);
  await delay(50);
  gone.abort();
  await third;
  const streams = await Promise.all(opening);
  t.teardown(() => streams.forEach((s) => s.close()));
  await Promise.all(streams.map((s) => s.connected()));
  await delay(400);
  t.is(most, 1, 'one registration wrote to the broker at a time');
  const channels = (await server.events.getAllSubscriptionInfos()).flatMap((info) => info.channels).sort();
  t.deepEqual(channels, ['a', 'b'], 'the stream whose client left while waiting was never registered');
});

test('maxRegistrationsInFlight must be a whole number, at least 1', async (t) => {
  const { ServerEvents } = await import('../src/server-events.js');
  t.throws(() => new ServerEvents({ maxRegistrationsInFlight: 0 }), { message: 'maxRegistrationsInFlight must be a whole number, at least 1, not 0' });
  t.throws(() => new ServerEvents({ maxRegistrationsInFlight: 1.5 }), { instanceOf: RangeError });
});
