/**
 * A Python backend publishing through the standalone command: the example
 * script (examples/python/publish.py, standard library only) posts to one
 * server of a Redis-backed cluster, and ServiceStack's own TypeScript client,
 * subscribed on another, gets the event once.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { ServerEventsClient as ServiceStackClient } from '@servicestack/client';
import test, { type ExecutionContext } from 'ava';
import { EventSource } from 'eventsource';
import { waitForPort } from '../../scripts/broker-processes.js';
import { withBrokerServer } from '../helpers/broker-servers.js';
import { collector } from '../helpers/collect.js';
import { freePort } from '../helpers/processes.js';
import { delay } from '../helpers/server.js';

(globalThis as { EventSource?: unknown }).EventSource = EventSource;

const publishKey = 'python-publish-key-0123456789';

/** The command (`server-events`) on a free port, on the test's Redis. */
async function command(t: ExecutionContext, redisUrl: string, env: Record<string, string> = {}): Promise<string> {
  const port = await freePort();
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', '--port', String(port)], {
    env: { ...process.env, BROKER: 'redis', REDIS_URL: redisUrl, NATS_URL: '', PUBLISH_KEY: '', LOG_LEVEL: 'warn', BROKER_TIMEOUT_MS: '1000', ...env },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  t.teardown(() => void child.kill('SIGKILL'));
  await waitForPort(port);
  return `http://127.0.0.1:${port}`;
}

/** Runs the Python example with `args`; resolves with its exit code and output. */
function python(args: string[], env: Record<string, string> = {}): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('python3', ['examples/python/publish.py', ...args], { env: { ...process.env, ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (status) => resolve({ status, stdout: stdout.trim(), stderr: stderr.trim() }));
  });
}

withBrokerServer('redis', (_factory, redis) => {
  test.serial("a Python publisher's message reaches ServiceStack's client on another server, once; refusals are one line", async (t) => {
    t.timeout(45_000);
    const subscriberServer = await command(t, redis().url);
    const publishServer = await command(t, redis().url, { PUBLISH_KEY: publishKey });

    const chats = collector<unknown>();
    const errors: unknown[] = [];
    const connected = collector<unknown>();
    const client = new ServiceStackClient(subscriberServer, ['home'], {
      handlers: { onConnect: connected.push, chat: (body: unknown) => chats.push(body) },
      onException: (error: unknown) => errors.push(error),
    });
    client.start();
    t.teardown(() => void client.stop());
    await connected.atLeast(1);

    const args = ['--url', publishServer, '--channel', 'home', '--selector', 'cmd.chat', '--message', '{"message": "hello from Python"}', '--idempotency-key', 'py-1'];
    const first = await python(args, { PUBLISH_KEY: publishKey });
    t.is(first.status, 0, first.stderr);
    t.deepEqual(JSON.parse(first.stdout), { published: true });
    t.deepEqual((await chats.atLeast(1, 10_000))[0], { message: 'hello from Python' });
    const repeat = await python(args, { PUBLISH_KEY: publishKey });
    t.deepEqual(JSON.parse(repeat.stdout), { published: false, duplicate: true }, 'the retry is recognised');
    await delay(300);
    t.is(chats.values.length, 1, 'and delivered once');

    const wrongKey = await python(args, { PUBLISH_KEY: 'not-the-right-key-000000' });
    t.is(wrongKey.status, 1);
    t.is(wrongKey.stderr, 'publish.py: 401 Invalid API key');
    const noRoute = await python(['--url', subscriberServer, '--all', '--selector', 'cmd.chat'], { PUBLISH_KEY: publishKey });
    t.is(noRoute.status, 1);
    t.regex(noRoute.stderr, /^publish\.py: 404 /, 'a server started without a key has no publish route');

    // A frozen broker: the publish is refused with 503 within the broker timeout, not hung. Redis carries
    // it out once it thaws, all the same: a retry with the same key is then a duplicate, and the event arrives once.
    const retried = ['--url', publishServer, '--channel', 'home', '--selector', 'cmd.chat', '--message', 'during the freeze', '--idempotency-key', 'py-2'];
    redis().signal('SIGSTOP');
    try {
      const frozen = await python(retried, { PUBLISH_KEY: publishKey });
      t.is(frozen.status, 1);
      t.regex(frozen.stderr, /^publish\.py: 503 The broker is unavailable/);
    } finally {
      redis().signal('SIGCONT');
    }
    let retry = await python(retried, { PUBLISH_KEY: publishKey });
    for (let i = 0; i < 20 && retry.status !== 0; i++) {
      await delay(250);
      retry = await python(retried, { PUBLISH_KEY: publishKey });
    }
    t.is(retry.status, 0, retry.stderr);
    t.deepEqual(JSON.parse(retry.stdout), { published: false, duplicate: true }, 'the frozen publish went out when Redis thawed, and the retry knows');
    await chats.atLeast(2, 10_000);
    await delay(500);
    t.deepEqual(chats.values, [{ message: 'hello from Python' }, 'during the freeze'], 'each event once');
    t.deepEqual(errors, []);
  });
});
