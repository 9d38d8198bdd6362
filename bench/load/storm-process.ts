/**
 * A load process of the reconnect storm: it holds many clients of ours
 * (`ServerEventsClient`, as an application would run them), each with the
 * list of servers it fails over to, and records what each received. The
 * runner forks several, so that no process holds more open files than it
 * may, and asks each for its findings at the end.
 */
import { ServerEventsClient, type ReceivedMessage } from '../../src/client/index.js';
import { now } from '../clock.js';
import type { Tick } from '../servers/control.js';

export interface StormClientSpec {
  /** The servers in the order the client tries them. */
  urls: string[];
  /** Its channel, `room.{room}`: it gets the ticks whose number is `room` modulo `rooms`. */
  room: number;
  rooms: number;
  /** Whether the runner will kill its first server: it is one of the clients that must move. */
  moves: boolean;
}

export type ToStormProcess =
  | { type: 'connect'; clients: StormClientSpec[]; concurrency: number }
  | { type: 'report'; killedAt: number; firstSeq: number; lastSeq: number }
  | { type: 'close' };

export interface StormFindings {
  moving: number;
  /** Moving clients whose stream came back on another server with the same subscription id. */
  resumed: number;
  /** Moving clients that came back as a new subscription. */
  renewed: number;
  /** Ms from the kill to each moving client's reconnection (those that came back). */
  resumeMs: number[];
  /** Ticks in [firstSeq, lastSeq] a client never received, over all clients. */
  missed: number;
  /** Ticks a client received more than once, over all clients. */
  duplicates: number;
  resets: number;
  /** Delivery latencies (ms) of the clients that did not move, for the ticks published after the kill. */
  steadyLatenciesMs: number[];
}

export type FromStormProcess =
  | { type: 'ready' }
  | { type: 'connected'; connected: number; error?: string }
  | { type: 'report'; findings: StormFindings }
  | { type: 'closed' };

interface Held {
  spec: StormClientSpec;
  client: ServerEventsClient;
  firstId?: string;
  seen: Map<number, number>;
  /** When each `cmd.onConnect` came, with the subscription id it named. */
  connects: Array<{ at: number; id: string }>;
  resets: number;
  latencies: Array<[seq: number, ms: number]>;
}

const held: Held[] = [];
const send = (message: FromStormProcess) => process.send?.(message);

function open(spec: StormClientSpec): Promise<void> {
  const entry: Held = { spec, client: undefined as unknown as ServerEventsClient, seen: new Map(), connects: [], resets: 0, latencies: [] };
  entry.client = new ServerEventsClient(spec.urls, [`room.${spec.room}`], {
    reconnectDelayMs: 250,
    maxReconnectDelayMs: 2000,
    handlers: {
      onConnect: (info: { id: string }) => {
        entry.firstId ??= info.id;
        entry.connects.push({ at: now(), id: info.id });
      },
      onReset: () => void entry.resets++,
      tick: (tick: Tick, _message: ReceivedMessage) => {
        entry.seen.set(tick.seq, (entry.seen.get(tick.seq) ?? 0) + 1);
        if (!spec.moves) entry.latencies.push([tick.seq, now() - tick.t]);
      },
    },
  });
  held.push(entry);
  return entry.client.connect().then(() => undefined);
}

async function connectAll(clients: StormClientSpec[], concurrency: number): Promise<void> {
  let next = 0;
  const lane = async () => {
    while (next < clients.length) await open(clients[next++]!);
  };
  await Promise.all(Array.from({ length: concurrency }, lane));
}

function report(killedAt: number, firstSeq: number, lastSeq: number): StormFindings {
  const findings: StormFindings = { moving: 0, resumed: 0, renewed: 0, resumeMs: [], missed: 0, duplicates: 0, resets: 0, steadyLatenciesMs: [] };
  for (const entry of held) {
    for (let seq = firstSeq; seq <= lastSeq; seq++) {
      if (seq % entry.spec.rooms !== entry.spec.room) continue;
      const times = entry.seen.get(seq) ?? 0;
      if (times === 0) findings.missed++;
      else findings.duplicates += times - 1;
    }
    findings.resets += entry.resets;
    if (!entry.spec.moves) {
      for (const [seq, ms] of entry.latencies) if (seq >= firstSeq && seq <= lastSeq) findings.steadyLatenciesMs.push(ms);
      continue;
    }
    findings.moving++;
    const back = entry.connects.find((c) => c.at > killedAt);
    if (!back) continue;
    if (back.id === entry.firstId) findings.resumed++;
    else findings.renewed++;
    findings.resumeMs.push(back.at - killedAt);
  }
  return findings;
}

process.on('message', (message: ToStormProcess) => {
  if (message.type === 'connect') {
    void connectAll(message.clients, message.concurrency).then(
      () => send({ type: 'connected', connected: held.length }),
      (error: Error) => send({ type: 'connected', connected: held.length, error: error.message }),
    );
  } else if (message.type === 'report') {
    send({ type: 'report', findings: report(message.killedAt, message.firstSeq, message.lastSeq) });
  } else {
    void Promise.all(held.map((entry) => entry.client.stop().catch(() => {}))).then(() => {
      send({ type: 'closed' });
      process.exit(0);
    });
  }
});
// The runner's death must not leave clients behind.
process.on('disconnect', () => process.exit(0));
send({ type: 'ready' });
