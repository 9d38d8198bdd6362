import type { Server } from 'node:http';
import type { Http2SecureServer, Http2Server, ServerHttp2Session } from 'node:http2';
import type { Socket } from 'node:net';
import type { ServerEvents } from '../server-events.js';

/** An HTTP/1.x server (`http`, `https`) or an HTTP/2 one (`http2.createServer`, `createSecureServer`). */
export type AnyServer = Server | Http2Server | Http2SecureServer;

export interface ShutdownOptions {
  /** The longest a shutdown may take before the process exits anyway. Default 10,000 ms. */
  timeoutMs?: number;
  /** Default `['SIGTERM', 'SIGINT']`. */
  signals?: NodeJS.Signals[];
  /** Told when the shutdown starts and how it ended. Default `console`. */
  logger?: { warn(message: string): void };
}

/**
 * Takes a server out of service without losing anything: it stops accepting
 * connections, ends its streams (each subscription is unregistered, so the
 * other servers see the leave and the broker keeps no record of it), waits
 * for that to reach the broker, then closes what connections remain. Clients
 * reconnect to another server, and with Last-Event-ID they get what they
 * missed from the history.
 */
export async function closeGracefully(server: AnyServer, events: ServerEvents, logger: { warn(message: string): void } = console): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  await events.stop();
  // Anything still open (a request mid-flight, an idle keep-alive socket) goes now.
  if ('closeAllConnections' in server) {
    server.closeAllConnections();
    return closed;
  }
  await closeHttp2Connections(server);
  // Sessions from before trackConnections cannot be listed, and close() would wait for them for ever.
  const done = await Promise.race([closed.then(() => true), new Promise<boolean>((resolve) => setTimeout(resolve, 1000, false).unref())]);
  if (!done) logger.warn('server-events: HTTP/2 sessions are still open; call trackConnections(server) right after creating the server so that they can be closed');
}

interface Connections {
  sessions: Set<ServerHttp2Session>;
  sockets: Set<Socket>;
}

const tracked = new WeakMap<AnyServer, Connections>();

/**
 * Remembers an HTTP/2 server's sessions and sockets from now on, so that
 * `closeGracefully` can close them: unlike an HTTP/1.x server, an HTTP/2
 * server cannot list its connections, and its `close()` waits for idle
 * sessions for ever. `shutdownOnSignals` calls it; call it yourself right
 * after creating the server when you call `closeGracefully` directly.
 * Does nothing for an HTTP/1.x server.
 */
export function trackConnections(server: AnyServer): void {
  if ('closeAllConnections' in server || tracked.has(server)) return;
  const connections: Connections = { sessions: new Set(), sockets: new Set() };
  tracked.set(server, connections);
  server.on('session', (session: ServerHttp2Session) => {
    connections.sessions.add(session);
    session.once('close', () => connections.sessions.delete(session));
  });
  // Also the HTTP/1.x connections of a server made with `allowHTTP1`.
  server.on('connection', (socket: Socket) => {
    connections.sockets.add(socket);
    socket.once('close', () => connections.sockets.delete(socket));
  });
}

/** Sends every session GOAWAY, waits a moment for that to be written, then drops whatever is left. */
async function closeHttp2Connections(server: Http2Server | Http2SecureServer): Promise<void> {
  const connections = tracked.get(server);
  if (!connections) return;
  const goaways = [...connections.sessions].map((session) => new Promise<void>((resolve) => session.close(() => resolve())));
  await Promise.race([Promise.all(goaways), new Promise((resolve) => setTimeout(resolve, 1000).unref())]);
  for (const socket of connections.sockets) socket.destroy();
}

/**
 * Calls `closeGracefully` on the first of `signals` and exits: with 0 when
 * it finished, with 1 when it did not within `timeoutMs`. A second signal
 * exits at once.
 */
export function shutdownOnSignals(server: AnyServer, events: ServerEvents, options: ShutdownOptions = {}): void {
  trackConnections(server);
  const timeoutMs = options.timeoutMs ?? 10_000;
  const logger = options.logger ?? console;
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) process.exit(1);
    stopping = true;
    logger.warn(`server-events: ${signal}: closing ${events.stats().localSubscriptions} streams and leaving the cluster`);
    const deadline = setTimeout(() => {
      logger.warn(`server-events: shutdown took longer than ${timeoutMs} ms; exiting anyway`);
      process.exit(1);
    }, timeoutMs);
    deadline.unref();
    closeGracefully(server, events, logger).then(
      () => process.exit(0),
      (error: unknown) => {
        logger.warn(`server-events: shutdown failed: ${error instanceof Error ? error.message : String(error)}`);
        process.exit(1);
      },
    );
  };
  for (const signal of options.signals ?? ['SIGTERM', 'SIGINT']) process.on(signal, onSignal);
}
