/**
 * The opt-in Prometheus endpoint and the structured logs, as an operator
 * would scrape and read them.
 */
import test from 'ava';
import { serverEventsMetrics } from '../../src/http/metrics.js';
import { memoryClusters } from '../helpers/cluster.js';
import { freePort } from '../helpers/processes.js';
import { runScript } from '../helpers/run-script.js';
import { delay, request, startServer } from '../helpers/server.js';
import { only, SseStream } from '../helpers/sse.js';

/** The value of one sample line, e.g. `metric('server_events_streams')` or with labels `{channel="home"}`. */
function sample(text: string, name: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.slice(name.length + 1));
}

test('GET /metrics reports streams, streams per channel, notifications, deliveries and the delivery lag', async (t) => {
  const cluster = await memoryClusters.create();
  const server = await startServer(cluster, {
    events: { notifyChannelOfSubscriptions: false },
    middleware: (events) => serverEventsMetrics(events).middleware,
  });
  t.teardown(() => server.close());
  const streams = await Promise.all(['home', 'home', 'news'].map((channel) => SseStream.open(`${server.url}/event-stream?channels=${channel}`)));
  t.teardown(() => streams.forEach((stream) => stream.close()));
  await Promise.all(streams.map((stream) => stream.connected()));
  await server.events.notifyChannel('home', 'cmd.msg', 'hi');
  await Promise.all(streams.slice(0, 2).map((stream) => stream.next(only('cmd.msg'))));

  const reply = await request('GET', `${server.url.replace(/\/$/, '')}/metrics`);
  t.is(reply.status, 200);
  t.regex(reply.headers.get('content-type') ?? '', /^text\/plain/);
  const text = reply.text;
  t.is(sample(text, 'server_events_streams'), 3);
  t.is(sample(text, 'server_events_channel_streams{channel="home"}'), 2);
  t.is(sample(text, 'server_events_channel_streams{channel="news"}'), 1);
  t.is(sample(text, 'server_events_connections_total'), 3);
  t.is(sample(text, 'server_events_notifications_published_total'), 1);
  t.true(sample(text, 'server_events_frames_delivered_total')! >= 5, 'three onConnect frames and two messages');
  t.is(sample(text, 'server_events_delivery_lag_seconds_count'), 1);
  for (const name of ['slow_consumer_disconnects', 'replayed_events', 'replay_gaps', 'broker_disconnects']) {
    t.is(sample(text, `server_events_${name}_total`), 0, name);
  }
});

test('LOG_LEVEL=debug logs a JSON line per lifecycle step; SIGTERM is logged and exits 0; a bad LOG_LEVEL is one line', async (t) => {
  const port = await freePort();
  const { spawn } = await import('node:child_process');
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', '--port', String(port)], {
    env: { ...process.env, BROKER: 'memory', LOG_LEVEL: 'debug' },
  });
  let stdout = '';
  child.stdout.on('data', (chunk) => (stdout += chunk));
  t.teardown(() => child.kill('SIGKILL'));
  while (!stdout.includes('listening')) await delay(50);

  const stream = await SseStream.open(`http://127.0.0.1:${port}/event-stream?channels=home`);
  await stream.connected();
  stream.close();
  const lines = () => stdout.split('\n').filter((line) => line.startsWith('{')).map((line) => JSON.parse(line) as Record<string, unknown>);
  while (!lines().some((line) => line.event === 'detached')) await delay(50);
  const opened = lines().find((line) => line.event === 'opened')!;
  t.is(opened.msg, 'subscription opened');
  t.is(opened.level, 20, 'debug');
  t.is(opened.id, stream.id);
  t.deepEqual(opened.channels, ['home']);

  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  t.is(await exited, 0);
  t.true(lines().some((line) => line.level === 40 && String(line.msg).includes('SIGTERM')));

  const bad = await runScript('src/cli.ts', [], { BROKER: 'memory', LOG_LEVEL: 'chatty' });
  t.is(bad.status, 2);
  t.is(bad.stderr, "server-events: unknown LOG_LEVEL 'chatty': use one of fatal, error, warn, info, debug, trace, silent");
});
