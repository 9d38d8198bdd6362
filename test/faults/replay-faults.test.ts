import test, { type ExecutionContext } from 'ava';
import { NatsBroker } from '../../adapters/nats/index.js';
import { RedisBroker } from '../../adapters/redis/index.js';
import type { Broker } from '../../src/broker.js';
import { ServerEvents } from '../../src/server-events.js';
import { findBinary, startNats, startRedis, startServerProcess, type BrokerProcess, type ServerProcess } from '../helpers/processes.js';
import { delay, request } from '../helpers/server.js';
import { only, SseStream } from '../helpers/sse.js';
import { onlyAnnouncedLoss, recordingClient, steadyPublisher, until } from '../helpers/steady.js';

/**
 * Nothing lost, with real processes: servers killed with SIGKILL and broker
 * servers killed and restarted while events are published at a steady rate.
 * Each test states what was lost: nothing, or exactly what the gap signal
 * (`cmd.onReset`) announced.
 */
const kinds = [
  { kind: 'redis', binary: 'redis-server', start: startRedis, broker: (url: string, prefix: string): Broker => new RedisBroker({ url, prefix: `${prefix}:` }) },
  { kind: 'nats', binary: 'nats-server', start: startNats, broker: (url: string, prefix: string): Broker => new NatsBroker({ url, prefix }) },
] as const;

async function ownBroker(t: ExecutionContext, start: (binary: string) => Promise<BrokerProcess>, binary: string) {
  const process = await start(findBinary(binary)!);
  t.teardown(() => process.dispose());
  return process;
}

for (const { kind, binary, start, broker } of kinds) {
  const available = findBinary(binary) !== undefined;
  if (!available) {
    if (process.env.CI === 'true') test(`${kind}: replay fault tests need ${binary}`, (t) => t.fail(`${binary} is not installed`));
    else test.skip(`${kind}: replay fault tests: ${binary} is not installed`, () => {});
    continue;
  }

  test.serial(`${kind}: a client cut from server process A, with 100 events published by process B, resumes on process C and gets all 100 once, in order`, async (t) => {
    const brokerProcess = await ownBroker(t, start, binary);
    const servers: ServerProcess[] = [];
    t.teardown(() => servers.forEach((s) => s.kill()));
    for (let i = 0; i < 3; i++) servers.push(await startServerProcess(kind, brokerProcess.url, 'cut'));
    const [a, b, c] = servers as [ServerProcess, ServerProcess, ServerProcess];
    const first = await SseStream.open(`${a.url}/event-stream?channels=home`);
    await first.next(only('cmd.onJoin'));
    const seen = first.frames.at(-1)!.id;
    const session = { Cookie: String(first.headers['set-cookie']).split(';')[0]! };
    first.close();
    t.is((await request('POST', `${b.url}/test/publish?channel=home&count=100`)).json.published, 100);
    const again = await SseStream.open(`${c.url}/event-stream?channels=home&resume=${first.id}`, { 'Last-Event-ID': seen, ...session });
    t.teardown(() => again.close());
    await again.count(only('cmd.msg'), 100);
    await delay(200);
    t.is(again.id, first.id, 'the same subscription');
    t.deepEqual(again.frames.filter(only('cmd.msg')).map((f) => f.body), Array.from({ length: 100 }, (_, i) => i));
    t.false(again.frames.some(only('cmd.onReset')));
  });

  test.serial(`${kind}: one of three server processes is SIGKILLed during a steady stream; its clients fail over and receive every event once, in order`, async (t) => {
    const brokerProcess = await ownBroker(t, start, binary);
    const prefix = 'failover';
    const servers: ServerProcess[] = [];
    t.teardown(() => servers.forEach((s) => s.kill()));
    for (let i = 0; i < 3; i++) servers.push(await startServerProcess(kind, brokerProcess.url, prefix));
    const urls = servers.map((s) => s.url);

    // Six clients, two on each server, each listing the others to fail over to.
    const clients = Array.from({ length: 6 }, (_, i) => recordingClient([0, 1, 2].map((k) => urls[(i + k) % 3]!)));
    t.teardown(() => Promise.all(clients.map((c) => c.client.stop())));
    await Promise.all(clients.map((c) => c.client.connect()));

    const publisher = new ServerEvents({ broker: broker(brokerProcess.url, prefix) });
    await publisher.start();
    t.teardown(() => publisher.stop());
    const publishing = steadyPublisher(publisher, 20);
    await delay(1000);
    servers[0]!.kill();
    await delay(2000);
    await publishing.stop();

    t.deepEqual(publishing.rejected, [], 'the broker took every event');
    const expected = publishing.accepted;
    await until(() => clients.every((c) => c.received.length >= expected.length), 10_000);
    for (const [i, c] of clients.entries()) {
      t.deepEqual(c.received, expected, `client ${i} (started on server ${i % 3}) got every event once, in order`);
      t.deepEqual(c.resets, [], `client ${i} needed no reset`);
    }
    t.true(clients.filter((_, i) => i % 3 === 0).every((c) => c.client.baseUrl !== urls[0]), 'the clients of the dead server moved');
    t.log(`${kind}: ${expected.length} events at 50/s, server 1 of 3 killed after 1 s; every client got all of them`);
  });

  test.serial(`${kind}: the broker server is killed and restarted during a steady stream; no process crashes, and every event arrives or is announced by cmd.onReset`, async (t) => {
    const brokerProcess = await ownBroker(t, start, binary);
    const prefix = 'outage';
    const servers: ServerProcess[] = [];
    t.teardown(() => servers.forEach((s) => s.kill()));
    for (let i = 0; i < 2; i++) servers.push(await startServerProcess(kind, brokerProcess.url, prefix));
    const clients = Array.from({ length: 4 }, (_, i) => recordingClient([servers[i % 2]!.url, servers[(i + 1) % 2]!.url]));
    t.teardown(() => Promise.all(clients.map((c) => c.client.stop())));
    await Promise.all(clients.map((c) => c.client.connect()));

    const publisher = new ServerEvents({ broker: broker(brokerProcess.url, prefix), logger: { warn: () => {}, error: () => {} } });
    await publisher.start();
    t.teardown(() => publisher.stop());
    const publishing = steadyPublisher(publisher, 20);
    await delay(1000);
    await brokerProcess.kill('SIGKILL');
    await delay(1500);
    await brokerProcess.restart();
    await delay(2500);
    await publishing.stop();

    t.true(servers.every((s) => s.child.exitCode === null && s.child.signalCode === null), 'the server processes are alive');
    const accepted = publishing.accepted;
    const last = accepted.at(-1)!;
    t.true(accepted.includes(0) && last > 150, 'events were accepted before and after the outage');
    await until(() => clients.every((c) => c.received.includes(last)), 15_000);
    for (const [i, c] of clients.entries()) {
      const missing = onlyAnnouncedLoss(t, `client ${i}`, c, accepted, 'outage');
      // nats-server keeps its stream on disk through the restart, so the history can replay everything.
      if (kind === 'nats') t.deepEqual(missing, [], `client ${i} lost nothing`);
      t.log(`${kind}: client ${i}: ${c.received.length} of ${accepted.length} accepted events, ${missing.length} missing, ${c.resets.length} resets`);
    }
    t.log(`${kind}: ${publishing.rejected.length} publishes were rejected during the outage (the publisher was told)`);
  });
}
