import type { Context } from 'koa';
import { createRandomId } from '../identity.js';

/** ServiceStack's session cookie. */
export const sessionCookie = 'ss-id';

/** The `ss-id` session of the request, set as a cookie when the client has none. */
export function ensureSessionId(ctx: Context): string {
  const existing = ctx.cookies.get(sessionCookie);
  if (existing && /^[A-Za-z0-9._-]{1,64}$/.test(existing)) return existing;
  const id = createRandomId();
  ctx.cookies.set(sessionCookie, id, { httpOnly: true, sameSite: 'lax', overwrite: true });
  return id;
}
