/**
 * Random and hostile input at every HTTP route (fast-check, bounded runs):
 * never a 500, never a crash, never a frame a client did not ask for, and
 * a bystander keeps getting its events throughout.
 */
import http from 'node:http';
import test from 'ava';
import fc from 'fast-check';
import { rawJson } from '../../src/arguments.js';
import { memoryClusters } from '../helpers/cluster.js';
import { delay, startServer } from '../helpers/server.js';
import { only, SseStream } from '../helpers/sse.js';

const routes = [
  '/event-stream',
  '/event-heartbeat',
  '/event-unregister',
  '/event-subscribers',
  '/event-subscribers/{id}',
  '/api/UpdateEventSubscriber',
  '/json/reply/UpdateEventSubscriber',
  '/api/GetEventSubscribers',
  '/json/reply/GetEventSubscribers',
];
const fieldNames = ['channels', 'channel', 'id', 'Id', 'resume', 'lastEventId', 'subscribeChannels', 'SubscribeChannels', 'unsubscribeChannels', 'token'];

/** Strings a hostile client would try: line breaks to forge frames, separators, encodings, huge and odd names. */
const hostile = fc.oneof(
  fc.string(),
  fc.fullUnicodeString({ maxLength: 40 }),
  fc.constantFrom(
    '\r\n\r\nid: 999\ndata: cmd.forged@home {}\n\n',
    'home\ndata: cmd.forged',
    'a@b',
    'a,b,,c',
    '%00',
    '%0Adata:%20x',
    '../../../etc/passwd',
    '-1',
    '9'.repeat(30),
    '{"__proto__":{"polluted":1}}',
    'x'.repeat(5000),
    '',
  ),
);

/** `{live}` stands for the id of a subscription opened for that request, so the routes act on something real. */
const LIVE = '{live}';
const hostileOrLive = fc.oneof(hostile, fc.constant(LIVE));

const requestShape = fc.record({
  method: fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'),
  route: fc.constantFrom(...routes),
  pathId: hostileOrLive,
  query: fc.dictionary(fc.constantFrom(...fieldNames), hostileOrLive, { maxKeys: 4 }),
  lastEventId: fc.option(hostile, { nil: undefined }),
  contentType: fc.constantFrom('application/json', 'application/x-www-form-urlencoded', 'text/plain', 'application/xml', 'multipart/form-data; boundary=x'),
  body: fc.oneof(hostile, fc.json(), fc.dictionary(fc.constantFrom(...fieldNames), fc.oneof(hostile, fc.array(hostile, { maxLength: 5 }))).map((o) => JSON.stringify(o))),
});

type Shape = typeof requestShape extends fc.Arbitrary<infer T> ? T : never;

/** Sends one request and reads at most a little of the answer: a stream is cut after its first frames. */
function send(base: URL, shape: Shape): Promise<{ status: number; text: string }> {
  const path = shape.route.replace('{id}', encodeURIComponent(shape.pathId));
  const query = new URLSearchParams(shape.query).toString();
  const headers: Record<string, string> = { 'Content-Type': shape.contentType };
  // A header value travels as bytes without line breaks: send the UTF-8 bytes, minus those, as Node's client insists.
  if (shape.lastEventId !== undefined) headers['Last-Event-ID'] = Buffer.from(shape.lastEventId).toString('latin1').replace(/[\x00-\x08\x0a-\x1f\x7f]/g, '');
  const body = shape.method === 'GET' ? undefined : shape.body;
  if (body !== undefined) headers['Content-Length'] = String(Buffer.byteLength(body));
  return new Promise((resolve, reject) => {
    const req = http.request({ host: base.hostname, port: base.port, method: shape.method, path: `${path}?${query}`, headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      const done = () => resolve({ status: res.statusCode ?? 0, text });
      const cut = setTimeout(() => {
        req.destroy();
        done();
      }, 300);
      res.on('data', (chunk: string) => {
        text += chunk;
        if (text.includes('cmd.onConnect') && text.includes('\n\n')) {
          clearTimeout(cut);
          req.destroy();
          done();
        }
      });
      res.on('end', () => {
        clearTimeout(cut);
        done();
      });
      res.on('error', () => {});
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** The selectors this server writes on its own, and the one the test publishes. */
const serverSelectors = new Set(['cmd.onConnect', 'cmd.onJoin', 'cmd.onLeave', 'cmd.onUpdate', 'cmd.onHeartbeat', 'cmd.onReset', 'cmd.tick']);

/**
 * Why one frame the server wrote is not exactly one SSE event, or
 * `undefined`: an `id: N` line, a `data: [channel@]selector body` line with a
 * selector the server sends and a JSON body, a blank line, and no other line
 * break anywhere. A message or name that smuggled a line break in (and so a
 * forged field or frame) fails here, whatever it forged.
 */
function frameProblem(frame: string): string | undefined {
  const match = /^id: \d+\ndata: (?:[^\s@]+@)?(\S+) ([^\n\r]*)\n\n$/.exec(frame);
  if (!match) return `not exactly one id line and one data line: ${JSON.stringify(frame.slice(0, 200))}`;
  if (!serverSelectors.has(match[1]!)) return `a selector the server never sends: ${match[1]}`;
  try {
    JSON.parse(match[2]!);
  } catch {
    return `a body that is not JSON: ${match[2]!.slice(0, 100)}`;
  }
  return undefined;
}

/**
 * Why a stream's bytes are not what this server writes, or `undefined`:
 * every block is a keep-alive comment or a frame as `frameProblem` wants it,
 * and ids never go back.
 */
function streamProblem(text: string): string | undefined {
  let last = 0;
  for (const block of text.split('\n\n').slice(0, -1)) {
    if (block === ':') continue;
    const problem = frameProblem(`${block}\n\n`);
    if (problem) return problem;
    const id = Number(/^id: (\d+)/.exec(block)![1]);
    if (id < last) return `an id that went back: ${id} after ${last}`;
    last = id;
  }
  return undefined;
}

test('the frame checks catch a forged frame, a line too many, a stray field and an id going back, and pass a real stream', (t) => {
  const real = 'id: 5\ndata: cmd.onConnect {"id":"x"}\n\nid: 6\ndata: home@cmd.onJoin {"userId":"-1"}\n\n:\n\nid: 6\ndata: cmd.tick 3\n\n';
  t.is(streamProblem(real), undefined);
  t.truthy(streamProblem(`${real}id: 999\ndata: home@cmd.forged {}\n\n`), 'a forged frame');
  t.truthy(streamProblem(`${real}id: 2\ndata: home@cmd.onLeave {"userId":"admin"}\n\n`), 'a forged frame of a real kind, going back');
  t.truthy(streamProblem('id: 7\ndata: cmd.tick 1\ndata: cmd.forged {}\n\n'), 'a data line too many');
  t.truthy(streamProblem('id: 7\nevent: x\ndata: cmd.tick 1\n\n'), 'a field this server never writes');
  t.truthy(streamProblem('id: 7\ndata: cmd.tick {"a":\n\n'), 'a body cut short');
  t.truthy(frameProblem('id: 8\ndata: cmd.onLeave {"a":"b"}\n\nid: 9\ndata: cmd.onLeave {"userId":"admin"}\n\n'), 'two frames in one write');
  t.is(frameProblem('id: 8\ndata: my%20room@cmd.onJoin {"a":"b c"}\n\n'), undefined);
});

test('hostile requests at every route: no 500, no forged frame, no crash; a bystander gets every event', async (t) => {
  const cluster = await memoryClusters.create();
  const errors: unknown[] = [];
  const badFrames: string[] = [];
  // Every frame the server writes, checked as it is written: one event, nothing forged into it.
  const onPublish = (_sub: unknown, frame: string) => {
    const problem = frameProblem(frame);
    if (problem) badFrames.push(problem);
  };
  // Few stream places: a request that kept its place after failing would use them up, and the last check would fail.
  const server = await startServer(cluster, { events: { onError: (error) => errors.push(error), onPublish }, http: { maxStreams: 20 } });
  t.teardown(() => server.close());
  const base = new URL(server.url);
  const bystander = await SseStream.open(`${server.url}/event-stream?channels=home`);
  t.teardown(() => bystander.close());
  await bystander.connected();

  let sent = 0;
  const statuses = new Map<number, number>();
  await fc.assert(
    fc.asyncProperty(requestShape, async (shape) => {
      let target: SseStream | undefined;
      if (JSON.stringify(shape).includes(LIVE)) {
        const live = (target = await SseStream.open(`${server.url}/event-stream?channels=fuzz`));
        await live.connected();
        const withId = (value: string) => (value === LIVE ? live.id : value);
        shape = { ...shape, pathId: withId(shape.pathId), query: Object.fromEntries(Object.entries(shape.query).map(([k, v]) => [k, withId(v)])) };
      }
      const reply = await send(base, shape);
      target?.close();
      statuses.set(reply.status, (statuses.get(reply.status) ?? 0) + 1);
      if (reply.status >= 500 || reply.status < 100) throw new Error(`${shape.method} ${shape.route}: status ${reply.status}`);
      const problem = reply.status === 200 && /^id: /m.test(reply.text) ? streamProblem(reply.text) : undefined;
      if (problem) throw new Error(`a stream carried what the server should not write: ${problem}`);
      await server.events.notifyChannel('home', 'cmd.tick', sent++);
    }),
    { numRuns: 300 },
  );

  t.log(`statuses: ${[...statuses].sort(([a], [b]) => a - b).map(([status, n]) => `${status}×${n}`).join(', ')}`);
  await bystander.count(only('cmd.tick'), sent, 10_000);
  t.deepEqual(
    bystander.frames.filter(only('cmd.tick')).map((frame) => frame.body),
    Array.from({ length: sent }, (_, i) => i),
  );
  t.is(streamProblem(bystander.raw), undefined, 'the bystander saw only frames the server meant to send');
  t.false(bystander.frames.some((frame) => frame.selector === 'cmd.forged'));
  t.deepEqual(errors, [], 'no request made the server report an error');
  t.deepEqual(badFrames, [], 'every frame the server wrote was exactly one event');
  const after = await SseStream.open(`${server.url}/event-stream?channels=after`);
  t.teardown(() => after.close());
  await after.connected();
});

test('hostile message bodies, even raw ones, reach a stream as exactly one event each', async (t) => {
  const cluster = await memoryClusters.create();
  const written: string[] = [];
  const server = await startServer(cluster, { events: { onPublish: (_sub, frame) => written.push(frame) } });
  t.teardown(() => server.close());
  const stream = await SseStream.open(`${server.url}/event-stream?channels=home`);
  t.teardown(() => stream.close());
  await stream.connected();
  let sent = 0;
  await fc.assert(
    fc.asyncProperty(hostile, fc.boolean(), async (body, raw) => {
      await server.events.notifyChannel('home', 'cmd.tick', raw ? rawJson(body) : body);
      sent++;
    }),
    { numRuns: 200 },
  );
  await stream.count(only('cmd.tick'), sent, 10_000);
  await delay(100);
  t.is(stream.frames.filter(only('cmd.tick')).length, sent, 'one event per message: none split in two');
  const ticks = written.filter((frame) => frame.includes('cmd.tick'));
  t.deepEqual(ticks.filter((frame) => !/^id: \d+\ndata: home@cmd\.tick [^\n\r]*\n\n$/.test(frame)), [], 'every frame one id line and one data line');
});
