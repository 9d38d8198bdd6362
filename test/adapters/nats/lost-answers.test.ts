/**
 * A history publish on one NATS node carries no message id: when its
 * connection is lost before the answer came, the stream is read for its
 * attempt, and it is answered if stored and sent again if not. Either way
 * each event is stored once, and nobody sees the attempt's mark.
 */
import test, { type ExecutionContext } from 'ava';
import { jetstreamManager, type StreamState } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { NatsBroker } from '../../../adapters/nats/index.js';
import { findBinary, startNats, type BrokerProcess } from '../../helpers/processes.js';
import { TcpRelay } from '../../helpers/relay.js';
import { delay } from '../../helpers/server.js';

/** Waits for `check` to hold, looking every 50 ms, for at most `timeoutMs`. */
async function until(check: () => boolean | Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!(await check())) {
    if (performance.now() > deadline) throw new Error('timed out waiting');
    await delay(50);
  }
}

const binary = findBinary('nats-server');

async function ownNats(t: ExecutionContext): Promise<BrokerProcess> {
  const server = await startNats(binary!);
  t.teardown(() => server.dispose());
  return server;
}

async function brokerOn(t: ExecutionContext, url: string, prefix: string, history?: { maxLength?: number; maxAgeMs?: number }): Promise<NatsBroker> {
  const broker = new NatsBroker({ url, prefix, history });
  broker.limitCallsTo(10_000);
  await broker.connect();
  t.teardown(() => broker.close());
  return broker;
}

/** What the stream holds, read apart from the broker under test. */
async function storedPayloads(url: string, stream: string): Promise<string[]> {
  const nc = await connect({ servers: url });
  try {
    const jsm = await jetstreamManager(nc);
    const info = await jsm.streams.info(stream);
    const payloads: string[] = [];
    for (let seq = info.state.first_seq; info.state.messages > 0 && seq <= info.state.last_seq; seq++) payloads.push((await jsm.streams.getMessage(stream, { seq }))!.string());
    return payloads;
  } finally {
    await nc.close();
  }
}

/** The stream's state, read apart from the broker under test. */
async function streamState(url: string, stream: string): Promise<StreamState> {
  const nc = await connect({ servers: url });
  try {
    return (await (await jetstreamManager(nc)).streams.info(stream)).state;
  } finally {
    await nc.close();
  }
}

async function storedCount(url: string, stream: string): Promise<number> {
  return (await streamState(url, stream)).messages;
}

/** A nats-server of its own, and a broker that reaches it through a relay that can hold or cut its connection. */
async function relayedBroker(t: ExecutionContext, prefix: string, history?: { maxLength?: number; maxAgeMs?: number }) {
  const server = await ownNats(t);
  const relay = await TcpRelay.start(server.port);
  t.teardown(() => relay.close());
  const broker = await brokerOn(t, `nats://127.0.0.1:${relay.port}`, prefix, history);
  return { server, relay, broker };
}

const event = (i: number) => JSON.stringify({ kind: 'notify', selector: 'cmd.n', body: String(i) });

/** Resolves when the broker next says it is connected again. */
const connectedAgain = (broker: NatsBroker) => new Promise<void>((resolve) => broker.onStatus((status) => status.connected && resolve()));

/** Each outcome: the id, or the error's name. */
const outcome = (publish: Promise<number | undefined>) =>
  publish.then(
    (id) => id,
    (error: Error) => error.name,
  );

if (!binary) {
  if (process.env.CI === 'true') test('nats-server is available', (t) => t.fail('nats-server is not installed'));
  else test.skip('lost answers: nats-server is not installed', () => {});
} else {
  test('answers lost with the connection: the stored publishes are answered with their ids, the others sent again, and each is stored once', async (t) => {
    t.timeout(60_000);
    const { server, relay, broker } = await relayedBroker(t, 'lost');
    const live: string[] = [];
    broker.onMessage((topic, payload) => topic === 'ch' && live.push(payload));
    await broker.subscribe(['ch']);
    const first = await broker.history.publish('ch', event(0));

    // Stored, with the answers held in the relay; then not even sent.
    relay.cutReplies();
    const answered = Array.from({ length: 300 }, (_, i) => broker.history.publish('ch', event(1 + i)));
    await until(async () => (await storedCount(server.url, broker.history.stream)) === 301, 10_000);
    relay.cut();
    const unsent = Array.from({ length: 300 }, (_, i) => broker.history.publish('ch', event(301 + i)));
    await delay(200);
    t.is(await storedCount(server.url, broker.history.stream), 301, 'the second batch did not reach the server');
    const started = performance.now();
    relay.reset();

    const ids = await Promise.all([...answered, ...unsent]);
    t.log(`600 publishes settled ${Math.round(performance.now() - started)} ms after the connection was lost`);
    t.true(
      ids.every((id) => typeof id === 'number'),
      'every publish succeeded',
    );
    const payloads = await storedPayloads(server.url, broker.history.stream);
    t.is(payloads.length, 601, 'each stored once');
    const read = await broker.history.read(first! - 1, new Set(['ch']));
    t.deepEqual(
      read.entries.map((entry) => entry.payload),
      Array.from({ length: 601 }, (_, i) => event(i)),
      'in the order they were made, as published: the mark taken out',
    );
    const idOf = new Map(read.entries.map((entry) => [entry.payload, entry.id]));
    t.deepEqual(
      ids,
      Array.from({ length: 600 }, (_, i) => idOf.get(event(1 + i))),
      'each answered with the id it is stored at',
    );
    await until(() => live.length >= 301, 5000);
    t.true(
      live.every((payload) => !payload.includes('"~"')),
      'live subscribers get the payload as published',
    );
  });

  test('publishes in flight when nats-server is killed and restarted are each stored once, and none fails', async (t) => {
    t.timeout(60_000);
    const server = await ownNats(t);
    const broker = await brokerOn(t, server.url, 'restart');
    await broker.history.publish('ch', event(0));
    // More than the publisher's window (1,024): killed with a full window in flight, some stored and some not.
    let done = 0;
    const outcomes = Array.from({ length: 3000 }, (_, i) =>
      broker.history.publish('ch', event(1 + i)).then(
        () => (done++, 'stored'),
        (error: Error) => error.message,
      ),
    );
    await until(() => done >= 1000, 10_000);
    await server.kill('SIGKILL');
    await server.restart();
    const settled = await Promise.all(outcomes);
    t.deepEqual(
      settled.filter((outcome) => outcome !== 'stored'),
      [],
      'none failed',
    );
    const payloads = await storedPayloads(server.url, broker.history.stream);
    t.is(new Set(payloads).size, payloads.length, 'none stored twice');
    t.is(payloads.length, 3001);
  });

  test('every payload reads back as published, on either path, whatever its first member', async (t) => {
    const server = await ownNats(t);
    const broker = await brokerOn(t, server.url, 'shapes');
    const live: string[] = [];
    broker.onMessage((topic, payload) => topic === 'ch' && live.push(payload));
    await broker.subscribe(['ch']);
    const payloads = ['{"~":"hello","x":1}', '{"~":"a","b":"c"}', '{"~":1}', '"text"', '[1,2]', '{}', '{"'];
    const ids: number[] = [];
    for (const payload of payloads) ids.push((await broker.history.publish('ch', payload))!);
    // With an idempotency key a publish goes with a message id, not as one marked alone.
    ids.push((await broker.history.publish('ch', '{"~":"keyed"}', undefined, { key: 'k-1', windowMs: 60_000 }))!);
    const expected = [...payloads, '{"~":"keyed"}'];
    const read = await broker.history.read(ids[0]! - 1, new Set(['ch']));
    t.deepEqual(
      read.entries.map((entry) => entry.payload),
      expected,
    );
    await until(() => live.length >= expected.length, 5000);
    t.deepEqual(live, expected);
  });

  test('after an earlier reconnect, a lost publish that was not stored goes again on a trimmed stream', async (t) => {
    t.timeout(30_000);
    const { server, relay, broker } = await relayedBroker(t, 'trimmed', { maxLength: 64 });
    for (let i = 0; i < 300; i++) await broker.history.publish('ch', event(i));
    const again = connectedAgain(broker);
    relay.reset();
    await again;
    relay.cut();
    const outcomes = Array.from({ length: 20 }, (_, i) => outcome(broker.history.publish('ch', event(300 + i))));
    await delay(200);
    relay.reset();
    t.true(
      (await Promise.all(outcomes)).every((id) => typeof id === 'number'),
      'none failed',
    );
    const read = await broker.history.read((await broker.history.head()) - 20, new Set(['ch']));
    t.deepEqual(
      read.entries.map((entry) => entry.payload),
      Array.from({ length: 20 }, (_, i) => event(300 + i)),
      'each stored once, in order',
    );
  });

  test('a stream made anew under a lost publish: it is found there, not stored twice', async (t) => {
    t.timeout(40_000);
    const { server, relay, broker } = await relayedBroker(t, 'anew');
    for (let i = 0; i < 200; i++) await broker.history.publish('ch', event(i));
    // Published as soon as the client is back, before the broker has opened the stream again.
    let outcomes: Promise<number | string | undefined>[] = [];
    const nc = (broker as unknown as { nc: import('@nats-io/transport-node').NatsConnection }).nc;
    const sent = (async () => {
      for await (const status of nc.status()) {
        if (status.type !== 'reconnect') continue;
        relay.cutReplies();
        outcomes = Array.from({ length: 20 }, (_, i) => outcome(broker.history.publish('ch', event(1000 + i))));
        return;
      }
    })();
    await server.kill('SIGKILL');
    await server.restart({ wipe: true });
    const other = await brokerOn(t, server.url, 'anew');
    for (let i = 0; i < 10; i++) await other.history.publish('ch', event(2000 + i));
    await sent;
    // A loaded machine takes its time to reconnect and resend: the wait is for the outcome, within the test's bound.
    await until(async () => (await storedCount(server.url, broker.history.stream)) === 30, 25_000);
    relay.reset();
    t.true(
      (await Promise.all(outcomes)).every((id) => typeof id === 'number'),
      'none failed',
    );
    const payloads = await storedPayloads(server.url, broker.history.stream);
    t.is(payloads.length, 30, 'none stored twice');
  });

  test('a lost publish whose part of the stream aged out is reported failed, not sent again', async (t) => {
    t.timeout(30_000);
    const { server, relay, broker } = await relayedBroker(t, 'aged', { maxAgeMs: 1000 });
    relay.cutReplies();
    const outcomes = Array.from({ length: 20 }, (_, i) => outcome(broker.history.publish('ch', event(i))));
    await until(async () => (await storedCount(server.url, broker.history.stream)) === 20, 5000);
    await until(async () => (await storedCount(server.url, broker.history.stream)) === 0, 5000);
    relay.reset();
    t.deepEqual(await Promise.all(outcomes), Array(20).fill('AckLostError'), 'it may have been stored: the caller is told, nothing goes twice');
    t.is((await streamState(server.url, broker.history.stream)).last_seq, 20, 'nothing was stored again');
  });
}
