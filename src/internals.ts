import type { Delivery } from './delivery.js';
import type { Lifecycle } from './lifecycle.js';
import type { ServerEvents } from './server-events.js';

/**
 * The parts of a `ServerEvents` that only this package's HTTP side and its
 * tests use: opening streams, dropping slow consumers, metrics' views of the
 * streams here. Not exported from the package root, so that an
 * application's API is `ServerEvents` alone.
 */
export interface Internals {
  lifecycle: Lifecycle;
  delivery: Delivery;
  /** A client stopped reading and its unsent output passed the limit: counted and logged; the stream is being closed. */
  slowConsumerDropped(subscriptionId: string, address: string | undefined, userId: string, bufferedBytes: number): void;
  reportError(error: unknown): void;
}

const table = new WeakMap<ServerEvents, Internals>();

export function setInternals(events: ServerEvents, internals: Internals): void {
  table.set(events, internals);
}

export function internalsOf(events: ServerEvents): Internals {
  const internals = table.get(events);
  if (!internals) throw new Error('not a ServerEvents of this package');
  return internals;
}
