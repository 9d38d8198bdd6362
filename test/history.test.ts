import test from 'ava';
import { MemoryBroker } from '../adapters/memory.js';
import { NatsBroker } from '../adapters/nats.js';
import { RedisBroker } from '../adapters/redis.js';
import type { Broker, HistoryRetention } from '../src/broker.js';
import { withBrokerServer } from './helpers/broker-servers.js';
import { delay } from './helpers/server.js';

/** Retention by count and by age, the same contract on every adapter's history. */
function retentionTests(name: string, make: (retention: HistoryRetention, prefix: string) => Broker): void {
  let n = 0;
  const open = async (t: import('ava').ExecutionContext, retention: HistoryRetention) => {
    const broker = make(retention, `hist${++n}`);
    await broker.connect();
    t.teardown(() => broker.close());
    return broker.history!;
  };

  test(`${name}: the history keeps the newest maxLength events and says when an id is older than that`, async (t) => {
    const history = await open(t, { maxLength: 5 });
    const start = await history.head();
    const ids: number[] = [];
    for (let i = 0; i < 10; i++) ids.push(await history.publish(i % 2 ? 'ch.a' : 'ch.b', `{"kind":"notify","selector":"cmd.n","body":"${i}"}`));
    t.deepEqual(ids, ids.map((_, i) => start + i + 1), "ids count up by one from the head");
    t.is(await history.head(), ids[9]!);
    const recent = await history.read(ids[6]!, new Set(['ch.a', 'ch.b']));
    t.true(recent.complete);
    t.deepEqual(recent.entries.map((e) => e.id), ids.slice(7));
    const onlyA = await history.read(ids[4]!, new Set(['ch.a']));
    t.deepEqual(onlyA.entries.map((e) => e.id), [ids[5], ids[7], ids[9]], 'filtered by topic');
    t.deepEqual(await history.read(ids[2]!, new Set(['ch.a'])), { complete: false, entries: [] }, 'trimmed away');
    t.deepEqual(await history.read(ids[9]!, new Set(['ch.a'])), { complete: true, entries: [] }, 'up to date');
    t.false((await history.read(ids[9]! + 5, new Set(['ch.a']))).complete, 'an id from another epoch');
    t.false((await history.read(1, new Set(['ch.a']))).complete, 'an id from before this epoch');
  });

  test(`${name}: the history does not replay events older than maxAgeMs`, async (t) => {
    const history = await open(t, { maxAgeMs: 1000 });
    const before = await history.head();
    await history.publish('ch.a', '{"kind":"notify","selector":"cmd.n","body":"old"}');
    t.true((await history.read(before, new Set(['ch.a']))).complete);
    let complete = true;
    for (let waited = 0; complete && waited < 5000; waited += 250) {
      await delay(250);
      complete = (await history.read(before, new Set(['ch.a']))).complete;
    }
    t.false(complete, 'expired');
  });
}

retentionTests('memory', (history) => new MemoryBroker({ history }));
withBrokerServer('redis', (_factory, server) =>
  retentionTests('redis', (history, prefix) => new RedisBroker({ url: server().url, prefix: `${prefix}:`, history })),
);
withBrokerServer('nats', (_factory, server) =>
  retentionTests('nats', (history, prefix) => new NatsBroker({ url: server().url, prefix, history })),
);
