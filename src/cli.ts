#!/usr/bin/env node
import { parseArgs } from 'node:util';
import Koa from 'koa';
import { brokerFromEnv, brokerTimeoutFromEnv, ConfigError } from './broker-from-env.js';
import { parseOrigins } from './http/cors.js';
import { ignoreClientDisconnects } from './http/disconnects.js';
import { sendError } from './http/errors.js';
import { serverEventsMiddleware } from './http/middleware.js';
import { serverEventsMetrics } from './http/metrics.js';
import type { PublishOptions } from './http/publish.js';
import { shutdownOnSignals } from './http/shutdown.js';
import { createLogger } from './logging.js';
import { ServerEvents } from './server-events.js';

const usage = `Usage: server-events [--port 1337] [--prefix /path] [--metrics] [--cors origin,...] [--publish-key KEY]

Runs a standalone Server Events server (ServiceStack's HTTP routes).
The broker comes from the environment: BROKER=memory|redis|nats, REDIS_URL, NATS_URL;
BROKER_TIMEOUT_MS bounds every broker operation (default 3000; past it, 503).
--cors (or CORS_ORIGINS) lets pages on those origins use the routes, with credentials,
e.g. --cors https://app.example.com,http://localhost:8080.
LOG_LEVEL (default info; debug logs every subscription's lifecycle).
--publish-key (or PUBLISH_KEY; several keys comma-separated) turns on POST /event-publish for
backends that send X-Api-Key; PUBLISH_JWT_SECRET also lets HS256 tokens with a publish claim in.
Without either, there is no publish route.
GET /stats shows this server's counters; --metrics serves Prometheus metrics at /metrics.
SIGTERM closes the streams and leaves the cluster before exiting.`;

async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      port: { type: 'string', default: process.env.PORT ?? '1337' },
      prefix: { type: 'string', default: '' },
      metrics: { type: 'boolean', default: false },
      cors: { type: 'string', default: process.env.CORS_ORIGINS || undefined },
      'publish-key': { type: 'string', default: process.env.PUBLISH_KEY || undefined },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) {
    console.log(usage);
    return;
  }
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new ConfigError(`--port must be a number from 0 to 65535, not '${values.port}'`);

  let origins: string[] | undefined;
  if (values.cors !== undefined) {
    try {
      origins = parseOrigins(values.cors);
    } catch (error) {
      throw new ConfigError(`--cors: ${(error as Error).message}`);
    }
  }

  const publish = publishOptions(values['publish-key'], process.env.PUBLISH_JWT_SECRET || undefined);

  const logger = createLogger();
  const events = new ServerEvents({ broker: await brokerFromEnv(), brokerTimeoutMs: brokerTimeoutFromEnv(), logger });
  await events.start();
  const app = new Koa();
  ignoreClientDisconnects(app);
  if (values.metrics) app.use(serverEventsMetrics(events).middleware);
  app.use(serverEventsMiddleware(events, { prefix: values.prefix || undefined, cors: origins && { origins }, publish }));
  app.use(async (ctx, next) => {
    if (ctx.path !== '/stats') return next();
    ctx.body = events.stats();
  });
  // Whatever is no route gets ServiceStack's error body too.
  app.use(async (ctx) => sendError(ctx, 404, `No route for ${ctx.path}`));
  const publishing = publish ? `; publish API at ${values.prefix ?? ''}/event-publish` : '; publish API off (no --publish-key)';
  const server = app.listen(port, () => logger.info(`server-events listening on http://localhost:${port} (broker: ${events.broker.name}${publishing})`));
  server.on('error', (error) => fail(error));
  shutdownOnSignals(server, events, { logger });
}

/** The publish API's credentials from the flags and environment; none means no publish route. */
function publishOptions(keyList: string | undefined, jwtSecret: string | undefined): PublishOptions | undefined {
  const apiKeys = keyList?.split(',').map((key) => key.trim()).filter(Boolean) ?? [];
  if (keyList !== undefined && apiKeys.length === 0) throw new ConfigError('--publish-key is empty');
  const short = apiKeys.find((key) => key.length < 16);
  if (short !== undefined) throw new ConfigError('--publish-key: a key must be at least 16 characters');
  if (jwtSecret !== undefined && jwtSecret.length < 32) throw new ConfigError('PUBLISH_JWT_SECRET must be at least 32 characters');
  if (apiKeys.length === 0 && jwtSecret === undefined) return undefined;
  return { apiKeys, jwt: jwtSecret === undefined ? undefined : { secret: jwtSecret, algorithms: ['HS256', 'HS384', 'HS512'] } };
}

function fail(error: unknown): never {
  const message = error instanceof Error ? error.message : String(error);
  console.error(`server-events: ${message}`);
  process.exit(error instanceof ConfigError || (error as { code?: string }).code?.startsWith('ERR_PARSE_ARGS') ? 2 : 1);
}

main(process.argv.slice(2)).catch(fail);
