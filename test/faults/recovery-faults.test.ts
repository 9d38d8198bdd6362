import test, { type ExecutionContext } from 'ava';
import { NatsBroker } from '../../adapters/nats/index.js';
import { RedisBroker } from '../../adapters/redis/index.js';
import type { Broker } from '../../src/broker.js';
import { Records } from '../../src/records.js';
import { findBinary, startNats, startRedis, type BrokerProcess } from '../helpers/processes.js';
import { TcpRelay } from '../helpers/relay.js';
import { delay, startServer, type TestServer } from '../helpers/server.js';
import { SseStream } from '../helpers/sse.js';

/**
 * What a server writes back when its broker returns: only what is still its
 * own. A subscription removed or resumed elsewhere during the outage stays
 * so, and a server taken for dead and swept meanwhile ends its streams
 * instead of bringing their records back.
 */
const timers = { idleTimeoutMs: 2500, houseKeepingIntervalMs: 250, brokerTimeoutMs: 600, heartbeatIntervalMs: 400 };

const kinds = [
  { kind: 'redis', binary: 'redis-server', start: startRedis, broker: (url: string, prefix: string): Broker => new RedisBroker({ url, prefix: `${prefix}:` }) },
  { kind: 'nats', binary: 'nats-server', start: startNats, broker: (url: string, prefix: string): Broker => new NatsBroker({ url, prefix }) },
] as const;

type Kind = (typeof kinds)[number];

async function setUp(t: ExecutionContext, spec: Kind, viaRelayFor: 'A' | 'none') {
  const brokerProcess: BrokerProcess = await spec.start(findBinary(spec.binary)!);
  t.teardown(() => brokerProcess.dispose());
  const relay = viaRelayFor === 'A' ? await TcpRelay.start(brokerProcess.port) : undefined;
  t.teardown(() => relay?.close());
  const prefix = `rec${Date.now().toString(36)}`;
  const viaRelay = relay ? brokerProcess.url.replace(`:${brokerProcess.port}`, `:${relay.port}`) : brokerProcess.url;
  const A = await startServer({ broker: () => spec.broker(viaRelay, prefix), close: async () => {} }, { events: timers });
  const B = await startServer({ broker: () => spec.broker(brokerProcess.url, prefix), close: async () => {} }, { events: timers });
  t.teardown(() => Promise.all([A.close(), B.close()]));
  const probe = spec.broker(brokerProcess.url, prefix);
  await probe.connect();
  t.teardown(() => probe.close());
  const watcher = await open(t, B, 'home');
  return { brokerProcess, relay, A, B, records: new Records(probe.presence, 1000), watcher };
}

/** A heartbeating stream on `server`, closed at the end of the test. */
async function open(t: ExecutionContext, server: TestServer, query: string, cookie = `ss-id=${Math.random()}`): Promise<SseStream> {
  const stream = await SseStream.open(`${server.url}/event-stream?channels=${query}`, { Cookie: cookie });
  t.teardown(() => stream.close());
  await stream.connected();
  const beating = setInterval(() => void fetch(stream.connectArgs.heartbeatUrl!, { method: 'POST' }).catch(() => {}), timers.heartbeatIntervalMs);
  t.teardown(() => clearInterval(beating));
  return stream;
}

const leavesOf = (watcher: SseStream, userId: string) => watcher.frames.filter((f) => f.selector === 'cmd.onLeave' && (f.body as { userId?: string }).userId === userId).length;

async function freeze(brokerProcess: BrokerProcess, ms: number): Promise<void> {
  brokerProcess.signal('SIGSTOP');
  await delay(ms);
  brokerProcess.signal('SIGCONT');
}

for (const spec of kinds) {
  const available = findBinary(spec.binary) !== undefined;
  const serial = available ? test.serial : test.serial.skip;
  if (!available && process.env.CI === 'true') {
    test(`${spec.kind}: recovery tests need ${spec.binary}`, (t) => t.fail(`${spec.binary} is not installed`));
    continue;
  }

  serial(`${spec.kind}: a subscription detached on A and unregistered on B is not written back by A's recovery`, async (t) => {
    const { brokerProcess, A, B, records, watcher } = await setUp(t, spec, 'none');
    const subject = await open(t, A, 'home');
    const { id, userId } = subject.connectArgs as { id: string; userId: string };
    subject.close();
    await delay(300);
    t.is((await fetch(`${B.url}/event-unregister?id=${id}`, { method: 'POST' })).status, 200);
    await delay(300);
    await freeze(brokerProcess, 1500);
    await delay(timers.idleTimeoutMs + 1500);
    t.is(await records.read(id), undefined, 'the record stays removed');
    t.false((await B.events.getSubscriptionsDetails(['home'])).some((m) => m.userId === userId), 'and unlisted');
    t.is(leavesOf(watcher, userId), 1, 'one leave, from the unregister');
  });

  serial(`${spec.kind}: a subscription detached on A and resumed on B stays B's after A's recovery`, async (t) => {
    const { brokerProcess, A, B, records, watcher } = await setUp(t, spec, 'none');
    const subject = await open(t, A, 'home', 'ss-id=moving');
    const { id, userId } = subject.connectArgs as { id: string; userId: string };
    subject.close();
    await delay(300);
    const resumed = await open(t, B, `home&resume=${id}`, 'ss-id=moving');
    t.is(resumed.id, id);
    await delay(300);
    await freeze(brokerProcess, 1500);
    await delay(timers.idleTimeoutMs + 1500);
    const record = await records.read(id);
    t.is(record?.serverId, B.events.serverId, "still B's record");
    t.falsy(record?.detached, 'and live, not detached');
    t.false(resumed.ended, 'the resumed stream stays open');
    t.is(leavesOf(watcher, userId), 0, 'nobody left');
  });

  serial(`${spec.kind}: a server cut off until it was swept ends its streams when it is back, and writes nothing back`, async (t) => {
    const { relay, A, B, records, watcher } = await setUp(t, spec, 'A');
    const subject = await open(t, A, 'home');
    const { id, userId } = subject.connectArgs as { id: string; userId: string };
    await delay(500);
    relay!.cut();
    // Long enough for B to adopt A and retire its subscriber.
    for (let waited = 0; waited < 10_000 && leavesOf(watcher, userId) === 0; waited += 100) await delay(100);
    t.is(leavesOf(watcher, userId), 1, "B announced the leave of A's subscriber");
    await delay(1000);
    // The network comes back with every connection reset: A reconnects and must learn it was swept.
    relay!.reset();
    for (let waited = 0; waited < 8000 && !subject.ended; waited += 100) await delay(100);
    t.true(subject.ended, "A ended the stream whose subscription was retired");
    await delay(1000);
    t.is(await records.read(id), undefined, 'the record was not written back');
    t.false((await B.events.getSubscriptionsDetails(['home'])).some((m) => m.userId === userId), 'nor listed');
    t.is(leavesOf(watcher, userId), 1, 'one leave in all');
    t.is(A.events.stats().localSubscriptions, 0);
  });
}
