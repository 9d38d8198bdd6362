/**
 * One load-generator thread: holds its share of the subscriber connections
 * and records the latency of every tick it receives. SSE connections are
 * plain node:http requests read by eventsource-parser, and only `t` and
 * `seq` are picked out of each message (no JSON.parse), so the generator
 * stays cheap next to the servers it measures. socket.io connections use
 * socket.io's own client, as its users would.
 */
import http from 'node:http';
import { createHistogram, type RecordableHistogram } from 'node:perf_hooks';
import { parentPort, workerData } from 'node:worker_threads';
import { createParser } from 'eventsource-parser';
import { now } from '../clock.js';
import { io, type Socket } from 'socket.io-client';

export type ClientKind = 'sse' | 'socketio';

export interface WorkerSetup {
  kind: ClientKind;
  /** One URL per connection this thread opens. */
  targets: string[];
  /** How many connections may be opening at once. */
  concurrency: number;
}

export type ToWorker = { type: 'connect' } | { type: 'window'; from: number } | { type: 'stats'; histogram: boolean } | { type: 'close' };

export interface WorkerStats {
  /** Connections that have received at least one tick, warm-up ones included. */
  warmed: number;
  /** Ticks with `seq >= from` of the current window, each counted once per connection. */
  delivered: number;
  /** A tick of the window seen twice in a row on one connection. */
  duplicates: number;
  /** A tick that came after a later one on the same connection (delivered, but a fault). */
  outOfOrder: number;
  /** Connections that failed or closed. */
  dropped: number;
  /** Publish-to-parse latency in microseconds, when asked for. */
  histogram?: RecordableHistogram;
}

export type FromWorker =
  | { type: 'ready' }
  | { type: 'progress'; connected: number; failed: number; firstError?: string }
  | { type: 'connected'; connected: number; failed: number; firstError?: string }
  | ({ type: 'stats' } & WorkerStats)
  | { type: 'closed' };

interface Connection {
  lastSeq: number;
  close(): void;
}

const setup = workerData as WorkerSetup;
const port = parentPort!;
const connections: Connection[] = [];

let histogram = createHistogram({ lowest: 1, highest: 120_000_000, figures: 3 });
let windowFrom = Number.POSITIVE_INFINITY;
let warmed = 0;
let delivered = 0;
let duplicates = 0;
let outOfOrder = 0;
let dropped = 0;
let closing = false;

function receive(connection: Connection, t: number, seq: number): void {
  const arrived = now();
  if (connection.lastSeq === Number.NEGATIVE_INFINITY) warmed++;
  if (seq >= windowFrom) {
    if (seq === connection.lastSeq) duplicates++;
    else {
      if (seq < connection.lastSeq) outOfOrder++;
      delivered++;
      histogram.record(Math.max(1, Math.round((arrived - t) * 1000)));
    }
  }
  connection.lastSeq = Math.max(connection.lastSeq, seq);
}

/** Reads `"t":<number>` and `"seq":<number>` from a tick's JSON text. */
function receiveText(connection: Connection, data: string): void {
  const at = data.indexOf('"t":');
  if (at === -1) return;
  const seqAt = data.indexOf('"seq":', at);
  receive(connection, parseFloat(data.slice(at + 4, at + 40)), parseInt(data.slice(seqAt + 6, seqAt + 30), 10));
}

function lost(): void {
  if (!closing) dropped++;
}

function openSse(target: string): Promise<Connection> {
  return new Promise((resolve, reject) => {
    const connection: Connection = { lastSeq: Number.NEGATIVE_INFINITY, close: () => request.destroy() };
    const parser = createParser({ onEvent: (event) => receiveText(connection, event.data) });
    const request = http.get(target, { agent: false, headers: { accept: 'text/event-stream' } }, (response) => {
      if (response.statusCode !== 200) {
        response.resume();
        reject(new Error(`HTTP ${response.statusCode} from ${target}`));
        return;
      }
      response.setEncoding('utf8');
      let first = true;
      response.on('data', (chunk: string) => {
        if (first) {
          first = false;
          resolve(connection);
        }
        parser.feed(chunk);
      });
      response.on('close', lost);
    });
    request.on('error', (error) => {
      reject(error);
      lost();
    });
  });
}

function openSocketIo(target: string): Promise<Connection> {
  return new Promise((resolve, reject) => {
    const socket: Socket = io(target, { transports: ['websocket'], forceNew: true, reconnection: false });
    const connection: Connection = { lastSeq: Number.NEGATIVE_INFINITY, close: () => socket.disconnect() };
    socket.on('tick', (tick: { t: number; seq: number }) => receive(connection, tick.t, tick.seq));
    socket.once('connect', () => resolve(connection));
    socket.once('connect_error', reject);
    socket.on('disconnect', lost);
  });
}

async function connectAll(): Promise<void> {
  const open = setup.kind === 'sse' ? openSse : openSocketIo;
  let next = 0;
  let failed = 0;
  let firstError: string | undefined;
  const progress = setInterval(() => port.postMessage({ type: 'progress', connected: connections.length, failed, firstError } satisfies FromWorker), 250);
  const lane = async () => {
    while (next < setup.targets.length) {
      const target = setup.targets[next++]!;
      try {
        connections.push(await open(target));
      } catch (error) {
        failed++;
        firstError ??= (error as Error).message;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(setup.concurrency, setup.targets.length) }, lane));
  clearInterval(progress);
  port.postMessage({ type: 'connected', connected: connections.length, failed, firstError } satisfies FromWorker);
}

port.postMessage({ type: 'ready' } satisfies FromWorker);
port.on('message', (message: ToWorker) => {
  switch (message.type) {
    case 'connect':
      void connectAll();
      break;
    case 'window':
      windowFrom = message.from;
      histogram = createHistogram({ lowest: 1, highest: 120_000_000, figures: 3 });
      delivered = duplicates = outOfOrder = 0;
      break;
    case 'stats':
      port.postMessage({
        type: 'stats',
        warmed,
        delivered,
        duplicates,
        outOfOrder,
        dropped,
        ...(message.histogram ? { histogram } : {}),
      } satisfies FromWorker);
      break;
    case 'close':
      closing = true;
      for (const connection of connections) connection.close();
      port.postMessage({ type: 'closed' } satisfies FromWorker);
      break;
  }
});
