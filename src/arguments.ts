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
