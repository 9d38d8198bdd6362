import test from 'ava';
import type { PresenceStore } from '../../src/broker.js';
import type { ClusterFactory } from '../helpers/cluster.js';
import { connections, delay, eventually } from './connections.js';

/** Every id listed under `index`, from all batches, checking each batch's size. */
async function membersOf(store: PresenceStore, index: string, batchSize = 100): Promise<string[]> {
  const all: string[] = [];
  for await (const batch of store.members(index, batchSize)) {
    if (batch.length > batchSize) throw new Error(`a batch of ${batch.length} over ${batchSize}`);
    all.push(...batch);
  }
  return [...new Set(all)].sort();
}

/** `PresenceStore`: records with leases and indexes, compare-and-set, and removal handed to exactly one caller. */
export function presenceContract(factory: ClusterFactory): void {
  const name = (title: string) => `${factory.name} contract: presence: ${title}`;

  test(name('put, get and getMany see a record on every connection while its lease runs, listed under its indexes'), async (t) => {
    const [a, b] = await connections(t, factory);
    await a!.presence.put('p1', 'one', ['ch.a', 'uid.1'], 5000);
    await a!.presence.put('p2', 'two', ['ch.a'], 5000);
    t.is(await b!.presence.get('p1'), 'one');
    t.deepEqual([...(await b!.presence.getMany(['p1', 'p2', 'nobody']))].sort(), [['p1', 'one'], ['p2', 'two']]);
    t.deepEqual(await membersOf(b!.presence, 'ch.a'), ['p1', 'p2']);
    t.deepEqual(await membersOf(b!.presence, 'uid.1'), ['p1']);
    t.deepEqual(await membersOf(b!.presence, 'ch.none'), []);
    await a!.presence.put('p1', 'one again', ['ch.b'], 5000);
    t.is(await b!.presence.get('p1'), 'one again', 'put replaces');
    t.deepEqual(await membersOf(b!.presence, 'ch.a'), ['p2'], 'and moves it out of the indexes it no longer names');
    t.deepEqual(await membersOf(b!.presence, 'ch.b'), ['p1']);
    t.deepEqual(await membersOf(b!.presence, 'uid.1'), []);
    t.is(await b!.presence.get('nobody'), undefined);
  });

  test(name('replace is a compare-and-set: only on the exact record, only while live, and it moves the indexes'), async (t) => {
    const [a, b] = await connections(t, factory);
    await a!.presence.put('r1', 'v1', ['ch.old'], 5000);
    t.false(await b!.presence.replace('r1', 'v0', 'v2', ['ch.new'], 5000), 'a stale expectation changes nothing');
    t.is(await a!.presence.get('r1'), 'v1');
    t.deepEqual(await membersOf(a!.presence, 'ch.new'), []);
    t.true(await b!.presence.replace('r1', 'v1', 'v2', ['ch.new'], 5000));
    t.is(await a!.presence.get('r1'), 'v2');
    t.deepEqual(await membersOf(a!.presence, 'ch.new'), ['r1']);
    t.deepEqual(await membersOf(a!.presence, 'ch.old'), []);
    const raced = await Promise.all([a!.presence.replace('r1', 'v2', 'from a', ['ch.new'], 5000), b!.presence.replace('r1', 'v2', 'from b', ['ch.new'], 5000)]);
    t.is(raced.filter(Boolean).length, 1, 'of two racing replaces, one wins');
    t.false(await a!.presence.replace('missing', 'x', 'y', [], 5000), 'nothing to replace');
    await a!.presence.put('r2', 'short', [], 200);
    await delay(400);
    t.false(await a!.presence.replace('r2', 'short', 'revived', [], 5000), 'an expired record is not brought back');
  });

  test(name('touch renews a live lease, and after expiry renews nothing; an expired record is not found'), async (t) => {
    const [a, b] = await connections(t, factory);
    // Leases of two seconds renewed every 400 ms: six renewals outlive the first lease. A renewal must
    // succeed when it ran within a lease of the previous one; on a machine so loaded that even the
    // round trips straddle a lease, the renewal proves nothing and is only logged.
    const leaseMs = 2000;
    let previousStart = performance.now();
    await a!.presence.put('t1', 'beating', ['ch.t'], leaseMs);
    let kept = true;
    for (let i = 0; i < 6 && kept; i++) {
      await delay(400);
      const start = performance.now();
      kept = await b!.presence.touch('t1', leaseMs);
      const span = performance.now() - previousStart;
      if (span < leaseMs) t.true(kept, `renewal ${i + 1}, ${Math.round(span)} ms after the previous one`);
      else t.log(`renewal ${i + 1} came ${Math.round(span)} ms after the previous one: not judged`);
      previousStart = start;
    }
    // A lease that lapsed unjudged is simply not kept alive: what follows holds either way.
    if (kept) t.is(await a!.presence.get('t1'), 'beating', 'kept alive past its first lease');
    await delay(leaseMs + 500);
    t.false(await b!.presence.touch('t1', 5000), 'too late');
    t.is(await a!.presence.get('t1'), undefined, 'touch did not revive it');
    t.is((await a!.presence.getMany(['t1'])).size, 0, 'nor does getMany see it');
    t.false(await a!.presence.touch('never', 1000));
  });

  test(name('touchMany renews the live records of a batch, each to its own lease, and says which were gone'), async (t) => {
    const [a, b] = await connections(t, factory);
    const store = b!.presence;
    await a!.presence.put('m1', 'one', [], 5000);
    await a!.presence.put('m2', 'two', [], 200);
    await a!.presence.put('m3', 'three', [], 5000);
    await delay(400);
    const ids = ['m1', 'm2', 'gone', 'm3'];
    const renewed = store.touchMany ? await store.touchMany(ids, [300, 5000, 5000, 5000]) : await Promise.all(ids.map((id) => store.touch(id, id === 'm1' ? 300 : 5000)));
    t.deepEqual(renewed, [true, false, false, true], 'an expired and a missing record are not renewed');
    t.is(await a!.presence.get('m2'), undefined, 'nor brought back');
    await delay(600);
    t.is(await a!.presence.get('m1'), undefined, 'each got its own lease: m1 the short one');
    t.is(await a!.presence.get('m3'), 'three');
    if (store.touchMany) t.deepEqual(await store.touchMany([], []), []);
  });

  test(name('remove hands the record to exactly one of several racing callers, and unlists it'), async (t) => {
    const [a, b] = await connections(t, factory);
    for (let i = 0; i < 10; i++) await a!.presence.put(`x${i}`, `record ${i}`, ['ch.x'], 5000);
    const results = await Promise.all(Array.from({ length: 10 }, (_, i) => Promise.all([a!.presence.remove(`x${i}`), b!.presence.remove(`x${i}`)])));
    for (const [i, pair] of results.entries()) t.deepEqual(pair.filter((r) => r !== undefined), [`record ${i}`], `record ${i}`);
    t.is(await b!.presence.get('x0'), undefined);
    t.is(await a!.presence.remove('x0'), undefined, 'a second removal gets nothing');
    t.deepEqual(await membersOf(a!.presence, 'ch.x'), []);
  });

  test(name('takeExpired hands each expired record to exactly one caller, unlists it, and leaves live ones alone'), async (t) => {
    const [a, b] = await connections(t, factory);
    const ids = Array.from({ length: 30 }, (_, i) => `e${i}`);
    for (const id of ids) await a!.presence.put(id, `expired ${id}`, ['srv.s1'], 100);
    await a!.presence.put('live', 'still here', ['srv.s1'], 10_000);
    await delay(300);
    const [fromA, fromB] = await Promise.all([a!.presence.takeExpired([...ids, 'live', 'nobody']), b!.presence.takeExpired([...ids, 'live'])]);
    const taken = [...fromA, ...fromB];
    t.is(taken.length, 30);
    t.is(new Set(taken).size, 30, 'each record to exactly one caller');
    t.deepEqual(await a!.presence.takeExpired(ids), []);
    t.is(await b!.presence.get('live'), 'still here');
    t.deepEqual(await membersOf(a!.presence, 'srv.s1'), ['live']);
  });

  test(name('members come in bounded batches, also for an index of thousands'), async (t) => {
    const [a, b] = await connections(t, factory);
    const ids = Array.from({ length: 1200 }, (_, i) => `m${String(i).padStart(4, '0')}`);
    for (let i = 0; i < ids.length; i += 100) await Promise.all(ids.slice(i, i + 100).map((id) => a!.presence.put(id, id, ['ch.big', `uid.${id}`], 10_000)));
    t.deepEqual(await membersOf(b!.presence, 'ch.big', 100), ids);
    await Promise.all(ids.slice(0, 600).map((id) => b!.presence.remove(id)));
    t.deepEqual(await membersOf(a!.presence, 'ch.big', 250), ids.slice(600), 'removals from a large index');
    t.deepEqual(await membersOf(a!.presence, `uid.${ids[700]}`), [ids[700]]);
  });

  test(name('unlist removes ids that have no record, and keeps those that do'), async (t) => {
    const [a] = await connections(t, factory, 1);
    await a!.presence.put('u1', 'here', ['ch.u'], 5000);
    await a!.presence.unlist('ch.u', ['u1', 'ghost']);
    t.deepEqual(await membersOf(a!.presence, 'ch.u'), ['u1']);
    t.true(await eventually(async () => (await a!.presence.get('u1')) === 'here'));
  });
}
