import type { Context } from 'koa';
import { createRandomId } from '../identity.js';

/** ServiceStack's session cookie. */
export const sessionCookie = 'ss-id';

/**
 * The `ss-id` session of the request, and the `Set-Cookie` value that gives
 * a client without one its new session. The cookie is not set here: a
 * stream sends it with its head (see `ResponseSink.open`), and a request
 * that does not become a stream is answered with it (see `openEventStream`).
 */
export function sessionOf(ctx: Context): { sessionId: string; cookie?: string } {
  const existing = ctx.cookies.get(sessionCookie);
  if (existing && /^[A-Za-z0-9._-]{1,64}$/.test(existing)) return { sessionId: existing };
  const sessionId = createRandomId();
  // The id is letters and digits: nothing in it needs encoding.
  return { sessionId, cookie: `${sessionCookie}=${sessionId}; path=/; samesite=lax; httponly` };
}
