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

/**
 * What both services take. ServiceStack's own Chat page posts them with
 * jQuery's `$.post`, as a form (`from=…&toUserId=&message=hi&selector=cmd.chat`);
 * our page and ServiceStack's typed clients post JSON. Field names match
 * without regard to case (`From`, `toUserId`), as ServiceStack binds them.
 */
interface ChatPost {
  from?: string;
  /** Empty or missing: the message is for the whole channel (jQuery sends `toUserId=` for "nobody"). */
  toUserId?: string;
  message?: string;
  selector?: string;
}

const historyKey = (channel: string) => `chat:${channel}`;

/**
 * Chat's two services and its history, shared by every server on the same
 * broker: message ids come from a cluster-wide sequence and the history is a
 * capped list in the broker.
 */
export function chatServices(events: ServerEvents): Router {
  const lists = events.broker.lists;
  if (!lists) throw new Error(`the Chat keeps its history in the broker's lists, which the ${events.broker.name} broker does not have`);
  const router = new Router();
  router.use(bodyParser({ enableTypes: ['json', 'form'], jsonLimit: '16kb', formLimit: '16kb' }));

  router.post('/channels/:channel/chat', async (ctx) => {
    const { sender, channel, post, message } = await readPost(ctx, events, false);
    const selector = post.selector || 'cmd.chat';
    const toUserId = post.toUserId || undefined;
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
      await lists.push(historyKey(channel), JSON.stringify(chat), historyLength);
    }
    ctx.body = chat;
  });

  router.post('/channels/:channel/raw', async (ctx) => {
    // A command may have no argument, like /cmd.toggle$#channels or /tv.off.
    const { channel, post, message } = await readPost(ctx, events, true);
    const selector = post.selector;
    if (!selector) return ctx.throw(400, "'selector' is required");
    const text = escapeHtml(message);
    if (post.toUserId) await events.notifyUserId(post.toUserId, selector, text);
    else await events.notifyChannel(channel, selector, text);
    ctx.body = {};
  });

  router.get('/chathistory', async (ctx) => {
    const query = (name: string) => {
      const value = fieldOf(ctx.query, name);
      return typeof value === 'string' ? value : undefined;
    };
    const channels = (query('channels') ?? 'home').split(',').map((c) => c.trim()).filter(Boolean);
    const afterId = Number(query('afterId') ?? 0) || 0;
    // As ServiceStack's Chat: `take` of each channel's newest messages after `afterId`, then all in order.
    const take = Math.min(Math.max(Number(query('take') ?? historyLength) || historyLength, 1), historyLength);
    const kept = await Promise.all(channels.map((channel) => lists.range(historyKey(channel))));
    const results = kept
      .flatMap((entries) => entries.map((entry) => JSON.parse(entry) as ChatMessage).filter((m) => m.id > afterId).slice(-take))
      .sort((a, b) => a.id - b.id);
    ctx.body = { results };
  });

  return router;
}

/**
 * Validates what both services take; answers 400, 404 or 413 for what is
 * wrong. A command may have no argument (`/cmd.toggle$#channels`), and then
 * jQuery sends `message=` or nothing, so `allowEmpty` lets the raw service take it.
 */
async function readPost(ctx: Context, events: ServerEvents, allowEmpty: boolean) {
  const channel = ctx.params.channel ?? '';
  const post = readChatPost(ctx);
  const message = post.message ?? '';
  if (!allowEmpty && message.trim() === '') ctx.throw(400, "'message' must be a non-empty string");
  if (message.length > maxMessageLength) ctx.throw(413, `'message' is longer than ${maxMessageLength} characters`);
  if (!post.from) ctx.throw(400, "'from' must be your subscription id");
  const sender: SubscriptionInfo | undefined = await events.getSubscriptionInfo(post.from!);
  // Worded as ServiceStack's Chat words it (its library's own message quotes the id).
  if (!sender) ctx.throw(404, `Subscription ${post.from} does not exist`);
  return { sender: sender as SubscriptionInfo, channel, post, message };
}

/** The fields of a chat post from a JSON or form body; a field that is there but not text is a 400. */
function readChatPost(ctx: Context): ChatPost {
  const post: ChatPost = {};
  for (const name of ['from', 'toUserId', 'message', 'selector'] as const) {
    const value = fieldOf(ctx.request.body, name);
    if (value === undefined || value === null) continue;
    if (typeof value !== 'string') ctx.throw(400, `'${name}' must be a string`);
    post[name] = value as string;
  }
  return post;
}

/** A field of a parsed body or query, matched without regard to case; of a repeated form field, the first. */
function fieldOf(source: unknown, name: string): unknown {
  if (!source || typeof source !== 'object' || Array.isArray(source)) return undefined;
  const wanted = name.toLowerCase();
  for (const [key, value] of Object.entries(source as Record<string, unknown>)) {
    if (key.toLowerCase() === wanted) return Array.isArray(value) ? value[0] : value;
  }
  return undefined;
}

const htmlEscapes: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => htmlEscapes[c]!);
}
