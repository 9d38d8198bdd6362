/**
 * Cluster state at scale: 3 servers on one broker grow from a few thousand
 * subscriptions to tens of thousands (held by several load processes), and
 * at each step the runner times what a request costs that should cost what
 * it returns, not what the cluster holds: listing a 10-member channel,
 * looking up one user, a browser resuming its subscription, a heartbeat (to
 * the server holding the stream, and to another one), and the fan-out of one join into the 10-member channel. Every answer is
 * checked, and any failed or wrong one fails the run.
 */
import { randomBytes } from 'node:crypto';
import { Cluster } from '../cluster.js';
import { LoadProcesses } from '../load/processes.js';
import { ProbeStream } from '../load/probe-stream.js';
import { progress } from '../progress.js';
import type { BrokerUrls, System } from '../systems.js';

export interface Stat {
  p50: number;
  samples: number;
}

export interface ScaleStep {
  subscriptions: number;
  list: Stat;
  user: Stat;
  resume: Stat;
  heartbeat: Stat;
  /** A heartbeat sent to a server that does not hold the stream (no sticky sessions): it crosses the broker. */
  heartbeatElsewhere: Stat;
  join: Stat;
  /** Seconds the growth to this step took, and the connects per second that makes. */
  growSeconds: number;
  connectsPerSecond: number;
  failures: string[];
}

export interface ScaleRun {
  servers: number;
  steps: ScaleStep[];
}

export interface ScaleSettings {
  steps: number[];
  brokers: BrokerUrls;
  prefix: string;
}

/** The crowd is spread over channels of this size, so that each join costs the same at every step. */
const crowdChannelSize = 100;
/** Connections per load process, well under the 20,000 open files a process may have. */
const connectionsPerProcess = 8000;
const repeats = { list: 30, user: 30, heartbeat: 30, resume: 10, join: 10 };
/** The path of a URL, so that it can be sent to another server. */
function pathOf(url: string): string {
  const { pathname, search } = new URL(url);
  return `${pathname}${search}`;
}

export async function runScale(system: System, settings: ScaleSettings, phase: string): Promise<ScaleRun> {
  const spec = system.spec(settings.brokers, settings.prefix);
  const servers = 3;
  const cluster = await Cluster.start({ ...spec, env: { ...spec.env, PRESENCE: '1' } }, servers);
  const base = (i: number) => `http://127.0.0.1:${cluster.ports[i % servers]}`;
  const largest = Math.max(...settings.steps);
  const load = await LoadProcesses.start(Math.max(1, Math.ceil(largest / connectionsPerProcess)));
  const held: ProbeStream[] = [];
  try {
    // The small channel: ten streams of the runner's own, one per server in turn; the third listens for joins.
    for (let i = 0; i < 10; i++) held.push(await ProbeStream.open(`${base(i)}/event-stream?channels=small`));
    const [beating, looked, listener] = [held[0]!, held[1]!, held[2]!];
    const session = randomBytes(12).toString('hex');
    let resumable = await ProbeStream.open(`${base(1)}/event-stream?channels=resume`, { Cookie: `ss-id=${session}` });
    held.push(resumable);

    // Ten in the small channel and the one that resumes; the crowd makes up the rest.
    const own = 11;
    const steps: ScaleStep[] = [];
    let crowd = 0;
    for (const subscriptions of [...settings.steps].sort((a, b) => a - b)) {
      const adding = Math.max(0, subscriptions - own - crowd);
      const targets = Array.from({ length: adding }, (_, i) => `${base(crowd + i)}/event-stream?channels=crowd-${Math.floor((crowd + i) / crowdChannelSize)}`);
      const started = performance.now();
      await load.connect('sse', targets, (connected) => progress(phase, `growing to ${subscriptions.toLocaleString('en')}: ${(own + crowd + connected).toLocaleString('en')}`));
      const growSeconds = (performance.now() - started) / 1000;
      crowd += adding;
      progress(phase, `probing at ${subscriptions.toLocaleString('en')}`);
      const failures: string[] = [];
      const step: ScaleStep = {
        subscriptions: own + crowd,
        list: await timed(repeats.list, failures, 'list', async (i) => {
          const reply = await fetch(`${base(i)}/event-subscribers?channels=small`);
          const members = (await reply.json()) as unknown[];
          if (reply.status !== 200 || members.length !== 10) throw new Error(`listed ${members.length} of 10 (HTTP ${reply.status})`);
        }),
        user: await lookupUser(cluster, looked.connectArgs.userId!, failures),
        heartbeat: await timed(repeats.heartbeat, failures, 'heartbeat', async () => {
          const reply = await fetch(beating.connectArgs.heartbeatUrl!, { method: 'POST' });
          if (reply.status !== 200) throw new Error(`HTTP ${reply.status}`);
        }),
        heartbeatElsewhere: await timed(repeats.heartbeat, failures, 'heartbeat elsewhere', async () => {
          const reply = await fetch(`${base(1)}${pathOf(beating.connectArgs.heartbeatUrl!)}`, { method: 'POST' });
          if (reply.status !== 200) throw new Error(`HTTP ${reply.status}`);
        }),
        resume: await timed(repeats.resume, failures, 'resume', async () => {
          const id = resumable.connectArgs.id;
          resumable.close();
          // The server marks it detached once it sees the close; a resume needs that.
          await new Promise((resolve) => setTimeout(resolve, 100));
          const began = performance.now();
          resumable = await ProbeStream.open(`${base(0)}/event-stream?channels=resume`, { Cookie: `ss-id=${session}`, 'Last-Event-ID': resumable.frames.at(-1)!.id });
          held.push(resumable);
          if (resumable.connectArgs.id !== id) throw new Error(`resumed as ${resumable.connectArgs.id}, not ${id}`);
          return performance.now() - began;
        }),
        join: await timed(repeats.join, failures, 'join', async (i) => {
          const from = listener.frames.length;
          const began = performance.now();
          const joiner = await ProbeStream.open(`${base(i)}/event-stream?channels=small`);
          const userId = joiner.connectArgs.userId;
          const seen = await listener.waitFor((f) => f.selector === 'cmd.onJoin' && (f.body as Record<string, string>).userId === userId, 10_000, from);
          const unregistered = await fetch(joiner.connectArgs.unRegisterUrl!, { method: 'POST' });
          if (unregistered.status !== 200) throw new Error(`unregister: HTTP ${unregistered.status}`);
          await listener.waitFor((f) => f.selector === 'cmd.onLeave' && (f.body as Record<string, string>).userId === userId, 10_000, from);
          joiner.close();
          return seen.at - began;
        }),
        growSeconds,
        connectsPerSecond: adding / growSeconds,
        failures,
      };
      steps.push(step);
    }
    return { servers, steps };
  } finally {
    for (const stream of held) stream.close();
    await load.close();
    await cluster.stop();
  }
}

/** Unmeasured runs before each probe's timed ones: the first after growing pays for warming caches and the JIT. */
const warmUps = 10;

/** Runs `probe` `count` times in turn (after the warm-ups); the p50 of the time each took (or of what it returns, in ms). */
async function timed(count: number, failures: string[], what: string, probe: (i: number) => Promise<number | void>): Promise<Stat> {
  const samples: number[] = [];
  for (let i = -warmUps; i < count; i++) {
    const began = performance.now();
    try {
      const measured = await probe(i + warmUps);
      if (i >= 0) samples.push(typeof measured === 'number' ? measured : performance.now() - began);
    } catch (error) {
      failures.push(`${what}: ${(error as Error).message}`);
    }
  }
  return { p50: median(samples), samples: samples.length };
}

/** The user lookup, timed inside the first server: there is no HTTP route for it. */
async function lookupUser(cluster: Cluster, userId: string, failures: string[]): Promise<Stat> {
  const reply = await cluster.ask<'lookup'>(0, { type: 'lookup', userId, repeat: warmUps + repeats.user });
  if (reply.error) failures.push(`user lookup: ${reply.error}`);
  const wrong = reply.found.filter((n) => n !== 1).length;
  if (wrong > 0) failures.push(`user lookup: ${wrong} of ${reply.found.length} found other than the one subscription`);
  const measured = reply.latenciesMs.slice(warmUps);
  return { p50: median(measured), samples: measured.length };
}

function median(values: number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}
