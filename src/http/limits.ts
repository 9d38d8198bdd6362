import type { Context, Next } from 'koa';
import { sendError } from './errors.js';

/**
 * Counts the open event streams of one middleware, in all and per client
 * address, and refuses a new one past either limit: 503 (with Retry-After)
 * when the server is full, so a load balancer or client tries another; 429
 * when one address holds too many, so one client cannot starve the rest.
 */
export class StreamLimits {
  private total = 0;
  private readonly perAddress = new Map<string, number>();

  constructor(
    private readonly maxStreams: number,
    private readonly maxStreamsPerAddress: number,
  ) {}

  /** Takes a place for a stream from `address`, or answers the refusal and returns false. */
  admit(ctx: Context, address: string): boolean {
    if (this.total >= this.maxStreams) {
      sendError(ctx, 503, `This server holds its limit of ${this.maxStreams} streams; try again or another server`, 5);
      return false;
    }
    const mine = this.perAddress.get(address) ?? 0;
    if (mine >= this.maxStreamsPerAddress) {
      sendError(ctx, 429, `Too many streams from one address (at most ${this.maxStreamsPerAddress})`, 5);
      return false;
    }
    this.total++;
    this.perAddress.set(address, mine + 1);
    return true;
  }

  /** Gives back a place taken by `admit`. */
  release(address: string): void {
    this.total--;
    const mine = (this.perAddress.get(address) ?? 1) - 1;
    if (mine > 0) this.perAddress.set(address, mine);
    else this.perAddress.delete(address);
  }
}

/** Answers 414 to a request whose query string is longer than `maxLength` characters. */
export function limitQueryLength(maxLength: number) {
  return (ctx: Context, next: Next) => {
    if (ctx.querystring.length > maxLength) return sendError(ctx, 414, `Query string over ${maxLength} characters`);
    return next();
  };
}
