import test from 'ava';
import type { ClusterFactory } from '../helpers/cluster.js';
import { connections, delay, eventually } from './connections.js';

/** Pub/sub, counters and the optional lists. */
export function messagingContract(factory: ClusterFactory): void {
  const name = (title: string) => `${factory.name} contract: ${title}`;

  test(name('publish reaches every subscribed connection, itself included, in order, and only subscribed topics'), async (t) => {
    const [a, b] = await connections(t, factory);
    const got: Record<string, string[]> = { a: [], b: [] };
    a!.onMessage((topic, payload) => got.a!.push(`${topic} ${payload}`));
    b!.onMessage((topic, payload) => got.b!.push(`${topic} ${payload}`));
    await Promise.all([a!.subscribe(['t.one']), b!.subscribe(['t.one', 't.two'])]);
    // On a NATS cluster a subscription reaches the other nodes a moment after it resolves (see Broker.subscribe):
    // the two connections may be on different nodes. Probes until each topic is seen where it is subscribed.
    const probed = (topic: string, on: string[]) => on.some((line) => line.startsWith(`${topic} probe`));
    t.true(
      await eventually(async () => {
        await a!.publish('t.one', 'probe');
        await a!.publish('t.two', 'probe');
        return probed('t.one', got.a!) && probed('t.one', got.b!) && probed('t.two', got.b!);
      }, 10_000),
      'every subscription is reached',
    );
    for (let i = 0; i < 20; i++) await a!.publish(i % 2 ? 't.two' : 't.one', String(i));
    await a!.publish('t.none', 'nobody listens');
    const events = (on: string[]) => on.filter((line) => !line.endsWith(' probe'));
    t.true(await eventually(() => events(got.b!).length === 20 && events(got.a!).length === 10));
    t.deepEqual(events(got.b!), Array.from({ length: 20 }, (_, i) => `${i % 2 ? 't.two' : 't.one'} ${i}`));
    t.deepEqual(events(got.a!), Array.from({ length: 10 }, (_, i) => `t.one ${i * 2}`));
    await b!.unsubscribe(['t.one']);
    await a!.publish('t.one', 'after');
    await a!.publish('t.two', 'marker');
    t.true(await eventually(() => got.b!.includes('t.two marker')));
    t.false(got.b!.includes('t.one after'), 'an unsubscribed topic is not delivered');
  });

  test(name('nextSequence never hands out a value twice across connections'), async (t) => {
    const [a, b] = await connections(t, factory);
    const values = await Promise.all(Array.from({ length: 60 }, (_, i) => (i % 2 ? a! : b!).nextSequence('contract')));
    t.is(new Set(values).size, 60);
    t.deepEqual([...values].sort((x, y) => x - y), Array.from({ length: 60 }, (_, i) => i + 1), 'from 1, without holes');
  });

  test(name('counters and lists stay whole when many servers race on one key'), async (t) => {
    const brokers = await connections(t, factory, 8);
    const values = await Promise.all(brokers.flatMap((broker) => Array.from({ length: 25 }, () => broker.nextSequence('raced'))));
    t.is(new Set(values).size, 200, 'every call got its own value');
    t.is(Math.max(...values), 200);
    if (!brokers[0]!.lists) return;
    await Promise.all(brokers.flatMap((broker, b) => Array.from({ length: 10 }, (_, i) => broker.lists!.push('crowded', `${b}-${i}`, 1000))));
    t.is((await brokers[0]!.lists.range('crowded')).length, 80, 'no append lost or refused');
  });

  test(name('lists, where a broker has them, keep the newest entries and are shared'), async (t) => {
    const [a, b] = await connections(t, factory);
    if (!a!.lists || !b!.lists) return t.pass('this broker has no lists');
    for (let i = 0; i < 5; i++) await a!.lists.push('recent', `m${i}`, 3);
    t.deepEqual(await b!.lists.range('recent'), ['m2', 'm3', 'm4']);
    await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 ? a! : b!).lists!.push('raced', `r${i}`, 100)));
    t.is((await a!.lists.range('raced')).length, 10, 'no append lost to a race');
    await b!.lists.clear('recent');
    t.deepEqual(await a!.lists.range('recent'), []);
    await delay(0);
  });
}
