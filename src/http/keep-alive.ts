import type { EventSubscription } from '../subscription.js';
import type { ResponseSink } from './response-sink.js';

/**
 * Keeps idle streams alive for proxies and load balancers that close a
 * connection after some time without traffic (nginx's and AWS ALB's 60 s,
 * Cloudflare's 100 s), without ever writing something a ServiceStack client
 * cannot parse.
 *
 * The heartbeat is the keep-alive. Every ServiceStack client (ss-utils.js,
 * `@servicestack/client`, the C# `ServerEventsClient`) and ours POSTs a
 * heartbeat every `heartbeatIntervalMs`, and each one puts `cmd.onHeartbeat`
 * on its stream, so a live stream already carries a frame that often. Only a
 * stream with nothing written for `intervalMs` gets a keep-alive, and what it
 * gets depends on its client:
 *
 * - a client that has heartbeated gets a `cmd.onHeartbeat` frame: a complete
 *   `id:`/`data:` frame of the kind it handles every interval anyway;
 * - a client that has not heartbeated within `heartbeatIntervalMs +
 *   intervalMs` of connecting (so it is no ServiceStack client) gets an SSE
 *   comment with its blank line, `:\n\n`, in one write; EventSource and every
 *   spec-following parser skip it. The interval is the one the client was
 *   told in `cmd.onConnect`, even when an `onConnect` hook changed it.
 *
 * ServiceStack's own server writes no comments, and its C# client does not
 * cope with them: it reports a block with no `data:` line (such as `:\n\n`)
 * as an exception, and spins when a read ends just after a comment line. So
 * no client that heartbeats, and none that may still be about to, is ever
 * sent one.
 *
 * One timer serves every stream of a middleware; a stream costs an entry in
 * a map, not a timer of its own.
 */
export class KeepAlive {
  private readonly streams = new Map<EventSubscription, ResponseSink>();
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly intervalMs: number) {}

  /** Keeps `sub`'s stream alive until it closes; `0` as the interval turns keep-alives off. */
  add(sub: EventSubscription, sink: ResponseSink): void {
    if (!(this.intervalMs > 0)) return;
    // Taken out again by the first tick after it closed: a listener of its own would be a closure held per stream.
    this.streams.set(sub, sink);
    if (!this.timer) {
      // A quarter of the interval: a keep-alive goes out between 1 and 1.25 intervals of silence.
      this.timer = setInterval(() => this.tick(), Math.max(10, Math.floor(this.intervalMs / 4)));
      this.timer.unref();
    }
  }

  private tick(): void {
    const now = Date.now();
    for (const [sub, sink] of this.streams) {
      if (sink.clientGone) {
        this.streams.delete(sub);
        continue;
      }
      if (now - sink.lastWriteAt < this.intervalMs || sub.isClosed) continue;
      if (sub.heartbeats > 0) sub.send('cmd.onHeartbeat', sub.metaJson);
      else if (now - sink.openedAt >= sub.heartbeatIntervalMs + this.intervalMs) sink.write(':\n\n');
    }
    if (this.streams.size === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }
}
