import { defaultProfileUrl } from './identity.js';
import type { SubscriptionInfo } from './records.js';

/** Builds the public meta map of a subscription from its fields. */
export function buildMeta(info: Omit<SubscriptionInfo, 'meta'>, extra?: Record<string, string>): Record<string, string> {
  const meta = {
    userId: info.userId,
    isAuthenticated: String(info.isAuthenticated),
    displayName: info.displayName,
    channels: info.channels.join(','),
    createdAt: String(info.createdAt),
    profileUrl: info.profileUrl,
  };
  return extra ? Object.assign(meta, extra) : meta;
}

/**
 * The stored form of a subscription record: its JSON, less what can be
 * derived from the rest. The meta map mostly repeats the record's own
 * fields (see `buildMeta`), and the default picture is some 270 bytes: both
 * in full, a record was three times its size, held for every connection in
 * the memory broker (in Redis and NATS, in the broker, and sent whole with
 * every listing).
 *
 * So the default picture is left out, and the meta map is kept only as what
 * `buildMeta` would not make again: the keys a hook added or changed, as
 * `extraMeta`. A meta map that cannot be made again that way (a hook deleted
 * or reordered a key) is kept whole, as `meta`, and read back as it was.
 * Records of either form, and whole JSON records of earlier versions, read
 * back the same.
 */
interface StoredRecord extends Omit<SubscriptionInfo, 'meta' | 'profileUrl'> {
  profileUrl?: string;
  meta?: Record<string, string>;
  extraMeta?: Record<string, string>;
}

export function encodeRecord(info: SubscriptionInfo): string {
  const extra = extraOver(info.meta, buildMeta(info));
  // Copied key by key: a rest spread (`{ meta, ...fields }`) makes an object of a shape of its own every time, slower to make and to stringify.
  const stored: Record<string, unknown> = {};
  for (const key in info) {
    if (key === 'meta' || (key === 'profileUrl' && info.profileUrl === defaultProfileUrl)) continue;
    stored[key] = info[key as keyof SubscriptionInfo];
  }
  if (extra === undefined) stored.meta = info.meta;
  else if (extra !== null) stored.extraMeta = extra;
  return JSON.stringify(stored);
}

export function decodeRecord(text: string): SubscriptionInfo {
  const stored = JSON.parse(text) as StoredRecord;
  stored.profileUrl ??= defaultProfileUrl;
  if (stored.meta === undefined) {
    stored.meta = buildMeta(stored as SubscriptionInfo, stored.extraMeta);
    delete stored.extraMeta;
  }
  return stored as SubscriptionInfo;
}

/**
 * What `meta` holds beyond `derived`: `null` for nothing, `undefined` when
 * `buildMeta(…, extra)` would not make it again (it lacks a derived key, or
 * holds them in another order).
 */
function extraOver(meta: Record<string, string>, derived: Record<string, string>): Record<string, string> | null | undefined {
  const keys = Object.keys(meta);
  const derivedKeys = Object.keys(derived);
  if (keys.length < derivedKeys.length) return undefined;
  let extra: Record<string, string> | null = null;
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i]!;
    if (i < derivedKeys.length && key !== derivedKeys[i]) return undefined;
    if (i >= derivedKeys.length || meta[key] !== derived[key]) (extra ??= {})[key] = meta[key]!;
  }
  return extra;
}
