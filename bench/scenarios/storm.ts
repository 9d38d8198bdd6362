/**
 * The reconnect storm: three servers, most subscriptions on the first, held
 * by several load processes running our client (each knows every server
 * and fails over to the next), spread over chat-room channels. Under a
 * steady publish rate from the second server (each tick to one room, in
 * turn), the first is SIGKILLed: every one of its clients reconnects at
 * once to the other two, which must each take over (same subscription id)
 * and replay what it missed. Measured: how long until every moved client is
 * back, what was missed or doubled (both must be 0), the broker's peak CPU,
 * and the delivery latency of the clients that did not move.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { now } from '../clock.js';
import { Cluster } from '../cluster.js';
import { totalCpuSeconds } from '../cpu.js';
import { nextMessage } from '../load/child-messages.js';
import type { FromStormProcess, StormClientSpec, StormFindings, ToStormProcess } from '../load/storm-process.js';
import { progress } from '../progress.js';
import type { BrokerUrls, System } from '../systems.js';

export interface StormRun {
  moving: number;
  steady: number;
  rate: number;
  rooms: number;
  /** Ms from the kill until the last moved client was back; p50 of them all. */
  allBackMs?: number;
  p50BackMs?: number;
  resumed: number;
  /** Moved clients that came back as new subscriptions (their old one was lost): must be 0. */
  renewed: number;
  /** Moved clients that never came back within the wait: must be 0. */
  neverBack: number;
  missed: number;
  duplicates: number;
  resets: number;
  published: number;
  failedPublishes: number;
  /** The broker's busiest quarter-second, in cores. */
  brokerPeakCores?: number;
  steadyP50Ms?: number;
  steadyP99Ms?: number;
}

export interface StormSettings {
  moving: number;
  steady: number;
  rate: number;
  /** Channels the ticks are spread over, as chat rooms are: each client is in one. */
  rooms: number;
  processes: number;
  /** Publishing before the kill and after it, in seconds. */
  beforeS: number;
  afterS: number;
  padBytes: number;
  brokers: BrokerUrls;
  brokerPids: number[];
  prefix: string;
}

/** How long after the publishing ends the run waits for the moved clients to be back and caught up. */
const backWaitMs = 60_000;

/** Every moved client is back, and no client misses anything. */
function everyoneBack(findings: StormFindings[]): boolean {
  const sum = (pick: (f: StormFindings) => number) => findings.reduce((total, f) => total + pick(f), 0);
  return sum((f) => f.resumeMs.length) === sum((f) => f.moving) && sum((f) => f.missed) === 0;
}

export async function runStorm(system: System, settings: StormSettings, phase: string): Promise<StormRun> {
  const spec = system.spec(settings.brokers, settings.prefix);
  const cluster = await Cluster.start({ ...spec, env: { ...spec.env, ROOMS: String(settings.rooms) } }, 3);
  const urls = cluster.ports.map((port) => `http://127.0.0.1:${port}`);
  const { rooms } = settings;
  const specs: StormClientSpec[] = [
    // Half fail over to the second server first, half to the third: the storm lands on both.
    ...Array.from({ length: settings.moving }, (_, i) => ({ urls: i % 2 ? [urls[0]!, urls[1]!, urls[2]!] : [urls[0]!, urls[2]!, urls[1]!], room: i % rooms, rooms, moves: true })),
    ...Array.from({ length: settings.steady }, (_, i) => ({ urls: [urls[1 + (i % 2)]!], room: i % rooms, rooms, moves: false })),
  ];
  const loads = await Promise.all(Array.from({ length: settings.processes }, () => startStormProcess()));
  let sampling: NodeJS.Timeout | undefined;
  try {
    let connected = 0;
    await Promise.all(
      loads.map(async (load, i) => {
        const mine = specs.filter((_, index) => index % loads.length === i);
        load.send({ type: 'connect', clients: mine, concurrency: 16 } satisfies ToStormProcess);
        const done = await nextMessage<FromStormProcess>(load, 'connected', 600_000);
        if (done.type === 'connected' && done.error) throw new Error(done.error);
        connected += mine.length;
        progress(phase, `${connected}/${specs.length} connected`);
      }),
    );
    const count = Math.round(settings.rate * (settings.beforeS + settings.afterS));
    progress(phase, `publishing ${count} at ${settings.rate}/s`);
    const publishing = cluster.ask<'published'>(1, { type: 'publish', from: 0, count, rate: settings.rate, padBytes: settings.padBytes }, (settings.beforeS + settings.afterS) * 1000 + 60_000);
    await sleep(settings.beforeS * 1000);

    // The broker's CPU, a quarter-second at a time, from the kill on.
    let peak = 0;
    let last = totalCpuSeconds(settings.brokerPids);
    let lastAt = now();
    sampling = setInterval(() => {
      const cpu = totalCpuSeconds(settings.brokerPids);
      const at = now();
      if (cpu !== undefined && last !== undefined) peak = Math.max(peak, (cpu - last) / ((at - lastAt) / 1000));
      last = cpu;
      lastAt = at;
    }, 250);
    progress(phase, 'killing the first server');
    const killedAt = now();
    await cluster.kill(0);
    const published = await publishing;
    const report = () =>
      Promise.all(
        loads.map(async (load) => {
          load.send({ type: 'report', killedAt, firstSeq: 0, lastSeq: count - 1 } satisfies ToStormProcess);
          return ((await nextMessage<FromStormProcess>(load, 'report', 60_000)) as Extract<FromStormProcess, { type: 'report' }>).findings;
        }),
      );
    // The last clients to come back replay what they missed. How long they take is what is measured, so
    // the run waits for them (a slower machine takes longer to serve thousands of reconnects), up to a bound.
    progress(phase, 'waiting for the moved clients');
    const waitUntil = now() + backWaitMs;
    let findings = await report();
    while (!everyoneBack(findings) && now() < waitUntil) {
      await sleep(500);
      findings = await report();
    }
    clearInterval(sampling);
    sampling = undefined;
    return summarise(settings, findings, count, published.failed, settings.brokerPids.length > 0 ? peak : undefined);
  } finally {
    if (sampling) clearInterval(sampling);
    await Promise.all(loads.map((load) => closeStormProcess(load)));
    await cluster.stop();
  }
}

function summarise(settings: StormSettings, all: StormFindings[], published: number, failed: number, brokerPeakCores: number | undefined): StormRun {
  const sum = (pick: (f: StormFindings) => number) => all.reduce((total, f) => total + pick(f), 0);
  const back = all.flatMap((f) => f.resumeMs).sort((a, b) => a - b);
  const latencies = all.flatMap((f) => f.steadyLatenciesMs).sort((a, b) => a - b);
  const at = (sorted: number[], q: number) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] : undefined);
  const moving = sum((f) => f.moving);
  return {
    moving,
    steady: settings.steady,
    rate: settings.rate,
    rooms: settings.rooms,
    allBackMs: back.at(-1),
    p50BackMs: at(back, 0.5),
    resumed: sum((f) => f.resumed),
    renewed: sum((f) => f.renewed),
    neverBack: moving - back.length,
    missed: sum((f) => f.missed),
    duplicates: sum((f) => f.duplicates),
    resets: sum((f) => f.resets),
    published,
    failedPublishes: failed,
    brokerPeakCores,
    steadyP50Ms: at(latencies, 0.5),
    steadyP99Ms: at(latencies, 0.99),
  };
}

function startStormProcess(): Promise<ChildProcess> {
  const child = fork(new URL('../load/storm-process.ts', import.meta.url), { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  return nextMessage<FromStormProcess>(child, 'ready', 30_000).then(() => child);
}

async function closeStormProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.send({ type: 'close' } satisfies ToStormProcess);
  await nextMessage<FromStormProcess>(child, 'closed', 20_000).catch(() => child.kill('SIGKILL'));
}
