/**
 * `npm run soak`: three servers over one Redis for ten minutes (by default),
 * with clients coming and going, clients moving between channels, and a
 * steady publisher. At the end every client leaves, and the run prints each
 * server's heap (after a full collection) before any client came, at a
 * tenth, half and all of the run (and server 1's at every tenth) and after
 * they all left, what the steady clients received against what was
 * published, what each server still holds, and how many presence records are
 * left in Redis. Exits 1 if a steady client missed or doubled anything, a
 * server still holds a subscription or a broker topic, a record is left, or
 * a heap grew: from the first tenth (warm, with as many clients) to the last
 * by more than 10% plus 2 MiB, or after all left by more than 2 MiB over the
 * first tenth.
 */
import http from 'node:http';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { findBinary, startRedis } from '../scripts/broker-processes.js';
import { ServerEventsClient } from '../src/client/index.js';
import { Cluster } from './cluster.js';
import { progress, progressDone } from './progress.js';

const usage = `Usage: npm run soak [-- flags]

  --minutes M     10   how long clients churn and the publisher publishes
  --steady N      60   clients that stay connected and must receive every tick
  --churners N    200  clients that come, go and change channels
  --rate R        10   ticks per second (each to 'steady' and to one of ten rooms)`;

const IDLE_TIMEOUT_MS = 10_000;
const HOUSEKEEPING_MS = 2_000;

interface Options {
  minutes: number;
  steady: number;
  churners: number;
  rate: number;
}

/** `promise`, or an error saying `what` after `ms`. */
async function within<T>(ms: number, promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} within ${ms / 1000} s`)), ms)));
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function fail(message: string): never {
  progressDone();
  console.error(`soak: ${message}`);
  process.exit(2);
}

function parse(): Options | undefined {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        minutes: { type: 'string', default: '10' },
        steady: { type: 'string', default: '60' },
        churners: { type: 'string', default: '200' },
        rate: { type: 'string', default: '10' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (error) {
    fail(`${(error as Error).message} (see --help)`);
  }
  if (values.help) return undefined;
  const positive = (name: keyof Options) => {
    const value = Number(values[name]);
    if (!Number.isFinite(value) || value <= 0) fail(`--${name} must be a positive number, not "${values[name]}"`);
    return value;
  };
  return { minutes: positive('minutes'), steady: Math.round(positive('steady')), churners: Math.round(positive('churners')), rate: positive('rate') };
}

/** A client that stays for the whole run and records every tick it gets. */
function steadyClient(urls: string[]) {
  const seen = new Set<number>();
  let duplicates = 0;
  const client = new ServerEventsClient(urls, ['steady'], {
    handlers: {
      tick: (tick: { seq: number }, message: { channel?: string }) => {
        if (message.channel !== 'steady') return;
        if (seen.has(tick.seq)) duplicates++;
        seen.add(tick.seq);
      },
    },
  });
  return { client, seen, duplicates: () => duplicates };
}

/** A churning client: either a polite one (our client, which unregisters) or a rude one (a raw stream that just drops). */
interface Churner {
  leave(): Promise<void>;
  moveRoom?(): Promise<void>;
}

function politeChurner(url: string): Churner {
  let room = Math.floor(Math.random() * 10);
  const client = new ServerEventsClient(url, [`room-${room}`], { handlers: { tick: () => {} } });
  client.start();
  return {
    leave: () => client.stop(),
    moveRoom: async () => {
      const next = (room + 1 + Math.floor(Math.random() * 9)) % 10;
      // A client still connecting (or just gone) cannot move; it tries again on its next turn.
      if (await client.updateSubscriber([`room-${next}`], [`room-${room}`]).then(() => true, () => false)) room = next;
    },
  };
}

function rudeChurner(url: string): Churner {
  const request = http.get(`${url}/event-stream?channels=room-${Math.floor(Math.random() * 10)}`, (response) => response.resume());
  request.on('error', () => {});
  return {
    leave: async () => void request.destroy(),
  };
}

async function main(): Promise<void> {
  const options = parse();
  if (!options) return void console.log(usage);
  const binary = findBinary('redis-server') ?? fail('redis-server is not installed (on Debian: apt-get install redis-server)');
  const redis = await startRedis(binary);
  const prefix = `soak${Date.now().toString(36)}`;
  const cluster = await Cluster.start(
    {
      program: 'soak',
      env: { BROKER: 'redis', REDIS_URL: redis.url, BROKER_PREFIX: `${prefix}:`, IDLE_TIMEOUT_MS: String(IDLE_TIMEOUT_MS), HOUSEKEEPING_MS: String(HOUSEKEEPING_MS) },
    },
    3,
  ).catch(async (error: unknown) => {
    await redis.dispose();
    throw error;
  });
  const stopAll = async () => {
    await cluster.stop();
    await redis.dispose();
  };
  process.once('SIGINT', () => void stopAll().finally(() => process.exit(130)));
  const urls = cluster.ports.map((port) => `http://127.0.0.1:${port}`);

  try {
    const heapAtStart = await cluster.askAll<'memory'>({ type: 'memory' });
    const steady = Array.from({ length: options.steady }, (_, i) => steadyClient([...urls.slice(i % 3), ...urls.slice(0, i % 3)]));
    await within(30_000, Promise.all(steady.map((s) => s.client.connect())), 'the steady clients did not connect');
    const churners: Churner[] = Array.from({ length: options.churners }, (_, i) => (i % 2 ? politeChurner : rudeChurner)(urls[i % 3]!));
    await sleep(2_000);

    const seconds = options.minutes * 60;
    const count = Math.round(options.rate * seconds);
    const publishing = cluster.ask<'published'>(0, { type: 'publish', from: 0, count, rate: options.rate, padBytes: 100 }, seconds * 1000 + 60_000);
    let connections = options.steady + options.churners;
    let moves = 0;
    const started = Date.now();
    let done = false;
    // Settled either way; a failure surfaces at the await below, and the finally stops everything.
    void publishing.then(
      () => (done = true),
      () => (done = true),
    );
    // Heap samples at each tenth of the run: a leak shows as a trend, warm-up as a step at the start.
    const samples: number[][] = [];
    while (!done) {
      await sleep(1_000);
      if (Date.now() - started >= ((samples.length + 1) * seconds * 1000) / 10) {
        samples.push((await cluster.askAll<'memory'>({ type: 'memory' })).map((m) => m.heapUsed));
      }
      // Each second a twentieth of the churners leave (half unregister, half just drop) and as many arrive.
      for (let i = 0; i < Math.ceil(options.churners / 20); i++) {
        const at = Math.floor(Math.random() * churners.length);
        void churners[at]!.leave();
        churners[at] = (Math.random() < 0.5 ? politeChurner : rudeChurner)(urls[Math.floor(Math.random() * 3)]!);
        connections++;
      }
      // And a twentieth move to another room.
      for (let i = 0; i < Math.ceil(options.churners / 20); i++) {
        const churner = churners[Math.floor(Math.random() * churners.length)]!;
        if (churner.moveRoom) {
          void churner.moveRoom();
          moves++;
        }
      }
      const elapsed = Math.round((Date.now() - started) / 1000);
      progress('soak', `${elapsed}/${seconds} s, ${connections} connections, ${moves} channel moves`);
    }
    const published = await publishing;
    if (samples.length < 10) samples.push((await cluster.askAll<'memory'>({ type: 'memory' })).map((m) => m.heapUsed));
    progress('soak', 'publishing done; waiting for the last deliveries');
    const deadline = Date.now() + 10_000;
    while (steady.some((s) => s.seen.size < count) && Date.now() < deadline) await sleep(200);

    progress('soak', 'every client leaves');
    await within(30_000, Promise.all([...churners.map((c) => c.leave()), ...steady.map((s) => s.client.stop())]), 'the clients did not leave');
    // Dropped (not unregistered) subscriptions are detached, then expire: give them the idle timeout and two sweeps.
    await sleep(IDLE_TIMEOUT_MS + 2 * HOUSEKEEPING_MS + 1_000);
    const heapAtEnd = await cluster.askAll<'memory'>({ type: 'memory' });
    const held = await cluster.askAll<'stats'>({ type: 'stats' });
    const probe = new Redis(redis.url);
    // Subscription records and index entries; the servers' own registrations (ids starting with ~) stay while they run.
    const keys = async (pattern: string) => {
      const found: string[] = [];
      let cursor = '0';
      do {
        const [next, batch] = await probe.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
        cursor = next;
        found.push(...batch);
      } while (cursor !== '0');
      return found;
    };
    const leftKeys = [
      ...(await keys(`${prefix}:sub:*`)).filter((key) => !key.includes('{~')),
      ...(await keys(`${prefix}:ix:*`)).filter((key) => !key.endsWith('{servers}')),
    ];
    const recordsLeft = leftKeys.length;
    const describe = async (key: string) => {
      if (!key.includes(':sub:')) return `${key}: ${JSON.stringify(await probe.smembers(key)).slice(0, 200)}`;
      const { r, d, i } = await probe.hgetall(key);
      const info = JSON.parse(r ?? '{}') as { detached?: boolean; serverId?: string; channels?: string[] };
      return `${key}: ${info.detached ? 'detached' : 'not detached'}, server ${info.serverId}, channels ${info.channels}, lease ended ${Math.round((Date.now() - Number(d)) / 1000)} s ago, indexes ${i}`;
    };
    const sample = await Promise.all(leftKeys.slice(0, 5).map(describe));
    probe.disconnect();
    progressDone();

    const delivered = steady.reduce((sum, s) => sum + s.seen.size, 0);
    const expected = count * options.steady;
    const duplicates = steady.reduce((sum, s) => sum + s.duplicates(), 0);
    const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;
    const first = samples[0] ?? heapAtStart.map((m) => m.heapUsed);
    const last = samples.at(-1) ?? first;
    const MiB = 2 ** 20;
    const grew = last.map((heap, i) => heap > first[i]! * 1.1 + 2 * MiB || heapAtEnd[i]!.heapUsed > first[i]! + 2 * MiB);
    console.log(`# server-events soak: ${options.minutes} min, 3 servers over Redis\n`);
    console.log(`${connections} connections in all (${options.steady} steady, ${options.churners} churning at a time), ${moves} channel moves, ${count} ticks at ${options.rate}/s\n`);
    console.log('Heap after a full collection: before any client, at the first, fifth and last tenth of the run (clients connected), and after every client left.\n');
    console.log('| server | before | 1/10 | 5/10 | 10/10 | after all left | RSS after |');
    console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: |');
    heapAtEnd.forEach((end, i) => {
      const at = (tenth: number) => (samples[tenth - 1] ? mib(samples[tenth - 1]![i]!) : '–');
      console.log(`| ${i + 1} | ${mib(heapAtStart[i]!.heapUsed)} | ${at(1)} | ${at(5)} | ${at(10)} | ${mib(end.heapUsed)} | ${mib(end.rss)} |`);
    });
    console.log(`\nserver 1, every tenth: ${samples.map((tenth) => mib(tenth[0]!)).join(', ')}`);
    console.log(`\nsteady clients: ${delivered.toLocaleString('en-US')} / ${expected.toLocaleString('en-US')} delivered, ${duplicates} duplicates; ${published.failed} publishes failed`);
    console.log(`presence records and index keys left in Redis: ${recordsLeft}${sample.length ? `, e.g.\n  ${sample.join('\n  ')}` : ''}`);
    console.log(`held by the servers after all left: ${held.map((h, i) => `server ${i + 1}: ${h.localSubscriptions} subscriptions, ${h.brokerTopics} broker topics`).join('; ')}`);

    const problems = [
      delivered < expected && `${expected - delivered} deliveries to steady clients missing`,
      duplicates > 0 && `${duplicates} duplicates`,
      published.failed > 0 && `${published.failed} publishes failed (${published.firstError})`,
      recordsLeft > 0 && `${recordsLeft} presence records left`,
      held.some((h) => h.localSubscriptions !== 0 || h.brokerTopics !== 2) && 'a server still holds subscriptions or broker topics beyond its inbox and everyone\'s topic',
      grew.some(Boolean) && `heap grew on server ${grew.map((g, i) => (g ? i + 1 : 0)).filter(Boolean).join(', ')}`,
    ].filter(Boolean);
    for (const problem of problems) console.error(`soak: ${problem}`);
    if (problems.length > 0) process.exitCode = 1;
  } finally {
    await stopAll();
  }
}

await main();
