/**
 * The publish ceiling: one server publishes to a channel as fast as the
 * system takes it, with a window of publishes in flight and nobody
 * subscribed, so what is measured is the cost of a publish alone: for the
 * floor, one raw ioredis PUBLISH; for server-events, `notifyChannel` with
 * its history. The broker's CPU per publish shows what one broker process
 * can carry for the whole cluster.
 */
import { Cluster } from '../cluster.js';
import { totalCpuSeconds } from '../cpu.js';
import { progress } from '../progress.js';
import type { BrokerUrls, System } from '../systems.js';

export interface CeilingRun {
  inFlight: number;
  seconds: number;
  published: number;
  failed: number;
  firstError?: string;
  publishesPerSecond: number;
  /** CPU microseconds per publish, of the publishing server and of the broker's processes. */
  serverCpuUs?: number;
  brokerCpuUs?: number;
}

export interface CeilingSettings {
  seconds: number;
  inFlight: number;
  padBytes: number;
  brokers: BrokerUrls;
  brokerPids: number[];
  prefix: string;
}

export async function runCeiling(system: System, settings: CeilingSettings, phase: string): Promise<CeilingRun> {
  const cluster = await Cluster.start(system.spec(settings.brokers, settings.prefix), 1);
  try {
    const ask = (seconds: number) => cluster.ask<'ceiling'>(0, { type: 'ceiling', seconds, inFlight: settings.inFlight, padBytes: settings.padBytes }, seconds * 1000 + 30_000);
    progress(phase, 'warming up');
    await ask(Math.min(1, settings.seconds));
    progress(phase, `publishing for ${settings.seconds} s`);
    const before = { server: totalCpuSeconds(cluster.pids), broker: totalCpuSeconds(settings.brokerPids) };
    const reply = await ask(settings.seconds);
    const after = { server: totalCpuSeconds(cluster.pids), broker: totalCpuSeconds(settings.brokerPids) };
    const perPublish = (from: number | undefined, to: number | undefined) =>
      from === undefined || to === undefined || reply.published === 0 ? undefined : ((to - from) * 1e6) / reply.published;
    return {
      inFlight: settings.inFlight,
      seconds: reply.elapsedMs / 1000,
      published: reply.published,
      failed: reply.failed,
      firstError: reply.firstError,
      publishesPerSecond: Math.round(reply.published / (reply.elapsedMs / 1000)),
      serverCpuUs: perPublish(before.server, after.server),
      brokerCpuUs: settings.brokerPids.length > 0 ? perPublish(before.broker, after.broker) : undefined,
    };
  } finally {
    await cluster.stop();
  }
}
