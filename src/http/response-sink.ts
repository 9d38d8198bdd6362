import type { ServerResponse } from 'node:http';
import type { Context } from 'koa';
import type { EventSink, EventSubscription } from '../subscription.js';

/** How long the headers of a new stream may wait for its first frame, so that both leave in one write. */
const headerWaitMs = 50;

/**
 * Sinks with frames waiting. Those that wrote a while ago go out at the end
 * of this turn of the event loop (`setImmediate`), with whatever else had
 * arrived by then (the messages of one socket read, or of several sockets
 * ready at once); those that wrote within their coalescing window wait for
 * it to end (one timer for all of them). Either way a stream's frames leave
 * in one write instead of one each.
 */
const dueThisTurn: ResponseSink[] = [];
const dueLater = new Map<number, ResponseSink[]>();

function flushAll(sinks: ResponseSink[]): void {
  for (const sink of sinks.splice(0)) sink.flush();
}

/** Queues `sink` to be written out at the end of this turn, or in `delayMs` when that is ahead. */
function schedule(sink: ResponseSink, delayMs: number): void {
  if (delayMs <= 0) {
    if (dueThisTurn.length === 0) setImmediate(() => flushAll(dueThisTurn));
    dueThisTurn.push(sink);
    return;
  }
  // Sinks due within the same millisecond share one timer.
  const due = Math.ceil(performance.now() + delayMs);
  let sinks = dueLater.get(due);
  if (!sinks) {
    dueLater.set(due, (sinks = []));
    setTimeout(() => {
      dueLater.delete(due);
      flushAll(sinks!);
    }, due - performance.now()).unref();
  }
  sinks.push(sink);
}

/**
 * Node keeps a response's head as the tree of pieces it was joined from
 * (about 25 for a stream's, with the cookie and the CORS headers), for as
 * long as the response lives: a stream holds it for hours. Reading one
 * character flattens it into one string, about 0.7 KB less per stream.
 * `_header` is Node's private field, so this does nothing where it is not
 * there (HTTP/2, another Node). Where a header map is kept (a hook set
 * headers of its own, see `setSessionCookie`), it stays: an app's logging
 * or tracing may read those once the stream has opened.
 */
function flattenHead(res: ServerResponse): void {
  const head = (res as unknown as { _header?: unknown })._header;
  if (typeof head === 'string') head.charCodeAt(0);
}

/**
 * A response head given whole to `writeHead` goes out without the header
 * map Node otherwise keeps for the response's life (an object, and an array
 * for each header: some 0.4 KB a stream). So the new session's cookie joins
 * the stream's own headers, unless a hook has set headers already: then the
 * map exists anyway, and the cookie is added to it beside any it holds.
 */
function setSessionCookie(res: ServerResponse, headers: Record<string, string>, cookie: string): void {
  if (res.getHeaderNames().length === 0) {
    headers['Set-Cookie'] = cookie;
    return;
  }
  const set = res.getHeader('set-cookie') ?? [];
  res.setHeader('Set-Cookie', [...[set].flat().map(String), cookie]);
}

/**
 * What a stream tells the middleware that opened it: one object for all of
 * its streams, so that a stream held for hours holds no closures of its
 * own for this (each is a function and a scope, some 100 bytes).
 */
export interface SinkOwner {
  /** The client stopped reading: `buffered` bytes wait for it, and the stream is dropped. */
  overflowed(sink: ResponseSink, buffered: number): void;
  /** The client went away, or the stream ended (once). */
  closed(sink: ResponseSink): void;
}

/**
 * Where a stream's frames go: an HTTP/1.x or HTTP/2 response. Frames are
 * gathered and written together (see `schedule`), each whole, so one
 * never ends part-way through its lines. It also remembers when it last
 * wrote, for the keep-alive, and drops a client that has stopped reading.
 *
 * It listens for the client going away once, for everyone who asks: a
 * stream is held for hours, and each listener is memory it holds.
 */
export class ResponseSink implements EventSink {
  /** When the stream opened (Unix ms). */
  openedAt = Date.now();
  /** When anything was last written (Unix ms). */
  lastWriteAt = this.openedAt;
  /** The subscription streamed here, once it has one. */
  subscription: EventSubscription | undefined;
  /** Whether this stream still holds a place among its address's streams (see `StreamLimits`). */
  holdsPlace = true;
  /** The `Set-Cookie` of a new session, sent with the head (see `open`). */
  sessionCookie: string | undefined;
  private opened = false;
  private gone = false;
  private headerTimer: NodeJS.Timeout | undefined;
  /** One listener as it is (a stream has one: its subscription's), more in an array. */
  private closeListeners: (() => void) | Array<() => void> | undefined;
  /** Frames written since the last flush, in one string. */
  private pending = '';
  /** When the last write went to the socket (`performance.now()`). */
  private flushedAt = -Infinity;
  private readonly coalescingMs: number;

  private readonly req: Context['req'];
  private readonly res: ServerResponse;
  /** Until the stream opens: the request's context is not held for the stream's life (see `open`). */
  private ctx: Context | undefined;

  constructor(
    ctx: Context,
    /** The client's address, as the limits count it. */
    readonly address: string,
    private readonly owner: SinkOwner,
    private readonly maxBuffered: number,
    coalescingMs = 0,
  ) {
    this.ctx = ctx;
    this.req = ctx.req;
    this.res = ctx.res as ServerResponse;
    this.coalescingMs = Number.isFinite(coalescingMs) && coalescingMs > 0 ? coalescingMs : 0;
    ctx.req.on('close', () => {
      this.gone = true;
      this.pending = '';
      clearTimeout(this.headerTimer);
      this.owner.closed(this);
      const listeners = this.closeListeners;
      this.closeListeners = undefined;
      if (typeof listeners === 'function') listeners();
      else for (const listener of listeners ?? []) listener();
    });
  }

  /** True once the response became an event stream. */
  get isOpen(): boolean {
    return this.opened;
  }

  /** True once the client has gone away (or the stream ended). */
  get clientGone(): boolean {
    return this.gone || this.req.destroyed;
  }

  /**
   * Takes the raw response over from Koa and sets the SSE headers. They go
   * out with the first frame, in one write (a new stream's first frame
   * follows within a broker round trip), or after `headerWaitMs` without one.
   */
  open(): void {
    const { req, res } = this;
    this.opened = true;
    this.openedAt = this.lastWriteAt = Date.now();
    this.ctx!.respond = false;
    // Held no longer: a stream is held for hours, and the context is a few kilobytes with what it refers to.
    this.ctx = undefined;
    // Routing left the parsed URL on the request (parseurl's cache, some 0.3 KB); it is parsed again if asked for.
    if ('_parsedUrl' in req) (req as { _parsedUrl?: unknown })._parsedUrl = undefined;
    const socket = req.socket;
    socket.setTimeout(0);
    socket.setNoDelay(true);
    const headers: Record<string, string> = {
      'Content-Type': 'text/event-stream',
      'Cache-Control': 'no-cache',
      'X-Accel-Buffering': 'no',
    };
    if (this.sessionCookie !== undefined) setSessionCookie(res, headers, this.sessionCookie);
    this.sessionCookie = undefined;
    // Once a stream ends, its connection goes with it: a client that vanished without closing (it stopped
    // heartbeating, and its lease ran out) must not leave a socket held open for keep-alive. HTTP/2 has no such header.
    if (req.httpVersionMajor < 2) {
      headers.Connection = 'close';
      // And so the body needs no chunked framing: it ends where the connection does (RFC 9112, 6.3). Each write is
      // then one buffer instead of three (size line, frames, CRLF), which on a busy fan-out is a tenth of its CPU.
      res.removeHeader('Transfer-Encoding');
    }
    res.writeHead(200, headers);
    flattenHead(res);
    // Cleared by the first write, which carries the headers.
    this.headerTimer = setTimeout(() => {
      if (!this.isGone) res.flushHeaders();
    }, headerWaitMs);
    this.headerTimer.unref();
  }

  /** Queues a frame (or a keep-alive); it goes out, whole, with the others of this moment (see `schedule`). */
  write(chunk: string): void {
    if (this.isGone) return;
    if (this.pending === '') schedule(this, this.flushedAt + this.coalescingMs - performance.now());
    this.pending += chunk;
  }

  /** Writes what is queued in one `res.write`, and drops a client that has stopped reading. */
  flush(): void {
    const chunk = this.pending;
    this.pending = '';
    if (chunk === '' || this.isGone) return;
    const { res } = this;
    if (this.headerTimer) {
      clearTimeout(this.headerTimer);
      this.headerTimer = undefined;
    }
    res.write(chunk);
    this.lastWriteAt = Date.now();
    this.flushedAt = performance.now();
    // Node buffers whatever the socket (or the HTTP/2 stream's window) cannot take yet: the measure of a stalled reader.
    const buffered = res.writableLength;
    if (buffered > this.maxBuffered) {
      this.owner.overflowed(this, buffered);
      res.destroy();
    }
  }

  end(): void {
    this.flush();
    clearTimeout(this.headerTimer);
    if (!this.isGone) this.res.end();
  }

  /** Calls `listener` once when the client goes away; at once if it has already. */
  onClose(listener: () => void): void {
    if (this.gone) listener();
    else if (this.closeListeners === undefined) this.closeListeners = listener;
    else if (typeof this.closeListeners === 'function') this.closeListeners = [this.closeListeners, listener];
    else this.closeListeners.push(listener);
  }

  private get isGone(): boolean {
    const res = this.res as ServerResponse & { stream?: { destroyed: boolean } };
    // An HTTP/2 response has no `destroyed` of its own: its stream does.
    return res.writableEnded || res.destroyed === true || res.stream?.destroyed === true;
  }
}
