/**
 * Private audiences reach their subscriptions through server inboxes (see
 * `topics`). These are the races between a sender's lookup, a resume on
 * another server and the old server letting go, found by a review that
 * held one broker call back at a time: each must end with the event or the
 * change where the subscription is, once.
 */
import test from 'ava';
import { internalsOf } from '../src/internals.js';
import { topics } from '../src/topics.js';
import { fixture } from './conformance/fixture.js';
import { withBrokerServer } from './helpers/broker-servers.js';
import { memoryClusters, type ClusterFactory } from './helpers/cluster.js';
import { gatedMemory, Hooks } from './helpers/gated-broker.js';
import { delay } from './helpers/server.js';
import { only, type SseStream } from './helpers/sse.js';

const lastId = (s: SseStream) => s.frames.at(-1)!.id;
const sessionOf = (s: SseStream) => ({ Cookie: String(s.headers['set-cookie']).split(';')[0]! });
const notice = (body: string) => ({ kind: 'notify' as const, selector: 'cmd.msg', body: JSON.stringify(body) });
const messages = (s: SseStream) => s.frames.filter(only('cmd.msg')).map((f) => f.body);

function forwardedOnce(factory: ClusterFactory): void {
  test(`${factory.name}: an event two sweeping servers both pass on reaches the resumed stream once`, async (t) => {
    const { connect, servers } = await fixture(t, factory, { count: 4 });
    const [A, C, , D] = servers.map((s) => s.events);
    const cookie = { Cookie: 'ss-id=shared-session' };
    const tab1 = await connect('?channels=home', { on: 0, headers: cookie });
    const tab2 = await connect('?channels=work', { on: 1, headers: cookie });
    tab1.close();
    tab2.close();
    while ((await D!.getSubscriptionInfo(tab1.id))?.detached !== true || (await D!.getSubscriptionInfo(tab2.id))?.detached !== true) await delay(20);
    const again = await connect(`?channels=work&resume=${tab2.id}`, { on: 2, headers: { 'Last-Event-ID': lastId(tab2), ...cookie } });
    // Looked up before the resume: both servers that sweep a member of the session are named, and both pass it on.
    await internalsOf(D!).delivery.publish(topics.session('shared-session'), notice('once'), [A!.serverId, C!.serverId]);
    await again.next(only('cmd.msg'));
    await delay(300);
    t.deepEqual(messages(again), ['once']);
  });
}
forwardedOnce(memoryClusters);
withBrokerServer('redis', forwardedOnce);
withBrokerServer('nats', forwardedOnce);

test('an event reaching the old server while it hands the stream over (its unsubscribe is slow) is passed on', async (t) => {
  const hooksA = new Hooks();
  const { connect, servers } = await fixture(t, gatedMemory([hooksA]), { count: 3 });
  const [A, , C] = servers.map((s) => s.events);
  const first = await connect('?channels=home', { on: 0 });
  hooksA.unsubscribe.close();
  // The client resumes on B while its old stream on A is still open: B sends A a close.
  const again = await connect(`?channels=home&resume=${first.id}`, { on: 1, headers: { 'Last-Event-ID': lastId(first), ...sessionOf(first) } });
  t.is(again.id, first.id);
  await first.closed();
  await internalsOf(C!).delivery.publish(topics.subscription(first.id), notice('stale'), [A!.serverId]);
  await delay(200);
  hooksA.unsubscribe.open();
  await delay(200);
  t.deepEqual(messages(again), ['stale']);
});

test('a stream that detaches while a resume elsewhere claims its record is swept by the old server all the same', async (t) => {
  const hooksA = new Hooks();
  const { connect, servers } = await fixture(t, gatedMemory([hooksA]), { count: 3 });
  const [A, , C] = servers.map((s) => s.events);
  const first = await connect('?channels=home', { on: 0 });
  hooksA.gatedGet = (id) => id === first.id;
  hooksA.presenceGetGate.close();
  first.close();
  while (internalsOf(A!).delivery.get(first.id)) await delay(10);
  const again = await connect(`?channels=home&resume=${first.id}`, { on: 1, headers: { 'Last-Event-ID': lastId(first), ...sessionOf(first) } });
  t.is(again.id, first.id);
  hooksA.presenceGetGate.open();
  await delay(100);
  await internalsOf(C!).delivery.publish(topics.subscription(first.id), notice('stale'), [A!.serverId]);
  await delay(300);
  t.deepEqual(messages(again), ['stale']);
});

test('a channel update applied on the old server while a resume claims the record goes to the new stream, and the record stays the new one', async (t) => {
  const hooksA = new Hooks();
  const { connect, servers } = await fixture(t, gatedMemory([hooksA]), { count: 3 });
  const [A, B, C] = servers.map((s) => s.events);
  const first = await connect('?channels=home', { on: 0 });
  hooksA.subscribe.close();
  hooksA.inbound.close();
  const update = C!.subscribeToChannels(first.id, ['extra']);
  await delay(50);
  hooksA.inbound.open();
  await delay(50);
  hooksA.inbound.close();
  const again = await connect(`?channels=home&resume=${first.id}`, { on: 1, headers: { 'Last-Event-ID': lastId(first), ...sessionOf(first) } });
  t.is((await C!.getSubscriptionInfo(first.id))?.serverId, B!.serverId, 'B claimed the record');
  hooksA.subscribe.open();
  await delay(100);
  hooksA.inbound.open();
  await update;
  await first.closed();
  await delay(200);
  const record = await C!.getSubscriptionInfo(first.id);
  t.is(record?.serverId, B!.serverId, 'the old server did not write itself back');
  t.deepEqual(record?.channels, ['home', 'extra'], 'the update reached the new stream');
  await C!.notifySubscription(first.id, 'cmd.msg', 'fresh');
  await C!.notifyChannel('extra', 'cmd.msg', 'to extra');
  const beats = again.frames.filter(only('cmd.onHeartbeat')).length;
  t.true(await C!.pulse(first.id));
  await delay(300);
  t.deepEqual(messages(again).sort(), ['fresh', 'to extra']);
  t.is(again.frames.filter(only('cmd.onHeartbeat')).length - beats, 1);
  t.false(internalsOf(A!).delivery.get(first.id) !== undefined);
});

test('a channel update of a detached subscription made between a resume\'s lookup and its claim stands', async (t) => {
  const hooksB = new Hooks();
  const { connect, servers } = await fixture(t, gatedMemory([undefined, hooksB]), { count: 3 });
  const [, , C] = servers.map((s) => s.events);
  const first = await connect('?channels=home', { on: 0 });
  first.close();
  while ((await C!.getSubscriptionInfo(first.id))?.detached !== true) await delay(20);
  let reads = 0;
  let claimReading!: () => void;
  const reading = new Promise<void>((resolve) => (claimReading = resolve));
  // The resume's second read of the record (its claim) is slow.
  hooksB.gatedGet = (id) => id === first.id && ++reads === 2 && (claimReading(), true);
  hooksB.presenceGetGate.close();
  const resuming = connect(`?channels=home&resume=${first.id}`, { on: 1, headers: { 'Last-Event-ID': lastId(first), ...sessionOf(first) } });
  await reading;
  t.true(await C!.subscribeToChannels(first.id, ['extra']));
  hooksB.presenceGetGate.open();
  const again = await resuming;
  t.is(again.id, first.id);
  await C!.notifyChannel('extra', 'cmd.msg', 'to extra');
  await delay(300);
  t.deepEqual((await C!.getSubscriptionInfo(first.id))?.channels, ['home', 'extra']);
  t.deepEqual(messages(again), ['to extra']);
});

test('the old server stopping before a resume\'s close reaches it leaves the resumed subscription alone', async (t) => {
  const hooksA = new Hooks();
  const { connect, servers } = await fixture(t, gatedMemory([hooksA]), { count: 3 });
  const [, B, C] = servers.map((s) => s.events);
  const watcher = await connect('?channels=home', { on: 2 });
  const first = await connect('?channels=home', { on: 0 });
  hooksA.inbound.close();
  await connect(`?channels=home&resume=${first.id}`, { on: 1, headers: { 'Last-Event-ID': lastId(first), ...sessionOf(first) } });
  t.is((await C!.getSubscriptionInfo(first.id))?.serverId, B!.serverId);
  await servers[0]!.close();
  await delay(300);
  t.is((await C!.getSubscriptionInfo(first.id))?.serverId, B!.serverId);
  t.is(watcher.frames.filter(only('cmd.onLeave')).length, 0);
});
