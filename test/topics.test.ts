import test from 'ava';
import { MemoryBroker } from '../adapters/memory.js';
import { TopicRouter, topics } from '../src/topics.js';

/** A memory broker that records the calls the router makes. */
class RecordingBroker extends MemoryBroker {
  calls: string[] = [];
  override async subscribe(names: readonly string[]) {
    this.calls.push(`sub ${[...names].sort().join(' ')}`);
    return super.subscribe(names);
  }
  override async unsubscribe(names: readonly string[]) {
    this.calls.push(`unsub ${[...names].sort().join(' ')}`);
    return super.unsubscribe(names);
  }
}

test('topic names encode every character that means something to Redis or NATS', (t) => {
  t.is(topics.channel('home'), 'ch.home');
  t.is(topics.channel('a.b'), 'ch.a%2Eb');
  t.is(topics.channel('x.*'), 'ch.x%2E%2A');
  t.is(topics.channel('y >'), 'ch.y%20%3E');
  t.is(topics.userName('josé'), 'uname.jos%C3%A9');
  t.not(topics.channel('a.b'), topics.channel('a%2Eb'));
  for (const name of ['a.b', 'x.*', 'y >', 'café ☕', '%41']) t.regex(topics.session(name), /^sess\.[^.*> ]+$/);
});

test('the router subscribes a topic on its first member and unsubscribes after its last, in batches', async (t) => {
  const broker = new RecordingBroker();
  const router = new TopicRouter<string>(broker);
  await Promise.all([router.add('a', ['t1', 't2']), router.add('b', ['t2', 't3'])]);
  t.deepEqual(broker.calls, ['sub t1 t2 t3'], 'one batched call for both members');
  await router.remove('a', ['t1', 't2']);
  t.deepEqual(broker.calls.slice(1), ['unsub t1'], 't2 still has a member');
  t.deepEqual([...router.membersOf('t2')!], ['b']);
  await router.remove('b', ['t2', 't3']);
  t.deepEqual(broker.calls.slice(2), ['unsub t2 t3']);
  t.is(router.subscribedTopics.size, 0);
});

test('a topic dropped and taken again before the flush costs no broker call', async (t) => {
  const broker = new RecordingBroker();
  const router = new TopicRouter<string>(broker);
  await router.add('a', ['t1']);
  const removed = router.remove('a', ['t1']);
  const added = router.add('b', ['t1']);
  await Promise.all([removed, added]);
  t.deepEqual(broker.calls, ['sub t1']);
});

test('a failed subscribe is retried by the next change', async (t) => {
  const broker = new RecordingBroker();
  let fail = true;
  const subscribe = broker.subscribe.bind(broker);
  broker.subscribe = async (names) => {
    if (fail) throw new Error('broker down');
    return subscribe(names);
  };
  const router = new TopicRouter<string>(broker);
  await t.throwsAsync(() => router.add('a', ['t1']), { message: 'broker down' });
  fail = false;
  await router.add('b', ['t2']);
  t.deepEqual([...router.subscribedTopics].sort(), ['t1', 't2']);
});
