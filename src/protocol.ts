/**
 * ServiceStack's Server Events wire format, shared by the server and the
 * client. A frame is exactly
 *
 *     id: {n}\n
 *     data: [{channel}@]{op}.{target}[${cssSelector}] {body}\n
 *     \n
 *
 * with one space before the body even when the body is empty (the C# client
 * looks for it). No `event:` or `retry:` fields are sent.
 */

/** The channel of a subscription that asked for none. */
export const UNKNOWN_CHANNEL = '*';

const LINE_BREAKS = /\r\n|\r|\n/g;

/**
 * Builds one SSE frame. `body` must already be serialized; line breaks in it
 * are folded into spaces so that no message can start a new SSE field or
 * frame (JSON treats them as whitespace; `JSON.stringify` never emits them).
 */
export function encodeFrame(id: number, selector: string, body: string, channel?: string): string {
  const last = lastFrame;
  // An event is written to each of its streams here under the same id: it is encoded once, not once a stream.
  if (id === last.id && body === last.body && selector === last.selector && channel === last.channel) return last.frame;
  const target = channel ? `${encodeChannel(channel)}@${selector}` : selector;
  const frame = `id: ${id}\ndata: ${target} ${body.replace(LINE_BREAKS, ' ')}\n\n`;
  lastFrame = { id, selector, body, channel, frame };
  return frame;
}

/** The frame `encodeFrame` made last, with what it was made from. */
let lastFrame: { id: number; selector: string; body: string; channel?: string; frame: string } = { id: -1, selector: '', body: '', frame: '' };

/**
 * Channel names may contain spaces, but the clients split a data line at its
 * first space, so on the wire a space in a channel travels as `%20` (the same
 * escape the protocol already uses inside selectors).
 */
function encodeChannel(channel: string): string {
  return channel.includes(' ') ? channel.replace(/ /g, '%20') : channel;
}

/** A parsed `data:` line. */
export interface ServerEventMessage {
  /** The whole data line. */
  data: string;
  /** The channel before `@`, when the event was sent to a channel. */
  channel?: string;
  /** The selector without its channel, e.g. `cmd.onJoin` or `css.color$#top`. */
  selector: string;
  /** `cmd`, `css`, `trigger` or a receiver name. */
  op: string;
  /** The member after the op, with `%20` decoded, without the CSS selector. */
  target: string;
  /** The part after `$`, with `%20` decoded. */
  cssSelector?: string;
  /** The raw body text (usually JSON), possibly empty. */
  json: string;
  /** The body parsed as JSON, or the raw text when it is not JSON, or `null` when empty. */
  body: unknown;
}

/**
 * Parses a `data:` line with the grammar every ServiceStack client uses:
 * split at the first space, then the channel at the first `@`, the op at the
 * first `.`, the CSS selector at the first `$`. Throws on a selector with no
 * `.`, like the reference clients.
 */
export function parseEventData(data: string): ServerEventMessage {
  const space = data.indexOf(' ');
  let selector = space < 0 ? data : data.slice(0, space);
  const json = space < 0 ? '' : data.slice(space + 1);
  let channel: string | undefined;
  const at = selector.indexOf('@');
  if (at >= 0) {
    channel = selector.slice(0, at).replace(/%20/g, ' ');
    selector = selector.slice(at + 1);
  }
  const dot = selector.indexOf('.');
  if (dot < 0) throw new Error(`invalid selector format: ${selector}`);
  const op = selector.slice(0, dot);
  const rest = selector.slice(dot + 1).replace(/%20/g, ' ');
  const dollar = rest.indexOf('$');
  const target = dollar < 0 ? rest : rest.slice(0, dollar);
  const cssSelector = dollar < 0 ? undefined : rest.slice(dollar + 1);
  return { data, channel, selector, op, target, cssSelector, json, body: parseBody(json) };
}

function parseBody(json: string): unknown {
  if (json.trim() === '') return null;
  try {
    return JSON.parse(json);
  } catch {
    return json;
  }
}

/** Why a channel name was refused, or `undefined` when it is acceptable. */
export function channelNameProblem(channel: string): string | undefined {
  if (channel.length === 0) return 'channel name is empty';
  if (channel.length > MAX_CHANNEL_NAME_LENGTH) return `channel name is longer than ${MAX_CHANNEL_NAME_LENGTH} characters`;
  if (hasControlCharacter(channel)) return 'channel name contains a control character';
  if (/[@,]/.test(channel)) return `channel name '${channel}' may not contain '@' or ','`;
  return undefined;
}

/** True when `text` holds a C0 control character or DEL: never allowed in names that reach the wire. */
export function hasControlCharacter(text: string): boolean {
  return /[\u0000-\u001f\u007f]/.test(text);
}

/** The longest channel name, in UTF-16 code units (what JavaScript's `length` counts). */
export const MAX_CHANNEL_NAME_LENGTH = 128;

/** Why a selector was refused, or `undefined` when it is acceptable. */
export function selectorProblem(selector: string): string | undefined {
  if (/[\u0000-\u0020\u007f@]/.test(selector)) {
    return `selector '${selector}' may not contain '@', spaces or control characters`;
  }
  const dot = selector.indexOf('.');
  if (dot <= 0 || dot === selector.length - 1) return `selector '${selector}' must look like op.target`;
  return undefined;
}

/** Splits `a,b` lists from query strings or forms, dropping blanks. */
export function splitList(value: string | readonly string[] | undefined | null): string[] {
  if (value == null) return [];
  const parts = typeof value === 'string' ? [value] : value;
  return parts.flatMap((p) => String(p).split(',')).map((s) => s.trim()).filter(Boolean);
}
