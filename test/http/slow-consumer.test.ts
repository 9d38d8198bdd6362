/**
 * A client that stops reading must not hold server memory or hold up anyone
 * else: past `maxBufferedBytes` of unsent output its stream is dropped.
 */
import net from 'node:net';
import test from 'ava';
import { only, SseStream } from '../helpers/sse.js';
import { memoryClusters } from '../helpers/cluster.js';
import { startServer } from '../helpers/server.js';

/** Opens a stream over a raw socket, reads the response head, then stops reading altogether. */
async function stalledStream(url: string): Promise<{ socket: net.Socket; closed: Promise<void> }> {
  const { hostname, port, pathname, search } = new URL(url);
  const socket = net.connect(Number(port), hostname);
  socket.write(`GET ${pathname}${search} HTTP/1.1\r\nHost: ${hostname}\r\nAccept: text/event-stream\r\n\r\n`);
  await new Promise<void>((resolve) => {
    socket.once('data', () => {
      socket.pause();
      resolve();
    });
  });
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  return { socket, closed };
}

test('a client that stops reading is dropped past the buffer limit, counted and logged; the others get every event', async (t) => {
  const cluster = await memoryClusters.create();
  const warnings: string[] = [];
  const logger = { warn: (message: string) => warnings.push(message), error: () => {} };
  const server = await startServer(cluster, { events: { logger }, http: { maxBufferedBytes: 256 * 1024 } });
  t.teardown(() => server.close());

  const readers = await Promise.all([1, 2, 3].map(() => SseStream.open(`${server.url}/event-stream?channels=feed`)));
  await Promise.all(readers.map((reader) => reader.connected()));
  const stalled = await stalledStream(`${server.url}/event-stream?channels=feed`);
  await readers[0]!.next(only('cmd.onJoin'));

  // 40 MB in all: far more than loopback socket buffers take before the server has to buffer it.
  // The readers live in this process too, so each event waits until they have it: a steady stream.
  const count = 640;
  const body = 'x'.repeat(64 * 1024);
  for (let i = 0; i < count; i++) {
    await server.events.notifyChannel('feed', 'cmd.chunk', { i, body });
    await Promise.all(readers.map((reader) => reader.count(only('cmd.chunk'), i + 1)));
  }
  // A paused socket does not see the end of its stream until it reads what came before it.
  stalled.socket.resume();
  await stalled.closed;

  for (const reader of readers) {
    const seen = reader.frames.filter(only('cmd.chunk')).map((frame) => (frame.body as { i: number }).i);
    t.deepEqual(seen, Array.from({ length: count }, (_, i) => i), 'every event, in order, to each reader');
  }
  t.is(server.events.stats().slowConsumerDisconnects, 1);
  t.is(warnings.filter((line) => /stopped reading/.test(line)).length, 1);
  t.regex(warnings.find((line) => /stopped reading/.test(line))!, /dropped subscription \w{20} \(user -\d+, .+\): its client stopped reading with \d+ bytes unsent/);
});
