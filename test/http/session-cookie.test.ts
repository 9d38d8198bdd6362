/**
 * The `ss-id` session cookie: a stream sends a new one with its head,
 * beside any header or cookie a hook set; a client that has one keeps it;
 * a request refused before it became a stream is still given its session.
 */
import http from 'node:http';
import test from 'ava';
import { memoryClusters } from '../helpers/cluster.js';
import { startServer } from '../helpers/server.js';

interface Head {
  status: number;
  headers: http.IncomingHttpHeaders;
  /** The first chunk of the body. */
  first: string;
}

/** Opens `url`, reads the head and the first chunk of the body, and closes the connection. */
function head(url: string, headers: Record<string, string> = {}): Promise<Head> {
  return new Promise((resolve, reject) => {
    const request = http.get(url, { headers: { accept: 'text/event-stream', ...headers } }, (response) => {
      response.setEncoding('utf8');
      response.once('data', (first: string) => {
        resolve({ status: response.statusCode!, headers: response.headers, first });
        request.destroy();
      });
    });
    request.on('error', reject);
  });
}

const sessionOf = (cookies: string[] | undefined) => cookies?.map((c) => /^ss-id=([^;]*)/.exec(c)?.[1]).find(Boolean);

test('a new client is given its session with the stream head, once, and the stream is of that session', async (t) => {
  const server = await startServer(await memoryClusters.create());
  t.teardown(() => server.close());
  const { status, headers, first } = await head(`${server.url}/event-stream?channels=room`);
  t.is(status, 200);
  t.is(headers['content-type'], 'text/event-stream');
  const cookies = headers['set-cookie'] ?? [];
  t.is(cookies.length, 1);
  t.regex(cookies[0]!, /^ss-id=[A-Za-z0-9]{20}; path=\/; samesite=lax; httponly$/);
  const id = /"id":"(\w+)"/.exec(first)![1]!;
  t.is((await server.events.getSubscriptionInfo(id))?.sessionId, sessionOf(cookies));
});

test('a client with a session keeps it, and is sent no cookie', async (t) => {
  const server = await startServer(await memoryClusters.create());
  t.teardown(() => server.close());
  const { headers, first } = await head(`${server.url}/event-stream?channels=room`, { cookie: 'ss-id=mine-1234' });
  t.is(headers['set-cookie'], undefined);
  const id = /"id":"(\w+)"/.exec(first)![1]!;
  t.is((await server.events.getSubscriptionInfo(id))?.sessionId, 'mine-1234');
});

test("the headers and cookies a hook sets go out with the stream's own, the session cookie beside the hook's", async (t) => {
  const server = await startServer(await memoryClusters.create(), {
    http: {
      onInit: (ctx) => {
        ctx.set('X-Hooked', 'yes');
        ctx.cookies.set('theme', 'dark', { httpOnly: false });
      },
    },
  });
  t.teardown(() => server.close());
  const { headers } = await head(`${server.url}/event-stream?channels=room`);
  t.is(headers['x-hooked'], 'yes');
  t.is(headers['content-type'], 'text/event-stream');
  const cookies = headers['set-cookie'] ?? [];
  t.is(cookies.length, 2);
  t.true(cookies.some((c) => c.startsWith('theme=dark')));
  t.truthy(sessionOf(cookies));
});

test('a stream request refused before it became a stream is still given its new session', async (t) => {
  const server = await startServer(await memoryClusters.create());
  t.teardown(() => server.close());
  const { status, headers } = await head(`${server.url}/event-stream?channels=room`, { 'last-event-id': 'not a number' });
  t.is(status, 400);
  t.truthy(sessionOf(headers['set-cookie']));
});
