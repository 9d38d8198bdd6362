/**
 * Server Events inside a Fastify app. An `onRequest` hook hands the
 * routes' requests to the node:http handler before Fastify routes or parses
 * them (`reply.hijack()`: Fastify sends nothing for them); everything else
 * is Fastify's as usual. `npm run example:fastify` serves it on PORT
 * (default 3000), on the broker the environment names.
 */
import Fastify, { type FastifyInstance } from 'fastify';
import { brokerFromEnv, createLogger, ServerEvents, serverEventsHandler, shutdownOnSignals, type HandlerOptions } from '../../src/index.js';
import { isMain } from '../is-main.js';

export function createFastifyApp(events: ServerEvents, options: HandlerOptions = {}): FastifyInstance {
  const app = Fastify();
  const serverEvents = serverEventsHandler(events, options);
  app.addHook('onRequest', async (request, reply) => {
    if (!serverEvents.handles(request.raw.url)) return;
    reply.hijack();
    serverEvents(request.raw, reply.raw);
  });

  // The app's own routes publish through the same ServerEvents.
  app.post<{ Body: { channel?: string; text?: string } }>('/announce', async (request) => {
    await events.notifyChannel(request.body?.channel ?? 'home', 'cmd.announce', request.body?.text ?? '');
    return { announced: true };
  });
  app.get('/health', async () => ({ broker: events.broker.name, available: events.brokerAvailable }));
  return app;
}

if (isMain(import.meta.url)) {
  const logger = createLogger();
  const events = new ServerEvents({ broker: await brokerFromEnv(), logger });
  await events.start();
  const app = createFastifyApp(events);
  const port = Number(process.env.PORT || 3000);
  await app.listen({ port, host: '0.0.0.0' });
  logger.info(`fastify example on http://localhost:${port}`);
  shutdownOnSignals(app.server, events, { logger });
}
