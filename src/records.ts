import type { PresenceStore } from './broker.js';

/**
 * What the cluster knows about one subscription: the record kept in the
 * broker's presence store, readable from every server. This file is the only
 * place that reads or writes its format.
 */
export interface SubscriptionInfo {
  /** The subscription id: 20 characters of `[A-Za-z0-9]`. */
  id: string;
  /** The authenticated user's id, or `-N` for anonymous user N. */
  userId: string;
  userName?: string;
  displayName: string;
  /** The `ss-id` session the stream was opened with. */
  sessionId?: string;
  channels: string[];
  /** Unix time in milliseconds. */
  createdAt: number;
  isAuthenticated: boolean;
  profileUrl: string;
  /** The client address that opened the stream. */
  userAddress?: string;
  /**
   * The public, all-string map sent in `cmd.onJoin`/`onLeave`/`onUpdate`/
   * `onHeartbeat` and listed by `/event-subscribers`: userId,
   * isAuthenticated, displayName, channels, createdAt, profileUrl, plus any
   * keys added by the `onCreated` hook.
   */
  meta: Record<string, string>;
  /** The id of the server process holding the stream. */
  serverId: string;
  /** Names the HTTP stream that holds the subscription now; a resume gives it a new one. */
  connectionId?: string;
  /** Set while no stream holds it: the client may resume it until its lease runs out. */
  detached?: boolean;
}

/** A record as it was read, with what a conditional write must find unchanged. */
export interface VersionedRecord {
  info: SubscriptionInfo;
  /** Opaque: the stored form, compared by the store. */
  version: string;
}

/** Builds the public meta map of a subscription from its fields. */
export function buildMeta(info: Omit<SubscriptionInfo, 'meta'>, extra: Record<string, string> = {}): Record<string, string> {
  return {
    userId: info.userId,
    isAuthenticated: String(info.isAuthenticated),
    displayName: info.displayName,
    channels: info.channels.join(','),
    createdAt: String(info.createdAt),
    profileUrl: info.profileUrl,
    ...extra,
  };
}

/**
 * The channel list after a change: removals first, as ServiceStack does,
 * then additions in order, each once.
 */
export function nextChannels(before: readonly string[], subscribe: readonly string[], unsubscribe: readonly string[]): string[] {
  const after = before.filter((c) => !unsubscribe.includes(c));
  for (const channel of subscribe) if (!after.includes(channel)) after.push(channel);
  return after;
}

/** The record with its channel list (and the meta map's copy of it) changed. */
export function withChannels(info: SubscriptionInfo, channels: string[]): SubscriptionInfo {
  return { ...info, channels, meta: { ...info.meta, channels: channels.join(',') } };
}

const encode = (info: SubscriptionInfo): string => JSON.stringify(info);
const decode = (record: string): SubscriptionInfo => JSON.parse(record) as SubscriptionInfo;

/**
 * Subscription records over a broker's `PresenceStore`, each with a lease
 * of `leaseMs` that heartbeats renew. Every read and write of a record in the
 * core goes through here.
 */
export class Records {
  constructor(
    private readonly presence: PresenceStore,
    private readonly leaseMs: number,
  ) {}

  /** Writes the record of a live subscription (new, resumed, changed, or restored after an outage) with a fresh lease. */
  write(info: SubscriptionInfo): Promise<void> {
    return this.presence.put(info.id, encode(info), this.leaseMs);
  }

  /** The record of `id`, or `undefined` when there is none or its lease ran out. */
  async read(id: string): Promise<SubscriptionInfo | undefined> {
    return (await this.readVersioned(id))?.info;
  }

  /** The record of `id` with its version, for a conditional change. */
  async readVersioned(id: string): Promise<VersionedRecord | undefined> {
    const version = await this.presence.get(id);
    return version === undefined ? undefined : { info: decode(version), version };
  }

  /**
   * Replaces `current` with `next` and renews the lease, only if the stored
   * record is still `current` and live: a change made from a stale read
   * (a disconnect racing an unregister, say) never brings back or overwrites
   * a newer state. Returns whether it did.
   */
  replace(current: VersionedRecord, next: SubscriptionInfo): Promise<boolean> {
    return this.presence.replace(next.id, current.version, encode(next), this.leaseMs);
  }

  /** Renews the lease of a live record; `false` for one that is gone or expired. */
  renew(id: string): Promise<boolean> {
    return this.presence.touch(id, this.leaseMs);
  }

  /** Removes the record and returns it; of several servers racing, exactly one gets it (and announces the leave). */
  async remove(id: string): Promise<SubscriptionInfo | undefined> {
    const record = await this.presence.remove(id);
    return record === undefined ? undefined : decode(record);
  }

  /** Removes and returns up to `limit` records whose lease ran out, each to exactly one caller in the cluster. */
  async takeExpired(limit: number): Promise<SubscriptionInfo[]> {
    return (await this.presence.takeExpired(limit)).map(decode);
  }

  /** Every live record in the cluster. */
  async all(): Promise<SubscriptionInfo[]> {
    return (await this.presence.list()).map(decode);
  }

  /** The live records in any of `channels`. */
  async inChannels(channels: readonly string[]): Promise<SubscriptionInfo[]> {
    return (await this.all()).filter((info) => info.channels.some((c) => channels.includes(c)));
  }

  /** The live records of a user id. */
  async ofUser(userId: string): Promise<SubscriptionInfo[]> {
    return (await this.all()).filter((info) => info.userId === userId);
  }

  /** A detached record of `sessionId` with exactly these channels: what a browser's own EventSource reconnect resumes. */
  async detachedOf(sessionId: string, channels: readonly string[]): Promise<SubscriptionInfo | undefined> {
    const wanted = [...channels].sort().join(',');
    return (await this.all()).find((i) => i.detached && i.sessionId === sessionId && [...i.channels].sort().join(',') === wanted);
  }
}
