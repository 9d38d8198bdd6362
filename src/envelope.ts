/**
 * What travels on a broker topic. A notification carries everything a server
 * needs to write the frame to its own matching subscriptions; a control
 * message asks the server that holds a subscription to act on it.
 */
export type Envelope = (Notification | Control) & Addressed;

/** Where an envelope sent to a server's inbox is going (see `topics`). */
export interface Addressed {
  /** The private audience it is for: the receiving server hands it to its own members of that topic. */
  to?: string;
  /** The servers whose inboxes it was sent to: a server that forwards it (see `Delivery`) skips these. */
  via?: string[];
  /** A forwarded copy of the history event of this id: delivered as late (see `Broker.onMessage`). */
  lateId?: number;
}

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
