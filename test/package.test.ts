import { execFile } from 'node:child_process';
import type { AddressInfo } from 'node:net';
import { promisify } from 'node:util';
import test from 'ava';
import Koa from 'koa';

// Imported by the package name, so these go through package.json's `exports`
// map to the built `dist/` (`npm test` builds it first), as a user's code would.
const library = await import('server-events');
const client = await import('server-events/client');

const run = promisify(execFile);

/** The CommonJS modules (ioredis and nats.js are CommonJS) that importing `entry` loads, in a fresh process. */
async function modulesLoadedBy(entry: string): Promise<string[]> {
  const script = `import ${JSON.stringify(entry)}; import { createRequire } from 'node:module'; console.log(JSON.stringify(Object.keys(createRequire(import.meta.url).cache)));`;
  const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script]);
  return JSON.parse(stdout) as string[];
}

const brokerClients = /node_modules\/(ioredis|@nats-io)\//;

test('importing the package root loads no broker client library; the adapter entries do', async (t) => {
  const root = await modulesLoadedBy('server-events');
  t.deepEqual(root.filter((path) => brokerClients.test(path)), [], 'neither ioredis nor @nats-io/*');
  t.true((await modulesLoadedBy('server-events/adapters/redis')).some((path) => /node_modules\/ioredis\//.test(path)), 'the check sees ioredis when it is loaded');
  t.true((await modulesLoadedBy('server-events/adapters/nats')).some((path) => /node_modules\/@nats-io\//.test(path)));
});

test('the package exports the server, the memory broker, the HTTP side and the client; Redis and NATS have their own entries', async (t) => {
  for (const name of ['ServerEvents', 'MemoryBroker', 'serverEventsMiddleware', 'ServerEventsClient', 'brokerFromEnv', 'createBroker', 'corsMiddleware']) {
    t.is(typeof (library as Record<string, unknown>)[name], 'function', name);
  }
  t.false('RedisBroker' in library, 'the root does not carry the Redis adapter');
  const { RedisBroker } = await import('server-events/adapters/redis');
  const { NatsBroker } = await import('server-events/adapters/nats');
  t.is(typeof RedisBroker, 'function');
  t.is(typeof NatsBroker, 'function');
  t.is((await library.createBroker('redis', { url: 'redis://127.0.0.1:1' })).name, 'redis', 'createBroker loads an adapter when asked');
  t.is(typeof client.ServerEventsClient, 'function');
});

test('the README example works against the built package', async (t) => {
  const { ServerEvents, MemoryBroker, serverEventsMiddleware, ignoreClientDisconnects } = library;
  const events = new ServerEvents({ broker: new MemoryBroker() });
  await events.start();
  const app = new Koa();
  ignoreClientDisconnects(app);
  app.use(serverEventsMiddleware(events));
  const server = app.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  t.teardown(async () => {
    await events.stop();
    server.closeAllConnections();
    server.close();
  });

  const chats: unknown[] = [];
  const subscriber = new client.ServerEventsClient(`http://127.0.0.1:${(server.address() as AddressInfo).port}`, ['home'], {
    handlers: { chat: (body: unknown) => chats.push(body) },
  });
  t.teardown(() => subscriber.stop());
  await subscriber.connect();
  await events.notifyChannel('home', 'cmd.chat', { message: 'Hello' });
  for (let i = 0; i < 50 && chats.length === 0; i++) await new Promise((r) => setTimeout(r, 20));
  t.deepEqual(chats, [{ message: 'Hello' }]);
});
