import type { Context } from 'koa';
import { checkChannelCount } from '../arguments.js';
import { identityProblem, isAuthenticated } from '../identity.js';
import { internalsOf } from '../internals.js';
import { channelNameProblem, splitList, UNKNOWN_CHANNEL } from '../protocol.js';
import type { ServerEvents } from '../server-events.js';
import { channelUserOf, firstForbiddenChannel } from './authorization.js';
import { sendError } from './errors.js';
import type { KeepAlive } from './keep-alive.js';
import type { StreamLimits } from './limits.js';
import { httpDefaults, paths, type MiddlewareOptions } from './options.js';
import { ResponseSink, type SinkOwner } from './response-sink.js';
import { sessionOf } from './session.js';

/** What the middleware shares among its streams. */
export interface StreamServices {
  limits: StreamLimits;
  keepAlive: KeepAlive;
  /** Hears from every stream of the middleware (see `streamOwner`). */
  owner: SinkOwner;
}

/** The streams' owner for a middleware: gives a closed stream's place back, and reports a dropped slow reader. */
export function streamOwner(events: ServerEvents, limits: StreamLimits): SinkOwner {
  return {
    overflowed(sink, buffered) {
      const sub = sink.subscription;
      internalsOf(events).slowConsumerDropped(sub?.id ?? '', sink.address, sub?.info.userId ?? '', buffered);
    },
    closed: (sink) => releasePlace(sink, limits),
  };
}

function releasePlace(sink: ResponseSink, limits: StreamLimits): void {
  if (!sink.holdsPlace) return;
  sink.holdsPlace = false;
  limits.release(sink.address);
}

/**
 * `GET /event-stream?channels=a,b`: reads the request, runs the HTTP hooks
 * (onInit, authenticate, authorizeChannel, onCreated, onConnect) and hands
 * the rest to `Lifecycle.open`, which makes every decision about the
 * subscription. The response is held open as its event stream until it is
 * unregistered, expires or the client goes away.
 */
export async function openEventStream(ctx: Context, events: ServerEvents, options: MiddlewareOptions, services: StreamServices): Promise<void> {
  if (events.isStopping) return sendError(ctx, 503, 'This server is shutting down; try another', 1);
  const address = ctx.ip;
  if (!services.limits.admit(ctx, address)) return;
  // A stream gives its place back when it closes (the owner hears of it); any other outcome, at once.
  const sink = new ResponseSink(ctx, address, services.owner, options.maxBufferedBytes ?? httpDefaults.maxBufferedBytes, options.writeCoalescingMs ?? httpDefaults.writeCoalescingMs);
  let started = false;
  try {
    started = await openAdmitted(ctx, events, options, services.keepAlive, sink);
  } finally {
    if (!started) {
      releasePlace(sink, services.limits);
      // The new session a refusal was given, as any other response of the session's first request would be.
      if (sink.sessionCookie !== undefined && !ctx.headerSent) ctx.append('Set-Cookie', sink.sessionCookie);
    }
  }
}

/** Everything after admission. Returns whether the response became a stream. */
async function openAdmitted(
  ctx: Context,
  events: ServerEvents,
  options: MiddlewareOptions,
  keepAlive: KeepAlive,
  sink: ResponseSink,
): Promise<boolean> {
  const refuse = (status: number, message: string) => {
    sendError(ctx, status, message);
    return false;
  };
  // Read once: each `ctx.query` goes through Koa's getters and cache again.
  const query = ctx.query;
  const channels = [...new Set([...splitList(query.channels), ...splitList(query.channel)])];
  if (channels.length === 0) channels.push(UNKNOWN_CHANNEL);
  const problem = channels.map(channelNameProblem).find(Boolean);
  if (problem) return refuse(400, problem);
  checkChannelCount(channels, events.maxChannelsPerSubscription);

  // A client may leave while the hooks below run (`sink.clientGone`); then no subscription must be made.
  await options.onInit?.(ctx);
  const identity = (await options.authenticate?.(ctx)) ?? {};
  if (options.limitToAuthenticatedUsers && !isAuthenticated(identity)) return refuse(401, 'Auth Required');
  const identityIssue = identityProblem(identity);
  if (identityIssue) return refuse(400, identityIssue);
  const { sessionId, cookie } = identity.sessionId != null ? { sessionId: identity.sessionId } : sessionOf(ctx);
  sink.sessionCookie = cookie;
  const user = channelUserOf(identity, sessionId);
  const forbidden = await firstForbiddenChannel(options, user, channels, ctx);
  if (forbidden !== undefined) return refuse(403, `Not allowed to join channel '${forbidden}'`);
  const lastEventId = readLastEventId(ctx, query.lastEventId);
  if (lastEventId === null) return refuse(400, 'Last-Event-ID must be a non-negative integer');

  const urlBase = `${ctx.protocol}://${ctx.host}${options.prefix ?? ''}`;
  const resume = query.resume;
  const outcome = await internalsOf(events).lifecycle.open(
    {
      channels,
      identity,
      sessionId,
      address: ctx.ip,
      validateUserAddress: options.validateUserAddress ?? true,
      lastEventId,
      resumeId: typeof resume === 'string' && resume ? resume : undefined,
      urlsFor: (id) => ({
        unRegisterUrl: `${urlBase}${paths.unregister}?id=${id}`,
        heartbeatUrl: `${urlBase}${paths.heartbeat}?id=${id}`,
        updateSubscriberUrl: `${urlBase}${paths.subscribers}/${id}`,
      }),
      refuseKept: (kept) => firstForbiddenChannel(options, user, kept, ctx),
      onCreated: (sub) => options.onCreated?.(sub, ctx),
      onConnect: async (sub, connectArgs) => {
        sink.subscription = sub;
        await options.onConnect?.(sub, connectArgs);
      },
      // Registered by `keepAlive` itself: a closure made here would hold this whole request's scope for the stream's life.
      onStreamOpened: (sub) => keepAlive.add(sub, sink),
      isGone: () => sink.clientGone,
    },
    sink,
  );
  if ('refusedChannel' in outcome) return refuse(403, `Not allowed to join channel '${outcome.refusedChannel}'`);
  return sink.isOpen;
}

/**
 * The id the client saw last: the `Last-Event-ID` header an EventSource
 * sends when it reconnects, or a `lastEventId` query parameter for a first
 * connection. `null` when present but not an integer.
 */
function readLastEventId(ctx: Context, fromQuery: string | string[] | undefined): number | undefined | null {
  const raw = ctx.get('Last-Event-ID') || fromQuery;
  if (raw === undefined || raw === '') return undefined;
  const text = String(Array.isArray(raw) ? raw[0] : raw).trim();
  return /^\d{1,16}$/.test(text) ? Number(text) : null;
}
