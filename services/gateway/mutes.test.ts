// The consumer's mutes: they end by themselves, ms = 0 lifts one, a detach clears them all, and
// the table stays bounded (validators by the set, other peers by MAX_OUTSIDE_MUTES).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_MUTE_MS, MAX_OUTSIDE_MUTES, MuteTable } from './mutes.ts';

function table() {
  let now = 1_000;
  const t = new MuteTable({ now: () => now });
  return { t, advance: (ms: number) => { now += ms; }, now: () => now };
}

test('a mute ends by itself after its time; ms = 0 lifts it; a long one is capped', () => {
  const { t, advance, now } = table();
  t.set('v1', true, 5_000, 'offences');
  assert.equal(t.untilMs('v1'), now() + 5_000);
  advance(4_999);
  assert.equal(t.muted('v1'), true);
  advance(1);
  assert.equal(t.muted('v1'), false);
  assert.equal(t.size, 0, 'an expired mute is forgotten');
  t.set('v1', true, 5_000, 'offences');
  t.set('v1', true, 0, 'forgiven');
  assert.equal(t.muted('v1'), false);
  t.set('v2', true, 10 * MAX_MUTE_MS, 'bug');
  assert.equal(t.untilMs('v2'), now() + MAX_MUTE_MS);
});

test('validators\' mutes are bounded by the set; others\' by MAX_OUTSIDE_MUTES, the soonest to end evicted first; a detach clears all', () => {
  const { t } = table();
  t.set('v1', true, 5_000, 'offences');
  t.set('v2', true, 5_000, 'offences');
  t.retainValidators((id) => id === 'v2');
  assert.equal(t.muted('v1'), false, 'v1 left the validator set');
  assert.equal(t.muted('v2'), true);
  t.set('short', false, 10, 'offences');
  for (let i = 0; i < MAX_OUTSIDE_MUTES + 50; i++) t.set(`o${i}`, false, 60_000 + i, 'offences');
  assert.equal(t.size, 1 + MAX_OUTSIDE_MUTES);
  assert.equal(t.muted('short'), false, 'the one ending soonest went first');
  assert.equal(t.muted(`o${MAX_OUTSIDE_MUTES + 49}`), true);
  t.clear();
  assert.equal(t.size, 0);
});
