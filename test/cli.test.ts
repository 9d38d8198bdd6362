import { spawnSync } from 'node:child_process';
import test from 'ava';
import { brokerFromEnv, ConfigError } from '../src/broker-from-env.js';

function cli(args: string[], env: Record<string, string> = {}) {
  const result = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli.ts', ...args], {
    env: { ...process.env, ...env },
    encoding: 'utf8',
    timeout: 20_000,
  });
  return { status: result.status, stderr: result.stderr.trim(), stdout: result.stdout.trim() };
}

test('brokerFromEnv defaults to memory and refuses unknown brokers in one line', (t) => {
  t.is(brokerFromEnv({}).name, 'memory');
  t.is(brokerFromEnv({ BROKER: 'Memory' }).name, 'memory');
  const error = t.throws(() => brokerFromEnv({ BROKER: 'kafka' }), { instanceOf: ConfigError });
  t.is(error?.message, "unknown BROKER 'kafka': use one of memory, redis, nats");
});

test('the CLI answers a bad flag, a bad port and a bad broker with one line and a non-zero exit', (t) => {
  const flag = cli(['--nope']);
  t.is(flag.status, 2);
  t.regex(flag.stderr, /^server-events: Unknown option '--nope'/);
  t.is(flag.stderr.split('\n').length, 1);
  const port = cli(['--port', 'abc']);
  t.is(port.status, 2);
  t.is(port.stderr, "server-events: --port must be a number from 0 to 65535, not 'abc'");
  const broker = cli([], { BROKER: 'kafka' });
  t.is(broker.status, 2);
  t.is(broker.stderr.split('\n').length, 1);
});

test('an unreachable Redis or NATS gives a one-line error and exit 1', (t) => {
  const redis = cli([], { BROKER: 'redis', REDIS_URL: 'redis://127.0.0.1:1' });
  t.is(redis.status, 1);
  t.regex(redis.stderr, /^server-events: cannot reach Redis at redis:\/\/127\.0\.0\.1:1: .+$/);
  const nats = cli([], { BROKER: 'nats', NATS_URL: 'nats://127.0.0.1:1' });
  t.is(nats.status, 1);
  t.regex(nats.stderr, /^server-events: cannot reach NATS at nats:\/\/127\.0\.0\.1:1: .+$/);
});

test('the CLI prints its usage with --help', (t) => {
  const help = cli(['--help']);
  t.is(help.status, 0);
  t.regex(help.stdout, /^Usage: server-events/);
});
