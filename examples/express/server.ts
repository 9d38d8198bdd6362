/**
 * Server Events inside an Express app: the routes as a node:http handler,
 * mounted before the app's own. `npm run example:express` serves it on
 * PORT (default 3000), on the broker the environment names (BROKER,
 * REDIS_URL, NATS_URL).
 */
import express, { type Express } from 'express';
import { brokerFromEnv, createLogger, ServerEvents, serverEventsHandler, shutdownOnSignals, type HandlerOptions } from '../../src/index.js';
import { isMain } from '../is-main.js';

export function createExpressApp(events: ServerEvents, options: HandlerOptions = {}): Express {
  const app = express();
  // Before the body parsers, so the routes read their own bodies, under their own limit (`bodyLimit`)
  // and with ServiceStack's error bodies. At the root: a prefix goes in `options.prefix`, so the URLs a
  // stream is told include it.
  app.use(serverEventsHandler(events, options));
  app.use(express.json());
  app.use(express.urlencoded({ extended: false }));

  // The app's own routes publish through the same ServerEvents.
  app.post('/announce', async (req, res, next) => {
    try {
      await events.notifyChannel(String(req.body?.channel ?? 'home'), 'cmd.announce', String(req.body?.text ?? ''));
      res.json({ announced: true });
    } catch (error) {
      next(error);
    }
  });
  app.get('/health', (_req, res) => {
    res.json({ broker: events.broker.name, available: events.brokerAvailable });
  });
  return app;
}

if (isMain(import.meta.url)) {
  const logger = createLogger();
  const events = new ServerEvents({ broker: await brokerFromEnv(), logger });
  await events.start();
  const port = Number(process.env.PORT || 3000);
  const server = createExpressApp(events).listen(port, () => logger.info(`express example on http://localhost:${port}`));
  shutdownOnSignals(server, events, { logger });
}
