import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { startChat, type ChatServer } from '../helpers/chat.js';
import { memoryClusters } from '../helpers/cluster.js';
import { request } from '../helpers/server.js';
import { only, SseStream } from '../helpers/sse.js';

async function chats(t: ExecutionContext, count = 1, options = {}) {
  const cluster = await memoryClusters.create();
  const servers: ChatServer[] = [];
  for (let i = 0; i < count; i++) servers.push(await startChat(cluster, options));
  const streams: SseStream[] = [];
  t.teardown(async () => {
    streams.forEach((s) => s.close());
    await Promise.all(servers.map((s) => s.close()));
  });
  const open = async (on: number, channels = 'home') => {
    const stream = await SseStream.open(`${servers[on]!.url}/event-stream?channels=${channels}`);
    streams.push(stream);
    await stream.connected();
    return stream;
  };
  return { servers, open };
}

test('a chat message goes to the channel, HTML-escaped, with an id from the cluster-wide sequence', async (t) => {
  const { servers, open } = await chats(t, 2);
  const alice = await open(0);
  const bob = await open(1);
  const first = await request('POST', `${servers[0]!.url}/channels/home/chat`, { json: { from: alice.id, message: '<b>hi</b> & bye' } });
  t.is(first.status, 200);
  const second = await request('POST', `${servers[1]!.url}/channels/home/chat`, { json: { from: bob.id, message: 'second' } });
  t.is(second.json.id, first.json.id + 1, 'ids come from one sequence for both servers');
  const frame = await bob.next(only('cmd.chat', 'home'));
  t.deepEqual(frame.body, {
    id: first.json.id,
    channel: 'home',
    fromUserId: alice.connectArgs.userId,
    fromName: alice.connectArgs.displayName,
    message: '&lt;b&gt;hi&lt;/b&gt; &amp; bye',
    private: false,
  });
});

test('the services take form bodies as jQuery\'s $.post sends them: an empty toUserId is for the channel, field names match in any case', async (t) => {
  const { servers, open } = await chats(t, 2);
  const alice = await open(0);
  const bob = await open(1);
  const chat = await request('POST', `${servers[0]!.url}/channels/home/chat`, {
    form: { from: alice.id, toUserId: '', message: 'by form', selector: 'cmd.chat' },
  });
  t.is(chat.status, 200);
  t.like(chat.json, { message: 'by form', private: false, channel: 'home' });
  t.like((await bob.next(only('cmd.chat', 'home'))).body as object, { message: 'by form', private: false });

  const raw = await request('POST', `${servers[0]!.url}/channels/home/raw`, { form: { From: alice.id, ToUserId: '', Message: '', Selector: 'cmd.toggle$#channels' } });
  t.is(raw.status, 200);
  const toggle = await bob.next(only('cmd.toggle$#channels', 'home'));
  t.is(toggle.json, '""', 'a command without an argument, sent to the channel');

  const direct = await request('POST', `${servers[1]!.url}/channels/home/raw`, { form: { from: bob.id, toUserId: alice.connectArgs.userId!, message: 'Title', selector: 'document.title' } });
  t.is(direct.status, 200);
  t.is((await alice.next(only('document.title'))).channel, undefined, 'a non-empty toUserId is for that user');

  const history = await request('GET', `${servers[1]!.url}/chathistory?Channels=home&Take=1`);
  t.deepEqual(history.json.results.map((m: { message: string }) => m.message), ['by form']);

  const unknown = await request('POST', `${servers[0]!.url}/channels/home/chat`, { form: { from: 'nope', message: 'x' } });
  t.is(unknown.status, 404);
  t.deepEqual(unknown.json, { responseStatus: { errorCode: 'NotFound', message: "Subscription nope does not exist" } });
  const typed = await request('POST', `${servers[0]!.url}/channels/home/chat`, { json: { from: alice.id, message: 42 } });
  t.is(typed.status, 400);
  t.is(typed.json.responseStatus.message, "'message' must be a string");
});

test('a private message reaches only its target, and the sender gets an addressed echo', async (t) => {
  const { servers, open } = await chats(t, 2);
  const alice = await open(0);
  const bob = await open(1);
  const carol = await open(0);
  const reply = await request('POST', `${servers[0]!.url}/channels/home/chat`, {
    json: { from: alice.id, toUserId: bob.connectArgs.userId, message: 'psst' },
  });
  t.is(reply.status, 200);
  const got = await bob.next(only('cmd.chat'));
  t.like(got.body as object, { message: 'psst', private: true });
  t.is(got.channel, undefined);
  const echo = await alice.next(only('cmd.chat'));
  t.is((echo.body as { message: string }).message, `@${bob.connectArgs.displayName}: psst`);
  await request('POST', `${servers[0]!.url}/channels/home/chat`, { json: { from: carol.id, message: 'public' } });
  await carol.next(only('cmd.chat'));
  t.false(carol.frames.some((f) => (f.body as { message?: string })?.message === 'psst'));
  const history = await request('GET', `${servers[1]!.url}/chathistory?channels=home`);
  t.deepEqual(history.json.results.map((m: { message: string }) => m.message), ['public'], 'private messages stay out of the history');
});

test('raw sends any selector to the channel or to one user', async (t) => {
  const { servers, open } = await chats(t);
  const alice = await open(0);
  const bob = await open(0);
  await request('POST', `${servers[0]!.url}/channels/home/raw`, { json: { from: alice.id, selector: 'css.background$#top', message: '#673ab7' } });
  const css = await bob.next(only('css.background$#top', 'home'));
  t.is(css.body, '#673ab7');
  await request('POST', `${servers[0]!.url}/channels/home/raw`, { json: { from: alice.id, toUserId: alice.connectArgs.userId, selector: 'tv.off', message: '' } });
  await alice.next(only('tv.off'));
  t.false(bob.frames.some(only('tv.off')));
});

test('bad requests get clear errors', async (t) => {
  const { servers, open } = await chats(t);
  const alice = await open(0);
  const url = servers[0]!.url;
  const unknown = await request('POST', `${url}/channels/home/chat`, { json: { from: 'nope', message: 'x' } });
  t.is(unknown.status, 404);
  t.is(unknown.json.responseStatus.message, "Subscription nope does not exist");
  t.is((await request('POST', `${url}/channels/home/chat`, { json: { from: alice.id, message: '  ' } })).status, 400);
  t.is((await request('POST', `${url}/channels/home/chat`, { json: { from: alice.id, message: 'x'.repeat(2001) } })).status, 413);
  t.is((await request('POST', `${url}/channels/home/raw`, { json: { from: alice.id, message: 'x' } })).status, 400);
  const selector = await request('POST', `${url}/channels/home/raw`, { json: { from: alice.id, selector: 'bad selector', message: 'x' } });
  t.is(selector.status, 400);
  t.regex(selector.json.responseStatus.message, /selector/);
  t.is((await request('POST', `${url}/channels/a@b/chat`, { json: { from: alice.id, message: 'x' } })).status, 400);
  const offline = await request('POST', `${url}/channels/home/chat`, { json: { from: alice.id, toUserId: 'ghost', message: 'x' } });
  t.is(offline.status, 404);
  const malformed = await fetch(`${url}/channels/home/chat`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{' });
  t.is(malformed.status, 400);
});

test('chat history keeps the last 100 per channel, the same from every server, with afterId and take', async (t) => {
  const { servers, open } = await chats(t, 2);
  const alice = await open(0, 'home,other');
  for (let i = 1; i <= 105; i++) await request('POST', `${servers[i % 2]!.url}/channels/home/chat`, { json: { from: alice.id, message: `m${i}` } });
  await request('POST', `${servers[0]!.url}/channels/other/chat`, { json: { from: alice.id, message: 'elsewhere' } });
  const fromA = await request('GET', `${servers[0]!.url}/chathistory?channels=home`);
  const fromB = await request('GET', `${servers[1]!.url}/chathistory?channels=home`);
  t.is(fromA.json.results.length, 100);
  t.is(fromA.json.results[0].message, 'm6');
  t.deepEqual(fromA.json, fromB.json);
  const both = await request('GET', `${servers[1]!.url}/chathistory?channels=home,other&take=2`);
  t.deepEqual(both.json.results.map((m: { message: string }) => m.message), ['m104', 'm105', 'elsewhere'], 'take is per channel');
  const after = await request('GET', `${servers[1]!.url}/chathistory?channels=home&afterId=${fromA.json.results[98].id}`);
  t.deepEqual(after.json.results.map((m: { message: string }) => m.message), ['m105']);
});

test('the two images ServiceStack\'s own Chat page asks for are served', async (t) => {
  const { servers } = await chats(t, 1);
  for (const path of ['/img/bg.jpg', '/img/no-profile64.png']) {
    const reply = await fetch(`${servers[0]!.url}${path}`);
    t.is(reply.status, 200, path);
    t.is(reply.headers.get('content-type'), 'image/svg+xml', path);
    t.regex(await reply.text(), /^<svg/, path);
  }
});

test('the page carries the background: a URL as given, a file served by the app', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'chat-bg-'));
  const file = join(dir, 'mine.svg');
  writeFileSync(file, '<svg xmlns="http://www.w3.org/2000/svg"/>');
  const { servers } = await chats(t, 1, { background: file, label: '1337' });
  const page = await request('GET', `${servers[0]!.url}/`);
  t.regex(page.text, /background-image: url\('\/background\.svg'\)/);
  t.regex(page.text, /<title>Chat · 1337<\/title>/);
  const image = await fetch(`${servers[0]!.url}/background.svg`);
  t.is(image.headers.get('content-type'), 'image/svg+xml');
  const script = await fetch(`${servers[0]!.url}/app.js`);
  t.is(script.status, 200);
  t.true((await script.text()).length > 1000, 'the page script is bundled');
  const { servers: byUrl } = await chats(t, 1, { background: 'https://example.test/bg.jpg' });
  t.regex((await request('GET', `${byUrl[0]!.url}/`)).text, /url\('https:\/\/example\.test\/bg\.jpg'\)/);
});
