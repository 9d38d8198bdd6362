/**
 * What every benchmark server process shares: it is started by the runner
 * with an IPC channel, says `ready` with its port, and publishes when told.
 * The publisher lives inside a server process so that every system is
 * measured from the same place: the moment its own publish call starts.
 */
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { now } from '../clock.js';

/** The message every system fans out. Subscribers read `t` and `seq` and nothing else. */
export interface Tick {
  /** Milliseconds on the host's monotonic clock (see `now`) when publishing began. */
  t: number;
  /** 0, 1, 2, … in a measured window; negative while warming up. */
  seq: number;
  /** Filler that brings the message to the payload size asked for. */
  pad: string;
}

export type Command =
  | { type: 'publish'; from: number; count: number; rate: number; padBytes: number }
  | { type: 'ceiling'; seconds: number; inFlight: number; padBytes: number }
  | { type: 'memory' }
  | { type: 'stats' }
  | { type: 'lookup'; userId: string; repeat: number }
  | { type: 'pulse' };

export type Reply =
  | { type: 'ready'; port: number }
  | { type: 'published'; failed: number; firstError?: string; elapsedMs: number }
  | { type: 'ceiling'; published: number; failed: number; firstError?: string; elapsedMs: number }
  | { type: 'memory'; rss: number; heapUsed: number }
  | { type: 'stats'; localSubscriptions: number; brokerTopics: number }
  | { type: 'lookup'; latenciesMs: number[]; found: number[]; error?: string }
  | { type: 'pulse'; count: number };


/**
 * Publishes `count` ticks at `rate` per second. The schedule catches up after
 * a late timer rather than drifting, so the rate asked for is the rate sent;
 * publishes are not awaited one by one, as a busy application would not.
 */
async function publishPaced(publish: (tick: Tick) => unknown, command: Extract<Command, { type: 'publish' }>): Promise<Reply> {
  const pad = 'x'.repeat(command.padBytes);
  const started = now();
  const pending: Promise<unknown>[] = [];
  let failed = 0;
  let firstError: string | undefined;
  let sent = 0;
  while (sent < command.count) {
    const due = Math.min(command.count, Math.floor(((now() - started) * command.rate) / 1000) + 1);
    for (; sent < due; sent++) {
      const tick: Tick = { t: now(), seq: command.from + sent, pad };
      const outcome = Promise.resolve()
        .then(() => publish(tick))
        .catch((error: unknown) => {
          failed++;
          firstError ??= String(error);
        });
      pending.push(outcome);
    }
    if (sent < command.count) await sleep(Math.max(1, (sent * 1000) / command.rate - (now() - started)));
  }
  await Promise.all(pending);
  return { type: 'published', failed, firstError, elapsedMs: now() - started };
}

/**
 * Publishes as fast as the system takes it for `seconds`, keeping
 * `inFlight` publishes outstanding (a busy application's many requests):
 * the ceiling of one process.
 */
async function publishFlat(publish: (tick: Tick) => unknown, command: Extract<Command, { type: 'ceiling' }>): Promise<Reply> {
  const pad = 'x'.repeat(command.padBytes);
  const started = now();
  const end = started + command.seconds * 1000;
  let published = 0;
  let failed = 0;
  let firstError: string | undefined;
  const lane = async () => {
    while (now() < end) {
      try {
        await publish({ t: now(), seq: published, pad });
        published++;
      } catch (error) {
        failed++;
        firstError ??= String(error);
      }
    }
  };
  await Promise.all(Array.from({ length: command.inFlight }, lane));
  return { type: 'ceiling', published, failed, firstError, elapsedMs: now() - started };
}

function memory(): Reply {
  // Run with --expose-gc: what is measured is what stays, not what waits for collection.
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  gc?.();
  const usage = process.memoryUsage();
  return { type: 'memory', rss: usage.rss, heapUsed: usage.heapUsed };
}

/** What a server-events server can say about itself (the others cannot answer `stats`). */
export type StatsSource = () => { localSubscriptions: number; brokerTopics: number };

/** A server-events server's user lookup (`getSubscriptionInfosByUserId`): how many it found. */
export type UserLookup = (userId: string) => Promise<number>;

/** Runs the lookup `repeat` times, one after another, timing each. */
async function timeLookups(lookup: UserLookup | undefined, command: Extract<Command, { type: 'lookup' }>): Promise<Reply> {
  const latenciesMs: number[] = [];
  const found: number[] = [];
  if (!lookup) return { type: 'lookup', latenciesMs, found, error: 'this server cannot look users up' };
  try {
    for (let i = 0; i < command.repeat; i++) {
      const started = performance.now();
      found.push(await lookup(command.userId));
      latenciesMs.push(performance.now() - started);
    }
  } catch (error) {
    return { type: 'lookup', latenciesMs, found, error: String(error) };
  }
  return { type: 'lookup', latenciesMs, found };
}

/** A server-events server takes one heartbeat for every stream it holds, as its clients would send them; answers how many. */
export type PulseAll = () => Promise<number>;

/** Answers the runner's commands for a server whose publish call is `publish`. */
export function serveCommands(port: number, publish: (tick: Tick) => unknown, stats?: StatsSource, lookup?: UserLookup, pulseAll?: PulseAll): void {
  const send = (reply: Reply) => process.send?.(reply);
  process.on('message', (command: Command) => {
    if (command.type === 'memory') send(memory());
    else if (command.type === 'ceiling') void publishFlat(publish, command).then(send);
    else if (command.type === 'lookup') void timeLookups(lookup, command).then(send);
    else if (command.type === 'pulse') void (pulseAll ?? (async () => -1))().then((count) => send({ type: 'pulse', count }));
    else if (command.type === 'stats') {
      const { localSubscriptions, brokerTopics } = stats?.() ?? { localSubscriptions: -1, brokerTopics: -1 };
      send({ type: 'stats', localSubscriptions, brokerTopics });
    } else void publishPaced(publish, command).then(send);
  });
  // The runner's death must not leave servers behind.
  process.on('disconnect', () => process.exit(0));
  send({ type: 'ready', port });
}

/** The port a listening node:http server got. */
export function portOf(server: { address(): unknown }): number {
  const address = server.address();
  return typeof address === 'object' && address !== null ? (address as { port: number }).port : 0;
}
