/**
 * The benchmark's flags. The defaults finish in under three minutes on two
 * cores; every size and duration can be raised for a longer run.
 */
import { parseArgs } from 'node:util';
import type { SystemId } from './systems.js';

export const scenarioIds = ['fanout', 'burst', 'hop', 'capacity', 'ceiling', 'scale', 'storm'] as const;
export type ScenarioId = (typeof scenarioIds)[number];
const systemIds: SystemId[] = ['memory', 'memory-http', 'redis', 'redis-http', 'nats', 'nats-http', 'nats-cluster', 'redis-cluster', 'floor', 'koa-floor', 'socketio'];

export interface BenchOptions {
  scenarios: ScenarioId[];
  systems: SystemId[];
  servers: number;
  subscribers: number;
  rate: number;
  durationS: number;
  padBytes: number;
  saturationStepS: number;
  saturationFactor: number;
  saturationSteps: number;
  p99LimitMs: number;
  connections: number;
  burstRate: number;
  burstSubscribers: number;
  ceilingSeconds: number;
  inFlight: number;
  scaleSteps: number[];
  stormSubscribers: number;
  stormRate: number;
  stormSeconds: number;
  housekeepingMs: number;
  threads: number;
  out: string;
}

export const usage = `Usage: npm run bench [-- flags]

Measures server-events on the memory, Redis and NATS brokers (and, in the
fan-out, on a 3-node NATS cluster and a 3-master Redis Cluster) next to a raw
node:http + ioredis floor, the same floor inside Koa (what the framework
alone adds) and socket.io with its Redis adapter, in one run.

Scenarios (--scenarios, default all):
  fanout    K servers, N subscribers on one channel, publisher on server 1;
            then the rate rises step by step until p99 passes the limit
  burst     a high rate into a small audience on one server: where writing
            several frames to a socket at once pays
  hop       the same as fanout on one server: what each broker adds
  capacity  C idle connections to one server: memory per connection, connect
            rate, broker subscriptions per connection
  ceiling   one server publishing as fast as it can, with a window of
            publishes in flight and no subscriber: the publish ceiling
  scale     3 servers grow through the scale steps of subscriptions (Redis and NATS);
            at each step: listing a 10-member channel, a user lookup, a resume,
            a heartbeat and the fan-out of one join, as ratios to the first step
  storm     3 servers, most subscriptions on the first, held by load processes
            running our client; the first is SIGKILLed under a steady rate:
            time until every client is back, missed, doubled, broker peak CPU
            (Redis and NATS)

Flags (default):
  --systems LIST           memory,memory-http,redis,redis-http,nats,nats-http,nats-cluster,redis-cluster,floor,koa-floor,socketio
                           (*-http: server-events on bare node:http, in the capacity scenario only)
  --servers K              3     app servers in the fan-out
  --subscribers N          1500  SSE (or socket.io) subscribers
  --rate R                 20    messages per second in the measured window
  --duration S             5     seconds of the measured window
  --payload BYTES          100   filler in each message
  --saturation-step S      1.5   seconds per saturation step
  --saturation-factor F    1.25  rate multiplier between steps
  --saturation-steps M     8     most steps (0 skips saturation)
  --p99-limit MS           50    the p99 at which a system counts as saturated
  --connections C          10000 idle connections in the capacity scenario
  --burst-rate R           1000  messages per second in the burst scenario
  --burst-subscribers N    100   subscribers in the burst scenario
  --ceiling-seconds S      3     seconds of publishing in the ceiling scenario
  --in-flight W            64    publishes in flight in the ceiling scenario
  --scale-steps LIST       1000,10000,30000 subscriptions at each step of the scale scenario
  --storm-subscribers N    5000  subscriptions on the server the storm kills
  --storm-rate R           50    messages per second during the storm
  --storm-seconds S        12    seconds of publishing after the kill
  --housekeeping-ms MS     5000  server-events' housekeeping interval (it renews the leases)
  --threads T              2     load-generator worker threads
  --out DIR                bench/results
  -h, --help

A longer run: npm run bench -- --duration 30 --saturation-step 10 --subscribers 3000`;

export class UsageError extends Error {}

function list<T extends string>(value: string, allowed: readonly T[], flag: string): T[] {
  const items = value.split(',').map((item) => item.trim()).filter(Boolean);
  for (const item of items) {
    if (!allowed.includes(item as T)) throw new UsageError(`--${flag}: unknown "${item}" (one of ${allowed.join(', ')})`);
  }
  if (items.length === 0) throw new UsageError(`--${flag} needs at least one of ${allowed.join(', ')}`);
  return items as T[];
}

function number(value: string, flag: string, { min, integer }: { min: number; integer?: boolean }): number {
  const parsed = Number(value);
  if (!Number.isFinite(parsed) || parsed < min || (integer && !Number.isInteger(parsed))) {
    throw new UsageError(`--${flag} must be ${integer ? 'an integer' : 'a number'} of at least ${min}, not "${value}"`);
  }
  return parsed;
}

/** Parses the command line, or throws a UsageError that says what is wrong in one line. */
export function parseOptions(args: string[]): BenchOptions | 'help' {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      options: {
        scenarios: { type: 'string', default: scenarioIds.join(',') },
        systems: { type: 'string', default: systemIds.join(',') },
        servers: { type: 'string', default: '3' },
        subscribers: { type: 'string', default: '1500' },
        rate: { type: 'string', default: '20' },
        duration: { type: 'string', default: '5' },
        payload: { type: 'string', default: '100' },
        'saturation-step': { type: 'string', default: '1.5' },
        'saturation-factor': { type: 'string', default: '1.25' },
        'saturation-steps': { type: 'string', default: '8' },
        'p99-limit': { type: 'string', default: '50' },
        connections: { type: 'string', default: '10000' },
        'burst-rate': { type: 'string', default: '1000' },
        'burst-subscribers': { type: 'string', default: '100' },
        'ceiling-seconds': { type: 'string', default: '3' },
        'in-flight': { type: 'string', default: '64' },
        'scale-steps': { type: 'string', default: '1000,10000,30000' },
        'storm-subscribers': { type: 'string', default: '5000' },
        'storm-rate': { type: 'string', default: '50' },
        'storm-seconds': { type: 'string', default: '12' },
        'housekeeping-ms': { type: 'string', default: '5000' },
        threads: { type: 'string', default: '2' },
        out: { type: 'string', default: 'bench/results' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  if (values.help) return 'help';
  return {
    scenarios: list(values.scenarios, scenarioIds, 'scenarios'),
    systems: list(values.systems, systemIds, 'systems'),
    servers: number(values.servers, 'servers', { min: 1, integer: true }),
    subscribers: number(values.subscribers, 'subscribers', { min: 1, integer: true }),
    rate: number(values.rate, 'rate', { min: 0.1 }),
    durationS: number(values.duration, 'duration', { min: 0.1 }),
    padBytes: number(values.payload, 'payload', { min: 0, integer: true }),
    saturationStepS: number(values['saturation-step'], 'saturation-step', { min: 0.1 }),
    saturationFactor: number(values['saturation-factor'], 'saturation-factor', { min: 1.01 }),
    saturationSteps: number(values['saturation-steps'], 'saturation-steps', { min: 0, integer: true }),
    p99LimitMs: number(values['p99-limit'], 'p99-limit', { min: 0.1 }),
    connections: number(values.connections, 'connections', { min: 1, integer: true }),
    burstRate: number(values['burst-rate'], 'burst-rate', { min: 1 }),
    burstSubscribers: number(values['burst-subscribers'], 'burst-subscribers', { min: 1, integer: true }),
    ceilingSeconds: number(values['ceiling-seconds'], 'ceiling-seconds', { min: 0.5 }),
    inFlight: number(values['in-flight'], 'in-flight', { min: 1, integer: true }),
    scaleSteps: values['scale-steps'].split(',').map((step) => number(step.trim(), 'scale-steps', { min: 20, integer: true })),
    stormSubscribers: number(values['storm-subscribers'], 'storm-subscribers', { min: 1, integer: true }),
    stormRate: number(values['storm-rate'], 'storm-rate', { min: 1 }),
    stormSeconds: number(values['storm-seconds'], 'storm-seconds', { min: 1 }),
    housekeepingMs: number(values['housekeeping-ms'], 'housekeeping-ms', { min: 100, integer: true }),
    threads: number(values.threads, 'threads', { min: 1, integer: true }),
    out: values.out,
  };
}
