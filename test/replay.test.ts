import test from 'ava';
import type { EventHistory, HistoryRead } from '../src/broker.js';
import { encodeEnvelope } from '../src/envelope.js';
import { buildMeta, type SubscriptionInfo } from '../src/records.js';
import { gapOf, readMissed, writeMissed } from '../src/replay.js';
import { EventSubscription } from '../src/subscription.js';
import { MemorySink } from './helpers/memory-sink.js';

const read = (first: number, head: number): HistoryRead => ({ entries: [], first, head });

test('the gap rule: complete when every event after the id is kept, a gap otherwise', (t) => {
  t.is(gapOf(read(101, 100), 100), undefined, 'up to date, nothing kept');
  t.is(gapOf(read(50, 100), 80), undefined, 'the id is inside what is kept');
  t.is(gapOf(read(81, 100), 80), undefined, 'the first kept event follows the id');
  t.truthy(gapOf(read(82, 100), 80), 'the event right after the id is gone');
  t.truthy(gapOf(read(1, 100), 120), 'an id above the head');
  t.truthy(gapOf(read(1_000_001, 1_000_050), 7), 'an id from an earlier epoch');
});

function sub(channels: string[]): { sub: EventSubscription; sink: MemorySink } {
  const base = { id: 'B'.repeat(20), userId: '-2', displayName: 'user2', channels, createdAt: 1, isAuthenticated: false, profileUrl: 'p', serverId: 's' };
  const info: SubscriptionInfo = { ...base, meta: buildMeta(base) };
  const sink = new MemorySink();
  return { sub: new EventSubscription(info, sink, { ownNumbering: false }), sink };
}

const history = (result: HistoryRead): EventHistory => ({
  publish: async () => 0,
  head: async () => result.head,
  read: async () => result,
});

test('a complete replay writes the channel events in order, skipping filtered ones; live delivery continues after the id', async (t) => {
  const { sub: s, sink } = sub(['home']);
  const notify = (body: string, filter?: string) => encodeEnvelope({ kind: 'notify', selector: 'cmd.n', body, channel: filter ? undefined : 'home', filter });
  const missed = await readMissed(
    history({ entries: [{ id: 8, topic: 'ch.home', payload: notify('"8"') }, { id: 9, topic: 'uid.-2', payload: notify('"9"', 'elsewhere') }, { id: 10, topic: 'all', payload: encodeEnvelope({ kind: 'pulse' }) }], first: 5, head: 10 }),
    s,
    new Set(['ch.home']),
    7,
  );
  t.is(missed.gap, undefined);
  t.is(s.lastEventId, 7);
  t.is(writeMissed(s, missed, 7), 1, 'only the notification for its channels');
  t.deepEqual(sink.writes, ['id: 8\ndata: home@cmd.n "8"\n\n']);
});

test('a gap sends cmd.onReset with the reason and the id, and live delivery continues from the head', async (t) => {
  const { sub: s, sink } = sub(['home']);
  const missed = await readMissed(history(read(50, 90)), s, new Set(['ch.home']), 10);
  t.regex(missed.gap!, /no longer kept/);
  t.is(s.lastEventId, 90);
  writeMissed(s, missed, 10);
  t.deepEqual(sink.writes, ['id: 90\ndata: cmd.onReset {"reason":"events after this id are no longer kept","lastEventId":"10"}\n\n']);
  const none = await readMissed(undefined, sub(['x']).sub, new Set(), 3);
  t.regex(none.gap!, /keeps no history/);
});
