import type { Context } from 'koa';

/** ServiceStack's error codes for the statuses these routes answer with. */
const errorCodes: Record<number, string> = {
  400: 'ArgumentException',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'NotFound',
  405: 'MethodNotAllowed',
  413: 'PayloadTooLarge',
  415: 'UnsupportedMediaType',
  501: 'NotImplementedException',
  503: 'ServiceUnavailable',
  500: 'InternalServerError',
};

/**
 * Answers with a status, the message as the reason phrase (which ServiceStack
 * clients read; HTTP/1.x only) and ServiceStack's error body:
 * `{"responseStatus":{"errorCode":"NotFound","message":"..."}}`.
 */
export function sendError(ctx: Context, status: number, message: string, retryAfterSeconds?: number): void {
  ctx.status = status;
  // For refusals that pass (a full server, a missing broker): when the client may try again.
  if (retryAfterSeconds !== undefined) ctx.set('Retry-After', String(retryAfterSeconds));
  // HTTP/2 has no reason phrase (Node warns when one is set); on HTTP/1.x it must be printable ASCII,
  // which ids and names from the request may not be.
  if (ctx.req.httpVersionMajor < 2) ctx.message = message.replace(/[^\x20-\x7e]/g, '?').slice(0, 200);
  ctx.body = { responseStatus: { errorCode: errorCodes[status] ?? String(status), message } };
}

/** The message for an unknown subscription id, worded as ServiceStack's. */
export function subscriptionNotFound(id: string): string {
  return `Subscription '${id}' does not exist`;
}
