import type { Context } from 'koa';
import { channelNameProblem, splitList, UNKNOWN_CHANNEL } from '../protocol.js';
import type { ServerEvents } from '../server-events.js';
import { buildMeta, EventSubscription, type SubscriptionInfo } from '../subscription.js';
import { sendError } from './errors.js';
import { createRandomId, defaultProfileUrl, ensureSessionId, identityProblem, safeDisplayName, type Identity } from './identity.js';
import type { KeepAlive } from './keep-alive.js';
import type { StreamLimits } from './limits.js';
import { httpDefaults, paths, type ChannelUser, type MiddlewareOptions } from './options.js';
import { ResponseSink } from './response-sink.js';

/** What the middleware shares among its streams. */
export interface StreamServices {
  limits: StreamLimits;
  keepAlive: KeepAlive;
}

/**
 * `GET /event-stream?channels=a,b`: opens a subscription and holds the
 * response open as its event stream until it is unregistered, expires or the
 * client goes away.
 */
export async function openEventStream(ctx: Context, events: ServerEvents, options: MiddlewareOptions, services: StreamServices): Promise<void> {
  if (events.isStopping) return sendError(ctx, 503, 'This server is shutting down; try another', 1);
  const address = ctx.ip;
  if (!services.limits.admit(ctx, address)) return;
  const stream = { started: false, release: () => services.limits.release(address) };
  try {
    await openAdmitted(ctx, events, options, stream, services.keepAlive);
  } finally {
    // A started stream gives its place back when it closes; any other outcome, now.
    if (!stream.started) stream.release();
  }
}

/** Everything after admission; from the moment the response becomes a stream, its close gives the place back. */
async function openAdmitted(
  ctx: Context,
  events: ServerEvents,
  options: MiddlewareOptions,
  stream: { started: boolean; release: () => void },
  keepAlive: KeepAlive,
): Promise<void> {
  const refuse = (status: number, message: string) => sendError(ctx, status, message);
  const channels = [...new Set([...splitList(queryValue(ctx, 'channels')), ...splitList(queryValue(ctx, 'channel'))])];
  if (channels.length === 0) channels.push(UNKNOWN_CHANNEL);
  const problem = channels.map(channelNameProblem).find(Boolean);
  if (problem) return refuse(400, problem);
  if (channels.length > events.maxChannelsPerSubscription) return refuse(400, `Too many channels: at most ${events.maxChannelsPerSubscription}`);

  // A client may leave while the hooks below run; then no subscription must be made.
  let gone = false;
  ctx.req.once('close', () => (gone = true));
  await options.onInit?.(ctx);
  const identity = (await options.authenticate?.(ctx)) ?? {};
  const isAuthenticated = identity.isAuthenticated ?? identity.userId !== undefined;
  if (options.limitToAuthenticatedUsers && !isAuthenticated) return refuse(401, 'Auth Required');
  const identityIssue = identityProblem(identity);
  if (identityIssue) return refuse(400, identityIssue);

  const sessionId = identity.sessionId ?? ensureSessionId(ctx);
  const user = { userId: identity.userId, userName: identity.userName, isAuthenticated, sessionId };
  const forbidden = await firstForbiddenChannel(options, user, channels, ctx);
  if (forbidden !== undefined) return refuse(403, `Not allowed to join channel '${forbidden}'`);
  const lastEventId = readLastEventId(ctx);
  if (lastEventId === null) return refuse(400, 'Last-Event-ID must be a non-negative integer');
  const resumable = await findResumable(ctx, events, options, { identity, sessionId, channels, lastEventId });
  // A resumed subscription keeps its own channels: they are asked about again, since access may have been taken away.
  const keptForbidden = resumable && (await firstForbiddenChannel(options, user, resumable.channels, ctx));
  if (keptForbidden) return refuse(403, `Not allowed to join channel '${keptForbidden}'`);

  let info: SubscriptionInfo;
  if (resumable) {
    const { detached: _detached, ...kept } = resumable;
    info = { ...kept, serverId: events.serverId, userAddress: ctx.ip, connectionId: createRandomId() };
  } else {
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
      sessionId,
      channels,
      createdAt: Date.now(),
      isAuthenticated,
      profileUrl: identity.profileUrl ?? defaultProfileUrl,
      userAddress: ctx.ip,
      serverId: events.serverId,
      connectionId: createRandomId(),
    };
    info = { ...base, meta: buildMeta(base) };
  }
  const sink = new ResponseSink(ctx.res, options.maxBufferedBytes ?? httpDefaults.maxBufferedBytes, (buffered) => events.slowConsumerDropped(sub, buffered));
  const sub = new EventSubscription(info, sink);
  if (!resumable) await options.onCreated?.(sub, ctx);

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

  if (resumable) {
    await events.takeOver(resumable);
    // Gone while taking over: the record is left detached, and expires unless the client comes back.
    if (gone || ctx.req.destroyed) return;
  }
  startStream(ctx);
  stream.started = true;
  ctx.req.once('close', stream.release);
  keepAlive.add(sub, sink);
  ctx.req.once('close', () => {
    keepAlive.remove(sub);
    events.streamClosed(sub);
  });
  await events.register(sub, connectArgs, { lastEventId, resumed: resumable !== undefined });
}

/** The first of `channels` that `authorizeChannel` refuses to `user`, if any. */
export async function firstForbiddenChannel(
  options: MiddlewareOptions,
  user: ChannelUser,
  channels: readonly string[],
  ctx: Context,
): Promise<string | undefined> {
  if (!options.authorizeChannel) return undefined;
  for (const channel of channels) if (!(await options.authorizeChannel(user, channel, ctx))) return channel;
  return undefined;
}

/**
 * The continuity rule: a stream request takes over an existing subscription
 * (same id, no leave or join for its channels) when it names it with
 * `resume={id}`, or, for a browser's own EventSource reconnect, when it
 * carries a Last-Event-ID and its session has exactly that channel list in
 * a detached subscription; and in both cases it comes from the same user
 * (the same authenticated user id, or for anonymous users the same `ss-id`
 * session) and, with `validateUserAddress`, the same address. A
 * subscription can be resumed until its lease runs out (the idle timeout
 * after its last heartbeat or disconnect).
 */
async function findResumable(
  ctx: Context,
  events: ServerEvents,
  options: MiddlewareOptions,
  request: { identity: Identity; sessionId: string; channels: string[]; lastEventId: number | undefined },
): Promise<SubscriptionInfo | undefined> {
  const named = queryValue(ctx, 'resume');
  let info: SubscriptionInfo | undefined;
  if (typeof named === 'string' && named) info = await events.getSubscriptionInfo(named);
  else if (request.lastEventId !== undefined) info = await events.findDetached(request.sessionId, request.channels);
  if (!info) return undefined;
  // The same user: the same authenticated user id, or, for anonymous users, the same session.
  const sameUser =
    request.identity.userId !== undefined
      ? info.isAuthenticated && info.userId === request.identity.userId
      : !info.isAuthenticated && info.sessionId === request.sessionId;
  const sameAddress = !(options.validateUserAddress ?? true) || info.userAddress === ctx.ip;
  return sameUser && sameAddress ? info : undefined;
}

/**
 * The id the client saw last: the `Last-Event-ID` header an EventSource
 * sends when it reconnects, or a `lastEventId` query parameter for a first
 * connection. `null` when present but not an integer.
 */
function readLastEventId(ctx: Context): number | undefined | null {
  const raw = ctx.get('Last-Event-ID') || queryValue(ctx, 'lastEventId');
  if (raw === undefined || raw === '') return undefined;
  const text = String(Array.isArray(raw) ? raw[0] : raw).trim();
  return /^\d{1,16}$/.test(text) ? Number(text) : null;
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

function queryValue(ctx: Context, name: string): string | string[] | undefined {
  return ctx.query[name];
}
