/**
 * server-events as a benchmark server: the Koa middleware (or, with
 * MOUNT=http, the node:http handler) on the broker that BROKER, REDIS_URL or
 * NATS_URL name, exactly as an application mounts it.
 * Presence notifications are off because no other system here sends them
 * (PRESENCE=1 turns them on, for the scale scenario), the idle timeout is
 * long because the load generator sends no heartbeats, and the stream limits
 * are lifted because every subscriber comes from one address (the others
 * have no such limits).
 *
 * It runs the package as built (`dist/`, by `npm run build`, which
 * `npm run bench` runs first), as an application installs it: the sources
 * run through tsx would be measured with what tsx adds, such as a property
 * defined on every function a request makes, to keep its name.
 */
import http from 'node:http';
import Koa from 'koa';
import { brokerFromEnv, ignoreClientDisconnects, ServerEvents, serverEventsHandler, serverEventsMiddleware } from '../../dist/src/index.js';
import { internalsOf } from '../../dist/src/internals.js';
import { portOf, serveCommands } from './control.js';

const rooms = Number(process.env.ROOMS ?? 0);
const events = new ServerEvents({
  broker: await brokerFromEnv(),
  notifyChannelOfSubscriptions: process.env.PRESENCE === '1',
  idleTimeoutMs: 60 * 60_000,
  houseKeepingIntervalMs: Number(process.env.HOUSEKEEPING_MS || 5000),
});
await events.start();
const limits = { maxStreams: Infinity, maxStreamsPerAddress: Infinity };
// MOUNT=http: on a bare node:http server through serverEventsHandler, as Express, Fastify or plain node apps mount it.
const server = process.env.MOUNT === 'http' ? http.createServer(serverEventsHandler(events, limits)) : koaServer();
function koaServer(): http.Server {
  const app = new Koa();
  ignoreClientDisconnects(app);
  app.use(serverEventsMiddleware(events, limits));
  return http.createServer(app.callback());
}
server.listen(0, '127.0.0.1', () => {
  serveCommands(
    portOf(server),
    // ROOMS=N spreads the ticks over N channels, room.0 … room.N-1, by their number (the storm scenario).
    (tick) => events.notifyChannel(rooms > 0 ? `room.${tick.seq % rooms}` : 'bench', 'cmd.tick', tick),
    () => events.stats(),
    async (userId) => (await events.getSubscriptionInfosByUserId(userId)).length,
    async () => {
      const held = internalsOf(events).delivery.all();
      for (const sub of held) await events.pulse(sub.id);
      return held.length;
    },
  );
});
