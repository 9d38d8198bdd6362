import type { Context } from 'koa';
import { isAuthenticated, type Identity } from '../identity.js';
import type { ChannelUser, MiddlewareOptions } from './options.js';

/** Who asks, as `authorizeChannel` sees them. */
export function channelUserOf(identity: Identity, sessionId: string | undefined): ChannelUser {
  return { userId: identity.userId, userName: identity.userName, isAuthenticated: isAuthenticated(identity), sessionId };
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
