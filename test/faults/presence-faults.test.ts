import test, { type ExecutionContext } from 'ava';
import { NatsBroker } from '../../adapters/nats/index.js';
import { RedisBroker } from '../../adapters/redis/index.js';
import type { Broker } from '../../src/broker.js';
import { findBinary, startNats, startRedis, startServerProcess, type BrokerProcess } from '../helpers/processes.js';
import { delay, request, startServer } from '../helpers/server.js';
import { only, SseStream } from '../helpers/sse.js';

/**
 * Broker and server failures with real processes: each test owns its
 * redis-server or nats-server, so it can kill it without touching others.
 */
const kinds = [
  { kind: 'redis', binary: 'redis-server', start: startRedis, broker: (url: string, prefix: string): Broker => new RedisBroker({ url, prefix: `${prefix}:` }) },
  { kind: 'nats', binary: 'nats-server', start: startNats, broker: (url: string, prefix: string): Broker => new NatsBroker({ url, prefix }) },
] as const;

async function ownBroker(t: ExecutionContext, start: (binary: string) => Promise<BrokerProcess>, binary: string): Promise<BrokerProcess> {
  const path = findBinary(binary)!;
  const process = await start(path);
  t.teardown(() => process.dispose());
  return process;
}

for (const { kind, binary, start, broker } of kinds) {
  const available = findBinary(binary) !== undefined;
  const serial = available ? test.serial : test.serial.skip;
  if (!available && process.env.CI === 'true') {
    test(`${kind}: fault tests need ${binary}`, (t) => t.fail(`${binary} is not installed`));
    continue;
  }

  serial(`${kind}: the broker dies for 3 s under two servers; streams stay open, nothing crashes, both deliver within 2 s of the restart`, async (t) => {
    const brokerProcess = await ownBroker(t, start, binary);
    const warnings: string[] = [];
    const logger = { warn: (m: string) => warnings.push(m), error: (m: string) => warnings.push(m) };
    const cluster = { broker: () => broker(brokerProcess.url, 'outage'), close: async () => {} };
    const servers = [await startServer(cluster, { events: { logger } }), await startServer(cluster, { events: { logger } })];
    t.teardown(() => Promise.all(servers.map((s) => s.close())));
    const streams = await Promise.all(servers.map((s) => SseStream.open(`${s.url}/event-stream?channels=home`)));
    t.teardown(() => streams.forEach((s) => s.close()));
    await Promise.all(streams.map((s) => s.connected()));

    await brokerProcess.kill('SIGKILL');
    await delay(3000);
    const during = await Promise.allSettled([servers[0]!.events.notifyChannel('home', 'cmd.msg', 'during')]);
    t.true(streams.every((s) => !s.ended), 'the SSE streams stayed open through the outage');
    t.is(warnings.filter((w) => w.includes('lost the')).length, 2, 'each server logged the outage once');
    t.is(during[0]!.status, 'rejected', 'a notification that cannot reach the broker fails');
    const beat = await request('POST', streams[0]!.connectArgs.heartbeatUrl!);
    t.is(beat.status, 200, 'a heartbeat to the server that holds the stream is taken there, broker or not');
    await streams[0]!.next(only('cmd.onHeartbeat'));
    const elsewhere = await request('POST', `${servers[1]!.url}/event-heartbeat?id=${streams[0]!.id}`);
    t.is(elsewhere.status, 503, 'one that needs the broker to reach the stream is told to retry, not that the server failed');
    t.is(elsewhere.headers.get('retry-after'), '2');

    // Back empty: Redis keeps nothing on disk, and the NATS storage is wiped.
    await brokerProcess.restart({ wipe: true });
    const restartedAt = Date.now();
    let delivered = false;
    let attempt = 0;
    // One attempt every 50 ms from alternating servers, not waiting for each: a publish sent while
    // the broker is still starting may wait for its time-out, and must not hold back the next.
    const attempts: Promise<unknown>[] = [];
    const publishing = (async () => {
      while (!delivered && Date.now() - restartedAt < 10_000) {
        attempts.push(servers[attempt++ % 2]!.events.notifyChannel('home', 'cmd.msg', 'after').catch(() => {}));
        await delay(50);
      }
      await Promise.all(attempts);
    })();
    await Promise.all(streams.map((s) => s.next((f) => f.selector === 'cmd.msg' && f.body === 'after', 10_000)));
    const recoveredMs = Date.now() - restartedAt;
    delivered = true;
    await publishing;
    t.log(`${kind}: both servers delivered ${recoveredMs} ms after the restart`);
    t.true(recoveredMs < 2000, `delivered again after ${recoveredMs} ms`);

    // The presence records are written again, even if the broker came back empty.
    const deadline = Date.now() + 5000;
    while ((await servers[1]!.events.getAllSubscriptionInfos().catch(() => [])).length < 2 && Date.now() < deadline) await delay(100);
    t.is((await servers[1]!.events.getAllSubscriptionInfos()).length, 2);
    t.true(warnings.some((w) => w.includes('is back')));
  });

  serial(`${kind}: a server process killed with SIGKILL leaves every listing, with cmd.onLeave, within idleTimeout plus one housekeeping interval`, async (t) => {
    const brokerProcess = await ownBroker(t, start, binary);
    const idleTimeoutMs = 2000;
    const houseKeepingIntervalMs = 250;
    const prefix = 'kill9';
    const doomedServer = await startServerProcess(kind, brokerProcess.url, prefix, {
      IDLE_TIMEOUT_MS: String(idleTimeoutMs),
      HOUSEKEEPING_MS: String(houseKeepingIntervalMs),
    });
    t.teardown(() => doomedServer.kill());
    const child = doomedServer.child;

    const cluster = { broker: () => broker(brokerProcess.url, prefix), close: async () => {} };
    const survivor = await startServer(cluster, { events: { idleTimeoutMs, houseKeepingIntervalMs } });
    t.teardown(() => survivor.close());
    const watcher = await SseStream.open(`${survivor.url}/event-stream?channels=home`);
    const doomed = await SseStream.open(`${doomedServer.url}/event-stream?channels=home`);
    t.teardown(() => [watcher, doomed].forEach((s) => s.close()));
    await watcher.connected();
    await doomed.connected();
    // Both stay alive by heartbeats: the watcher through the survivor, the doomed one through its own
    // server, so only the kill can end it.
    let lastDoomedBeat = Date.now();
    const beating = setInterval(() => {
      void fetch(watcher.connectArgs.heartbeatUrl!, { method: 'POST' }).catch(() => {});
      void fetch(doomed.connectArgs.heartbeatUrl!, { method: 'POST' })
        .then((res) => {
          if (res.ok) lastDoomedBeat = Date.now();
        })
        .catch(() => {});
    }, 300);
    t.teardown(() => clearInterval(beating));
    const doomedUser = doomed.connectArgs.userId;
    await watcher.next((f) => f.selector === 'cmd.onJoin' && (f.body as Record<string, string>).userId === doomedUser);
    await delay(idleTimeoutMs + houseKeepingIntervalMs * 2);
    t.false(watcher.frames.some(only('cmd.onLeave')), 'with heartbeats, nobody leaves');
    t.is((await survivor.events.getAllSubscriptionInfos()).length, 2);

    child.kill('SIGKILL');
    const leave = await watcher.next((f) => f.selector === 'cmd.onLeave' && (f.body as Record<string, string>).userId === doomedUser, 10_000);
    const tookMs = Date.now() - lastDoomedBeat;
    t.is(leave.channel, 'home');
    t.log(`${kind}: the dead server's subscriber left ${tookMs} ms after its last heartbeat`);
    t.true(tookMs <= idleTimeoutMs + houseKeepingIntervalMs + 500, `left after ${tookMs} ms`);
    t.deepEqual((await survivor.events.getAllSubscriptionInfos()).map((i) => i.id), [watcher.id]);
    await delay(houseKeepingIntervalMs * 3);
    t.is(watcher.frames.filter(only('cmd.onLeave')).length, 1, 'the leave was announced once');
  });
}
