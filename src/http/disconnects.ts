import type Koa from 'koa';

const disconnectCodes = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED', 'ERR_STREAM_PREMATURE_CLOSE']);

/** True for the errors a server sees when a client goes away mid-response. */
export function isClientDisconnect(error: unknown): boolean {
  return disconnectCodes.has((error as { code?: string } | undefined)?.code ?? '');
}

/**
 * Koa logs every socket error of a response, and an event stream ends with
 * one each time a client drops its connection abruptly. This installs an
 * `error` listener on `app` that ignores those and logs everything else the
 * way Koa would.
 */
export function ignoreClientDisconnects(app: Koa, log: (message: string) => void = console.error): void {
  app.on('error', (error: Error & { status?: number; expose?: boolean }) => {
    if (isClientDisconnect(error) || error.status === 404 || error.expose) return;
    log(error.stack ?? String(error));
  });
}
