import test from 'ava';
import { rawJson } from '../../src/arguments.js';
import type { ClusterFactory } from '../helpers/cluster.js';
import { delay } from '../helpers/server.js';
import { only, type SseStream } from '../helpers/sse.js';
import { fixture } from './fixture.js';

const messages = (stream: SseStream) => stream.frames.filter(only('cmd.msg')).map((f) => f.body);

/** Every notify target, its channel filter, and message bodies. */
export function notifyTests(factory: ClusterFactory): void {
  const name = (title: string) => `${factory.name}: ${title}`;

  test(name('notifyChannel reaches members once, prefixed with the channel; others get nothing'), async (t) => {
    const { connect, server } = await fixture(t, factory);
    const member = await connect('?channels=a,b');
    const outsider = await connect('?channels=c');
    await server.events.notifyChannel('a', 'cmd.msg', { n: 1 });
    const frame = await member.next(only('cmd.msg'));
    t.is(frame.channel, 'a');
    t.deepEqual(frame.body, { n: 1 });
    await server.events.notifyAll('cmd.msg', 'everyone');
    await outsider.next(only('cmd.msg'));
    await member.count(only('cmd.msg'), 2);
    await delay(100);
    t.deepEqual(messages(member), [{ n: 1 }, 'everyone']);
    t.deepEqual(messages(outsider), ['everyone']);
    t.is(outsider.frames.find(only('cmd.msg'))!.channel, undefined, 'notifyAll has no channel prefix');
  });

  test(name('notifySubscription, notifyUserId, notifyUserName and notifySession reach exactly their targets'), async (t) => {
    const { connect, server } = await fixture(t, factory, {
      http: { authenticate: (ctx) => (ctx.get('X-User') ? { userId: ctx.get('X-User'), userName: `name-${ctx.get('X-User')}` } : undefined) },
    });
    const cookie = { Cookie: 'ss-id=sessionA' };
    const alice1 = await connect('?channels=home', { headers: { 'X-User': '1', ...cookie } });
    const alice2 = await connect('?channels=work', { headers: { 'X-User': '1' } });
    const bob = await connect('?channels=home', { headers: { 'X-User': '2', ...cookie } });
    const carol = await connect('?channels=home', { headers: { 'X-User': '3' } });
    const all = [alice1, alice2, bob, carol];

    await server.events.notifySubscription(alice2.id, 'cmd.msg', 'sub');
    await server.events.notifyUserId('1', 'cmd.msg', 'user');
    await server.events.notifyUserName('name-2', 'cmd.msg', 'name');
    await server.events.notifySession('sessionA', 'cmd.msg', 'session');
    await server.events.notifyUserId('1', 'cmd.msg', 'user-in-work', 'work');
    await server.events.notifySession('sessionA', 'cmd.msg', 'session-in-home', 'home');
    await server.events.notifyAll('cmd.msg', 'end');
    await Promise.all(all.map((s) => s.next((f) => f.selector === 'cmd.msg' && f.body === 'end')));

    t.deepEqual(messages(alice1), ['user', 'session', 'session-in-home', 'end']);
    t.deepEqual(messages(alice2), ['sub', 'user', 'user-in-work', 'end']);
    t.deepEqual(messages(bob), ['name', 'session', 'session-in-home', 'end']);
    t.deepEqual(messages(carol), ['end']);
    t.true(alice1.frames.filter(only('cmd.msg')).every((f) => f.channel === undefined), 'a channel filter is not a prefix');
  });

  test(name('a message with line breaks stays one frame and one data line'), async (t) => {
    const { connect, server } = await fixture(t, factory);
    const stream = await connect('?channels=home');
    await server.events.notifyChannel('home', 'cmd.msg', 'line 1\nline 2\r\nid: 99\n\ndata: forged');
    await server.events.notifyChannel('home', 'cmd.msg', rawJson('{\n"a": 1,\r"b": "x"\n}'));
    await server.events.notifyChannel('home', 'cmd.msg', { text: 'a\n\nb' });
    await stream.count(only('cmd.msg'), 3);
    t.deepEqual(messages(stream), ['line 1\nline 2\r\nid: 99\n\ndata: forged', { a: 1, b: 'x' }, { text: 'a\n\nb' }]);
    const frames = stream.raw.split('\n\n').filter(Boolean);
    t.true(frames.every((f) => /^id: \d+\ndata: [^\n]*$/.test(f)), 'every frame is one id line and one data line');
    t.false(stream.frames.some((f) => f.id === '99'));
  });

  test(name('bad channel names and selectors are refused before anything is sent'), async (t) => {
    const { server } = await fixture(t, factory);
    await t.throwsAsync(() => server.events.notifyChannel('a@b', 'cmd.msg', 'x'), { message: /may not contain '@'/ });
    await t.throwsAsync(() => server.events.notifyChannel('a', 'cmd msg', 'x'), { message: /selector/ });
    await t.throwsAsync(() => server.events.notifyAll('nodot', 'x'), { message: /op\.target/ });
    await t.throwsAsync(() => server.events.notifyAll('cmd.a\nb', 'x'), { message: /control/ });
  });

  test(name('channel names with spaces, dots, wildcards and non-ASCII work'), async (t) => {
    const { connect, server } = await fixture(t, factory);
    const names = ['my room', 'a.b', 'x.*', 'y.>', 'café☕', '%41', 'sub.all'];
    const stream = await connect(`?channels=${names.map(encodeURIComponent).join(',')}`);
    t.is(stream.connectArgs.channels, names.join(','));
    for (const channel of names) await server.events.notifyChannel(channel, 'cmd.msg', channel);
    const got = await stream.count(only('cmd.msg'), names.length);
    t.deepEqual(got.map((f) => f.channel), names);
    t.deepEqual(got.map((f) => f.body), names);
    const listed = await server.events.getSubscriptionsDetails(['my room']);
    t.is(listed.length, 1);
  });

  test(name('user ids, user names and session ids with dots, wildcards, spaces and non-ASCII work'), async (t) => {
    const { connect, server } = await fixture(t, factory, {
      http: { authenticate: () => ({ userId: 'u.1 *>é', userName: 'john.doe >', sessionId: 's.* >☕' }) },
    });
    const stream = await connect('?channels=home');
    t.is(stream.connectArgs.userId, 'u.1 *>é');
    await server.events.notifyUserId('u.1 *>é', 'cmd.msg', 'by id');
    await server.events.notifyUserId('u', 'cmd.msg', 'prefix of the id: not for us');
    await server.events.notifyUserName('john.doe >', 'cmd.msg', 'by name');
    await server.events.notifySession('s.* >☕', 'cmd.msg', 'by session');
    await server.events.notifySession('s.*', 'cmd.msg', 'prefix of the session: not for us');
    await server.events.notifySubscription(stream.id, 'cmd.msg', 'end');
    await stream.next((f) => f.body === 'end');
    t.deepEqual(messages(stream), ['by id', 'by name', 'by session', 'end']);
    t.deepEqual((await server.events.getSubscriptionInfosByUserId('u.1 *>é')).map((i) => i.id), [stream.id]);
  });

  test(name('capped lists keep the newest entries and are the same from every server'), async (t) => {
    const { servers } = await fixture(t, factory, { count: 2 });
    const [a, b] = servers.map((s) => s.events.broker.lists);
    for (let i = 1; i <= 5; i++) await a!.push('chat:my room.*', `m${i}`, 3);
    await b!.push('chat:my room.*', 'm6', 3);
    t.deepEqual(await b!.range('chat:my room.*'), ['m4', 'm5', 'm6']);
    t.deepEqual(await a!.range('chat:my room.*'), ['m4', 'm5', 'm6']);
    t.deepEqual(await a!.range('other'), []);
    await Promise.all([a!.push('race', 'x', 10), b!.push('race', 'y', 10), a!.push('race', 'z', 10)]);
    t.deepEqual((await b!.range('race')).sort(), ['x', 'y', 'z'], 'concurrent pushes from two servers all land');
    await b!.clear('chat:my room.*');
    t.deepEqual(await a!.range('chat:my room.*'), []);
  });

  test(name('getNextSequence counts up from 1 per name'), async (t) => {
    const { server } = await fixture(t, factory);
    t.is(await server.events.getNextSequence('chat'), 1);
    t.is(await server.events.getNextSequence('chat'), 2);
    t.is(await server.events.getNextSequence('other'), 1);
  });

  test(name('getNextSequence under a burst from three servers: every value once, no gaps'), async (t) => {
    const { servers } = await fixture(t, factory, { count: 3 });
    const calls = servers.flatMap((server) => Array.from({ length: 40 }, () => server.events.getNextSequence('burst')));
    const values = (await Promise.all(calls)).sort((a, b) => a - b);
    t.deepEqual(values, Array.from({ length: 120 }, (_, i) => i + 1));
  });
}
