/**
 * The Chat server. With no arguments it runs on the embedded memory broker
 * at http://localhost:1337; with --redis or --nats it joins every other
 * instance on the same broker.
 */
import { parseArgs } from 'node:util';
import { brokerTimeoutFromEnv, createBroker, createLogger, historyFromEnv, parseOrigins, ServerEvents, shutdownOnSignals, type BrokerKind, type BrokerSettings } from '../../src/index.js';
import { createChatApp } from './app.js';

const usage = `Usage: npm start -- [options]

  --port=1337              port to listen on (env PORT)
  --redis=host[:port]      share a Redis with other instances, or a redis://, redis+sentinel://
                           or redis+cluster:// URL (env REDIS_URL, BROKER=redis)
  --nats=host[:port]       share a NATS (with JetStream) instead, or nats:// URLs, comma-separated
                           for a cluster (env NATS_URL, BROKER=nats)
  --background=URL|file    the page's background image, to tell instances apart
  --cors=origin,...        let pages on these origins use every route, with credentials (env CORS_ORIGINS)
  --help                   this text`;

class UsageError extends Error {}

interface Config {
  port: number;
  broker: { kind: BrokerKind; settings: BrokerSettings };
  background?: string;
  cors?: string[];
  brokerTimeoutMs?: number;
}

function readConfig(argv: string[], env: NodeJS.ProcessEnv): Config | undefined {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        port: { type: 'string' },
        redis: { type: 'string' },
        nats: { type: 'string' },
        background: { type: 'string' },
        cors: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    throw new UsageError(`${(error as Error).message} (see --help)`);
  }
  if (values.help) return undefined;
  const portText = values.port ?? (env.PORT || '1337');
  const port = Number(portText);
  if (!/^\d+$/.test(portText) || port > 65535) throw new UsageError(`--port must be a number from 0 to 65535, not '${portText}'`);
  if (values.redis !== undefined && values.nats !== undefined) throw new UsageError('choose one of --redis and --nats');

  const kind = values.redis !== undefined ? 'redis' : values.nats !== undefined ? 'nats' : (env.BROKER || (env.REDIS_URL ? 'redis' : env.NATS_URL ? 'nats' : 'memory'));
  const prefix = env.BROKER_PREFIX || undefined;
  let history;
  try {
    history = historyFromEnv(env);
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  let broker: Config['broker'];
  if (kind === 'redis') broker = { kind, settings: { url: brokerUrl('redis', values.redis ?? env.REDIS_URL, 6379), prefix, history } };
  else if (kind === 'nats') broker = { kind, settings: { url: brokerUrl('nats', values.nats ?? env.NATS_URL, 4222), prefix, history } };
  else if (kind === 'memory') broker = { kind, settings: { history } };
  else throw new UsageError(`unknown BROKER '${kind}': use memory, redis or nats`);
  const corsText = values.cors ?? (env.CORS_ORIGINS || undefined);
  let cors: string[] | undefined;
  if (corsText !== undefined) {
    try {
      cors = parseOrigins(corsText);
    } catch (error) {
      throw new UsageError(`--cors: ${(error as Error).message}`);
    }
  }
  let brokerTimeoutMs;
  try {
    brokerTimeoutMs = brokerTimeoutFromEnv(env);
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  return { port, broker, background: values.background, cors, brokerTimeoutMs };
}

/** `host`, `host:port` or a full URL, with the scheme's default port. */
function brokerUrl(scheme: 'redis' | 'nats', value: string | undefined, defaultPort: number): string {
  const text = value?.trim() || '127.0.0.1';
  if (/^[a-z+]+:\/\//.test(text)) {
    const schemes = scheme === 'redis' ? ['redis://', 'rediss://', 'redis+sentinel://', 'redis+cluster://'] : ['nats://', 'tls://'];
    if (!schemes.some((prefix) => text.startsWith(prefix))) {
      throw new UsageError(`--${scheme} takes host[:port] or a ${scheme}:// URL, not '${text}'`);
    }
    return text;
  }
  if (!/^[\w.-]+(:\d+)?$/.test(text)) throw new UsageError(`--${scheme} takes host[:port] or a ${scheme}:// URL, not '${text}'`);
  return `${scheme}://${text.includes(':') ? text : `${text}:${defaultPort}`}`;
}

async function main(): Promise<void> {
  const config = readConfig(process.argv.slice(2), process.env);
  if (!config) {
    console.log(usage);
    return;
  }
  const logger = createLogger();
  const events = new ServerEvents({ broker: await createBroker(config.broker.kind, config.broker.settings), brokerTimeoutMs: config.brokerTimeoutMs, logger });
  await events.start();
  const app = await createChatApp(events, { background: config.background, label: String(config.port), cors: config.cors });
  const server = app.listen(config.port);
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', (error: NodeJS.ErrnoException) =>
      reject(new Error(error.code === 'EADDRINUSE' ? `port ${config.port} is already in use` : error.message)),
    );
  });
  console.log(`chat on http://localhost:${config.port} (broker: ${events.broker.name})`);
  shutdownOnSignals(server, events, { logger });
}

main().catch((error: Error) => {
  console.error(`chat: ${error.message}`);
  process.exit(error instanceof UsageError ? 2 : 1);
});
