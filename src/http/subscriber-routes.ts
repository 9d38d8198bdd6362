import type { Context } from 'koa';
import { isAuthenticated } from '../identity.js';
import { channelNameProblem, splitList } from '../protocol.js';
import type { SubscriptionInfo } from '../records.js';
import type { ServerEvents } from '../server-events.js';
import { channelUserOf, firstForbiddenChannel } from './authorization.js';
import { sendError, subscriptionNotFound } from './errors.js';
import type { MiddlewareOptions } from './options.js';
import { sessionCookie } from './session.js';

/**
 * The requests that act on an existing subscription. Each reads the record
 * from the broker, so it works on whichever server the request lands.
 */
export class SubscriberRoutes {
  constructor(
    private readonly events: ServerEvents,
    private readonly options: MiddlewareOptions,
  ) {}

  /** `POST /event-heartbeat?id=`: 200 with an empty body, and `cmd.onHeartbeat` on the stream. */
  heartbeat = async (ctx: Context): Promise<void> => {
    await this.options.onHeartbeatInit?.(ctx);
    const info = await this.findOwned(ctx, stringField(ctx, 'id'), 'Invalid User Address');
    if (!info) return;
    if (!(await this.events.pulse(info.id))) return sendError(ctx, 404, subscriptionNotFound(info.id));
    ctx.status = 200;
    ctx.body = '';
  };

  /** `POST /event-unregister?id=`: ends the subscription; answers with its meta map. */
  unregister = async (ctx: Context): Promise<void> => {
    const id = stringField(ctx, 'id');
    const info = await this.findOwned(ctx, id, `Access to Subscription '${id}' is forbidden`);
    if (!info) return;
    const removed = await this.events.unregister(info.id);
    if (!removed) return sendError(ctx, 404, subscriptionNotFound(info.id));
    ctx.body = removed.meta;
  };

  /** `GET /event-subscribers?channels=a,b` and the `GetEventSubscribers` DTO: a JSON array of meta maps. */
  subscribers = async (ctx: Context): Promise<void> => {
    const channels = [...listField(ctx, 'channels'), ...listField(ctx, 'channel')];
    if (!(await this.mayList(ctx, channels))) return;
    ctx.body = channels.length > 0 ? await this.events.getSubscriptionsDetails(channels) : await this.events.getAllSubscriptionsDetails();
  };

  /**
   * `/event-subscribers/{id}` and the `UpdateEventSubscriber` DTO: channel
   * lists as arrays (JSON) or comma strings (forms, query); answers `{}`.
   */
  update = async (ctx: Context): Promise<void> => {
    const id = (ctx.params as Record<string, string | undefined> | undefined)?.id ?? stringField(ctx, 'id');
    const subscribe = listField(ctx, 'subscribeChannels');
    const unsubscribe = listField(ctx, 'unsubscribeChannels');
    const info = await this.findOwned(ctx, id, `Access to Subscription '${id}' is forbidden`);
    if (!info) return;
    const problem = [...subscribe, ...unsubscribe].map(channelNameProblem).find(Boolean);
    if (problem) return sendError(ctx, 400, problem);
    const added = subscribe.filter((channel) => !info.channels.includes(channel));
    const forbidden = await firstForbiddenChannel(this.options, info, added, ctx);
    if (forbidden !== undefined) return sendError(ctx, 403, `Not allowed to join channel '${forbidden}'`);
    if (!(await this.events.updateChannels(info.id, subscribe, unsubscribe))) {
      return sendError(ctx, 404, subscriptionNotFound(info.id));
    }
    ctx.body = {};
  };

  /**
   * Who is in a channel is no more public than the channel: with
   * `limitToAuthenticatedUsers` a listing needs a user (401), and with
   * `authorizeChannel` it must name its channels and the user must be
   * allowed to join each (403). Answers the refusal and returns false.
   */
  private async mayList(ctx: Context, channels: string[]): Promise<boolean> {
    const { limitToAuthenticatedUsers, authorizeChannel, authenticate } = this.options;
    if (!limitToAuthenticatedUsers && !authorizeChannel) return true;
    const identity = (await authenticate?.(ctx)) ?? {};
    if (limitToAuthenticatedUsers && !isAuthenticated(identity)) {
      sendError(ctx, 401, 'Auth Required');
      return false;
    }
    if (!authorizeChannel) return true;
    if (channels.length === 0) {
      sendError(ctx, 403, 'Name the channels to list');
      return false;
    }
    const user = channelUserOf(identity, identity.sessionId ?? ctx.cookies.get(sessionCookie));
    const forbidden = await firstForbiddenChannel(this.options, user, channels, ctx);
    if (forbidden === undefined) return true;
    sendError(ctx, 403, `Not allowed to list channel '${forbidden}'`);
    return false;
  }

  /** The record of `id` when it exists and the caller may act on it; otherwise answers 404/403, as ServiceStack. */
  private async findOwned(ctx: Context, id: string | undefined, forbidden: string): Promise<SubscriptionInfo | undefined> {
    const info = id ? await this.events.getSubscriptionInfo(id) : undefined;
    if (!info) {
      sendError(ctx, 404, subscriptionNotFound(id ?? ''));
      return undefined;
    }
    if ((this.options.validateUserAddress ?? true) && info.userAddress !== ctx.ip) {
      sendError(ctx, 403, forbidden);
      return undefined;
    }
    if (this.options.validateUserSession && info.sessionId !== (await this.sessionOf(ctx))) {
      sendError(ctx, 403, forbidden);
      return undefined;
    }
    return info;
  }

  /** The session a request carries: the one `authenticate` names, else the `ss-id` cookie. */
  private async sessionOf(ctx: Context): Promise<string | undefined> {
    const identity = await this.options.authenticate?.(ctx);
    return identity?.sessionId ?? ctx.cookies.get(sessionCookie);
  }
}

/**
 * A request field from the JSON or form body, else the query string, matched
 * without regard to case (`Id`, `id`, `SubscribeChannels`, `subscribeChannels`).
 */
function field(ctx: Context, name: string): unknown {
  const wanted = name.toLowerCase();
  for (const source of [ctx.request.body, ctx.query]) {
    if (!source || typeof source !== 'object' || Array.isArray(source)) continue;
    for (const [key, value] of Object.entries(source as Record<string, unknown>)) {
      if (key.toLowerCase() === wanted) return value;
    }
  }
  return undefined;
}

function stringField(ctx: Context, name: string): string | undefined {
  const value = field(ctx, name);
  if (Array.isArray(value)) return value.length > 0 ? String(value[0]) : undefined;
  return value == null || value === '' ? undefined : String(value);
}

function listField(ctx: Context, name: string): string[] {
  const value = field(ctx, name);
  if (value == null) return [];
  if (Array.isArray(value)) return splitList(value.map(String));
  return splitList(String(value));
}
