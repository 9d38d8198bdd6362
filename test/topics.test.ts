import test from 'ava';
import { MemoryBroker } from '../adapters/memory.js';
import { routedTopicsOf, subscriptionIdOf, TopicRouter, topics, topicsOf } from '../src/topics.js';

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
  await Promise.all([router.add('a', ['ch.1', 'ch.2']), router.add('b', ['ch.2', 'ch.3'])]);
  t.deepEqual(broker.calls, ['sub ch.1 ch.2 ch.3'], 'one batched call for both members');
  await router.remove('a', ['ch.1', 'ch.2']);
  t.deepEqual(broker.calls.slice(1), ['unsub ch.1'], 'ch.2 still has a member');
  t.deepEqual([...router.membersOf('ch.2')!], ['b']);
  await router.remove('b', ['ch.2', 'ch.3']);
  t.deepEqual(broker.calls.slice(2), ['unsub ch.2 ch.3']);
  t.is(router.subscribedTopics.size, 0);
});

test('a topic dropped and taken again before the flush costs no broker call', async (t) => {
  const broker = new RecordingBroker();
  const router = new TopicRouter<string>(broker);
  await router.add('a', ['ch.1']);
  const removed = router.remove('a', ['ch.1']);
  const added = router.add('b', ['ch.1']);
  await Promise.all([removed, added]);
  t.deepEqual(broker.calls, ['sub ch.1']);
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
  await t.throwsAsync(() => router.add('a', ['ch.1']), { message: 'broker down' });
  fail = false;
  await router.add('b', ['ch.2']);
  t.deepEqual([...router.subscribedTopics].sort(), ['ch.1', 'ch.2']);
});

test('private topics are counted for local delivery but never subscribed to; one member needs no set', async (t) => {
  const broker = new RecordingBroker();
  const router = new TopicRouter<string>(broker);
  const own = [topics.subscription('s1'), topics.userId('u1'), topics.session('x1')];
  await router.add('a', [topics.all, topics.channel('home'), ...own]);
  await router.add('b', [topics.all, topics.userId('u1')]);
  t.deepEqual(broker.calls, ['sub all ch.home'], 'only the shared audiences are broker topics');
  t.deepEqual([...router.membersOf(topics.subscription('s1'))!], ['a']);
  t.deepEqual([...router.membersOf(topics.userId('u1'))!].sort(), ['a', 'b']);
  await router.remove('a', [topics.all, topics.channel('home'), ...own]);
  t.deepEqual([...router.membersOf(topics.userId('u1'))!], ['b'], 'back to a single member');
  t.is(router.membersOf(topics.subscription('s1')), undefined);
  t.deepEqual(broker.calls.slice(1), ['unsub ch.home']);
  t.deepEqual([...router.subscribedTopics], ['all']);
});

test('channel and server names are made once and stay right when their cache starts over', (t) => {
  // Past the cache's bound (10,000 names), it starts over: names made before and after are the same.
  const first = topics.channel('a.b');
  const names = Array.from({ length: 10_050 }, (_, i) => topics.channel(`room-${i}`));
  t.true(names.every((name, i) => name === `ch.room-${i}`));
  t.is(topics.channel('a.b'), first);
  t.is(topics.server('srv.1'), 'srv.srv%2E1');
  t.is(topics.server('srv.1'), topics.server('srv.1'));
});

test('a stream is routed by its user, channels, user name and session; everyone and its own topic are found by its id', (t) => {
  const info = { id: 'a.b', userId: '-1', userName: 'ann', sessionId: 's1', channels: ['home', 'x.y'] } as Parameters<typeof topicsOf>[0];
  t.deepEqual(routedTopicsOf(info), ['uid.-1', 'ch.home', 'ch.x%2Ey', 'uname.ann', 'sess.s1']);
  t.deepEqual(topicsOf(info), ['all', 'sub.a%2Eb', ...routedTopicsOf(info)], 'a replay reads every audience');
  t.is(subscriptionIdOf(topics.subscription('a.b')), 'a.b');
  t.is(subscriptionIdOf(topics.channel('sub.x')), undefined);
  t.is(subscriptionIdOf(topics.all), undefined);
  t.is(subscriptionIdOf('sub.%E0%A4%A'), '', 'a broken name names no subscription, and throws nothing');
});
