import { existsSync, mkdirSync } from 'node:fs';
import test, { type ExecutionContext } from 'ava';
import { chromium, type Browser, type BrowserContextOptions, type Page } from 'playwright-core';
import { findBinary } from './processes.js';

/** Debian's Chromium, driven by playwright-core (which downloads no browser of its own). */
export const chromiumPath = '/usr/bin/chromium';

/**
 * Registers a browser test, or, when Chromium (or a redis-server it needs)
 * is missing, a skipped test with the reason; under CI=true a missing part
 * fails instead.
 */
export function browserTest(title: string, needs: { redis?: boolean }, body: (t: ExecutionContext) => Promise<void>): void {
  const missing = !existsSync(chromiumPath)
    ? 'chromium is not installed (apt-get install chromium)'
    : needs.redis && !findBinary('redis-server')
      ? 'redis-server is not installed'
      : undefined;
  if (!missing) test(title, body);
  else if (process.env.CI === 'true') test(title, (t) => t.fail(missing));
  else {
    console.log(`skipping a browser test: ${missing}`);
    test.skip(`${title} (${missing})`, () => {});
  }
}

/** A headless Chromium, closed when the test ends. */
export async function launchChromium(t: ExecutionContext): Promise<Browser> {
  const browser = await chromium.launch({
    executablePath: chromiumPath,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
  t.teardown(() => browser.close());
  return browser;
}

/**
 * A new page. Functions handed to `page.evaluate` come from tsx, whose
 * esbuild wraps named functions in a `__name` helper the page lacks: the
 * page gets one that does nothing.
 */
export async function newPage(browser: Browser, options: BrowserContextOptions = {}): Promise<Page> {
  const page = await browser.newPage(options);
  await page.addInitScript({ content: 'window.__name = (f) => f;' });
  return page;
}

/** Where screenshots go, created on first use. */
export function screenshotPath(name: string): string {
  mkdirSync('test-results', { recursive: true });
  return `test-results/${name}.png`;
}
