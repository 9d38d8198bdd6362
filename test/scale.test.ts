import test from 'ava';
import { createRandomId, defaultProfileUrl } from '../src/identity.js';
import { buildMeta, Records, type SubscriptionInfo } from '../src/records.js';
import { withBrokerServer } from './helpers/broker-servers.js';
import { memoryClusters, type ClusterFactory } from './helpers/cluster.js';
import { startServer } from './helpers/server.js';
import { only, SseStream } from './helpers/sse.js';

/** More subscriptions than the old Redis listing could hand to Lua's unpack (about 8,000). */
const total = 10_500;

function record(n: number, serverId: string, overrides: Partial<SubscriptionInfo> = {}): SubscriptionInfo {
  const base = {
    id: createRandomId(),
    userId: `-${n}`,
    displayName: `user${n}`,
    sessionId: `session-${n}`,
    channels: [n < 10 ? 'small' : 'big'],
    createdAt: Date.now(),
    isAuthenticated: false,
    profileUrl: defaultProfileUrl,
    userAddress: '127.0.0.1',
    serverId,
    connectionId: createRandomId(),
    ...overrides,
  };
  return { ...base, meta: buildMeta(base) };
}

/**
 * Presence at cluster scale, on each broker: ten thousand and more records
 * (written through the store, as streams would write them, to stay cheap),
 * then the lookups the API makes, each of which must find exactly its own.
 */
function scaleTests(factory: ClusterFactory): void {
  test(`${factory.name}: past ${total.toLocaleString('en')} subscriptions, a 10-member channel, a user and a session are found exactly, and a browser resumes`, async (t) => {
    const cluster = await factory.create();
    const server = await startServer(cluster, { events: { idleTimeoutMs: 120_000 } });
    t.teardown(() => server.close());
    const store = new Records(server.events.broker.presence, 120_000);
    // Most on a server that is not running (as after a crash, with leases still running), some on the live one.
    const infos = Array.from({ length: total }, (_, n) => record(n, n % 3 === 0 ? server.events.serverId : 'elsewhere'));
    const resumable = record(total, 'elsewhere', { channels: ['small'], detached: true, sessionId: 'resume-me' });
    const started = Date.now();
    for (let i = 0; i < infos.length; i += 500) await Promise.all(infos.slice(i, i + 500).map((info) => store.write(info)));
    await store.write(resumable);
    t.log(`${factory.name}: wrote ${total + 1} records in ${Date.now() - started} ms`);

    const small = await server.events.getSubscriptionsDetails(['small']);
    t.deepEqual(small.map((m) => m.userId).sort(), [...infos.slice(0, 10).map((i) => i.userId), resumable.userId].sort());
    const user = await server.events.getSubscriptionInfosByUserId('-4321');
    t.deepEqual(user.map((i) => i.id), [infos[4321]!.id]);
    t.deepEqual(await server.events.getSubscriptionInfosByUserId('-999999'), []);
    t.is((await server.events.getSubscriptionsDetails(['big'])).length, total - 10, 'a big channel is listed whole, batch by batch');

    // The browser's own reconnect: same session cookie, same channels, a Last-Event-ID.
    const stream = await SseStream.open(`${server.url}/event-stream?channels=small`, { Cookie: 'ss-id=resume-me', 'Last-Event-ID': '1' });
    t.teardown(() => stream.close());
    await stream.connected();
    t.is(stream.id, resumable.id, 'it found its detached subscription among all the others');
    t.false(stream.frames.some(only('cmd.onJoin')), 'resumed, not joined again');
  });
}

scaleTests(memoryClusters);
withBrokerServer('redis', (factory) => scaleTests(factory));
withBrokerServer('nats', (factory) => scaleTests(factory));
