/**
 * The publish API (`POST /event-publish`) over raw HTTP: every target, both
 * kinds of credentials, every refusal with ServiceStack's error body, and
 * idempotency keys across the servers of a cluster.
 */
import test, { type ExecutionContext } from 'ava';
import { SignJWT } from 'jose';
import type { MiddlewareOptions } from '../../src/http/options.js';
import { memoryClusters, type Cluster } from '../helpers/cluster.js';
import { delay, replyOf, request, startServer, type TestServer } from '../helpers/server.js';
import { only, SseStream } from '../helpers/sse.js';

const apiKey = 'test-publish-key-0123456789';
const secret = 'a-test-secret-of-at-least-32-bytes!!';
const publishing: MiddlewareOptions = { publish: { apiKeys: [apiKey], jwt: { secret } } };

function token(claims: Record<string, unknown>, expiresIn = '5m'): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setIssuedAt().setExpirationTime(expiresIn).sign(new TextEncoder().encode(secret));
}

async function servers(t: ExecutionContext, count = 1, http: MiddlewareOptions = publishing): Promise<{ cluster: Cluster; servers: TestServer[] }> {
  const cluster = await memoryClusters.create();
  const started: TestServer[] = [];
  for (let i = 0; i < count; i++) started.push(await startServer(cluster, { http }));
  t.teardown(() => Promise.all(started.map((s) => s.close())));
  return { cluster, servers: started };
}

async function stream(t: ExecutionContext, url: string, headers: Record<string, string> = {}): Promise<SseStream> {
  const opened = await SseStream.open(url, headers);
  t.teardown(() => opened.close());
  await opened.connected();
  return opened;
}

const publish = (server: TestServer, body: unknown, headers: Record<string, string> = { 'X-Api-Key': apiKey }) =>
  request('POST', `${server.url}/event-publish`, { json: body, headers });

const chats = (s: SseStream) => s.frames.filter((f) => f.selector === 'cmd.chat');

test('an API key publishes to a channel, to all, and to a subscription, user id, user name or session', async (t) => {
  const authenticate = (ctx: { get(name: string): string }) => (ctx.get('X-User') ? { userId: ctx.get('X-User'), userName: `name of ${ctx.get('X-User')}` } : undefined);
  const { servers: [server] } = await servers(t, 1, { ...publishing, authenticate });
  const home = await stream(t, `${server!.url}/event-stream?channels=home`, { Cookie: 'ss-id=sessionOfHome00000001', 'X-User': 'u42' });
  const other = await stream(t, `${server!.url}/event-stream?channels=other`);
  const ok = async (body: unknown) => {
    const reply = await publish(server!, body);
    t.is(reply.status, 200, reply.text);
    t.deepEqual(reply.json, { published: true });
  };
  await ok({ to: { channel: 'home' }, selector: 'cmd.chat', message: { text: 'to home' } });
  const frame = await home.next(only('cmd.chat'));
  t.is(frame.channel, 'home');
  t.deepEqual(frame.body, { text: 'to home' });
  await ok({ to: 'all', selector: 'cmd.chat', message: 'to all' });
  t.is((await other.next(only('cmd.chat'))).body, 'to all');
  const { id, userId } = home.connectArgs;
  await ok({ to: { subscriptionId: id }, selector: 'cmd.chat', message: 'by id' });
  await ok({ to: { userId }, selector: 'cmd.chat', message: 'by user id' });
  await ok({ to: { userName: 'name of u42' }, selector: 'cmd.chat', message: 'by user name' });
  await ok({ to: { sessionId: 'sessionOfHome00000001' }, selector: 'cmd.chat', message: 'by session' });
  await ok({ to: { userId }, channel: 'home', selector: 'cmd.chat', message: 'in home' });
  await ok({ to: { userId }, channel: 'elsewhere', selector: 'cmd.chat', message: 'not in that channel' });
  await home.count(only('cmd.chat'), 7);
  await delay(100);
  t.deepEqual(chats(home).map((f) => f.body), ['to home', 'to all', 'by id', 'by user id', 'by user name', 'by session', 'in home'].map((m, i) => (i === 0 ? { text: m } : m)));
  t.is(chats(home).at(-1)!.channel, undefined, 'a channel filter only filters: the frame is not prefixed, as in ServiceStack');
  t.deepEqual(chats(other).map((f) => f.body), ['to all'], 'targeted publishes reach only their target');
  const alsoKeyed = await publish(server!, { to: 'all', selector: 'cmd.chat' }, { Authorization: `ApiKey ${apiKey}` });
  t.is(alsoKeyed.status, 200, 'the key also goes in Authorization: ApiKey');
});

test('credentials: none or a wrong key is 401; a token publishes where its publish claim says, else 403', async (t) => {
  const { servers: [server] } = await servers(t);
  const room = await stream(t, `${server!.url}/event-stream?channels=room.a`);
  const body = (to: unknown, extra: Record<string, unknown> = {}) => ({ to, selector: 'cmd.chat', message: 'hi', ...extra });
  const refused = async (headers: Record<string, string>, status: number, errorCode: string, sent: unknown = body({ channel: 'room.a' })) => {
    const reply = await publish(server!, sent, headers);
    t.is(reply.status, status, reply.text);
    t.is(reply.json?.responseStatus?.errorCode, errorCode);
    t.truthy(reply.json?.responseStatus?.message);
    return reply;
  };
  await refused({}, 401, 'Unauthorized');
  await refused({ 'X-Api-Key': 'not-the-key-at-all-0000' }, 401, 'Unauthorized');
  await refused({ Authorization: `Bearer ${await token({ publish: ['*'] }, '-1m')}` }, 401, 'Unauthorized');
  await refused({ Authorization: 'Bearer not.a.token' }, 401, 'Unauthorized');
  const forged = await new SignJWT({ publish: ['*'] }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('5m').sign(new TextEncoder().encode('another-secret-of-at-least-32-bytes!'));
  await refused({ Authorization: `Bearer ${forged}` }, 401, 'Unauthorized');
  const noClaim = { Authorization: `Bearer ${await token({ sub: 'svc' })}` };
  await refused(noClaim, 403, 'Forbidden');

  const rooms = { Authorization: `Bearer ${await token({ sub: 'svc', publish: ['room.*', 'lobby'] })}` };
  t.is((await publish(server!, body({ channel: 'room.a' }), rooms)).status, 200);
  t.is((await room.next(only('cmd.chat'))).body, 'hi');
  t.is((await publish(server!, body({ channel: 'lobby' }), rooms)).status, 200);
  t.is((await publish(server!, body({ userId: 'x' }, { channel: 'room.b' }), rooms)).status, 200, 'a target narrowed to a granted channel');
  await refused(rooms, 403, 'Forbidden', body({ channel: 'home' }));
  await refused(rooms, 403, 'Forbidden', body({ channel: 'lobby.x' }));
  await refused(rooms, 403, 'Forbidden', body('all'));
  await refused(rooms, 403, 'Forbidden', body({ userId: 'x' }));
  // Tokens without a subject keep their idempotency keys apart by what they may publish to: one cannot claim another's.
  const roomA = { Authorization: `Bearer ${await token({ publish: ['room.a'] })}`, 'Idempotency-Key': 'shared-key' };
  const roomB = { Authorization: `Bearer ${await token({ publish: ['room.b'] })}`, 'Idempotency-Key': 'shared-key' };
  t.deepEqual((await publish(server!, body({ channel: 'room.a' }), roomA)).json, { published: true });
  t.deepEqual((await publish(server!, body({ channel: 'room.b' }), roomB)).json, { published: true }, "another token's key is its own");
  const everything = { Authorization: `Bearer ${await token({ publish: '*' })}` };
  t.is((await publish(server!, body('all'), everything)).status, 200, 'a * claim may publish anything');
});

test('bad input is 400, 405, 413 or 415 with the error body, and publishes nothing', async (t) => {
  const { servers: [server] } = await servers(t, 1, { ...publishing, bodyLimit: '2kb' });
  const home = await stream(t, `${server!.url}/event-stream?channels=home`);
  const refused = async (status: number, send: () => Promise<{ status: number; json: any; text: string }>, match?: RegExp) => {
    const reply = await send();
    t.is(reply.status, status, reply.text);
    t.truthy(reply.json?.responseStatus?.errorCode, reply.text);
    if (match) t.regex(reply.json.responseStatus.message, match);
  };
  const bad = (body: unknown, match?: RegExp) => refused(400, () => publish(server!, body), match);
  await bad([1, 2], /JSON object/);
  await bad({ to: { channel: 'home' } }, /selector/);
  await bad({ to: { channel: 'home' }, selector: '' }, /selector/);
  await bad({ to: { channel: 'home' }, selector: 'no-dot here' });
  await bad({ selector: 'cmd.chat' }, /'to'/);
  await bad({ to: 'everyone', selector: 'cmd.chat' }, /'to'/);
  await bad({ to: { channel: 'home', userId: '1' }, selector: 'cmd.chat' }, /'to'/);
  await bad({ to: { group: 'x' }, selector: 'cmd.chat' }, /'to'/);
  await bad({ to: { userId: '' }, selector: 'cmd.chat' }, /to\.userId/);
  await bad({ to: { channel: 'a@b' }, selector: 'cmd.chat' });
  await bad({ to: { channel: 'home' }, channel: 'home', selector: 'cmd.chat' }, /narrows/);
  await bad({ to: 'all', selector: 'cmd.chat', mesage: 'typo' }, /Unknown field 'mesage'/);
  await bad({ to: 'all', selector: 'cmd.chat', idempotencyKey: 'has space' }, /idempotency key/);
  for (const own of ['cmd.onConnect', 'cmd.onJoin', 'cmd.onLeave', 'cmd.onUpdate', 'cmd.onHeartbeat', 'cmd.onReset']) {
    await bad({ to: { channel: 'home' }, selector: own, message: { heartbeatUrl: 'http://elsewhere.example/steal' } }, /server's own events/);
  }
  let deep: unknown = 'bottom';
  for (let i = 0; i < 100; i++) deep = [deep];
  await bad({ to: 'all', selector: 'cmd.chat', message: deep }, /nests deeper/);
  await refused(400, () =>
    fetch(`${server!.url}/event-publish`, { method: 'POST', headers: { 'X-Api-Key': apiKey, 'Content-Type': 'application/json', 'Content-Encoding': 'gzip' }, body: 'not gzip at all' }).then(replyOf),
  );
  await refused(400, () => request('POST', `${server!.url}/event-publish`, { headers: { 'X-Api-Key': apiKey, 'Content-Type': 'application/json' }, json: undefined }));
  await refused(400, () => fetch(`${server!.url}/event-publish`, { method: 'POST', headers: { 'X-Api-Key': apiKey, 'Content-Type': 'application/json' }, body: '{"to":' }).then(replyOf));
  await refused(415, () => request('POST', `${server!.url}/event-publish`, { form: { to: 'all', selector: 'cmd.chat' }, headers: { 'X-Api-Key': apiKey } }));
  await refused(413, () => publish(server!, { to: 'all', selector: 'cmd.chat', message: 'x'.repeat(4000) }));
  await refused(405, () => request('GET', `${server!.url}/event-publish`, { headers: { 'X-Api-Key': apiKey } }));
  await delay(100);
  t.deepEqual(chats(home), [], 'nothing went out');
  const { servers: [closed] } = await servers(t, 1, {});
  t.is((await publish(closed!, { to: 'all', selector: 'cmd.chat' })).status, 404, 'without the publish option there is no route');
});

test('a message over maxMessageBytes is 413', async (t) => {
  const cluster = await memoryClusters.create();
  const server = await startServer(cluster, { http: publishing, events: { maxMessageBytes: 1000 } });
  t.teardown(() => server.close());
  const reply = await publish(server, { to: 'all', selector: 'cmd.chat', message: 'x'.repeat(2000) });
  t.is(reply.status, 413);
  t.is(reply.json.responseStatus.errorCode, 'PayloadTooLarge');
});

test('an idempotency key drops a repeat on any server of the cluster, per credential, within its window', async (t) => {
  const { servers: [a, b] } = await servers(t, 2, { publish: { apiKeys: [apiKey, 'second-publish-key-00000'], idempotencyWindowMs: 1500 } });
  const home = await stream(t, `${a!.url}/event-stream?channels=home`);
  const send = (server: TestServer, message: string, key: string, headers: Record<string, string> = { 'X-Api-Key': apiKey }) =>
    publish(server, { to: { channel: 'home' }, selector: 'cmd.chat', message }, { ...headers, 'Idempotency-Key': key });
  t.deepEqual((await send(a!, 'first', 'order-1')).json, { published: true });
  const repeats = await Promise.all([send(a!, 'repeat on a', 'order-1'), send(b!, 'repeat on b', 'order-1')]);
  for (const repeat of repeats) {
    t.is(repeat.status, 200);
    t.deepEqual(repeat.json, { published: false, duplicate: true });
  }
  t.deepEqual((await send(b!, 'another key', 'order-2')).json, { published: true });
  t.deepEqual((await send(b!, 'another credential', 'order-1', { 'X-Api-Key': 'second-publish-key-00000' })).json, { published: true }, 'keys are per credential');
  const inBody = await publish(a!, { to: { channel: 'home' }, selector: 'cmd.chat', message: 'body key', idempotencyKey: 'order-3' });
  t.deepEqual(inBody.json, { published: true });
  t.deepEqual((await send(b!, 'header repeat of a body key', 'order-3')).json, { published: false, duplicate: true });
  const racing = await Promise.all(Array.from({ length: 6 }, (_, i) => send(i % 2 ? a! : b!, `race ${i}`, 'order-4')));
  const published = racing.filter((r) => r.json?.published === true);
  t.is(published.length, 1, 'of racing repeats one publishes');
  for (const r of racing) t.is(r.status, 200, 'the others are answered as duplicates');
  await delay(1700);
  t.deepEqual((await send(a!, 'after the window', 'order-1')).json, { published: true }, 'the window is over');
  await home.count(only('cmd.chat'), 6);
  await delay(100);
  t.deepEqual(
    chats(home).map((f) => f.body).filter((m) => !String(m).startsWith('race')),
    ['first', 'another key', 'another credential', 'body key', 'after the window'],
  );
  t.is(chats(home).filter((f) => String(f.body).startsWith('race')).length, 1, 'one of the racers went out');
});
