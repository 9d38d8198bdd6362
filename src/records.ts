import type { PresenceStore } from './broker.js';
import { decodeRecord as decode, encodeRecord as encode } from './record-format.js';
import { topics } from './topics.js';

export { buildMeta } from './record-format.js';

/**
 * What the cluster knows about one subscription: the record kept in the
 * broker's presence store, readable from every server. Every read and write
 * of one goes through `Records` here, in the form `record-format.ts` gives it.
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

/**
 * The channel list after a change: removals first, as ServiceStack does,
 * then additions in order, each once.
 */
export function nextChannels(before: readonly string[], subscribe: readonly string[], unsubscribe: readonly string[]): string[] {
  const after = before.filter((c) => !unsubscribe.includes(c));
  for (const channel of subscribe) if (!after.includes(channel)) after.push(channel);
  return after;
}

/**
 * `info` with `changes`: how every record is made from another. It copies
 * with `Object.assign`, not a spread: V8 gives each object made by
 * `{ ...a, b }` a hidden class of its own (some 300 bytes, for as long as a
 * stream holds the record), while objects built by assignment share one.
 */
export function recordWith(info: Omit<SubscriptionInfo, 'meta'> & { meta?: Record<string, string> }, changes: Partial<SubscriptionInfo>): SubscriptionInfo {
  return Object.assign({}, info, changes) as SubscriptionInfo;
}

/** The record with its channel list (and the meta map's copy of it) changed. */
export function withChannels(info: SubscriptionInfo, channels: string[]): SubscriptionInfo {
  return recordWith(info, { channels, meta: Object.assign({}, info.meta, { channels: channels.join(',') }) });
}

/**
 * The index keys a record is listed under: what the API looks subscriptions
 * up by (each channel, the user id and name, the session) and the server
 * that holds it (for the sweep of a server that died). They are named as
 * the broker topics of the same audiences.
 */
export function indexesOf(info: SubscriptionInfo): string[] {
  const indexes = [topics.server(info.serverId), topics.userId(info.userId), ...info.channels.map(topics.channel)];
  if (info.userName) indexes.push(topics.userName(info.userName));
  if (info.sessionId) indexes.push(topics.session(info.sessionId));
  return indexes;
}

/** The index of every server's registration (see `ServerRegistry`). */
export const serversIndex = 'servers';

/** How many ids one presence call carries at most: a lookup costs what it finds, in bounded steps. */
export const lookupBatch = 250;

/**
 * Subscription records over a broker's `PresenceStore`, each with a lease
 * of `leaseMs` that heartbeats renew and listed under `indexesOf` it. Every
 * read and write of a record in the core goes through here, and every
 * lookup costs what it finds: it reads one index, in batches.
 */
export class Records {
  constructor(
    private readonly presence: PresenceStore,
    private readonly leaseMs: number,
  ) {}

  /** Writes the record of a live subscription (new, resumed, changed, or restored after an outage) with a fresh lease. */
  write(info: SubscriptionInfo): Promise<void> {
    return this.presence.put(info.id, encode(info), indexesOf(info), this.leaseMs);
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
    return this.presence.replace(next.id, current.version, encode(next), indexesOf(next), this.leaseMs);
  }

  /**
   * Writes a live subscription's changed record, but only over the record
   * of the same stream: one removed meanwhile (an unregister racing a
   * channel update) is not brought back, and one a resume took to another
   * stream is not written back to this one. Returns whether it wrote.
   */
  async update(info: SubscriptionInfo): Promise<boolean> {
    for (let attempt = 0; attempt < 5; attempt++) {
      const current = await this.readVersioned(info.id);
      if (!current || current.info.connectionId !== info.connectionId) return false;
      if (await this.replace(current, info)) return true;
    }
    return false;
  }

  /** Renews the lease of a live record, to `ttlMs` from now (default: a whole lease); `false` for one that is gone or expired. */
  renew(id: string, ttlMs = this.leaseMs): Promise<boolean> {
    return this.presence.touch(id, ttlMs);
  }

  /** `renew` for many records, in as few broker calls as the broker can. */
  renewMany(ids: readonly string[], ttlMs: readonly number[]): Promise<boolean[]> {
    if (this.presence.touchMany) return this.presence.touchMany(ids, ttlMs);
    return Promise.all(ids.map((id, i) => this.presence.touch(id, ttlMs[i]!)));
  }

  /** Removes the record and returns it; of several servers racing, exactly one gets it (and announces the leave). */
  async remove(id: string): Promise<SubscriptionInfo | undefined> {
    const record = await this.presence.remove(id);
    return record === undefined ? undefined : decode(record);
  }

  /** Removes and returns those of `ids` whose lease ran out, each to exactly one caller in the cluster. */
  async takeExpired(ids: readonly string[]): Promise<SubscriptionInfo[]> {
    const taken: SubscriptionInfo[] = [];
    for (let i = 0; i < ids.length; i += lookupBatch) taken.push(...(await this.presence.takeExpired(ids.slice(i, i + lookupBatch))).map(decode));
    return taken;
  }

  /** The ids listed under `index`, live or not, in batches. */
  members(index: string): AsyncIterable<string[]> {
    return this.presence.members(index, lookupBatch);
  }

  /**
   * The live records listed under `index` that `belongs` accepts (a record
   * may have just moved to other indexes), in batches. Ids found without a
   * record are unlisted on the way.
   */
  async *find(index: string, belongs: (info: SubscriptionInfo) => boolean): AsyncIterable<SubscriptionInfo[]> {
    for await (const ids of this.presence.members(index, lookupBatch)) {
      const found = await this.presence.getMany(ids);
      const missing = ids.filter((id) => !found.has(id));
      // Left behind by a removal that did not finish (a server died in between): the store checks again before unlisting.
      if (missing.length > 0) await this.presence.unlist(index, missing);
      yield [...found.values()].map(decode).filter(belongs);
    }
  }

  /** The live records in any of `channels`, each once. */
  async inChannels(channels: readonly string[]): Promise<SubscriptionInfo[]> {
    const byId = new Map<string, SubscriptionInfo>();
    for (const channel of new Set(channels)) {
      for await (const batch of this.find(topics.channel(channel), (info) => info.channels.includes(channel))) {
        for (const info of batch) byId.set(info.id, info);
      }
    }
    return [...byId.values()];
  }

  /** The live records of a user id. */
  async ofUser(userId: string): Promise<SubscriptionInfo[]> {
    return collect(this.find(topics.userId(userId), (info) => info.userId === userId));
  }

  /** A detached record of `sessionId` with exactly these channels: what a browser's own EventSource reconnect resumes. */
  async detachedOf(sessionId: string, channels: readonly string[]): Promise<SubscriptionInfo | undefined> {
    const wanted = [...channels].sort().join(',');
    const matches = (info: SubscriptionInfo) => info.sessionId === sessionId && info.detached === true && [...info.channels].sort().join(',') === wanted;
    for await (const batch of this.find(topics.session(sessionId), matches)) if (batch.length > 0) return batch[0];
    return undefined;
  }

  /** Every live record in the cluster: server by server, as each server lists its own. */
  async all(): Promise<SubscriptionInfo[]> {
    const byId = new Map<string, SubscriptionInfo>();
    for await (const servers of this.presence.members(serversIndex, lookupBatch)) {
      for (const serverId of servers.map(serverIdOf)) {
        for await (const batch of this.find(topics.server(serverId), (info) => info.serverId === serverId)) {
          for (const info of batch) byId.set(info.id, info);
        }
      }
    }
    return [...byId.values()];
  }

}

/** The record id of a server's registration, and back: apart from subscription ids, which are 20 letters and digits. */
export const serverRecordId = (serverId: string) => `~${serverId}`;
const serverIdOf = (recordId: string) => recordId.slice(1);

async function collect<T>(batches: AsyncIterable<T[]>): Promise<T[]> {
  const all: T[] = [];
  for await (const batch of batches) all.push(...batch);
  return all;
}
