import test from 'ava';
import type { ClusterFactory } from '../helpers/cluster.js';
import { delay, request } from '../helpers/server.js';
import { only, type Frame } from '../helpers/sse.js';
import { fixture } from './fixture.js';

const userOf = (frame: Frame) => (frame.body as Record<string, string>).userId;

/** Join, leave, update, heartbeats and expiry, seen by channel members. */
export function presenceTests(factory: ClusterFactory): void {
  const name = (title: string) => `${factory.name}: ${title}`;

  test(name('cmd.onJoin goes per channel to every member, the joiner included, after its onConnect'), async (t) => {
    const { connect } = await fixture(t, factory);
    const first = await connect('?channels=a,b,c');
    const joins = await first.count(only('cmd.onJoin'), 3);
    t.deepEqual(joins.map((f) => f.channel), ['a', 'b', 'c']);
    t.is(first.frames[0]!.selector, 'cmd.onConnect');
    const second = await connect('?channels=b');
    const seen = await first.next((f) => f.selector === 'cmd.onJoin' && userOf(f) === second.connectArgs.userId);
    t.is(seen.channel, 'b');
    await second.next(only('cmd.onJoin', 'b'));
    await delay(100);
    t.is(first.frames.filter(only('cmd.onJoin')).length, 4, 'a member gets one join per shared channel only');
  });

  test(name('cmd.onLeave reaches the remaining members at once on unregister'), async (t) => {
    const { connect } = await fixture(t, factory);
    const stay = await connect('?channels=home');
    const leaver = await connect('?channels=home');
    await request('POST', leaver.connectArgs.unRegisterUrl!);
    const left = await stay.next((f) => f.selector === 'cmd.onLeave' && userOf(f) === leaver.connectArgs.userId);
    t.is(left.channel, 'home');
    t.false(leaver.frames.some(only('cmd.onLeave')), 'the leaver is gone before its leave is sent');
  });

  test.serial(name('a dropped connection is kept, detached, for a resume until the idle timeout; then it leaves'), async (t) => {
    const { connect, server } = await fixture(t, factory, { events: { idleTimeoutMs: 1000, houseKeepingIntervalMs: 100 } });
    const stay = await connect('?channels=home');
    const beating = setInterval(() => request('POST', stay.connectArgs.heartbeatUrl!).catch(() => {}), 200); // one may be in flight as the server closes
    t.teardown(() => clearInterval(beating));
    const dropper = await connect('?channels=home');
    const droppedAt = Date.now();
    dropper.close();
    await delay(300);
    t.false(stay.frames.some(only('cmd.onLeave')), 'no leave while it may come back');
    t.true((await server.events.getSubscriptionInfo(dropper.id))?.detached);
    await stay.next((f) => f.selector === 'cmd.onLeave' && userOf(f) === dropper.connectArgs.userId, 5000);
    t.true(Date.now() - droppedAt >= 1000, 'it left when its lease ran out');
    t.is(await server.events.getSubscriptionInfo(dropper.id), undefined);
  });

  test(name('cmd.onUpdate goes to the old and new channels with the new channel list'), async (t) => {
    const { connect } = await fixture(t, factory);
    const inOld = await connect('?channels=old');
    const inNew = await connect('?channels=new');
    const mover = await connect('?channels=old');
    await request('POST', mover.connectArgs.updateSubscriberUrl!, { form: { SubscribeChannels: 'new', UnsubscribeChannels: 'old' } });
    const seenInNew = await inNew.next(only('cmd.onUpdate', 'new'));
    t.is((seenInNew.body as Record<string, string>).channels, 'new');
    const seenInOld = await inOld.next(only('cmd.onUpdate', 'old'));
    t.is(userOf(seenInOld), mover.connectArgs.userId);
    await mover.next(only('cmd.onUpdate', 'new'));
  });

  test(name('after a channel update, channel notifications follow the new channels'), async (t) => {
    const { connect, server } = await fixture(t, factory);
    const stream = await connect('?channels=a');
    await server.events.subscribeToChannels(stream.id, ['b']);
    await server.events.unsubscribeFromChannels(stream.id, ['a']);
    await server.events.notifyChannel('a', 'cmd.msg', 'to a');
    await server.events.notifyChannel('b', 'cmd.msg', 'to b');
    const got = await stream.next(only('cmd.msg'));
    t.is(got.channel, 'b');
    await delay(100);
    t.is(stream.frames.filter(only('cmd.msg')).length, 1);
    t.deepEqual((await server.events.getSubscriptionInfo(stream.id))?.channels, ['b']);
  });

  test.serial(name('a subscription without heartbeats expires on the housekeeping timer; one with heartbeats stays'), async (t) => {
    const { connect, server } = await fixture(t, factory, { events: { idleTimeoutMs: 800, houseKeepingIntervalMs: 100 } });
    const idle = await connect('?channels=home');
    const alive = await connect('?channels=home');
    const beating = setInterval(() => request('POST', alive.connectArgs.heartbeatUrl!).catch(() => {}), 200); // one may be in flight as the server closes
    t.teardown(() => clearInterval(beating));
    const left = await alive.next((f) => f.selector === 'cmd.onLeave' && userOf(f) === idle.connectArgs.userId, 5000);
    t.is(left.channel, 'home');
    await idle.closed();
    t.false(alive.ended);
    const listed = await server.events.getAllSubscriptionInfos();
    t.deepEqual(listed.map((i) => i.id), [alive.id]);
    t.true(server.events.stats().expiredSubscriptions >= 1);
  });

  test(name('authenticate maps a request to a user; limitToAuthenticatedUsers refuses anonymous streams with 401'), async (t) => {
    const { connect } = await fixture(t, factory, {
      http: {
        limitToAuthenticatedUsers: true,
        authenticate: (ctx) => {
          const user = ctx.get('X-User');
          return user ? { userId: `u-${user}`, userName: user, profileUrl: 'https://example.test/p.png' } : undefined;
        },
      },
    });
    const anonymous = await connect('?channels=home');
    t.is(anonymous.status, 401);
    const alice = await connect('?channels=home', { headers: { 'X-User': 'alice' } });
    t.is(alice.connectArgs.userId, 'u-alice');
    t.is(alice.connectArgs.displayName, 'alice');
    t.is(alice.connectArgs.isAuthenticated, 'true');
    t.is(alice.connectArgs.profileUrl, 'https://example.test/p.png');
  });

  test(name('hooks run in order: onInit, onCreated, onConnect, onSubscribe; onCreated meta reaches onJoin'), async (t) => {
    const order: string[] = [];
    const { connect } = await fixture(t, factory, {
      http: {
        onInit: (ctx) => {
          order.push('onInit');
          if (ctx.query.deny) ctx.throw(403, 'Denied by onInit');
        },
        onCreated: (sub) => {
          order.push('onCreated');
          sub.info.meta.nickname = 'nick';
        },
        onConnect: (_sub, args) => {
          order.push('onConnect');
          args.extra = 'connect-only';
        },
      },
      events: {
        onSubscribe: (sub) => {
          order.push('onSubscribe');
          return undefined;
        },
      },
    });
    const stream = await connect('?channels=home');
    const join = await stream.next(only('cmd.onJoin'));
    t.deepEqual(order, ['onInit', 'onCreated', 'onConnect', 'onSubscribe']);
    t.is(stream.connectArgs.nickname, 'nick');
    t.is(stream.connectArgs.extra, 'connect-only');
    t.is((join.body as Record<string, string>).nickname, 'nick');
    t.is((join.body as Record<string, string>).extra, undefined);
    const denied = await connect('?channels=home&deny=1');
    t.is(denied.status, 403);
    t.regex(denied.raw, /Denied by onInit/);
  });

  test(name('onSubscribe can greet the new subscription before its onJoin'), async (t) => {
    const { connect } = await fixture(t, factory, {
      events: {
        onSubscribe: async function (this: unknown, sub) {
          sub.send('cmd.welcome', JSON.stringify(`hello ${sub.info.displayName}`));
        },
      },
    });
    const stream = await connect('?channels=home');
    await stream.next(only('cmd.onJoin'));
    t.deepEqual(stream.frames.map((f) => f.selector), ['cmd.onConnect', 'cmd.welcome', 'cmd.onJoin']);
  });

  test(name('notifyChannelOfSubscriptions=false sends no join, leave or update'), async (t) => {
    const { connect } = await fixture(t, factory, { events: { notifyChannelOfSubscriptions: false } });
    const a = await connect('?channels=home');
    const b = await connect('?channels=home');
    await request('POST', b.connectArgs.updateSubscriberUrl!, { form: { SubscribeChannels: 'x' } });
    await request('POST', b.connectArgs.unRegisterUrl!);
    await delay(150);
    t.deepEqual(a.frames.map((f) => f.selector), ['cmd.onConnect']);
  });
}

/** The core's own hooks, reset and stats. */
export function hookTests(factory: ClusterFactory): void {
  const name = (title: string) => `${factory.name}: ${title}`;

  test(name('onUpdate, onUnsubscribe, onPublish and onError hooks are called'), async (t) => {
    const calls: string[] = [];
    const errors: unknown[] = [];
    const { connect, server } = await fixture(t, factory, {
      events: {
        onUpdate: (sub) => void calls.push(`update ${sub.channels.join(',')}`),
        onUnsubscribe: (sub) => void calls.push(`unsubscribe ${sub.info.displayName}`),
        onPublish: (_sub, frame) => {
          if (frame.includes('cmd.onLeave')) calls.push('publish leave');
          if (frame.includes('cmd.boom')) throw new Error('hook failed');
        },
        onError: (error) => void errors.push(error),
      },
    });
    const watcher = await connect('?channels=home');
    const mover = await connect('?channels=home');
    await request('POST', mover.connectArgs.updateSubscriberUrl!, { form: { SubscribeChannels: 'x' } });
    await request('POST', mover.connectArgs.unRegisterUrl!);
    await watcher.next(only('cmd.onLeave'));
    t.deepEqual(calls, ['update home,x', `unsubscribe ${mover.connectArgs.displayName}`, 'publish leave']);
    t.deepEqual(errors, []);
    await server.events.notifyChannel('home', 'cmd.boom', 1);
    await watcher.next(only('cmd.boom'));
    t.is((errors[0] as Error).message, 'hook failed', 'a failing hook is reported, and the frame still goes out');
  });

  test(name('reset ends this server\'s streams without announcing them; stats count what happened'), async (t) => {
    const { connect, servers } = await fixture(t, factory, { count: 2 });
    const watcher = await connect('?channels=home', { on: 1 });
    const local = await connect('?channels=home', { on: 0 });
    await watcher.next((f) => f.selector === 'cmd.onJoin' && userOf(f) === local.connectArgs.userId);
    const stats = servers[0]!.events.stats();
    t.is(stats.localSubscriptions, 1);
    t.is(stats.totalConnections, 1);
    t.is(stats.brokerTopics, 3, 'the inbox, all and the channel: a subscription, its user and its session are reached through the inbox');
    await servers[0]!.events.reset();
    await local.closed();
    await delay(200);
    t.false(watcher.frames.some(only('cmd.onLeave')));
    t.deepEqual((await servers[1]!.events.getAllSubscriptionInfos()).map((i) => i.id), [watcher.id]);
    t.is(servers[0]!.events.stats().localSubscriptions, 0);
  });
}
