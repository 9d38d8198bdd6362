import type { EventHistory, HistoryEntry, HistoryRead } from './broker.js';
import { decodeEnvelope } from './envelope.js';
import type { EventSubscription } from './subscription.js';

/** What a subscription missed: events to replay, and why more may be missing (the gap). */
export interface Missed {
  entries: HistoryEntry[];
  gap?: string;
}

/**
 * The continuity rule, for every broker: does `read` hold everything after
 * `afterId`? Returns why not, or `undefined` when it does. The history only
 * reports what it keeps (`first`, `head`); this decides.
 */
export function gapOf(read: HistoryRead, afterId: number): string | undefined {
  // Above the head is an id this history never gave (a backend restored from an older snapshot numbers lower).
  if (afterId > read.head || afterId + 1 < read.first) return 'events after this id are no longer kept';
  return undefined;
}

/**
 * Reads from `history` what `sub` missed after `afterId` among `topics`, and
 * sets the subscription's last id to where live delivery continues. On a
 * gap, live delivery continues from the history's head, even if that is
 * below the old id.
 */
export async function readMissed(
  history: EventHistory | undefined,
  sub: EventSubscription,
  topics: ReadonlySet<string>,
  afterId: number,
): Promise<Missed> {
  if (!history) return { entries: [], gap: 'this broker keeps no history' };
  const read = await history.read(afterId, topics);
  // An adapter written against an older contract (which returned `complete`) must not pass for complete.
  if (!Number.isFinite(read.first) || !Number.isFinite(read.head)) throw new Error('the broker history returned no first and head ids; see HistoryRead');
  // The read carried everything up to its head: nothing there can be owed to the stream late.
  sub.coveredToEventId = Math.max(sub.coveredToEventId, read.head);
  const gap = gapOf(read, afterId);
  if (gap !== undefined) {
    sub.lastEventId = read.head;
    return { entries: [], gap };
  }
  sub.lastEventId = Math.max(sub.lastEventId, afterId);
  return { entries: read.entries };
}

/**
 * Writes the replay (ahead of any live events the subscription holds back),
 * then `cmd.onReset {reason, lastEventId}` when there is a gap, so the
 * client knows to reload its state. Returns how many events were replayed.
 */
export function writeMissed(sub: EventSubscription, missed: Missed, afterId?: number): number {
  let replayed = 0;
  for (const entry of missed.entries) {
    const envelope = decodeEnvelope(entry.payload);
    if (envelope.kind !== 'notify') continue;
    if (envelope.filter !== undefined && !sub.hasChannel(envelope.filter)) continue;
    sub.replay(entry.id, envelope.selector, envelope.body, envelope.channel);
    replayed++;
  }
  if (missed.gap !== undefined) {
    const body = afterId !== undefined ? { reason: missed.gap, lastEventId: String(afterId) } : { reason: missed.gap };
    sub.send('cmd.onReset', JSON.stringify(body));
  }
  return replayed;
}
