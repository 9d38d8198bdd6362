/**
 * server-events as the soak runs it: Redis from REDIS_URL, presence
 * notifications on, short timers from the environment (IDLE_TIMEOUT_MS,
 * HEARTBEAT_MS, HOUSEKEEPING_MS) so that abandoned subscriptions expire
 * within the run. Each tick goes to the `steady` channel and to one of ten
 * rooms that the churning clients move between.
 */
import Koa from 'koa';
import { brokerFromEnv, createLogger, ignoreClientDisconnects, ServerEvents, serverEventsMiddleware } from '../../src/index.js';
import { portOf, serveCommands } from './control.js';

const events = new ServerEvents({
  broker: await brokerFromEnv(),
  logger: process.env.LOG_LEVEL ? createLogger() : undefined,
  idleTimeoutMs: Number(process.env.IDLE_TIMEOUT_MS ?? 10_000),
  heartbeatIntervalMs: Number(process.env.HEARTBEAT_MS ?? 3_000),
  houseKeepingIntervalMs: Number(process.env.HOUSEKEEPING_MS ?? 2_000),
});
await events.start();
const app = new Koa();
ignoreClientDisconnects(app);
app.use(serverEventsMiddleware(events, { maxStreamsPerAddress: Infinity }));
const server = app.listen(0, '127.0.0.1', () => {
  serveCommands(portOf(server), async (tick) => {
    await events.notifyChannel('steady', 'cmd.tick', tick);
    await events.notifyChannel(`room-${tick.seq % 10}`, 'cmd.tick', tick);
  }, () => events.stats());
});
