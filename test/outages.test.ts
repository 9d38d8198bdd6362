/**
 * The broker comes back, and is away again before every stream has caught
 * up: the streams wait, held, for the next recovery instead of being told to
 * reset. A replicated history electing a leader on a loaded machine does
 * this (a history read outlasting the call bound right after reconnecting).
 */
import test, { type ExecutionContext } from 'ava';
import { MemoryBroker } from '../adapters/memory.js';
import type { BrokerStatus, EventHistory } from '../src/broker.js';
import { encodeEnvelope } from '../src/envelope.js';
import { topics } from '../src/topics.js';
import { memoryClusters } from './helpers/cluster.js';
import { delay, startServer } from './helpers/server.js';
import { SseStream } from './helpers/sse.js';

class ElectionError extends Error {}

/** A memory broker whose connection a test can drop and restore, and whose next history reads can fail as unavailable. */
class FlakyBroker extends MemoryBroker {
  failingReads = 0;
  reads = 0;
  private statusHandler: (status: BrokerStatus) => void = () => {};
  private wrapped: EventHistory | undefined;

  override get history(): EventHistory {
    const inner = super.history;
    return (this.wrapped ??= {
      publish: (...args) => inner.publish(...args),
      head: () => inner.head(),
      onceAtLeastMs: inner.onceAtLeastMs,
      read: async (afterId, topics) => {
        this.reads++;
        if (this.failingReads > 0) {
          this.failingReads--;
          throw new ElectionError('no responders: the stream is electing a leader');
        }
        return inner.read(afterId, topics);
      },
    });
  }

  // The memory broker never loses its connection, so it takes no handler.
  override onStatus(handler?: (status: BrokerStatus) => void): void {
    if (handler) this.statusHandler = handler;
  }

  isUnavailable(error: unknown): boolean {
    return error instanceof ElectionError;
  }

  setConnected(connected: boolean): void {
    this.statusHandler(connected ? { connected } : { connected, reason: 'dropped by the test' });
  }
}

/** A server on a `FlakyBroker`, with one stream open on channel `home`. */
async function streamOnFlakyBroker(t: ExecutionContext, brokerTimeoutMs: number) {
  const broker = new FlakyBroker();
  const server = await startServer(await memoryClusters.create(), { events: { broker, brokerTimeoutMs } });
  t.teardown(() => server.close());
  const stream = await SseStream.open(`${server.url}/event-stream?channels=home`);
  t.teardown(() => stream.close());
  await stream.connected();
  return { broker, server, stream };
}

test('a history read that fails as unavailable during the catch-up holds the streams for the next recovery: no reset, nothing lost', async (t) => {
  const { broker, server, stream } = await streamOnFlakyBroker(t, 400);

  broker.setConnected(false);
  // Taken by the broker while this server counts it away: it reaches the stream only through the catch-up.
  await broker.history.publish(topics.channel('home'), encodeEnvelope({ kind: 'notify', selector: 'cmd.during', body: '1', channel: 'home' }));
  broker.failingReads = 1;
  const readsBefore = broker.reads;
  broker.setConnected(true);
  // The first catch-up fails; the broker answers the next ping, and the catch-up runs again.
  await delay(100);
  for (let waited = 0; waited < 3000 && !server.events.brokerAvailable; waited += 50) await delay(50);
  t.true(server.events.brokerAvailable, 'the server recovered');
  await server.events.notifyChannel('home', 'cmd.after', 2);
  await stream.next((f) => f.selector === 'cmd.after');
  t.true(broker.reads - readsBefore >= 2, 'the catch-up read the history again');
  const selectors = stream.frames.map((f) => f.selector);
  t.true(selectors.includes('home@cmd.during') || selectors.includes('cmd.during'), `the event taken during the outage arrived (${selectors.join(', ')})`);
  t.false(selectors.includes('cmd.onReset'), 'nobody was told to reset');
  t.is(server.events.stats().replayGaps, 0);
});

test('a history read that keeps failing as unavailable ends in a reset after a few recoveries, not a stream held for good', async (t) => {
  const { broker, server, stream } = await streamOnFlakyBroker(t, 200);

  broker.setConnected(false);
  broker.failingReads = 1000;
  broker.setConnected(true);
  const reset = await stream.next((f) => f.selector === 'cmd.onReset', 10_000);
  t.truthy(reset, 'told to reset once the catch-up gave up');
  t.true(broker.reads >= 4, `the catch-up started over before it gave up (${broker.reads} reads)`);
  broker.failingReads = 0;
  for (let waited = 0; waited < 3000 && !server.events.brokerAvailable; waited += 50) await delay(50);
  t.true(server.events.brokerAvailable, 'the server recovered');
});
