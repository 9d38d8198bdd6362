import type { ExecutionContext } from 'ava';
import { ServerEventsClient, type ReceivedMessage } from '../../src/client/index.js';
import type { ServerEvents } from '../../src/server-events.js';
import { delay } from './server.js';

/** A client of ours on `home` that records every number it receives (and its event id) and, at each `cmd.onReset`, how many it had. */
export function recordingClient(urls: string[]) {
  const received: number[] = [];
  const eventIds: number[] = [];
  const resets: number[] = [];
  const client = new ServerEventsClient(urls, ['home'], {
    reconnectDelayMs: 100,
    maxReconnectDelayMs: 400,
    handlers: {
      msg: (n: number, message: ReceivedMessage) => {
        received.push(n);
        eventIds.push(message.eventId);
      },
      onReset: () => resets.push(received.length),
    },
  });
  return { client, received, eventIds, resets };
}

/** Publishes 0, 1, 2... to `home` every `everyMs` until stopped; remembers which the broker took and which it refused. */
export function steadyPublisher(events: ServerEvents, everyMs: number) {
  const accepted: number[] = [];
  const rejected: number[] = [];
  /** Why each refused publish was refused, once per distinct message. */
  const reasons = new Set<string>();
  let running = true;
  const pending: Promise<void>[] = [];
  const done = (async () => {
    for (let n = 0; running; n++) {
      pending.push(
        events.notifyChannel('home', 'cmd.msg', n).then(
          () => void accepted.push(n),
          (error: Error) => {
            rejected.push(n);
            reasons.add(error.message);
          },
        ),
      );
      await delay(everyMs);
    }
    await Promise.all(pending);
  })();
  return {
    accepted,
    rejected,
    reasons,
    async stop() {
      running = false;
      await done;
      accepted.sort((a, b) => a - b);
    },
  };
}

export async function until(check: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check() && Date.now() < deadline) await delay(50);
}

/**
 * Checks what a recording client got of the `accepted` events across an
 * outage: no duplicates, events from both sides of it, and whatever is
 * missing announced by a `cmd.onReset` that came after all of it (nothing
 * is lost after a reset). Returns the missing events.
 */
export function onlyAnnouncedLoss(t: ExecutionContext, name: string, c: ReturnType<typeof recordingClient>, accepted: number[], outage: string): number[] {
  const last = accepted.at(-1)!;
  t.is(new Set(c.received).size, c.received.length, `${name}: no duplicates`);
  t.true(c.received.includes(0) && c.received.includes(last), `${name}: events before and after the ${outage} arrived`);
  const missing = accepted.filter((n) => !c.received.includes(n));
  if (missing.length > 0) {
    t.true(c.resets.length > 0, `${name} missed ${missing.length} events without a cmd.onReset`);
    const firstAfterReset = c.received[c.resets.at(-1)!];
    t.true(firstAfterReset !== undefined && Math.max(...missing) < firstAfterReset, `${name}: an event was lost after its reset`);
  }
  return missing;
}
