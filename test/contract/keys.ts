import test from 'ava';
import type { ClusterFactory } from '../helpers/cluster.js';
import { connections, delay } from './connections.js';

/** `ExpiringKeys`: one claim wins across the cluster, and a key is forgotten when its time is up. */
export function keysContract(factory: ClusterFactory): void {
  const name = (title: string) => `${factory.name} contract: keys: ${title}`;

  test(name('setIfAbsent sets a key once across servers and answers the held value to the others'), async (t) => {
    // Long enough to outlast the test on a loaded machine (ten rounds on a 3-node cluster took over 5 s): expiry has a test of its own.
    const heldMs = 60_000;
    const [a, b] = await connections(t, factory);
    const keys = [a!.keys!, b!.keys!];
    for (let i = 0; i < 10; i++) {
      const raced = await Promise.all(keys.flatMap((store, s) => [store.setIfAbsent(`k${i}`, `from ${s}a`, heldMs), store.setIfAbsent(`k${i}`, `from ${s}b`, heldMs)]));
      const winners = raced.filter((held) => held === undefined);
      t.is(winners.length, 1, `key ${i}: one claim wins`);
      const winner = ['from 0a', 'from 0b', 'from 1a', 'from 1b'][raced.indexOf(undefined)];
      for (const held of raced) if (held !== undefined) t.is(held, winner!, 'the losers are told what the winner set');
    }
    t.is(await b!.keys!.setIfAbsent('k0', 'again', heldMs), (await a!.keys!.setIfAbsent('k0', 'again', heldMs))!, 'still held');
  });

  test(name('set replaces a value and renews it; delete frees the key; an expired key is free again'), async (t) => {
    const [a, b] = await connections(t, factory);
    t.is(await a!.keys!.setIfAbsent('job', 'pending', 5000), undefined);
    await b!.keys!.set('job', 'done', 5000);
    t.is(await a!.keys!.setIfAbsent('job', 'pending', 5000), 'done', 'set replaced it');
    await a!.keys!.delete('job');
    t.is(await b!.keys!.setIfAbsent('job', 'second', 5000), undefined, 'deleted: free');
    t.is(await a!.keys!.setIfAbsent('short', 'one', 300), undefined);
    await delay(700);
    t.is(await b!.keys!.setIfAbsent('short', 'two', 5000), undefined, 'expired: free');
    t.is(await a!.keys!.setIfAbsent('short', 'three', 5000), 'two');
    t.is(await a!.keys!.setIfAbsent('key with spaces/and:colons', 'x', 5000), undefined, 'any key text');
    t.is(await b!.keys!.setIfAbsent('key with spaces/and:colons', 'y', 5000), 'x');
  });
}
