import { readFileSync } from 'node:fs';
import test from 'ava';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { JetStreamPublisher } from '../../../adapters/nats/publisher.js';
import { withBrokerServer } from '../../helpers/broker-servers.js';
import { delay } from '../../helpers/server.js';

withBrokerServer('nats', (_factory, server) => {
  /** Freezes the server and waits until it has stopped: a signal reaches a busy process's threads a moment later. */
  async function freeze(): Promise<void> {
    server().signal('SIGSTOP');
    const stopped = () => /^\S+ \(.*\) T/.test(readFileSync(`/proc/${server().pid}/stat`, 'utf8'));
    for (let i = 0; i < 100 && !stopped(); i++) await delay(10);
  }

  async function streamOn(t: { teardown(fn: () => unknown): void }, name: string): Promise<NatsConnection> {
    const nc = await connect({ servers: server().url });
    t.teardown(() => nc.close());
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name, subjects: [`${name}.>`], duplicate_window: 10_000_000_000 });
    t.teardown(() => jsm.streams.delete(name).catch(() => {}));
    return nc;
  }

  test('many publishes in flight each get their own sequence, in the order they were made; a repeated message id is a duplicate', async (t) => {
    const nc = await streamOn(t, 'pubOrder');
    // A window smaller than the burst: the rest wait for room, and none is lost.
    const publisher = new JetStreamPublisher(() => nc, 16);
    const acks = await Promise.all(Array.from({ length: 200 }, (_, i) => publisher.publish('pubOrder.a', `m${i}`, { msgID: `id-${i}`, timeoutMs: 2000 })));
    t.deepEqual(
      acks.map((ack) => ack.seq),
      Array.from({ length: 200 }, (_, i) => i + 1),
    );
    t.true(acks.every((ack) => !ack.duplicate));
    const repeat = await publisher.publish('pubOrder.a', 'again', { msgID: 'id-7', timeoutMs: 2000 });
    t.deepEqual(repeat, { seq: 8, duplicate: true });
    const jsm = await jetstreamManager(nc);
    t.is((await jsm.streams.getMessage('pubOrder', { seq: 8 }))?.string(), 'm7', 'the first is kept');
    t.is((await jsm.streams.info('pubOrder')).state.messages, 200);
  });

  test('JetStream refusals come back as errors: no stream for the subject, a failed expectation', async (t) => {
    const nc = await streamOn(t, 'pubErrors');
    const publisher = new JetStreamPublisher(() => nc);
    await t.throwsAsync(publisher.publish('nostream.here', 'x', { timeoutMs: 2000 }), { message: /jetstream is not enabled/ });
    await t.throwsAsync(publisher.publish('pubErrors.k', 'x', { timeoutMs: 2000, headers: { 'Nats-Expected-Last-Subject-Sequence': '5' } }), { message: /wrong last sequence/ });
    t.is((await publisher.publish('pubErrors.k', 'y', { timeoutMs: 2000 })).seq, 1, 'the refused one was not stored');
  });

  test('headers are stored as given, beside the message id; one holding a line break is refused before anything is sent', async (t) => {
    const nc = await streamOn(t, 'pubHeaders');
    const publisher = new JetStreamPublisher(() => nc);
    const ack = await publisher.publish('pubHeaders.k', 'x', { timeoutMs: 2000, msgID: 'm-1', headers: { 'Se-Attempt': 'a b:c', 'Nats-Expected-Last-Subject-Sequence': '0' } });
    const stored = await (await jetstreamManager(nc)).streams.getMessage('pubHeaders', { seq: ack.seq });
    t.is(stored!.header.get('Se-Attempt'), 'a b:c');
    t.is(stored!.header.get('Nats-Msg-Id'), 'm-1');
    t.is(stored!.string(), 'x');
    t.true((await publisher.publish('pubHeaders.k', 'x', { timeoutMs: 2000, msgID: 'm-1' })).duplicate, 'the id is the one JetStream checks');
    await t.throwsAsync(publisher.publish('pubHeaders.k', 'x', { timeoutMs: 2000, headers: { 'Se-Attempt': 'a\r\nNats-Msg-Id: forged' } }), { message: /line break/ });
    t.is((await jetstreamManager(nc).then((m) => m.streams.info('pubHeaders'))).state.messages, 1, 'nothing more was stored');
    // With a window of one, a refused publish queued behind another takes no place: the one after it still goes.
    const narrow = new JetStreamPublisher(() => nc, 1);
    const [first, refused, next] = await Promise.allSettled([
      narrow.publish('pubHeaders.k', 'a', { timeoutMs: 2000 }),
      narrow.publish('pubHeaders.k', 'b', { timeoutMs: 2000, headers: { 'Se-Attempt': 'x\ny' } }),
      narrow.publish('pubHeaders.k', 'c', { timeoutMs: 2000 }),
    ]);
    t.is(first.status, 'fulfilled');
    t.is(refused.status, 'rejected');
    t.is(next.status, 'fulfilled', 'not left waiting for a place');
  });

  // Serial: they freeze the one server every test here shares.
  test.serial('a frozen server times publishes out within their time-out, and they are answered again once it thaws', async (t) => {
    t.timeout(30_000);
    const nc = await streamOn(t, 'pubFrozen');
    const publisher = new JetStreamPublisher(() => nc);
    // Thawed before the test ends, not in a teardown, which may run after the next serial test has begun.
    await freeze();
    try {
      const started = performance.now();
      await t.throwsAsync(publisher.publish('pubFrozen.a', 'x', { msgID: 'frozen-1', timeoutMs: 300 }), { name: 'TimeoutError' });
      const waited = performance.now() - started;
      t.true(waited >= 290 && waited < 1500, `timed out after ${Math.round(waited)} ms`);
    } finally {
      server().signal('SIGCONT');
    }
    await delay(300);
    // The timed-out one may have been stored after all: its repeat, with the same id, is then a duplicate of it.
    const retry = await publisher.publish('pubFrozen.a', 'x', { msgID: 'frozen-1', timeoutMs: 5000 });
    t.is(retry.seq, 1);
  });

  test.serial('publishes in flight when the connection closes fail at once, and so do those waiting for room', async (t) => {
    const nc = await streamOn(t, 'pubClosed');
    const publisher = new JetStreamPublisher(() => nc, 2);
    await freeze();
    try {
      const outcomes = Array.from({ length: 5 }, (_, i) => publisher.publish('pubClosed.a', `x${i}`, { timeoutMs: 10_000 }).then(() => 'stored', (error: Error) => error.name));
      await delay(50);
      const started = performance.now();
      void nc.close();
      t.deepEqual(await Promise.all(outcomes), Array(5).fill('ClosedConnectionError'));
      t.true(performance.now() - started < 2000);
    } finally {
      server().signal('SIGCONT');
    }
  });
});
