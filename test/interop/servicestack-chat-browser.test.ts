import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { Page } from 'playwright-core';
import { RedisBroker } from '../../adapters/redis/index.js';
import { browserTest, launchChromium, screenshotPath } from '../helpers/browser.js';
import { startChat, type ChatServer } from '../helpers/chat.js';
import { findBinary, startRedis } from '../helpers/processes.js';

/**
 * ServiceStack's way of writing a Chat page (jQuery's `$.post` with form
 * bodies, `$.getJSON`, ss-utils.js's `handleServerEvents`) against two of our
 * Chat servers over one redis-server: every command the README lists must
 * arrive on a page on the other server.
 */
const require = createRequire(import.meta.url);
const assets: Record<string, { body: string; type: string }> = {
  '/ss/jquery.js': { body: readFileSync(require.resolve('jquery/dist/jquery.js'), 'utf8'), type: 'text/javascript' },
  '/ss/ss-utils.js': { body: readFileSync(require.resolve('ss-utils/ss-utils.js'), 'utf8'), type: 'text/javascript' },
  '/ss/chat.html': { body: readFileSync(new URL('../fixtures/servicestack-chat/index.html', import.meta.url), 'utf8'), type: 'text/html' },
};

browserTest('ServiceStack\'s style of Chat page (jQuery $.post forms, ss-utils.js) sends every README command from one server to a page on another', { redis: true }, async (t) => {
  const redis = await startRedis(findBinary('redis-server')!);
  t.teardown(() => redis.dispose());
  const cluster = { broker: () => new RedisBroker({ url: redis.url, prefix: 'ssjq:' }), close: async () => {} };
  const servers: ChatServer[] = [];
  t.teardown(() => Promise.all(servers.map((s) => s.close())));
  // Short timers, so that a page that closes leaves within the test.
  const timers = { heartbeatIntervalMs: 500, idleTimeoutMs: 2000, houseKeepingIntervalMs: 250 };
  for (const i of [1, 2]) servers.push(await startChat(cluster, { label: `${i}` }, timers));

  const browser = await launchChromium(t);
  const errors: string[] = [];
  const open = async (server: ChatServer): Promise<{ page: Page; name: string; userId: string }> => {
    const page = await browser.newPage();
    page.on('pageerror', (error) => errors.push(error.message));
    await page.route(`${server.url}/ss/**`, (route) => {
      const asset = assets[new URL(route.request().url()).pathname];
      return asset ? route.fulfill({ body: asset.body, contentType: asset.type }) : route.fallback();
    });
    await page.goto(`${server.url}/ss/chat.html?channels=home`);
    await page.waitForFunction(() => (window as any).activeSub !== null && typeof activeSub === 'object');
    const sub = await page.evaluate(() => ({ name: activeSub.displayName as string, userId: activeSub.userId as string }));
    return { page, ...sub };
  };
  const a = await open(servers[0]!);
  const b = await open(servers[1]!);
  const c = await open(servers[1]!);
  const say = async (line: string) => {
    await a.page.fill('#txtMsg', line);
    await a.page.press('#txtMsg', 'Enter');
    await a.page.waitForFunction(() => (document.getElementById('txtMsg') as HTMLInputElement).value === '');
  };
  const userList = (page: Page) => page.locator('#users .user span').allTextContents();

  // Everyone sees everyone, across servers.
  for (const { page } of [a, b, c]) await page.waitForFunction((n) => document.querySelectorAll('#users .user').length === n, 3);
  t.deepEqual((await userList(b.page)).sort(), [a.name, b.name, c.name].sort());

  await say('hello from the first server');
  await b.page.waitForSelector(`.msg.public:has-text("${a.name}: hello from the first server")`);

  await say('/cmd.announce This is your captain speaking');
  await b.page.waitForSelector('#announce:has-text("This is your captain speaking")');
  await say('/cmd.toggle$#channels');
  await b.page.waitForSelector('#channels', { state: 'hidden' });
  await say('/css.background-image url(/img/bg-3.svg)');
  await b.page.waitForFunction(() => document.body.style.backgroundImage.includes('bg-3.svg'));
  await say('/css.background$#top #673ab7');
  await b.page.waitForFunction(() => getComputedStyle(document.getElementById('top')!).backgroundColor === 'rgb(103, 58, 183)');
  await say('/css.color$#welcome #ff0');
  await b.page.waitForFunction(() => getComputedStyle(document.getElementById('welcome')!).color === 'rgb(255, 255, 0)');
  await say('/tv.watch /img/icon.svg');
  await b.page.waitForSelector('#tv iframe[src="/img/icon.svg"]');
  await say(`@${b.name} /tv.off`);
  await b.page.waitForSelector('#tv', { state: 'hidden' });
  t.true(await c.page.locator('#tv').isVisible(), 'a command for one user reaches no one else');
  await say('@me /tv.off');
  await a.page.waitForSelector('#tv', { state: 'hidden' });
  await say('/document.title New Window Title');
  await b.page.waitForFunction(() => document.title === 'New Window Title');
  await say('/trigger.customEvent arg');
  await b.page.waitForSelector('.msg.event:has-text("[event customEvent message: arg]")');
  await say('/cmd.addReceiver window');
  await say('/window.name renamed-by-chat');
  await b.page.waitForFunction(() => window.name === 'renamed-by-chat');
  await say('/cmd.removeReceiver window');
  await say('/window.name not-any-more');
  await say('a marker after the removed receiver');
  await b.page.waitForSelector('.msg:has-text("a marker after the removed receiver")');
  t.is(await b.page.evaluate(() => window.name), 'renamed-by-chat', 'a removed receiver gets nothing');

  // A private message reaches its target, the sender sees it addressed, and nobody else sees it.
  await say(`@${b.name} just between us`);
  await b.page.waitForSelector('.msg.private:has-text("just between us")');
  await a.page.waitForSelector(`.msg.private:has-text("@${b.name}: just between us")`);
  await say('and now for everyone');
  await c.page.waitForSelector('.msg:has-text("and now for everyone")');
  t.is(await c.page.locator('text=just between us').count(), 0);

  // ss-utils reopens a closed stream at its next heartbeat (500 ms here), so the close itself is what is watched for.
  await c.page.evaluate(() => {
    const stream = $.ss.eventSource;
    const close = stream.close.bind(stream);
    stream.close = () => {
      (window as unknown as { streamClosed: boolean }).streamClosed = true;
      close();
    };
  });
  await say(`@${c.name} /cmd.stopListening`);
  await c.page.waitForFunction(() => (window as unknown as { streamClosed?: boolean }).streamClosed === true);
  await b.page.screenshot({ path: screenshotPath('servicestack-chat-page') });

  // History on reload: the public messages, not the private one.
  await b.page.reload();
  await b.page.waitForFunction(() => typeof activeSub === 'object' && activeSub !== null);
  await b.page.waitForSelector('.msg:has-text("hello from the first server")');
  await b.page.waitForSelector('.msg:has-text("and now for everyone")');
  t.is(await b.page.locator('text=just between us').count(), 0, 'private messages are not in the history');

  // The leave when a page closes: the others' lists drop it.
  const leaving = await b.page.evaluate(() => activeSub.displayName as string);
  await b.page.close();
  await a.page.waitForFunction((name) => ![...document.querySelectorAll('#users .user span')].some((s) => s.textContent === name), leaving, { timeout: 10_000 });
  t.deepEqual(errors, []);
});

declare const activeSub: any;
declare const $: any;
