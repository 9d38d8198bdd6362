import type { Page } from 'playwright-core';
import { RedisBroker } from '../../adapters/redis/index.js';
import { browserTest, launchChromium, screenshotPath } from '../helpers/browser.js';
import { startChat, type ChatServer } from '../helpers/chat.js';
import { memoryClusters } from '../helpers/cluster.js';
import { findBinary, startRedis } from '../helpers/processes.js';

/**
 * Chat as people use it: three headless Chromium pages on three Chat servers
 * that share one redis-server. Screenshots go to test-results/.
 */
browserTest('three pages on three servers over Redis chat, see each other join, obey /css. commands and keep private messages private', { redis: true }, async (t) => {
  const redis = await startRedis(findBinary('redis-server')!);
  t.teardown(() => redis.dispose());
  const cluster = { broker: () => new RedisBroker({ url: redis.url, prefix: 'e2e:' }), close: async () => {} };
  const servers: ChatServer[] = [];
  t.teardown(() => Promise.all(servers.map((s) => s.close())));
  for (const i of [1, 2, 3]) servers.push(await startChat(cluster, { background: `/img/bg-${i}.svg`, label: `${i}` }));

  const browser = await launchChromium(t);
  const errors: string[] = [];
  const open = async (server: ChatServer): Promise<{ page: Page; name: string }> => {
    const page = await browser.newPage({ viewport: { width: 1000, height: 640 } });
    page.on('pageerror', (error) => errors.push(error.message));
    await page.goto(`${server.url}/?channels=home`);
    await page.waitForFunction(() => document.getElementById('me')?.textContent !== 'connecting…');
    return { page, name: (await page.textContent('#me'))! };
  };
  const [a, b] = [await open(servers[0]!), await open(servers[1]!)];

  // A user joining on the third server appears in the lists on the other two.
  const c = await open(servers[2]!);
  for (const { page } of [a, b, c]) {
    await page.waitForFunction((name) => [...document.querySelectorAll('#users li')].some((li) => li.textContent === name), c.name);
    t.deepEqual((await page.locator('#users li').allTextContents()).sort(), [a.name, b.name, c.name].sort());
  }
  t.not(await a.page.getAttribute('body', 'style'), await b.page.getAttribute('body', 'style'), 'each server has its own background');

  // A message typed on one page appears on the other two.
  await a.page.fill('#input', 'Hello from the first server');
  await a.page.press('#input', 'Enter');
  for (const { page } of [b, c]) {
    await page.waitForSelector(`.entry.chat:has-text("Hello from the first server")`);
    t.is(await page.locator('.entry.chat .who').last().textContent(), a.name);
  }

  // A /css. command from one page changes the others.
  await b.page.fill('#input', '/css.background$#top #673ab7');
  await b.page.press('#input', 'Enter');
  for (const { page } of [a, c]) {
    await page.waitForFunction(() => getComputedStyle(document.getElementById('top')!).backgroundColor === 'rgb(103, 58, 183)');
  }

  // A private @name message reaches only its target.
  await a.page.fill('#input', `@${c.name} just between us`);
  await a.page.press('#input', 'Enter');
  await c.page.waitForSelector('.entry.private:has-text("just between us")');
  await a.page.waitForSelector(`.entry.private:has-text("@${c.name}: just between us")`);
  await a.page.fill('#input', 'and now for everyone');
  await a.page.press('#input', 'Enter');
  await b.page.waitForSelector('.entry.chat:has-text("and now for everyone")');
  t.is(await b.page.locator('text=just between us').count(), 0, 'the third party never saw it');

  for (const [i, { page }] of [a, b, c].entries()) await page.screenshot({ path: screenshotPath(`chat-server-${i + 1}`) });
  t.deepEqual(errors, []);
});

browserTest('every command of ServiceStack Chat works from one page on another, and history loads on connect', {}, async (t) => {
  const server = await startChat(await memoryClusters.create());
  t.teardown(() => server.close());
  const browser = await launchChromium(t);
  const open = async (query = '?channels=home') => {
    const page = await browser.newPage({ viewport: { width: 1000, height: 640 } });
    await page.goto(`${server.url}/${query}`);
    await page.waitForFunction(() => document.getElementById('me')?.textContent !== 'connecting…');
    return page;
  };
  const sender = await open();
  const say = async (line: string) => {
    await sender.fill('#input', line);
    await sender.press('#input', 'Enter');
    await sender.waitForFunction(() => (document.getElementById('input') as HTMLInputElement).value === '');
  };
  await say('before you came');
  const viewer = await open('?channels=home,other');
  await viewer.waitForSelector('.entry.chat:has-text("before you came")');
  t.is(await viewer.locator('#channels button').count(), 2, 'one tab per channel from ?channels=');

  await say('/cmd.announce Captain speaking');
  await viewer.waitForSelector('#announce:has-text("Captain speaking")');
  await say('/cmd.toggle$#channels');
  await viewer.waitForSelector('#channels', { state: 'hidden' });
  await say('/css.color$#welcome #ff0');
  await viewer.waitForFunction(() => getComputedStyle(document.getElementById('welcome')!).color === 'rgb(255, 255, 0)');
  await say('/css.background-image url(/img/bg-3.svg)');
  await viewer.waitForFunction(() => document.body.style.backgroundImage.includes('bg-3.svg'));
  await say('/document.title New Window Title');
  await viewer.waitForFunction(() => document.title === 'New Window Title');
  await say('/trigger.customEvent arg');
  await viewer.waitForSelector('.entry.system:has-text("customEvent raised with \\"arg\\"")');
  await say('/tv.watch https://example.test/video');
  await viewer.waitForSelector('#tv', { state: 'visible' });
  await say('/tv.off');
  await viewer.waitForSelector('#tv', { state: 'hidden' });
  await say('@me /tv.watch https://example.test/mine');
  await sender.waitForSelector('#tv', { state: 'visible' });
  t.true(await viewer.locator('#tv').isHidden(), '@me commands reach only the sender');
  await say('/cmd.addReceiver window');
  await say('/window.name renamed-by-chat');
  await viewer.waitForFunction(() => window.name === 'renamed-by-chat');
  await say('/cmd.removeReceiver window');
  await say('/window.name not-any-more');
  await say(`@${await viewer.textContent('#me')} /cmd.stopListening`);
  await viewer.waitForSelector('.entry.system:has-text("Stopped listening")');
  await say('after the viewer stopped');
  await sender.waitForSelector('.entry.chat:has-text("after the viewer stopped")');
  t.is(await viewer.evaluate(() => window.name), 'renamed-by-chat', 'a removed receiver gets nothing');
  t.is(await viewer.locator('text=after the viewer stopped').count(), 0);
  await viewer.screenshot({ path: screenshotPath('chat-commands') });
});
