import test, { type ExecutionContext } from 'ava';
import type { EventHistory, HistoryRetention } from '../../src/broker.js';
import { gapOf } from '../../src/replay.js';
import type { ClusterFactory } from '../helpers/cluster.js';
import { connections, delay } from './connections.js';

/** `EventHistory`: ids that count up, publish and live delivery as one step, and reads that say what is kept. */
export function historyContract(factory: ClusterFactory): void {
  const name = (title: string) => `${factory.name} contract: history: ${title}`;
  const open = async (t: ExecutionContext, history: HistoryRetention = {}) => {
    const brokers = await connections(t, factory, 2, { history });
    const histories = brokers.map((b) => b.history);
    if (histories.some((h) => h === undefined)) throw new Error(`${factory.name} has no history`);
    return { brokers, a: histories[0] as EventHistory, b: histories[1] as EventHistory };
  };
  const event = (n: number) => `{"kind":"notify","selector":"cmd.n","body":"${n}"}`;

  test(name('ids count up by one across connections, and each arrives live with its id'), async (t) => {
    const { brokers, a, b } = await open(t);
    const received: Array<[string, number | undefined]> = [];
    brokers[1]!.onMessage((topic, payload, id) => received.push([payload, id]));
    await brokers[1]!.subscribe(['ch.live']);
    const start = await b.head();
    const ids = [await a.publish('ch.live', event(1)), await b.publish('ch.live', event(2)), await a.publish('ch.live', event(3))];
    t.deepEqual(ids, [start + 1, start + 2, start + 3]);
    t.is(await a.head(), start + 3);
    for (let i = 0; i < 100 && received.length < 3; i++) await delay(20);
    t.deepEqual(received, ids.map((id, i) => [event(i + 1), id]), 'in order, with the ids the history gave');
  });

  test(name('publishes made at once, several batches of them, each get an id, in the order made (once-keys aside), and arrive live in the order of the ids'), async (t) => {
    const { brokers, a } = await open(t);
    const received: Array<[string, number | undefined]> = [];
    brokers[1]!.onMessage((_topic, payload, id) => received.push([payload, id]));
    await brokers[1]!.subscribe(['ch.x', 'ch.y']);
    const start = await a.head();
    const count = 150;
    // Two topics, and now and then a once-key: every kind of batch entry, made in one turn.
    const ids = await Promise.all(
      Array.from({ length: count }, (_, i) => a.publish(i % 2 ? 'ch.x' : 'ch.y', event(i), undefined, i % 7 === 0 ? { key: `burst-${start}-${i}`, windowMs: 60_000 } : undefined)),
    );
    t.deepEqual([...ids].sort((x, y) => x! - y!), Array.from({ length: count }, (_, i) => start + 1 + i), 'one id each, consecutive');
    // A once-key may take a step of its own first (NATS), which lets the events made after it overtake it.
    const plain = ids.filter((_, i) => i % 7 !== 0);
    t.deepEqual(plain, [...plain].sort((x, y) => x! - y!), 'those without a once-key in the order made');
    for (let i = 0; i < 200 && received.length < count; i++) await delay(20);
    const byId = new Map(ids.map((id, i) => [id, event(i)]));
    t.deepEqual(received, [...byId].sort(([x], [y]) => x! - y!).map(([id, payload]) => [payload, id]), 'live, in the order of the ids, each with its own');
  });

  test(name('a read returns the asked topics after an id, and first and head say what is kept'), async (t) => {
    const { a, b } = await open(t, { maxLength: 5 });
    const start = await a.head();
    const ids: number[] = [];
    for (let i = 0; i < 10; i++) ids.push((await a.publish(i % 2 ? 'ch.a' : 'ch.b', event(i)))!);
    const recent = await b.read(ids[6]!, new Set(['ch.a', 'ch.b']));
    t.deepEqual(recent.entries.map((e) => e.id), ids.slice(7));
    t.is(recent.head, ids[9]!);
    t.true(recent.first <= ids[7]!, `nothing after the id is lost (first ${recent.first})`);
    t.true(recent.first >= ids[5]!, 'only the newest 5 are kept');
    t.deepEqual((await b.read(ids[4]!, new Set(['ch.a']))).entries.map((e) => e.id), [ids[5], ids[7], ids[9]], 'filtered by topic');
    t.truthy(gapOf(await b.read(ids[2]!, new Set(['ch.a'])), ids[2]!), 'trimmed away: a gap');
    t.is(gapOf(await b.read(ids[4]!, new Set(['ch.a'])), ids[4]!), undefined, 'the oldest kept follows the id: no gap');
    t.is(gapOf(await b.read(ids[9]!, new Set(['ch.a'])), ids[9]!), undefined, 'up to date');
    t.truthy(gapOf(await b.read(ids[9]! + 5, new Set(['ch.a'])), ids[9]! + 5), 'an id above the head');
    t.truthy(gapOf(await b.read(start - 100, new Set(['ch.a'])), start - 100), 'an id from before this history');
  });

  test(name('events older than maxAgeMs count as gone'), async (t) => {
    const { a } = await open(t, { maxAgeMs: 1000 });
    const before = await a.head();
    const start = performance.now();
    await a.publish('ch.a', event(0));
    const fresh = gapOf(await a.read(before, new Set(['ch.a'])), before);
    // Judged only when the publish and the read took less than the age limit (not so on a machine stalled for a second).
    const span = performance.now() - start;
    if (span < 1000) t.is(fresh, undefined, `read ${Math.round(span)} ms after the publish began`);
    else t.log(`the publish and read took ${Math.round(span)} ms: freshness not judged`);
    let gap: string | undefined;
    // JetStream ages events out itself, on a clustered stream a few seconds after their time.
    for (let waited = 0; gap === undefined && waited < 12_000; waited += 250) {
      await delay(250);
      gap = gapOf(await a.read(before, new Set(['ch.a'])), before);
    }
    t.truthy(gap, 'aged out');
  });

  test(name('once: a repeat of a key within its window is neither kept nor published, from any connection, however they race'), async (t) => {
    const { brokers, a, b } = await open(t);
    const received: string[] = [];
    brokers[1]!.onMessage((_topic, payload) => received.push(payload));
    await brokers[1]!.subscribe(['ch.once']);
    const start = await a.head();
    const once = (key: string, windowMs = 5000) => ({ key, windowMs });
    const first = await a.publish('ch.once', event(1), undefined, once('k1'));
    t.is(first, start + 1);
    t.is(await b.publish('ch.once', event(2), undefined, once('k1')), undefined, 'a repeat from another connection');
    t.is(await a.publish('ch.once', event(3), undefined, once('k1')), undefined, 'and from the same one');
    const raced = await Promise.all([a, b, a, b].map((h, i) => h.publish('ch.once', event(10 + i), undefined, once('k2'))));
    t.is(raced.filter((id) => id !== undefined).length, 1, 'of racing repeats one is taken');
    t.is(await a.publish('ch.once', event(20)), start + 3, 'one without a key is always taken, numbered on');
    t.is(await b.publish('ch.once', event(21), undefined, once('short', 1000)), start + 4);
    // A backend may remember a key longer than a short window (NATS: its duplicate window), never shorter.
    await delay(Math.max(1000, a.onceAtLeastMs ?? 0) + 300);
    t.is(await a.publish('ch.once', event(22), undefined, once('short', 1000)), start + 5, 'after its window a key is free again');
    for (let i = 0; i < 100 && received.length < 5; i++) await delay(20);
    await delay(100);
    const winner = raced.findIndex((id) => id !== undefined);
    t.deepEqual(received, [event(1), event(10 + winner), event(20), event(21), event(22)], 'only what was taken went out');
    const read = await b.read(start, new Set(['ch.once']));
    t.deepEqual(read.entries.map((e) => e.id), [start + 1, start + 2, start + 3, start + 4, start + 5], 'nor was a repeat kept');
  });
}
