/**
 * One event stream the runner holds itself, to time what a client sees:
 * each frame is parsed and kept with the moment it arrived.
 */
import http from 'node:http';
import { createParser } from 'eventsource-parser';
import { parseEventData, type ServerEventMessage } from '../../src/protocol.js';

export interface TimedFrame extends ServerEventMessage {
  id: string;
  at: number;
}

export class ProbeStream {
  readonly frames: TimedFrame[] = [];
  private request: http.ClientRequest | undefined;
  private waiters: Array<() => void> = [];

  /** Opens `url` and resolves on its `cmd.onConnect`, or rejects on an error status or after `timeoutMs`. */
  static async open(url: string, headers: Record<string, string> = {}, timeoutMs = 10_000): Promise<ProbeStream> {
    const stream = new ProbeStream();
    await new Promise<void>((resolve, reject) => {
      const parser = createParser({
        onEvent: (event) => {
          stream.frames.push({ ...parseEventData(event.data), id: event.id ?? '', at: performance.now() });
          for (const waiter of stream.waiters.splice(0)) waiter();
        },
      });
      stream.request = http.get(url, { agent: false, headers: { accept: 'text/event-stream', ...headers } }, (response) => {
        if (response.statusCode !== 200) {
          response.resume();
          reject(new Error(`HTTP ${response.statusCode} from ${url}`));
          return;
        }
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => parser.feed(chunk));
        response.on('error', () => {});
        resolve();
      });
      stream.request.on('error', reject);
    });
    await stream.waitFor((frame) => frame.selector === 'cmd.onConnect', timeoutMs);
    return stream;
  }

  get connectArgs(): Record<string, string> {
    return this.frames.find((frame) => frame.selector === 'cmd.onConnect')!.body as Record<string, string>;
  }

  /** The first frame (from `from` on) that matches, waiting up to `timeoutMs`. */
  waitFor(match: (frame: TimedFrame) => boolean, timeoutMs = 10_000, from = 0): Promise<TimedFrame> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no matching frame within ${timeoutMs} ms`)), timeoutMs);
      const check = () => {
        const found = this.frames.slice(from).find(match);
        if (!found) return void this.waiters.push(check);
        clearTimeout(timer);
        resolve(found);
      };
      check();
    });
  }

  close(): void {
    this.request?.destroy();
  }
}
