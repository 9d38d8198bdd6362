import test from 'ava';
import type { ClusterFactory } from '../helpers/cluster.js';
import { delay, request } from '../helpers/server.js';
import { only, type Frame } from '../helpers/sse.js';
import { fixture } from './fixture.js';

const userOf = (frame: Frame) => (frame.body as Record<string, string>).userId;

/** Several servers on one backend behave as one server. */
export function clusterTests(factory: ClusterFactory): void {
  const name = (title: string) => `${factory.name}: cluster: ${title}`;

  test(name('a notify on any server reaches every matching subscription on every server exactly once'), async (t) => {
    const { connect, servers } = await fixture(t, factory, { count: 3 });
    const streams = await Promise.all([0, 1, 2].map((on) => connect('?channels=home,other', { on })));
    for (const [i, server] of servers.entries()) {
      await server.events.notifyChannel('home', 'cmd.msg', `channel from ${i}`);
      await server.events.notifyAll('cmd.msg', `all from ${i}`);
      await server.events.notifyUserId(streams[(i + 1) % 3]!.connectArgs.userId!, 'cmd.msg', `user from ${i}`);
    }
    for (const [i, stream] of streams.entries()) {
      const expected = [0, 1, 2].flatMap((from) => [`channel from ${from}`, `all from ${from}`]).concat(`user from ${(i + 2) % 3}`);
      await stream.count(only('cmd.msg'), expected.length);
      await delay(100);
      const got = stream.frames.filter(only('cmd.msg')).map((f) => f.body as string);
      t.deepEqual(got.sort(), expected.sort(), `stream on server ${i}`);
    }
  });

  test(name('join, leave and update reach channel members on all servers'), async (t) => {
    const { connect } = await fixture(t, factory, { count: 3 });
    const watcherA = await connect('?channels=home', { on: 0 });
    const watcherC = await connect('?channels=home', { on: 2 });
    const mover = await connect('?channels=home', { on: 1 });
    for (const watcher of [watcherA, watcherC]) {
      await watcher.next((f) => f.selector === 'cmd.onJoin' && userOf(f) === mover.connectArgs.userId);
    }
    await mover.next((f) => f.selector === 'cmd.onJoin' && userOf(f) === mover.connectArgs.userId);
    await request('POST', mover.connectArgs.updateSubscriberUrl!, { form: { SubscribeChannels: 'extra' } });
    for (const watcher of [watcherA, watcherC]) await watcher.next(only('cmd.onUpdate', 'home'));
    await request('POST', mover.connectArgs.unRegisterUrl!);
    for (const watcher of [watcherA, watcherC]) {
      const left = await watcher.next((f) => f.selector === 'cmd.onLeave' && userOf(f) === mover.connectArgs.userId);
      t.is(left.channel, 'home');
    }
  });

  test(name('listings from any server include every server\'s subscriptions'), async (t) => {
    const { connect, servers } = await fixture(t, factory, { count: 3 });
    const streams = await Promise.all([0, 1, 2].map((on) => connect(`?channels=room,s${on}`, { on })));
    const ids = streams.map((s) => s.connectArgs.userId).sort();
    for (const server of servers) {
      const listed = await request('GET', `${server.url}/event-subscribers?channels=room`);
      t.deepEqual(listed.json.map((m: Record<string, string>) => m.userId).sort(), ids);
      const dto = await request('GET', `${server.url}/api/GetEventSubscribers?channels=s2`);
      t.deepEqual(dto.json.map((m: Record<string, string>) => m.userId), [streams[2]!.connectArgs.userId]);
      t.is((await server.events.getAllSubscriptionInfos()).length, 3);
      t.is((await server.events.getSubscriptionsDetails(['s0', 's1'])).length, 2);
      t.is((await server.events.getSubscriptionInfo(streams[1]!.id))?.serverId, servers[1]!.events.serverId);
    }
  });

  test(name('heartbeat, channel update and unregister work when sent to another server'), async (t) => {
    const { connect, servers } = await fixture(t, factory, { count: 2 });
    const stream = await connect('?channels=home', { on: 0 });
    const other = servers[1]!.url;
    const beat = await request('POST', `${other}/event-heartbeat?id=${stream.id}`);
    t.is(beat.status, 200);
    await stream.next(only('cmd.onHeartbeat'));
    const update = await request('POST', `${other}/event-subscribers/${stream.id}`, { form: { SubscribeChannels: 'far' } });
    t.is(update.status, 200);
    await stream.next(only('cmd.onUpdate', 'far'));
    await servers[1]!.events.notifyChannel('far', 'cmd.msg', 'via far');
    await stream.next(only('cmd.msg', 'far'));
    const gone = await request('POST', `${other}/event-unregister?id=${stream.id}`);
    t.is(gone.status, 200);
    t.is(gone.json.channels, 'home,far');
    await stream.closed();
    t.is(await servers[0]!.events.getSubscriptionInfo(stream.id), undefined);
  });

  test(name('stopping a server ends its streams and announces the leaves to the others'), async (t) => {
    const { connect, servers } = await fixture(t, factory, { count: 2 });
    const watcher = await connect('?channels=home', { on: 0 });
    const leaving = await connect('?channels=home', { on: 1 });
    await servers[1]!.close();
    await leaving.closed();
    await watcher.next((f) => f.selector === 'cmd.onLeave' && userOf(f) === leaving.connectArgs.userId);
    t.is((await servers[0]!.events.getAllSubscriptionInfos()).length, 1);
  });

  test(name('anonymous user ids are unique across servers'), async (t) => {
    const { connect } = await fixture(t, factory, { count: 2 });
    const a = await connect('?channels=home', { on: 0 });
    const b = await connect('?channels=home', { on: 1 });
    t.not(a.connectArgs.userId, b.connectArgs.userId);
  });
}

/** Routing per topic: a server hears only what its own streams need. */
export function routingTests(factory: ClusterFactory): void {
  test(`${factory.name}: cluster: a server receives only the messages for topics its own streams hold`, async (t) => {
    const { connect, servers } = await fixture(t, factory, { count: 2 });
    const onA = await connect('?channels=only-a', { on: 0 });
    await connect('?channels=only-b', { on: 1 });
    await delay(200);
    const before = servers.map((s) => s.events.stats().brokerMessagesReceived);
    for (let i = 0; i < 20; i++) await servers[1]!.events.notifyChannel('only-a', 'cmd.msg', i);
    await servers[1]!.events.notifyUserId(onA.connectArgs.userId!, 'cmd.msg', 'user');
    await servers[0]!.events.notifyChannel('nobody-here', 'cmd.msg', 'lost');
    await onA.count(only('cmd.msg'), 21);
    await delay(200);
    const after = servers.map((s) => s.events.stats().brokerMessagesReceived);
    t.is(after[0]! - before[0]!, 21, 'server A got its 21 messages');
    t.is(after[1]! - before[1]!, 0, 'server B got none of them');
  });
}
