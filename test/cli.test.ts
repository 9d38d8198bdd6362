import { spawn } from 'node:child_process';
import test from 'ava';
import { waitForPort } from '../scripts/broker-processes.js';
import { brokerFromEnv, ConfigError } from '../src/broker-from-env.js';
import { freePort } from './helpers/processes.js';
import { runScript as run } from './helpers/run-script.js';

const cli = (args: string[], env: Record<string, string> = {}) => run('src/cli.ts', args, env);

test('brokerFromEnv defaults to memory and refuses unknown brokers in one line', async (t) => {
  t.is((await brokerFromEnv({})).name, 'memory');
  t.is((await brokerFromEnv({ BROKER: 'Memory' })).name, 'memory');
  const error = await t.throwsAsync(() => brokerFromEnv({ BROKER: 'kafka' }), { instanceOf: ConfigError });
  t.is(error?.message, "unknown BROKER 'kafka': use one of memory, redis, nats");
});

test('the CLI answers a bad flag, a bad port and a bad broker with one line and a non-zero exit', async (t) => {
  const flag = await cli(['--nope']);
  t.is(flag.status, 2);
  t.regex(flag.stderr, /^server-events: Unknown option '--nope'/);
  t.is(flag.stderr.split('\n').length, 1);
  const port = await cli(['--port', 'abc']);
  t.is(port.status, 2);
  t.is(port.stderr, "server-events: --port must be a number from 0 to 65535, not 'abc'");
  const broker = await cli([], { BROKER: 'kafka' });
  t.is(broker.status, 2);
  t.is(broker.stderr.split('\n').length, 1);
});

test('an unreachable Redis or NATS gives a one-line error and exit 1', async (t) => {
  const redis = await cli([], { BROKER: 'redis', REDIS_URL: 'redis://127.0.0.1:1' });
  t.is(redis.status, 1);
  t.regex(redis.stderr, /^server-events: cannot reach Redis at redis:\/\/127\.0\.0\.1:1: .+$/);
  const nats = await cli([], { BROKER: 'nats', NATS_URL: 'nats://127.0.0.1:1' });
  t.is(nats.status, 1);
  t.regex(nats.stderr, /^server-events: cannot reach NATS at nats:\/\/127\.0\.0\.1:1: .+$/);
});

test('the CLI prints its usage with --help', async (t) => {
  const help = await cli(['--help']);
  t.is(help.status, 0);
  t.regex(help.stdout, /^Usage: server-events/);
});

const chatCli = (args: string[], env: Record<string, string> = {}) =>
  run('examples/chat/server.ts', args, { PORT: '', BROKER: '', REDIS_URL: '', NATS_URL: '', ...env });

test('the chat command answers bad flags and unreachable brokers with one line', async (t) => {
  const flag = await chatCli(['--colour=red']);
  t.is(flag.status, 2);
  t.regex(flag.stderr, /^chat: Unknown option '--colour'/);
  t.is(flag.stderr.split('\n').length, 1);
  t.is((await chatCli(['--port', 'x'])).stderr, "chat: --port must be a number from 0 to 65535, not 'x'");
  t.is((await chatCli(['--redis=a', '--nats=b'])).stderr, 'chat: choose one of --redis and --nats');
  const redis = await chatCli(['--port=0', '--redis=127.0.0.1:1']);
  t.is(redis.status, 1);
  t.regex(redis.stderr, /^chat: cannot reach Redis at redis:\/\/127\.0\.0\.1:1: .+$/);
  const nats = await chatCli(['--port=0', '--nats', 'nats://127.0.0.1:1']);
  t.regex(nats.stderr, /^chat: cannot reach NATS at nats:\/\/127\.0\.0\.1:1: .+$/);
  const background = await chatCli(['--port=0', '--background=/nonexistent/x.png']);
  t.is(background.stderr, "chat: --background '/nonexistent/x.png' cannot be read");
  t.regex((await chatCli(['--help'])).stdout, /--background=URL\|file/);
});

test('--cors names the origins whose pages may use the routes; a wrong one is one line', async (t) => {
  const bad = await cli(['--cors', 'https://a.example/path']);
  t.is(bad.status, 2);
  t.is(bad.stderr, "server-events: --cors: 'https://a.example/path' is not an origin: leave out the path, query and trailing slash (https://a.example)");
  t.is((await chatCli(['--cors=nope'])).stderr, "chat: --cors: 'nope' is not an origin: write it as scheme://host[:port]");

  const port = await freePort();
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', '--port', String(port), '--cors', 'https://app.example'], {
    env: { ...process.env, BROKER: 'memory', REDIS_URL: '', NATS_URL: '', LOG_LEVEL: 'warn' },
    stdio: 'ignore',
  });
  t.teardown(() => void child.kill('SIGKILL'));
  await waitForPort(port);
  const preflight = await fetch(`http://127.0.0.1:${port}/event-heartbeat?id=x`, {
    method: 'OPTIONS',
    headers: { Origin: 'https://app.example', 'Access-Control-Request-Method': 'POST' },
  });
  t.is(preflight.status, 204);
  t.is(preflight.headers.get('access-control-allow-origin'), 'https://app.example');
  t.is(preflight.headers.get('access-control-allow-credentials'), 'true');
});

test('--publish-key turns the publish API on; a short key is one line', async (t) => {
  const short = await cli(['--publish-key', 'abc']);
  t.is(short.status, 2);
  t.is(short.stderr, 'server-events: --publish-key: a key must be at least 16 characters');
  t.is((await cli([], { PUBLISH_JWT_SECRET: 'short' })).stderr, 'server-events: PUBLISH_JWT_SECRET must be at least 32 characters');

  const port = await freePort();
  const key = 'cli-publish-key-0123456789';
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', '--port', String(port)], {
    env: { ...process.env, BROKER: 'memory', REDIS_URL: '', NATS_URL: '', LOG_LEVEL: 'warn', PUBLISH_KEY: key },
    stdio: 'ignore',
  });
  t.teardown(() => void child.kill('SIGKILL'));
  await waitForPort(port);
  const post = (headers: Record<string, string>) =>
    fetch(`http://127.0.0.1:${port}/event-publish`, { method: 'POST', headers: { 'Content-Type': 'application/json', ...headers }, body: JSON.stringify({ to: 'all', selector: 'cmd.chat' }) });
  t.is((await post({ 'X-Api-Key': key })).status, 200, 'PUBLISH_KEY works as the flag does');
  t.is((await post({})).status, 401);
});
