import type { Context } from 'koa';
import { channelNameProblem, splitList, UNKNOWN_CHANNEL } from '../protocol.js';
import type { ServerEvents } from '../server-events.js';
import { buildMeta, EventSubscription, type EventSink, type SubscriptionInfo } from '../subscription.js';
import { sendError } from './errors.js';
import { createRandomId, defaultProfileUrl, ensureSessionId, safeDisplayName } from './identity.js';
import { paths, type MiddlewareOptions } from './options.js';

/**
 * `GET /event-stream?channels=a,b`: opens a subscription and holds the
 * response open as its event stream until it is unregistered, expires or the
 * client goes away.
 */
export async function openEventStream(ctx: Context, events: ServerEvents, options: MiddlewareOptions): Promise<void> {
  const channels = [...new Set([...splitList(queryValue(ctx, 'channels')), ...splitList(queryValue(ctx, 'channel'))])];
  if (channels.length === 0) channels.push(UNKNOWN_CHANNEL);
  const problem = channels.map(channelNameProblem).find(Boolean);
  if (problem) return sendError(ctx, 400, problem);

  // A client may leave while the hooks below run; then no subscription must be made.
  let gone = false;
  ctx.req.once('close', () => (gone = true));
  await options.onInit?.(ctx);
  const identity = (await options.authenticate?.(ctx)) ?? {};
  const isAuthenticated = identity.isAuthenticated ?? identity.userId !== undefined;
  if (options.limitToAuthenticatedUsers && !isAuthenticated) return sendError(ctx, 401, 'Auth Required');

  let userId = identity.userId;
  let displayName = safeDisplayName(identity);
  if (userId === undefined) {
    const n = await events.getNextSequence('anonUser');
    userId = `-${n}`;
    displayName ??= `user${n}`;
  }
  const base = {
    id: createRandomId(),
    userId,
    userName: identity.userName,
    displayName: displayName ?? userId,
    sessionId: identity.sessionId ?? ensureSessionId(ctx),
    channels,
    createdAt: Date.now(),
    isAuthenticated,
    profileUrl: identity.profileUrl ?? defaultProfileUrl,
    userAddress: ctx.ip,
    serverId: events.serverId,
  };
  const info: SubscriptionInfo = { ...base, meta: buildMeta(base) };
  const sub = new EventSubscription(info, responseSink(ctx));
  await options.onCreated?.(sub, ctx);

  const urlBase = `${ctx.protocol}://${ctx.host}${options.prefix ?? ''}`;
  const connectArgs: Record<string, string> = {
    ...info.meta,
    ...sub.connectArgs,
    id: info.id,
    unRegisterUrl: `${urlBase}${paths.unregister}?id=${info.id}`,
    heartbeatUrl: `${urlBase}${paths.heartbeat}?id=${info.id}`,
    updateSubscriberUrl: `${urlBase}${paths.subscribers}/${info.id}`,
    heartbeatIntervalMs: String(events.heartbeatIntervalMs),
    idleTimeoutMs: String(events.idleTimeoutMs),
  };
  await options.onConnect?.(sub, connectArgs);
  if (gone || ctx.req.destroyed) return;

  startStream(ctx);
  ctx.req.once('close', () => events.streamClosed(sub));
  await events.register(sub, connectArgs);
}

/** Sends the SSE headers at once and hands the raw response to the subscription. */
function startStream(ctx: Context): void {
  ctx.respond = false;
  const socket = ctx.req.socket;
  socket.setTimeout(0);
  socket.setNoDelay(true);
  socket.setKeepAlive(true);
  ctx.res.writeHead(200, {
    'Content-Type': 'text/event-stream',
    'Cache-Control': 'no-cache',
    'X-Accel-Buffering': 'no',
  });
  ctx.res.flushHeaders();
}

function responseSink(ctx: Context): EventSink {
  const res = ctx.res;
  return {
    write: (chunk) => {
      if (!res.destroyed && !res.writableEnded) res.write(chunk);
    },
    end: () => {
      if (!res.writableEnded) res.end();
    },
  };
}

function queryValue(ctx: Context, name: string): string | string[] | undefined {
  return ctx.query[name];
}
