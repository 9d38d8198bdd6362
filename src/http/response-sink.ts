import type { ServerResponse } from 'node:http';
import type { Context } from 'koa';
import type { EventSink } from '../subscription.js';

/**
 * Where a stream's frames go: an HTTP/1.x or HTTP/2 response. Every write is
 * one `res.write`, so a frame (or a keep-alive) reaches the socket whole and
 * never ends part-way through its lines. It also remembers when it last
 * wrote, for the keep-alive, and drops a client that has stopped reading.
 */
export class ResponseSink implements EventSink {
  /** When the stream opened (Unix ms). */
  openedAt = Date.now();
  /** When anything was last written (Unix ms). */
  lastWriteAt = this.openedAt;
  private opened = false;

  constructor(
    private readonly ctx: Context,
    private readonly maxBuffered: number,
    private readonly onOverflow: (buffered: number) => void,
  ) {}

  /** True once the response became an event stream. */
  get isOpen(): boolean {
    return this.opened;
  }

  /** Sends the SSE headers at once and takes the raw response over from Koa. */
  open(): void {
    const { ctx } = this;
    this.opened = true;
    this.openedAt = this.lastWriteAt = Date.now();
    ctx.respond = false;
    const socket = ctx.req.socket;
    socket.setTimeout(0);
    socket.setNoDelay(true);
    socket.setKeepAlive(true);
    ctx.res.writeHead(200, {
      'Content-Type': 'text/event-stream',
      'Cache-Control': 'no-cache',
      'X-Accel-Buffering': 'no',
    });
    ctx.res.flushHeaders();
  }

  write(chunk: string): void {
    if (this.isGone) return;
    const res = this.ctx.res as ServerResponse;
    res.write(chunk);
    this.lastWriteAt = Date.now();
    // Node buffers whatever the socket (or the HTTP/2 stream's window) cannot take yet: the measure of a stalled reader.
    const buffered = res.writableLength;
    if (buffered > this.maxBuffered) {
      this.onOverflow(buffered);
      res.destroy();
    }
  }

  end(): void {
    if (!this.isGone) this.ctx.res.end();
  }

  onClose(listener: () => void): void {
    this.ctx.req.once('close', listener);
  }

  private get isGone(): boolean {
    const res = this.ctx.res as ServerResponse & { stream?: { destroyed: boolean } };
    // An HTTP/2 response has no `destroyed` of its own: its stream does.
    return res.writableEnded || res.destroyed === true || res.stream?.destroyed === true;
  }
}
