// The catch-up trigger: f + 1 distinct peers, once; a commit or a failure starts the count again.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BehindRetention } from './behind-retention.ts';

test('f "pruned" answers never trigger a catch-up, however often repeated; f + 1 distinct peers do, once', () => {
  const b = new BehindRetention(() => 1);
  for (let i = 0; i < 100; i++) assert.equal(b.answered(3), undefined, 'one lying peer, repeated');
  assert.deepEqual(b.answered(10), [3, 10], 'the peers, sorted as numbers');
  assert.equal(b.answered(2), undefined, 'tripped once');
});

test('a commit starts the count again; so does a catch-up that could not be asked for', () => {
  let f = 2;
  const b = new BehindRetention(() => f);
  b.answered(0);
  b.answered(1);
  b.committed();
  assert.equal(b.answered(2), undefined, 'answers before the commit no longer count');
  assert.equal(b.answered(3), undefined);
  assert.deepEqual(b.answered(0), [0, 2, 3]);
  b.failed();
  assert.equal(b.answered(0), undefined);
  f = 1; // a new epoch's bound is read when the answer comes
  assert.deepEqual(b.answered(1), [0, 1]);
});
