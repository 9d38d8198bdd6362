import test from 'ava';
import { defaultProfileUrl } from '../src/identity.js';
import { decodeRecord, encodeRecord } from '../src/record-format.js';
import { buildMeta, type SubscriptionInfo } from '../src/records.js';

function record(changes: Partial<SubscriptionInfo> = {}, extra?: Record<string, string>): SubscriptionInfo {
  const base = {
    id: 'A'.repeat(20),
    userId: '-1',
    displayName: 'user1',
    sessionId: 'S'.repeat(20),
    channels: ['home', 'lobby'],
    createdAt: 1_700_000_000_000,
    isAuthenticated: false,
    profileUrl: defaultProfileUrl,
    serverId: 'srv1',
    connectionId: 'C'.repeat(20),
    ...changes,
  };
  return { ...base, meta: buildMeta(base, extra) };
}

/** The record read back, with its keys in the order they were read (deepEqual alone would not tell the meta map's order). */
const roundTrip = (info: SubscriptionInfo) => decodeRecord(encodeRecord(info));
const metaOrder = (info: SubscriptionInfo) => Object.entries(info.meta);

test('a record with the default picture and a derived meta map is stored without either, and reads back whole', (t) => {
  const info = record();
  const stored = encodeRecord(info);
  t.false(stored.includes('svg'));
  t.false(stored.includes('"meta"'));
  t.false(stored.includes('extraMeta'));
  t.true(stored.length < JSON.stringify(info).length / 2);
  const back = roundTrip(info);
  t.deepEqual(back, info);
  t.deepEqual(metaOrder(back), metaOrder(info));
});

test('keys a hook added to the meta map, or values it changed, are kept and read back in their places', (t) => {
  const info = record({}, { room: 'blue', displayName: 'Shown Otherwise' });
  const stored = JSON.parse(encodeRecord(info)) as Record<string, unknown>;
  t.deepEqual(stored.extraMeta, { displayName: 'Shown Otherwise', room: 'blue' });
  const back = roundTrip(info);
  t.deepEqual(back, info);
  t.deepEqual(metaOrder(back), metaOrder(info));
});

test('a meta map a hook took a derived key from, or reordered, is stored whole', (t) => {
  const deleted = record();
  delete deleted.meta.profileUrl;
  t.deepEqual(roundTrip(deleted), deleted);
  const reordered = record();
  reordered.meta = { channels: reordered.meta.channels!, ...reordered.meta };
  const back = roundTrip(reordered);
  t.deepEqual(metaOrder(back), metaOrder(reordered));
});

test('a picture of its own is stored, and a meta map out of step with a channel change reads back as it was', (t) => {
  const own = record({ profileUrl: 'https://example.com/me.png' });
  t.true(encodeRecord(own).includes('me.png'));
  t.deepEqual(roundTrip(own), own);
  const stale = { ...record(), channels: ['home'] };
  t.deepEqual(roundTrip(stale), stale);
  t.is(roundTrip(stale).meta.channels, 'home,lobby');
});

test('a record stored whole, as earlier versions did, reads back the same', (t) => {
  const info = record({}, { room: 'blue' });
  t.deepEqual(decodeRecord(JSON.stringify(info)), info);
});
