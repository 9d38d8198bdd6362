/**
 * What travels on a broker topic. A notification carries everything a server
 * needs to write the frame to its own matching subscriptions; a control
 * message asks the server that holds a subscription to act on it.
 */
export type Envelope = Notification | Control;

export interface Notification {
  kind: 'notify';
  /** Selector, e.g. `cmd.chat`. */
  selector: string;
  /** Serialized body. */
  body: string;
  /** Channel written before `@` on the wire (channel notifications only). */
  channel?: string;
  /** Deliver only to subscriptions in this channel. */
  filter?: string;
  /** Unix time in milliseconds when it was published: the start of the delivery lag metric. */
  at?: number;
}

export type Control =
  | { kind: 'pulse' }
  | { kind: 'close'; connectionId?: string }
  | { kind: 'channels'; subscribe: string[]; unsubscribe: string[] };

export function encodeEnvelope(envelope: Envelope): string {
  return JSON.stringify(envelope);
}

/** Parses a payload; throws on anything that is not an envelope. */
export function decodeEnvelope(payload: string): Envelope {
  const value = JSON.parse(payload) as Envelope;
  if (value === null || typeof value !== 'object' || typeof value.kind !== 'string') {
    throw new Error('malformed broker payload');
  }
  return value;
}
