import Router from '@koa/router';
import { bodyParser } from '@koa/bodyparser';
import type { Context } from 'koa';
import type { ServerEvents, SubscriptionInfo } from '../../src/index.js';

/** The most messages kept per channel, and the longest message accepted. */
export const historyLength = 100;
export const maxMessageLength = 2000;

/** What a chat message looks like on the wire and in the history. */
export interface ChatMessage {
  id: number;
  channel: string;
  fromUserId: string;
  fromName: string;
  message: string;
  private: boolean;
}

interface PostBody {
  from?: unknown;
  toUserId?: unknown;
  message?: unknown;
  selector?: unknown;
}

const historyKey = (channel: string) => `chat:${channel}`;

/**
 * Chat's two services and its history, shared by every server on the same
 * broker: message ids come from a cluster-wide sequence and the history is a
 * capped list in the broker.
 */
export function chatServices(events: ServerEvents): Router {
  const router = new Router();
  router.use(bodyParser({ enableTypes: ['json'], jsonLimit: '16kb' }));

  router.post('/channels/:channel/chat', async (ctx) => {
    const { sender, channel, body, message } = await readPost(ctx, events, false);
    const selector = typeof body.selector === 'string' && body.selector ? body.selector : 'cmd.chat';
    const toUserId = typeof body.toUserId === 'string' && body.toUserId ? body.toUserId : undefined;
    const chat: ChatMessage = {
      id: await events.getNextSequence('chatMsg'),
      channel,
      fromUserId: sender.userId,
      fromName: sender.displayName,
      message: escapeHtml(message),
      private: toUserId !== undefined,
    };
    if (toUserId) {
      const recipients = await events.getSubscriptionInfosByUserId(toUserId);
      if (recipients.length === 0) ctx.throw(404, `User '${toUserId}' is not online`);
      await events.notifyUserId(toUserId, selector, chat);
      if (toUserId !== sender.userId) {
        // The sender sees what it sent, addressed, on its own stream only.
        for (const name of new Set(recipients.map((r) => r.displayName))) {
          await events.notifySubscription(sender.id, selector, { ...chat, message: `@${escapeHtml(name)}: ${chat.message}` });
        }
      }
    } else {
      await events.notifyChannel(channel, selector, chat);
      await events.broker.lists.push(historyKey(channel), JSON.stringify(chat), historyLength);
    }
    ctx.body = chat;
  });

  router.post('/channels/:channel/raw', async (ctx) => {
    // A command may have no argument, like /cmd.toggle$#channels or /tv.off.
    const { channel, body, message } = await readPost(ctx, events, true);
    const selector = typeof body.selector === 'string' ? body.selector : '';
    if (!selector) ctx.throw(400, "'selector' is required");
    const text = escapeHtml(message);
    if (typeof body.toUserId === 'string' && body.toUserId) await events.notifyUserId(body.toUserId, selector, text);
    else await events.notifyChannel(channel, selector, text);
    ctx.body = {};
  });

  router.get('/chathistory', async (ctx) => {
    const channels = String(ctx.query.channels ?? 'home').split(',').map((c) => c.trim()).filter(Boolean);
    const afterId = Number(ctx.query.afterId ?? 0) || 0;
    const take = Math.min(Math.max(Number(ctx.query.take ?? historyLength) || historyLength, 1), historyLength * channels.length);
    const lists = await Promise.all(channels.map((channel) => events.broker.lists.range(historyKey(channel))));
    const results = lists
      .flat()
      .map((entry) => JSON.parse(entry) as ChatMessage)
      .filter((m) => m.id > afterId)
      .sort((a, b) => a.id - b.id);
    ctx.body = { results: results.slice(-take) };
  });

  return router;
}

/** Validates what both services take; answers 400, 404 or 413 for what is wrong. */
async function readPost(ctx: Context, events: ServerEvents, allowEmpty: boolean) {
  const channel = ctx.params.channel ?? '';
  const body = (ctx.request.body ?? {}) as PostBody;
  if (typeof body.message !== 'string' || (!allowEmpty && body.message.trim() === '')) ctx.throw(400, "'message' must be a non-empty string");
  const message = body.message as string;
  if (message.length > maxMessageLength) ctx.throw(413, `'message' is longer than ${maxMessageLength} characters`);
  if (typeof body.from !== 'string' || !body.from) ctx.throw(400, "'from' must be your subscription id");
  const sender: SubscriptionInfo | undefined = await events.getSubscriptionInfo(body.from as string);
  if (!sender) ctx.throw(404, `Subscription '${String(body.from)}' does not exist`);
  return { sender: sender as SubscriptionInfo, channel, body, message };
}

const htmlEscapes: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => htmlEscapes[c]!);
}
