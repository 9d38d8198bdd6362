/**
 * Auth: the ready-made JWT hook (header, cookie, query), limitToAuthenticatedUsers,
 * channel authorization on connect and on update, and subscriptions bound to
 * the session that opened them.
 */
import test, { type ExecutionContext } from 'ava';
import { SignJWT } from 'jose';
import { jwtAuthenticate } from '../../src/http/jwt.js';
import type { MiddlewareOptions } from '../../src/http/options.js';
import { memoryClusters } from '../helpers/cluster.js';
import { request, startServer } from '../helpers/server.js';
import { SseStream } from '../helpers/sse.js';

const secret = 'a-test-secret-of-at-least-32-bytes!!';

function token(claims: Record<string, unknown>, options: { key?: string; expiresIn?: string } = {}): Promise<string> {
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'HS256' })
    .setIssuedAt()
    .setExpirationTime(options.expiresIn ?? '5m')
    .sign(new TextEncoder().encode(options.key ?? secret));
}

async function server(t: ExecutionContext, http: MiddlewareOptions) {
  const started = await startServer(await memoryClusters.create(), { http });
  t.teardown(() => started.close());
  return started;
}

async function open(t: ExecutionContext, url: string, headers: Record<string, string> = {}) {
  const stream = await SseStream.open(url, headers);
  t.teardown(() => stream.close());
  return stream;
}

test('jwtAuthenticate takes the token from Authorization, the ss-tok cookie or ?token=; a bad or expired one is 401', async (t) => {
  const { url } = await server(t, { authenticate: jwtAuthenticate({ secret }), limitToAuthenticatedUsers: true });
  const alice = await token({ sub: 'u1', preferred_username: 'alice', name: 'Alice A.' });

  for (const [how, path, headers] of [
    ['header', '/event-stream?channels=home', { Authorization: `Bearer ${alice}` }],
    ['cookie', '/event-stream?channels=home', { Cookie: `ss-tok=${alice}` }],
    ['query', `/event-stream?channels=home&token=${alice}`, {}],
  ] as const) {
    const stream = await open(t, `${url}${path}`, headers);
    const args = (await stream.connected()).body as Record<string, string>;
    t.is(args.userId, 'u1', how);
    t.is(args.displayName, 'alice', how);
    t.is(args.isAuthenticated, 'true', how);
  }

  const anonymous = await request('GET', `${url}/event-stream?channels=home`);
  t.is(anonymous.status, 401);
  const forged = await request('GET', `${url}/event-stream?channels=home`, { headers: { Authorization: `Bearer ${await token({ sub: 'u1' }, { key: 'another-secret-of-at-least-32-bytes!' })}` } });
  t.is(forged.status, 401);
  t.is(forged.statusText, 'Invalid token: ERR_JWS_SIGNATURE_VERIFICATION_FAILED');
  const expired = await request('GET', `${url}/event-stream?channels=home`, { headers: { Authorization: `Bearer ${await token({ sub: 'u1' }, { expiresIn: '-1m' })}` } });
  t.is(expired.status, 401);
  t.is(expired.statusText, 'Invalid token: ERR_JWT_EXPIRED');
  const garbage = await request('GET', `${url}/event-stream?channels=home&token=not.a.jwt`);
  t.is(garbage.status, 401);
});

test('authorizeChannel: a forbidden channel is 403 on connect and on update; allowed ones pass', async (t) => {
  const asked: string[] = [];
  const { url, events } = await server(t, {
    authenticate: jwtAuthenticate({ secret }),
    authorizeChannel: (user, channel) => {
      asked.push(`${user.userId ?? 'anonymous'}:${channel}`);
      return !channel.startsWith('admin') || user.userId === 'root';
    },
  });
  const refused = await request('GET', `${url}/event-stream?channels=home,admin-room`);
  t.is(refused.status, 403);
  t.is(refused.statusText, "Not allowed to join channel 'admin-room'");

  const root = await open(t, `${url}/event-stream?channels=admin-room`, { Authorization: `Bearer ${await token({ sub: 'root' })}` });
  await root.connected();

  const guest = await open(t, `${url}/event-stream?channels=home`);
  await guest.connected();
  const update = await request('POST', guest.connectArgs.updateSubscriberUrl!, { form: { SubscribeChannels: 'news,admin-room' } });
  t.is(update.status, 403);
  t.deepEqual((await events.getSubscriptionInfo(guest.id))?.channels, ['home'], 'nothing changed');
  const allowed = await request('POST', guest.connectArgs.updateSubscriberUrl!, { form: { SubscribeChannels: 'news' } });
  t.is(allowed.status, 200);
  t.deepEqual((await events.getSubscriptionInfo(guest.id))?.channels, ['home', 'news']);
  t.true(asked.includes('anonymous:admin-room'));
  t.true(asked.includes('root:admin-room'));
});

test('validateUserSession: heartbeat, update and unregister from another session are 403', async (t) => {
  const { url, events } = await server(t, { validateUserSession: true });
  const stream = await open(t, `${url}/event-stream?channels=home`);
  await stream.connected();
  const cookie = /ss-id=[^;]+/.exec(String(stream.headers['set-cookie']))![0];
  const stranger = { headers: { Cookie: 'ss-id=someoneelse' } };
  t.is((await request('POST', stream.connectArgs.heartbeatUrl!, stranger)).status, 403);
  t.is((await request('POST', stream.connectArgs.updateSubscriberUrl!, { ...stranger, form: { SubscribeChannels: 'x' } })).status, 403);
  t.is((await request('POST', stream.connectArgs.unRegisterUrl!, stranger)).status, 403);
  t.is((await request('POST', stream.connectArgs.heartbeatUrl!)).status, 403, 'no cookie at all');
  t.truthy(await events.getSubscriptionInfo(stream.id));
  t.is((await request('POST', stream.connectArgs.heartbeatUrl!, { headers: { Cookie: cookie } })).status, 200);
  t.is((await request('POST', stream.connectArgs.unRegisterUrl!, { headers: { Cookie: cookie } })).status, 200);
});

test('subscription ids carry 119 bits of randomness: 20 characters of [A-Za-z0-9], all different', async (t) => {
  const { url } = await server(t, {});
  const ids = new Set<string>();
  for (let i = 0; i < 20; i++) {
    const stream = await open(t, `${url}/event-stream`);
    await stream.connected();
    t.regex(stream.id, /^[A-Za-z0-9]{20}$/);
    ids.add(stream.id);
    stream.close();
  }
  t.is(ids.size, 20);
});

test('jwtAuthenticate refuses an unsigned token, one without exp and one without sub', async (t) => {
  const { url } = await server(t, { authenticate: jwtAuthenticate({ secret }) });
  const header = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const unsigned = `${header({ alg: 'none', typ: 'JWT' })}.${header({ sub: 'u1', exp: Math.floor(Date.now() / 1000) + 60 })}.`;
  const forever = await new SignJWT({ sub: 'u1' }).setProtectedHeader({ alg: 'HS256' }).sign(new TextEncoder().encode(secret));
  const nobody = await token({ name: 'no subject' });
  for (const [what, bad] of [['unsigned', unsigned], ['no exp', forever], ['no sub', nobody]] as const) {
    const reply = await request('GET', `${url}/event-stream?channels=home`, { headers: { Authorization: `Bearer ${bad}` } });
    t.is(reply.status, 401, what);
  }
});

test('authorizeChannel also guards the channels a resume keeps, the DTO update route and the listings', async (t) => {
  let allowed = true;
  const { url } = await server(t, {
    limitToAuthenticatedUsers: false,
    authorizeChannel: (_user, channel) => channel !== 'vip' || allowed,
  });
  const member = await open(t, `${url}/event-stream?channels=vip`);
  await member.connected();
  const cookie = /ss-id=[^;]+/.exec(String(member.headers['set-cookie']))![0];
  member.close();

  allowed = false;
  const resume = await request('GET', `${url}/event-stream?channels=home&resume=${member.id}`, { headers: { Cookie: cookie } });
  t.is(resume.status, 403, 'access to vip was taken away, so the subscription that holds it is not resumed');
  t.is(resume.statusText, "Not allowed to join channel 'vip'");

  const guest = await open(t, `${url}/event-stream?channels=home`);
  await guest.connected();
  const dto = await request('POST', `${url}/api/UpdateEventSubscriber`, { json: { Id: guest.id, SubscribeChannels: ['vip'] } });
  t.is(dto.status, 403);
  t.is((await request('GET', `${url}/event-subscribers?channels=vip`)).status, 403);
  t.is((await request('GET', `${url}/json/reply/GetEventSubscribers?channels=vip`)).status, 403);
  t.is((await request('GET', `${url}/event-subscribers`)).statusText, 'Name the channels to list');
  t.is((await request('GET', `${url}/event-subscribers?channels=home`)).status, 200);
});

test('limitToAuthenticatedUsers also guards the listings', async (t) => {
  const { url } = await server(t, { authenticate: jwtAuthenticate({ secret }), limitToAuthenticatedUsers: true });
  t.is((await request('GET', `${url}/event-subscribers?channels=home`)).status, 401);
  const listed = await request('GET', `${url}/event-subscribers?channels=home`, { headers: { Authorization: `Bearer ${await token({ sub: 'u1' })}` } });
  t.is(listed.status, 200);
});

test('hooks see the matched route as the router describes it (params, _matchedRoute), whichever way the path is spelled', async (t) => {
  const seen: Array<{ params: unknown; route: unknown }> = [];
  const describe = (ctx: { params?: unknown; _matchedRoute?: unknown }) => seen.push({ params: ctx.params, route: ctx._matchedRoute });
  const { url } = await server(t, {
    authenticate: (ctx) => {
      describe(ctx as never);
      return { userId: 'u-params' };
    },
  });
  const stream = await open(t, `${url}/event-stream?channels=home`);
  await stream.connected();
  // Another spelling goes through the router itself: the hooks see the same.
  const other = await open(t, `${url}/Event-Stream/?channels=home`);
  await other.connected();
  t.deepEqual(seen, [
    { params: {}, route: '/event-stream' },
    { params: {}, route: '/event-stream' },
  ]);
});
