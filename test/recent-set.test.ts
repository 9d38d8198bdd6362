import test from 'ava';
import { RecentSet } from '../src/recent-set.js';

test('a recent set remembers the last values added and forgets the oldest', (t) => {
  const recent = new RecentSet(3);
  t.true(recent.add(1));
  t.false(recent.add(1));
  t.true(recent.add(2));
  t.true(recent.add(3));
  t.true(recent.add(4), 'the fourth pushes the first out');
  t.true(recent.add(1), 'so the first counts as new again');
  t.false(recent.add(4));
  t.false(recent.add(3));
});
