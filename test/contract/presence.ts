import test from 'ava';
import type { ClusterFactory } from '../helpers/cluster.js';
import { connections, delay, eventually } from './connections.js';

/** `PresenceStore`: records with leases, compare-and-set, and removal handed to exactly one caller. */
export function presenceContract(factory: ClusterFactory): void {
  const name = (title: string) => `${factory.name} contract: presence: ${title}`;

  test(name('put, get and list see a record on every connection while its lease runs'), async (t) => {
    const [a, b] = await connections(t, factory);
    await a!.presence.put('p1', 'one', 5000);
    t.is(await b!.presence.get('p1'), 'one');
    t.true(await eventually(async () => (await b!.presence.list()).includes('one')), 'listed on the other connection');
    await a!.presence.put('p1', 'one again', 5000);
    t.is(await b!.presence.get('p1'), 'one again', 'put replaces');
    t.is(await b!.presence.get('nobody'), undefined);
  });

  test(name('replace is a compare-and-set: only on the exact record, only while live'), async (t) => {
    const [a, b] = await connections(t, factory);
    await a!.presence.put('r1', 'v1', 5000);
    t.false(await b!.presence.replace('r1', 'v0', 'v2', 5000), 'a stale expectation changes nothing');
    t.is(await a!.presence.get('r1'), 'v1');
    t.true(await b!.presence.replace('r1', 'v1', 'v2', 5000));
    t.is(await a!.presence.get('r1'), 'v2');
    const raced = await Promise.all([a!.presence.replace('r1', 'v2', 'from a', 5000), b!.presence.replace('r1', 'v2', 'from b', 5000)]);
    t.deepEqual(raced.filter(Boolean).length, 1, 'of two racing replaces, one wins');
    t.false(await a!.presence.replace('missing', 'x', 'y', 5000), 'nothing to replace');
    await a!.presence.put('r2', 'short', 200);
    await delay(400);
    t.false(await a!.presence.replace('r2', 'short', 'revived', 5000), 'an expired record is not brought back');
  });

  test(name('touch renews a live lease, and after expiry renews nothing'), async (t) => {
    const [a, b] = await connections(t, factory);
    await a!.presence.put('t1', 'beating', 400);
    for (let i = 0; i < 4; i++) {
      await delay(200);
      t.true(await b!.presence.touch('t1', 400), `renewal ${i + 1}`);
    }
    t.is(await a!.presence.get('t1'), 'beating', 'kept alive past its first lease');
    await delay(600);
    t.false(await b!.presence.touch('t1', 5000), 'too late');
    t.is(await a!.presence.get('t1'), undefined, 'touch did not revive it');
    t.false(await a!.presence.touch('never', 1000));
  });

  test(name('remove hands the record to exactly one of several racing callers'), async (t) => {
    const [a, b] = await connections(t, factory);
    for (let i = 0; i < 10; i++) await a!.presence.put(`x${i}`, `record ${i}`, 5000);
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) => Promise.all([a!.presence.remove(`x${i}`), b!.presence.remove(`x${i}`)])),
    );
    for (const [i, pair] of results.entries()) t.deepEqual(pair.filter((r) => r !== undefined), [`record ${i}`], `record ${i}`);
    t.is(await b!.presence.get('x0'), undefined);
    t.is(await a!.presence.remove('x0'), undefined, 'a second removal gets nothing');
  });

  test(name('takeExpired hands each expired record to exactly one caller and leaves live ones alone'), async (t) => {
    const [a, b] = await connections(t, factory);
    for (let i = 0; i < 30; i++) await a!.presence.put(`e${i}`, `expired ${i}`, 100);
    await a!.presence.put('live', 'still here', 10_000);
    await delay(300);
    t.false((await a!.presence.list()).some((r) => r.startsWith('expired')), 'expired records are never listed');
    const taken: string[] = [];
    // A watching store may learn of the records a moment after they were written.
    await eventually(async () => {
      const [fromA, fromB] = await Promise.all([a!.presence.takeExpired(7), b!.presence.takeExpired(7)]);
      t.true(fromA.length <= 7 && fromB.length <= 7, 'no more than the limit');
      taken.push(...fromA, ...fromB);
      return taken.length >= 30;
    });
    t.is(taken.length, 30);
    t.is(new Set(taken).size, 30, 'each record to exactly one caller');
    t.deepEqual(await a!.presence.takeExpired(100), []);
    t.is(await b!.presence.get('live'), 'still here');
  });
}
