import type { EventHistory, HistoryEntry } from './broker.js';
import { decodeEnvelope } from './envelope.js';
import type { EventSubscription } from './subscription.js';

/** What a subscription missed: events to replay, and why more may be missing (the gap). */
export interface Missed {
  entries: HistoryEntry[];
  gap?: string;
}

/**
 * Reads from `history` what `sub` missed after `afterId` among `topics`, and
 * sets the subscription's last id to where live delivery continues. When the
 * history no longer holds everything after `afterId`, that is a gap, and
 * live delivery continues from the history's head, even if that is below the
 * old id (a backend restored from an older snapshot numbers from there).
 */
export async function readMissed(
  history: EventHistory | undefined,
  sub: EventSubscription,
  topics: ReadonlySet<string>,
  afterId: number,
): Promise<Missed> {
  if (!history) return { entries: [], gap: 'this broker keeps no history' };
  const read = await history.read(afterId, topics);
  if (!read.complete) {
    sub.lastEventId = await history.head();
    return { entries: [], gap: 'events after this id are no longer kept' };
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
