import test from 'ava';
import type { ClusterFactory } from '../helpers/cluster.js';
import { delay, request, startServer } from '../helpers/server.js';
import { only, SseStream, type Frame } from '../helpers/sse.js';
import { internalsOf } from '../../src/internals.js';
import { topics } from '../../src/topics.js';
import { fixture } from './fixture.js';

const numbers = (stream: SseStream) => stream.frames.filter(only('cmd.msg')).map((f) => f.body as number);
const lastId = (stream: SseStream) => stream.frames.at(-1)!.id;
const userOf = (frame: Frame) => (frame.body as Record<string, string>).userId;
/** The `ss-id` session cookie the server gave a stream: resuming takes the same session. */
const sessionOf = (stream: SseStream) => ({ Cookie: String(stream.headers['set-cookie']).split(';')[0]! });

/** Last-Event-ID replay across servers, the gap signal and the continuity rule. */
export function replayTests(factory: ClusterFactory): void {
  const name = (title: string) => `${factory.name}: replay: ${title}`;

  test(name('a client cut on A, with 100 events published on B meanwhile, resumes on C and gets all 100 once, in order'), async (t) => {
    const { connect, servers } = await fixture(t, factory, { count: 3 });
    const watcher = await connect('?channels=home', { on: 1 });
    const first = await connect('?channels=home', { on: 0 });
    await watcher.next((f) => f.selector === 'cmd.onJoin' && userOf(f) === first.connectArgs.userId);
    await servers[1]!.events.notifyChannel('home', 'cmd.msg', -1);
    await first.next(only('cmd.msg'));
    const seen = lastId(first);
    first.close();
    for (let i = 0; i < 100; i++) await servers[1]!.events.notifyChannel('home', 'cmd.msg', i);
    await servers[1]!.events.notifySubscription(first.id, 'cmd.msg', 100);

    const again = await connect(`?channels=home&resume=${first.id}`, { on: 2, headers: { 'Last-Event-ID': seen, ...sessionOf(first) } });
    t.is(again.id, first.id, 'the same subscription');
    await again.count(only('cmd.msg'), 101);
    await servers[0]!.events.notifyChannel('home', 'cmd.msg', 101);
    await again.count(only('cmd.msg'), 102);
    await delay(100);
    t.deepEqual(numbers(again), Array.from({ length: 102 }, (_, i) => i));
    const ids = again.frames.filter(only('cmd.msg')).map((f) => Number(f.id));
    t.true(ids.every((id, i) => i === 0 || id > ids[i - 1]!), 'ids go up');
    t.false(watcher.frames.some((f) => f.selector === 'cmd.onLeave'), 'no leave');
    t.is(watcher.frames.filter((f) => f.selector === 'cmd.onJoin' && userOf(f) === first.connectArgs.userId).length, 1, 'no second join');
    t.false(again.frames.some(only('cmd.onJoin')), 'a resumed stream is not announced again');
    t.is((await servers[0]!.events.getSubscriptionInfo(first.id))?.serverId, servers[2]!.events.serverId);
  });

  test(name('live events during the replay are neither lost nor doubled'), async (t) => {
    const { connect, servers } = await fixture(t, factory, { count: 2 });
    const first = await connect('?channels=home', { on: 0 });
    const seen = lastId(first);
    first.close();
    let sent = 0;
    // Spaced out, so that publishing runs on through the whole reconnect (and its history read).
    const publishing = (async () => {
      for (; sent < 300; sent++) {
        await servers[1]!.events.notifyChannel('home', 'cmd.msg', sent);
        if (sent % 5 === 0) await delay(2);
      }
    })();
    while (sent < 100) await delay(2);
    const again = await connect(`?channels=home&resume=${first.id}`, { on: 1, headers: { 'Last-Event-ID': seen, ...sessionOf(first) } });
    t.true(sent < 300, `the reconnect happened while publishing (${sent} of 300 sent)`);
    await publishing;
    await again.count(only('cmd.msg'), 300);
    await delay(100);
    t.deepEqual(numbers(again), Array.from({ length: 300 }, (_, i) => i));
  });

  test(name('lastEventId in the query replays for a new subscription, without resuming anyone'), async (t) => {
    const { connect, server } = await fixture(t, factory);
    const before = await connect('?channels=home');
    const from = lastId(before);
    for (let i = 0; i < 5; i++) await server.events.notifyChannel('home', 'cmd.msg', i);
    await server.events.notifyChannel('elsewhere', 'cmd.msg', 'not for us');
    const fresh = await connect(`?channels=home&lastEventId=${from}`);
    t.not(fresh.id, before.id);
    await fresh.count(only('cmd.msg'), 5);
    await delay(100);
    t.deepEqual(numbers(fresh), [0, 1, 2, 3, 4]);
  });

  test(name('an id older than the history gets cmd.onReset, then live events'), async (t) => {
    const { connect, server } = await fixture(t, factory);
    const stream = await connect('?channels=home', { headers: { 'Last-Event-ID': '1' } });
    const reset = await stream.next(only('cmd.onReset'));
    t.is((reset.body as { lastEventId: string }).lastEventId, '1');
    t.regex((reset.body as { reason: string }).reason, /no longer kept|no history/);
    t.is(stream.frames[0]!.selector, 'cmd.onConnect', 'onConnect first, then the reset');
    await server.events.notifyChannel('home', 'cmd.msg', 'live');
    await stream.next(only('cmd.msg'));
    t.is(server.events.stats().replayGaps, 1);
  });

  test(name('a Last-Event-ID that is not an integer is refused with 400'), async (t) => {
    const { connect } = await fixture(t, factory);
    const stream = await connect('?channels=home', { headers: { 'Last-Event-ID': 'abc' } });
    t.is(stream.status, 400);
  });

  test(name('a browser EventSource reconnect (same cookie, same URL, Last-Event-ID) resumes its detached subscription'), async (t) => {
    const { connect, server } = await fixture(t, factory);
    const cookie = { Cookie: 'ss-id=browserSession1' };
    const first = await connect('?channels=home,news', { headers: cookie });
    const seen = lastId(first);
    first.close();
    await delay(100);
    await server.events.notifyChannel('news', 'cmd.msg', 'while away');
    const again = await connect('?channels=home,news', { headers: { ...cookie, 'Last-Event-ID': seen } });
    t.is(again.id, first.id);
    const [missed] = await again.count(only('cmd.msg'), 1);
    t.is(missed!.body, 'while away');
  });

  test(name('a resume that outlasts the lease of what it resumes gets no stream of it: the leave stands'), async (t) => {
    // The watcher heartbeats ten times per idle timeout, so that a loaded machine cannot expire it.
    const events = { idleTimeoutMs: 3000, houseKeepingIntervalMs: 100, heartbeatIntervalMs: 1000 };
    // B's onConnect hook is slow (a database read, say): longer than the detached subscription's lease.
    const slowOnB = async () => void (await delay(events.idleTimeoutMs + 1200));
    const { connect, servers, cluster } = await fixture(t, factory, { count: 1, events });
    const slow = await startServer(cluster, { events, http: { onConnect: slowOnB } });
    t.teardown(() => slow.close());
    const watcher = await connect('?channels=home');
    const beating = setInterval(() => void request('POST', watcher.connectArgs.heartbeatUrl!).catch(() => {}), 300);
    t.teardown(() => clearInterval(beating));
    const subject = await connect('?channels=home', { headers: { Cookie: 'ss-id=late' } });
    const { id, userId } = subject.connectArgs as { id: string; userId: string };
    subject.close();
    await delay(200);
    const late = await SseStream.open(`${slow.url}/event-stream?channels=home&resume=${id}`, { Cookie: 'ss-id=late' });
    t.teardown(() => late.close());
    await late.closed(events.idleTimeoutMs + 5000);
    t.false(late.frames.some(only('cmd.onConnect')), 'the late resume ends without taking the subscription');
    const leaving = (f: Frame) => f.selector === 'cmd.onLeave' && userOf(f) === userId;
    // The sweep may announce it a little after the late stream ended, on a loaded broker cluster.
    await watcher.next(leaving, 15_000);
    await delay(500);
    const leaves = watcher.frames.filter(leaving);
    t.is(leaves.length, 1, 'the subscription left once, when its lease ran out');
    t.false((await servers[0]!.events.getSubscriptionsDetails(['home'])).some((m) => m.userId === userId), 'and was not brought back');
    t.is(await servers[0]!.events.getSubscriptionInfo(id), undefined);
  });

  test(name('resume is refused for another address or another session, and then a new subscription is made'), async (t) => {
    const { connect } = await fixture(t, factory, { proxy: true });
    const first = await connect('?channels=home', { headers: { 'X-Forwarded-For': '10.0.0.1' } });
    first.close();
    const stranger = await connect(`?channels=home&resume=${first.id}`, {
      headers: { 'X-Forwarded-For': '10.0.0.2', 'Last-Event-ID': lastId(first), ...sessionOf(first) },
    });
    t.not(stranger.id, first.id, 'another address');
    const otherSession = await connect(`?channels=home&resume=${first.id}`, { headers: { 'X-Forwarded-For': '10.0.0.1', 'Last-Event-ID': lastId(first) } });
    t.not(otherSession.id, first.id, 'another session');
  });

  test.serial(name('a resumed subscription can be unregistered and then leaves once'), async (t) => {
    const { connect, servers } = await fixture(t, factory, { count: 2, events: { idleTimeoutMs: 1000, houseKeepingIntervalMs: 100 } });
    const watcher = await connect('?channels=home', { on: 0 });
    const first = await connect('?channels=home', { on: 0 });
    first.close();
    const again = await connect(`?channels=home&resume=${first.id}`, { on: 1, headers: { 'Last-Event-ID': lastId(first), ...sessionOf(first) } });
    t.is(again.id, first.id);
    t.is((await request('POST', again.connectArgs.unRegisterUrl!)).status, 200);
    await again.closed();
    await watcher.next((f) => f.selector === 'cmd.onLeave' && userOf(f) === first.connectArgs.userId);
    // Past the idle timeout: a record brought back by the dropped stream would leave a second time now.
    await delay(1500);
    t.is(watcher.frames.filter(only('cmd.onLeave')).length, 1);
  });

  test(name('an event sent through the inbox of the server a subscription just left reaches it where it resumed, once'), async (t) => {
    const { connect, servers } = await fixture(t, factory, { count: 3 });
    const first = await connect('?channels=home', { on: 0 });
    const seen = lastId(first);
    first.close();
    while ((await servers[1]!.events.getSubscriptionInfo(first.id))?.detached !== true) await delay(20);
    const again = await connect(`?channels=home&resume=${first.id}`, { on: 1, headers: { 'Last-Event-ID': seen, ...sessionOf(first) } });
    t.is(again.id, first.id);
    // A sender that looked the subscription up just before the resume claimed it: it names only the server it left.
    const stale = internalsOf(servers[2]!.events).delivery;
    const notice = (n: number) => ({ kind: 'notify' as const, selector: 'cmd.msg', body: String(n) });
    await stale.publish(topics.subscription(first.id), notice(1), [servers[0]!.events.serverId]);
    await stale.publish(topics.userId(first.connectArgs.userId!), notice(2), [servers[0]!.events.serverId]);
    // Sent to both: the server it left passes nothing on to a server that had it.
    await stale.publish(topics.subscription(first.id), notice(3), [servers[0]!.events.serverId, servers[1]!.events.serverId]);
    await again.count(only('cmd.msg'), 3);
    await delay(300);
    t.deepEqual(numbers(again).sort(), [1, 2, 3]);
    const ids = again.frames.map((f) => Number(f.id));
    t.true(ids.every((id, i) => i === 0 || id >= ids[i - 1]!), 'ids never go down');
  });
}
