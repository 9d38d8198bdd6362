import type { Server } from 'node:http';
import type { ServerEvents } from '../server-events.js';

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
export async function closeGracefully(server: Server, events: ServerEvents): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  await events.stop();
  // Anything still open (a request mid-flight, an idle keep-alive socket) goes now.
  server.closeAllConnections();
  await closed;
}

/**
 * Calls `closeGracefully` on the first of `signals` and exits: with 0 when
 * it finished, with 1 when it did not within `timeoutMs`. A second signal
 * exits at once.
 */
export function shutdownOnSignals(server: Server, events: ServerEvents, options: ShutdownOptions = {}): void {
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
    closeGracefully(server, events).then(
      () => process.exit(0),
      (error: unknown) => {
        logger.warn(`server-events: shutdown failed: ${error instanceof Error ? error.message : String(error)}`);
        process.exit(1);
      },
    );
  };
  for (const signal of options.signals ?? ['SIGTERM', 'SIGINT']) process.on(signal, onSignal);
}
