import type { ServerResponse } from 'node:http';
import type { Http2ServerResponse } from 'node:http2';
import type { EventSink } from '../subscription.js';

/**
 * Where a stream's frames go: an HTTP/1.x or HTTP/2 response. Every write is
 * one `res.write`, so a frame (or a keep-alive) reaches the socket whole and
 * never ends part-way through its lines. It also remembers when it last
 * wrote, for the keep-alive, and drops a client that has stopped reading.
 */
export class ResponseSink implements EventSink {
  /** When the stream opened (Unix ms). */
  readonly openedAt = Date.now();
  /** When anything was last written (Unix ms). */
  lastWriteAt = this.openedAt;

  constructor(
    private readonly res: ServerResponse | Http2ServerResponse,
    private readonly maxBuffered: number,
    private readonly onOverflow: (buffered: number) => void,
  ) {}

  write(chunk: string): void {
    if (this.isGone) return;
    (this.res as ServerResponse).write(chunk);
    this.lastWriteAt = Date.now();
    // Node buffers whatever the socket (or the HTTP/2 stream's window) cannot take yet: the measure of a stalled reader.
    const buffered = this.res.writableLength;
    if (buffered > this.maxBuffered) {
      this.onOverflow(buffered);
      this.res.destroy();
    }
  }

  end(): void {
    if (!this.isGone) this.res.end();
  }

  private get isGone(): boolean {
    const res = this.res as ServerResponse & { stream?: { destroyed: boolean } };
    // An HTTP/2 response has no `destroyed` of its own: its stream does.
    return res.writableEnded || res.destroyed === true || res.stream?.destroyed === true;
  }
}
