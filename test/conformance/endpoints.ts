import test from 'ava';
import type { ClusterFactory } from '../helpers/cluster.js';
import http from 'node:http';
import { delay, request } from '../helpers/server.js';
import { only } from '../helpers/sse.js';
import { fixture } from './fixture.js';

/** The HTTP surface: every route, status code and the exact stream format. */
export function endpointTests(factory: ClusterFactory): void {
  const name = (title: string) => `${factory.name}: ${title}`;

  test(name('event-stream sends SSE headers and cmd.onConnect as frame 1 with all-string fields'), async (t) => {
    const { connect, server } = await fixture(t, factory);
    const stream = await connect('?channels=home,other');
    t.is(stream.status, 200);
    t.is(stream.headers['content-type'], 'text/event-stream');
    t.is(stream.headers['cache-control'], 'no-cache');
    t.is(stream.headers['x-accel-buffering'], 'no');
    t.regex(String(stream.headers['set-cookie']), /ss-id=[A-Za-z0-9]{20}/);
    t.regex(stream.raw, /^id: \d+\ndata: cmd\.onConnect \{/);
    const args = stream.connectArgs;
    for (const value of Object.values(args)) t.is(typeof value, 'string');
    t.regex(args.id!, /^[A-Za-z0-9]{20}$/);
    t.is(args.channels, 'home,other');
    t.is(args.isAuthenticated, 'false');
    t.regex(args.userId!, /^-\d+$/);
    t.is(args.displayName, `user${args.userId!.slice(1)}`);
    t.regex(args.createdAt!, /^\d{13}$/);
    t.true(args.profileUrl!.startsWith('data:image/svg+xml,'));
    t.is(args.heartbeatUrl, `${server.url}/event-heartbeat?id=${args.id}`);
    t.is(args.unRegisterUrl, `${server.url}/event-unregister?id=${args.id}`);
    t.is(args.updateSubscriberUrl, `${server.url}/event-subscribers/${args.id}`);
    t.is(args.heartbeatIntervalMs, '10000');
    t.is(args.idleTimeoutMs, '30000');
  });

  test(name('frames are exactly "id: N\\ndata: [ch@]selector body\\n\\n" with ids going up'), async (t) => {
    const { connect, server } = await fixture(t, factory);
    const stream = await connect('?channels=home');
    await stream.next(only('cmd.onJoin'));
    await server.events.notifyChannel('home', 'cmd.chat', { text: 'hi' });
    await server.events.notifySubscription(stream.id, 'cmd.toggle$#channels');
    await stream.next(only('cmd.toggle$#channels'));
    const frames = stream.raw.split('\n\n').filter(Boolean);
    t.is(frames.length, 4);
    const ids = stream.frames.map((f) => Number(f.id));
    t.true(ids.every((id) => Number.isSafeInteger(id) && id > 0), 'integer ids');
    t.true(ids.slice(1).every((id, i) => id > ids[i]!), `event ids go up: ${ids.join(', ')}`);
    t.regex(frames[1]!, /^id: \d+\ndata: home@cmd\.onJoin \{.*\}$/);
    t.is(frames[2], `id: ${ids[2]}\ndata: home@cmd.chat {"text":"hi"}`);
    t.is(frames[3], `id: ${ids[3]}\ndata: cmd.toggle$#channels `, 'an empty body keeps its space');
  });

  test(name('channels come from channels= and channel=; none means *'), async (t) => {
    const { connect } = await fixture(t, factory);
    const both = await connect('?channels=a,b&channel=c');
    t.is(both.connectArgs.channels, 'a,b,c');
    const none = await connect('');
    t.is(none.connectArgs.channels, '*');
    await none.next(only('cmd.onJoin', '*'));
  });

  test(name('a channel name with @ or a control character is refused with 400'), async (t) => {
    const { connect } = await fixture(t, factory);
    const at = await connect('?channels=a@b');
    t.is(at.status, 400);
    t.regex(at.raw, /may not contain '@'/);
    const control = await connect('?channels=a%0Ab');
    t.is(control.status, 400);
  });

  test(name('heartbeat answers 200 with an empty body and pushes cmd.onHeartbeat'), async (t) => {
    const { connect } = await fixture(t, factory);
    const stream = await connect('?channels=home');
    const reply = await request('POST', stream.connectArgs.heartbeatUrl!, { headers: { 'Content-Type': 'text/plain' } });
    t.is(reply.status, 200);
    t.is(reply.text, '');
    const beat = await stream.next(only('cmd.onHeartbeat'));
    t.is(beat.channel, undefined);
    t.is((beat.body as Record<string, string>).channels, 'home');
  });

  test(name('heartbeat for an unknown id is 404 with ServiceStack\'s reason phrase, also without an id'), async (t) => {
    const { server } = await fixture(t, factory);
    const unknown = await request('POST', `${server.url}/event-heartbeat?id=nope`);
    t.is(unknown.status, 404);
    t.is(unknown.statusText, "Subscription 'nope' does not exist");
    t.deepEqual(unknown.json, { responseStatus: { errorCode: 'NotFound', message: "Subscription 'nope' does not exist" } });
    const missing = await request('POST', `${server.url}/event-heartbeat`);
    t.is(missing.status, 404);
    t.is(missing.statusText, "Subscription '' does not exist");
  });

  test(name('unregister answers the meta map, ends the stream, and a second call is 404'), async (t) => {
    const { connect } = await fixture(t, factory);
    const stream = await connect('?channels=home');
    const reply = await request('POST', stream.connectArgs.unRegisterUrl!);
    t.is(reply.status, 200);
    t.regex(reply.headers.get('content-type')!, /^application\/json/);
    t.is(reply.json.channels, 'home');
    t.is(reply.json.userId, stream.connectArgs.userId);
    t.is(reply.json.id, undefined, 'the public meta map has no connection URLs');
    await stream.closed();
    const again = await request('POST', stream.connectArgs.unRegisterUrl!);
    t.is(again.status, 404);
    t.is(again.json.responseStatus.message, `Subscription '${stream.id}' does not exist`);
  });

  test(name('heartbeat, unregister and update from another address are 403'), async (t) => {
    const { connect, server } = await fixture(t, factory, { proxy: true });
    const stream = await connect('?channels=home', { headers: { 'X-Forwarded-For': '10.1.1.1' } });
    const stranger = { 'X-Forwarded-For': '10.9.9.9' };
    const beat = await request('POST', `${server.url}/event-heartbeat?id=${stream.id}`, { headers: stranger });
    t.is(beat.status, 403);
    t.is(beat.statusText, 'Invalid User Address');
    const unregister = await request('POST', `${server.url}/event-unregister?id=${stream.id}`, { headers: stranger });
    t.is(unregister.status, 403);
    t.is(unregister.json.responseStatus.message, `Access to Subscription '${stream.id}' is forbidden`);
    const update = await request('POST', `${server.url}/event-subscribers/${stream.id}`, { headers: stranger, form: { SubscribeChannels: 'x' } });
    t.is(update.status, 403);
    const owner = await request('POST', `${server.url}/event-heartbeat?id=${stream.id}`, { headers: { 'X-Forwarded-For': '10.1.1.1' } });
    t.is(owner.status, 200);
  });

  test(name('event-subscribers lists meta maps by channel, or all'), async (t) => {
    const { connect, server } = await fixture(t, factory);
    const a = await connect('?channels=a');
    const b = await connect('?channels=b');
    const ab = await connect('?channels=a,b');
    const ids = (list: Record<string, string>[]) => list.map((m) => m.userId).sort();
    const inA = await request('GET', `${server.url}/event-subscribers?channels=a`);
    t.deepEqual(ids(inA.json), [a.connectArgs.userId, ab.connectArgs.userId].sort());
    const legacy = await request('GET', `${server.url}/event-subscribers?channel=b`);
    t.deepEqual(ids(legacy.json), [b.connectArgs.userId, ab.connectArgs.userId].sort());
    const all = await request('GET', `${server.url}/event-subscribers`);
    t.is(all.json.length, 3);
    const both = await request('GET', `${server.url}/event-subscribers?channels=a,b`);
    t.is(both.json.length, 3, 'a subscriber in two of the channels is listed once');
    t.deepEqual(Object.keys(inA.json[0]).sort(), ['channels', 'createdAt', 'displayName', 'isAuthenticated', 'profileUrl', 'userId']);
  });

  test(name('GetEventSubscribers DTO routes take comma strings or arrays'), async (t) => {
    const { connect, server } = await fixture(t, factory);
    await connect('?channels=a');
    await connect('?channels=b');
    await connect('?channels=c');
    const api = await request('GET', `${server.url}/api/GetEventSubscribers?channels=a%2Cb`);
    t.is(api.status, 200);
    t.is(api.json.length, 2);
    const reply = await request('POST', `${server.url}/json/reply/GetEventSubscribers`, { json: { Channels: ['c'] } });
    t.is(reply.json.length, 1);
  });

  test(name('UpdateEventSubscriber works as a form, a DTO and on the legacy route; answers {}'), async (t) => {
    const { connect, server } = await fixture(t, factory);
    const stream = await connect('?channels=home');
    const form = await request('POST', stream.connectArgs.updateSubscriberUrl!, { form: { SubscribeChannels: 'x,y' } });
    t.is(form.status, 200);
    t.deepEqual(form.json, {});
    const dto = await request('POST', `${server.url}/api/UpdateEventSubscriber`, {
      json: { id: stream.id, subscribeChannels: ['z'], unsubscribeChannels: ['x'] },
    });
    t.deepEqual(dto.json, {});
    const legacy = await request('POST', `${server.url}/json/reply/UpdateEventSubscriber`, { json: { Id: stream.id, UnsubscribeChannels: 'y' } });
    t.deepEqual(legacy.json, {});
    const info = await server.events.getSubscriptionInfo(stream.id);
    t.deepEqual(info?.channels, ['home', 'z']);
    const unknown = await request('POST', `${server.url}/event-subscribers/nope`, { form: { SubscribeChannels: 'x' } });
    t.is(unknown.status, 404);
    const bad = await request('POST', stream.connectArgs.updateSubscriberUrl!, { json: { subscribeChannels: ['a@b'] } });
    t.is(bad.status, 400);
  });

  test(name('the POST routes take their fields from a form body or a JSON body alike'), async (t) => {
    const { connect, server } = await fixture(t, factory);
    const a = await connect('?channels=a');
    const b = await connect('?channels=b');
    t.is((await request('POST', `${server.url}/api/GetEventSubscribers`, { form: { Channels: 'a,b' } })).json.length, 2);
    t.is((await request('POST', `${server.url}/api/GetEventSubscribers`, { json: { channels: ['b'] } })).json.length, 1);
    t.deepEqual((await request('POST', `${server.url}/api/UpdateEventSubscriber`, { form: { Id: a.id, SubscribeChannels: 'x' } })).json, {});
    t.deepEqual((await request('POST', `${server.url}/api/UpdateEventSubscriber`, { json: { id: b.id, subscribeChannels: ['y'] } })).json, {});
    t.deepEqual((await server.events.getSubscriptionInfo(a.id))?.channels, ['a', 'x']);
    t.deepEqual((await server.events.getSubscriptionInfo(b.id))?.channels, ['b', 'y']);
    const byForm = await request('POST', `${server.url}/event-unregister`, { form: { id: a.id } });
    t.is(byForm.json.channels, 'a,x');
    const byJson = await request('POST', `${server.url}/event-unregister`, { json: { Id: b.id } });
    t.is(byJson.json.channels, 'b,y');
    await Promise.all([a.closed(), b.closed()]);
  });

  test(name('malformed JSON bodies are 400, not 500'), async (t) => {
    const { server } = await fixture(t, factory);
    const res = await fetch(`${server.url}/api/UpdateEventSubscriber`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: '{"id": ',
    });
    t.is(res.status, 400);
  });

  test(name('a client that leaves while its stream is being set up leaves no subscription behind'), async (t) => {
    const { connect, server } = await fixture(t, factory, {
      http: { authenticate: async () => delay(300).then(() => undefined) },
    });
    const watcher = connect('?channels=home');
    const quitter = http.get(`${server.url}/event-stream?channels=home`);
    quitter.on('error', () => {});
    await delay(100);
    quitter.destroy();
    const stream = await watcher;
    await delay(500);
    t.deepEqual((await server.events.getAllSubscriptionInfos()).map((i) => i.id), [stream.id]);
    t.is(stream.frames.filter((f) => f.selector === 'cmd.onJoin').length, 1, 'only its own join');
    t.is(server.events.stats().localSubscriptions, 1);
  });

  test(name('routes mount under a prefix'), async (t) => {
    const { connect } = await fixture(t, factory, { http: { prefix: '/api/sse' } });
    const stream = await connect('?channels=home');
    t.regex(stream.connectArgs.heartbeatUrl!, /\/api\/sse\/event-heartbeat\?id=/);
    t.is((await request('POST', stream.connectArgs.heartbeatUrl!)).status, 200);
  });
}
