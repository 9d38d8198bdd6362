import test from 'ava';
import { CoalescedCounter } from '../../../adapters/nats/coalesced-counter.js';

/** A counter store that answers after a tick and records every increment it was asked for. */
function store(failOnce = false) {
  const values = new Map<string, number>();
  const writes: number[] = [];
  let failing = failOnce;
  const add = async (name: string, amount: number) => {
    await new Promise((resolve) => setImmediate(resolve));
    if (failing) {
      failing = false;
      throw new Error('store unavailable');
    }
    writes.push(amount);
    const next = (values.get(name) ?? 0) + amount;
    values.set(name, next);
    return next;
  };
  return { add, writes };
}

test('a burst of calls gets every value once and costs two writes', async (t) => {
  const { add, writes } = store();
  const counter = new CoalescedCounter(add);
  const values = await Promise.all(Array.from({ length: 50 }, () => counter.next('n')));
  t.deepEqual(values, Array.from({ length: 50 }, (_, i) => i + 1));
  t.deepEqual(writes, [1, 49]);
  t.is(await counter.next('n'), 51);
  t.is(await counter.next('other'), 1);
});

test('a failed write rejects only the calls it carried; later ones are served', async (t) => {
  const { add } = store(true);
  const counter = new CoalescedCounter(add);
  const first = counter.next('n');
  const rest = Array.from({ length: 5 }, () => counter.next('n'));
  await t.throwsAsync(first, { message: 'store unavailable' });
  t.deepEqual(await Promise.all(rest), [1, 2, 3, 4, 5]);
  t.is(await counter.next('n'), 6);
});
