/**
 * A minimal live demo: one page that shows the raw event stream, who is in
 * the channel, and lets you say something. Run with `npm start`.
 */
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import Koa from 'koa';
import { bodyParser } from '@koa/bodyparser';
import { brokerFromEnv, ignoreClientDisconnects, ServerEvents, serverEventsMiddleware } from '../../src/index.js';

const { values } = parseArgs({ options: { port: { type: 'string', default: process.env.PORT ?? '1337' } } });

const events = new ServerEvents({ broker: brokerFromEnv() });
const app = new Koa();
ignoreClientDisconnects(app);
app.use(serverEventsMiddleware(events));
app.use(bodyParser());
app.use(async (ctx, next) => {
  if (ctx.path === '/' && ctx.method === 'GET') {
    ctx.type = 'html';
    ctx.body = await readFile(new URL('./index.html', import.meta.url), 'utf8');
  } else if (ctx.path === '/say' && ctx.method === 'POST') {
    const { from, message } = (ctx.request.body ?? {}) as { from?: string; message?: string };
    const sender = from ? await events.getSubscriptionInfo(from) : undefined;
    if (!sender) return ctx.throw(404, `Subscription '${from}' does not exist`);
    if (typeof message !== 'string' || message.length === 0 || message.length > 2000) ctx.throw(400, 'message must be 1 to 2000 characters');
    await events.notifyChannel('home', 'cmd.chat', { fromName: sender.displayName, message });
    ctx.status = 204;
  } else {
    await next();
  }
});

try {
  await events.start();
} catch (error) {
  console.error(`demo: ${(error as Error).message}`);
  process.exit(1);
}
app.listen(Number(values.port), () => console.log(`demo on http://localhost:${values.port} (broker: ${events.broker.name})`));
