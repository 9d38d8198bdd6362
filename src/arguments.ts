import { channelNameProblem, selectorProblem } from './protocol.js';

/** A message body that is already JSON text: written as it is. */
export class RawJson {
  constructor(readonly json: string) {}
}

/** Marks `json` as already serialized, e.g. `notifyChannel('home', 'cmd.x', rawJson('{"a":1}'))`. */
export function rawJson(json: string): RawJson {
  return new RawJson(json);
}

/** Thrown for input a caller can fix: a bad channel name or selector. HTTP answers 400. */
export class InvalidArgumentError extends Error {
  readonly status: number = 400;
  readonly expose = true;
}

/** Thrown for a message over `maxMessageBytes`. HTTP (Koa's own error handling too) answers 413. */
export class PayloadTooLargeError extends InvalidArgumentError {
  override readonly status = 413;
}

/** Thrown for an idempotent publish on a broker without history, which cannot tell a repeat. HTTP answers 501. */
export class RepeatsUnknownError extends Error {
  readonly status = 501;
  readonly expose = true;
}

/** What makes a notification a repeat to drop: a key unique to the publish the caller means, and how long it is remembered. */
export interface NotifyOptions {
  idempotencyKey?: string;
  /** Default 5 minutes; at most an hour. */
  idempotencyWindowMs?: number;
}

export const defaultIdempotencyWindowMs = 300_000;

/** The history's form of `options`, checked: undefined without a key. */
export function publishOnceOf(options: NotifyOptions | undefined): { key: string; windowMs: number } | undefined {
  const key = options?.idempotencyKey;
  if (key === undefined) return undefined;
  if (!(key.length > 0 && key.length <= 512 && /^[\x21-\x7e]+$/.test(key))) {
    throw new InvalidArgumentError('An idempotency key must be 1 to 512 printable ASCII characters without spaces');
  }
  const windowMs = options?.idempotencyWindowMs ?? defaultIdempotencyWindowMs;
  if (!(Number.isInteger(windowMs) && windowMs >= 1000 && windowMs <= 3_600_000)) throw new InvalidArgumentError('idempotencyWindowMs must be a whole number from 1,000 to 3,600,000');
  return { key, windowMs };
}

export type Serializer = (message: unknown) => string;

/** The body text of a message: raw JSON as it is, nothing for `null`/`undefined`, else serialized. */
export function serializeMessage(message: unknown, serialize: Serializer = JSON.stringify): string {
  if (message instanceof RawJson) return message.json;
  if (message === undefined || message === null) return '';
  return serialize(message);
}

export function checkChannel(channel: string): void {
  const problem = channelNameProblem(channel);
  if (problem) throw new InvalidArgumentError(problem);
}

export function checkSelector(selector: string): string {
  const problem = selectorProblem(selector);
  if (problem) throw new InvalidArgumentError(problem);
  return selector;
}

/** Refuses a channel list longer than `max` (400). */
export function checkChannelCount(channels: readonly string[], max: number): void {
  if (channels.length > max) throw new InvalidArgumentError(`Too many channels: at most ${max}`);
}
