/**
 * Graceful shutdown with real processes: SIGTERM takes a server out of the
 * cluster without losing anything, and the process exits on its own.
 */
import test from 'ava';
import { ServerEventsClient } from '../../src/client/index.js';
import { findBinary, startRedis, startServerProcess } from '../helpers/processes.js';
import { delay, request } from '../helpers/server.js';
import { only, SseStream } from '../helpers/sse.js';

const binary = findBinary('redis-server');
const withRedis = binary || process.env.CI === 'true' ? test : test.skip;

withRedis('SIGTERM closes the streams, announces the leaves, removes the records and exits 0; a client carries on at the other server', async (t) => {
  t.truthy(binary, 'redis-server is installed');
  const redis = await startRedis(binary!);
  t.teardown(() => redis.dispose());
  const leaving = await startServerProcess('redis', redis.url, 'shutdown');
  const staying = await startServerProcess('redis', redis.url, 'shutdown');
  t.teardown(() => [leaving, staying].forEach((server) => server.kill()));

  const watcher = await SseStream.open(`${staying.url}/event-stream?channels=home`);
  const doomed = await SseStream.open(`${leaving.url}/event-stream?channels=home`);
  t.teardown(() => [watcher, doomed].forEach((stream) => stream.close()));
  await watcher.connected();
  await doomed.connected();
  const received: number[] = [];
  const client = new ServerEventsClient([leaving.url, staying.url], ['home'], {
    reconnectDelayMs: 100,
    maxReconnectDelayMs: 300,
    handlers: { msg: (n: number) => received.push(n) },
  });
  t.teardown(() => client.stop());
  await client.connect();
  await request('POST', `${leaving.url}/test/publish?channel=home&count=3`);
  while (received.length < 3) await delay(20);

  const exited = new Promise<number | null>((resolve) => leaving.child.once('exit', (code) => resolve(code)));
  leaving.child.kill('SIGTERM');
  t.is(await exited, 0, 'the process exits on its own, with 0');
  await doomed.closed();
  const left = await watcher.next((f) => f.selector === 'cmd.onLeave' && (f.body as Record<string, string>).userId === doomed.connectArgs.userId);
  t.is(left.channel, 'home');

  // The client reconnects to the other server; what is published there reaches it.
  await request('POST', `${staying.url}/test/publish?channel=home&count=2`);
  while (received.length < 5) await delay(20);
  t.deepEqual(received, [0, 1, 2, 0, 1]);

  const listed = (await request('GET', `${staying.url}/event-subscribers`)).json as Array<Record<string, string>>;
  t.false(
    listed.some((meta) => meta.userId === doomed.connectArgs.userId),
    'no record of the stopped server is left',
  );
  t.is(watcher.frames.filter(only('cmd.onLeave')).filter((f) => (f.body as Record<string, string>).userId === doomed.connectArgs.userId).length, 1);
});

test('once stop() has begun, a new stream is refused with 503 so that none is left behind', async (t) => {
  const { memoryClusters } = await import('../helpers/cluster.js');
  const { startServer } = await import('../helpers/server.js');
  const server = await startServer(await memoryClusters.create());
  t.teardown(() => server.close());
  const stopping = server.events.stop();
  const refused = await request('GET', `${server.url}/event-stream?channels=home`);
  t.is(refused.status, 503);
  t.is(refused.statusText, 'This server is shutting down; try another');
  await stopping;
});

withRedis('SIGTERM with the broker gone still ends the process within the shutdown bound', async (t) => {
  const redis = await startRedis(binary!);
  t.teardown(() => redis.dispose());
  const server = await startServerProcess('redis', redis.url, 'brokerless');
  t.teardown(() => server.kill());
  const stream = await SseStream.open(`${server.url}/event-stream?channels=home`);
  t.teardown(() => stream.close());
  await stream.connected();
  await redis.kill();

  const exited = new Promise<number | null>((resolve) => server.child.once('exit', (code) => resolve(code)));
  const sentAt = Date.now();
  server.child.kill('SIGTERM');
  const code = await exited;
  t.log(`exited with ${code} after ${Date.now() - sentAt} ms`);
  t.is(code, 0, 'it finished its shutdown, rather than being cut off by the 10 s bound (exit 1)');
  await stream.closed();
});
