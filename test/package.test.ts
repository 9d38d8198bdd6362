import type { AddressInfo } from 'node:net';
import test from 'ava';
import Koa from 'koa';

// Imported by the package name, so these go through package.json's `exports`
// map to the built `dist/` (npm install builds it), as a user's code would.
const library = await import('server-events');
const client = await import('server-events/client');

test('the package exports the server, the brokers and the client, with the README example working', async (t) => {
  for (const name of ['ServerEvents', 'MemoryBroker', 'RedisBroker', 'NatsBroker', 'serverEventsMiddleware', 'ServerEventsClient', 'brokerFromEnv']) {
    t.is(typeof (library as Record<string, unknown>)[name], 'function', name);
  }
  t.is(typeof client.ServerEventsClient, 'function');

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
