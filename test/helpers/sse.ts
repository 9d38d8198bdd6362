import http from 'node:http';
import { createParser, type EventSourceMessage } from 'eventsource-parser';
import { parseEventData, type ServerEventMessage } from '../../src/protocol.js';

export interface Frame extends ServerEventMessage {
  id: string;
}

/**
 * A raw SSE connection for tests: keeps the exact bytes received and every
 * parsed frame, and waits for frames matching a predicate.
 */
export class SseStream {
  readonly frames: Frame[] = [];
  raw = '';
  /** Each piece of the body as it arrived (one per server write, as a rule), with when it came. */
  readonly chunks: Array<{ text: string; at: number }> = [];
  status = 0;
  headers: http.IncomingHttpHeaders = {};
  ended = false;
  private request: http.ClientRequest | undefined;
  private waiters: Array<() => void> = [];

  static open(url: string, headers: Record<string, string> = {}): Promise<SseStream> {
    const stream = new SseStream();
    return new Promise((resolve, reject) => {
      const parser = createParser({ onEvent: (event) => stream.push(event) });
      stream.request = http.get(url, { headers: { Accept: 'text/event-stream', ...headers } }, (res) => {
        stream.status = res.statusCode ?? 0;
        stream.headers = res.headers;
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          stream.raw += chunk;
          stream.chunks.push({ text: chunk, at: Date.now() });
          if (stream.status === 200) parser.feed(chunk);
          stream.wake();
        });
        res.on('close', () => {
          stream.ended = true;
          stream.wake();
        });
        res.on('error', () => {});
        resolve(stream);
      });
      stream.request.on('error', reject);
    });
  }

  /** The subscription id from `cmd.onConnect`. */
  get id(): string {
    const connect = this.frames.find((f) => f.selector === 'cmd.onConnect');
    if (!connect) throw new Error('no cmd.onConnect yet');
    return (connect.body as { id: string }).id;
  }

  get connectArgs(): Record<string, string> {
    return this.frames.find((f) => f.selector === 'cmd.onConnect')!.body as Record<string, string>;
  }

  /** Waits for the first frame (after `from`) that matches, and returns it. */
  async next(match: (frame: Frame) => boolean = () => true, timeoutMs = 5000, from = 0): Promise<Frame> {
    const found = await this.until(() => this.frames.slice(from).find(match), timeoutMs);
    return found;
  }

  /** Waits until `count` frames match. */
  async count(match: (frame: Frame) => boolean, count: number, timeoutMs = 5000): Promise<Frame[]> {
    return this.until(() => {
      const matching = this.frames.filter(match);
      return matching.length >= count ? matching : undefined;
    }, timeoutMs);
  }

  /** Waits until the first `cmd.onConnect`. */
  connected(timeoutMs = 5000): Promise<Frame> {
    return this.next((f) => f.selector === 'cmd.onConnect', timeoutMs);
  }

  /** Waits until the server ends the response. */
  async closed(timeoutMs = 5000): Promise<void> {
    await this.until(() => (this.ended ? true : undefined), timeoutMs);
  }

  close(): void {
    this.request?.destroy();
  }

  private push(event: EventSourceMessage): void {
    this.frames.push({ ...parseEventData(event.data), id: event.id ?? '' });
  }

  private wake(): void {
    for (const waiter of this.waiters.splice(0)) waiter();
  }

  private until<T>(check: () => T | undefined, timeoutMs: number): Promise<T> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== attempt);
        reject(new Error(`timed out after ${timeoutMs} ms; frames so far:\n${this.frames.map((f) => f.data.slice(0, 120)).join('\n')}`));
      }, timeoutMs);
      const attempt = () => {
        const value = check();
        if (value !== undefined) {
          clearTimeout(timer);
          resolve(value);
        } else {
          this.waiters.push(attempt);
        }
      };
      attempt();
    });
  }
}

/** Frames of one selector, e.g. `only('cmd.onJoin')`. */
export const only =
  (selector: string, channel?: string) =>
  (frame: Frame): boolean =>
    frame.selector === selector && (channel === undefined || frame.channel === channel);
