import test from 'ava';
import { buildMeta, type SubscriptionInfo } from '../src/records.js';
import { EventSubscription } from '../src/subscription.js';
import { MemorySink } from './helpers/memory-sink.js';

function record(channels = ['home']): SubscriptionInfo {
  const base = { id: 'A'.repeat(20), userId: '-1', displayName: 'user1', channels, createdAt: 1, isAuthenticated: false, profileUrl: 'p', serverId: 's' };
  return { ...base, meta: buildMeta(base) };
}

test('without a history, frames are numbered 1, 2, 3 per subscription, as ServiceStack does', (t) => {
  const sink = new MemorySink();
  const sub = new EventSubscription(record(), sink);
  sub.send('cmd.onConnect', '{}');
  sub.deliver(undefined, 'cmd.chat', '"a"', 'home');
  sub.deliver(undefined, 'cmd.chat', '"b"');
  t.deepEqual(sink.writes, ['id: 1\ndata: cmd.onConnect {}\n\n', 'id: 2\ndata: home@cmd.chat "a"\n\n', 'id: 3\ndata: cmd.chat "b"\n\n']);
});

test('with history ids, an event not above the last one is a duplicate and is dropped; frames outside the history repeat the last id', (t) => {
  const sink = new MemorySink();
  const sub = new EventSubscription(record(), sink, { ownNumbering: false });
  sub.lastEventId = 100;
  sub.send('cmd.onConnect', '{}');
  sub.deliver(101, 'cmd.n', '1');
  sub.deliver(101, 'cmd.n', '1 again');
  sub.deliver(99, 'cmd.n', 'old');
  sub.send('cmd.onHeartbeat', '{}');
  sub.deliver(105, 'cmd.n', '5');
  t.deepEqual(sink.ids, [100, 101, 101, 105]);
  t.false(sink.writes.some((w) => w.includes('again') || w.includes('old')));
});

test('held events wait for the replay, which goes first; what the replay wrote is not written twice', (t) => {
  const sink = new MemorySink();
  const sub = new EventSubscription(record(), sink, { ownNumbering: false });
  sub.lastEventId = 10;
  sub.hold();
  sub.deliver(12, 'cmd.n', 'live 12');
  sub.deliver(13, 'cmd.n', 'live 13');
  t.deepEqual(sink.writes, [], 'nothing while held');
  sub.replay(11, 'cmd.n', 'replayed 11');
  sub.replay(12, 'cmd.n', 'replayed 12');
  sub.release();
  t.deepEqual(sink.ids, [11, 12, 13]);
  t.true(sink.writes[1]!.includes('replayed 12'), 'the replayed copy of 12, not the held one');
});

test('beforeWrite sees every frame; close ends the sink once and stops writing', (t) => {
  const sink = new MemorySink();
  const seen: string[] = [];
  const sub = new EventSubscription(record(['a', 'b']), sink, { beforeWrite: (s, frame) => seen.push(`${s.id}:${frame.length}`) });
  sub.send('cmd.x', '');
  t.is(seen.length, 1);
  t.true(sub.hasChannel('b'));
  sub.setChannels(['c']);
  t.is(sub.info.meta.channels, 'c', 'the meta map follows the channels');
  sub.close();
  sub.close();
  sub.send('cmd.after', '');
  t.true(sink.ended);
  t.is(sink.writes.length, 1);
  t.true(sub.isClosed);
});

test('a late event is written once to a stream open when it was published, under the last id when the stream is past it', (t) => {
  const sink = new MemorySink();
  const sub = new EventSubscription(record(), sink, { ownNumbering: false });
  sub.lastEventId = 100;
  sub.coveredToEventId = 100;
  sub.deliver(103, 'cmd.n', '3');
  t.true(sub.deliverLate(102, 'cmd.n', 'late 2'));
  t.false(sub.deliverLate(99, 'cmd.n', 'before it opened'));
  sub.coveredToEventId = 102;
  t.false(sub.deliverLate(101, 'cmd.n', 'carried by a history read'));
  t.true(sub.deliverLate(104, 'cmd.n', 'late but next'));
  sub.deliver(104, 'cmd.n', '4 again');
  t.deepEqual(sink.ids, [103, 103, 104]);
  t.deepEqual(
    sink.writes.map((w) => w.split('cmd.n ')[1]?.trim()),
    ['3', 'late 2', 'late but next'],
    'a resume from the last id replays nothing twice, and the late one is not lost',
  );
});
