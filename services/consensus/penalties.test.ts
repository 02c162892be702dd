import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FIRST_MUTE_MS, MAX_MUTE_MS, PeerPenalties, STRIKES_TO_MUTE, WINDOW_MS } from './penalties.ts';

test('strikes inside the window mute a validator, for longer each time; others are untouched', () => {
  let t = 1_000_000;
  const p = new PeerPenalties({ now: () => t });
  for (let i = 1; i < STRIKES_TO_MUTE; i++) assert.equal(p.strike(2), 0);
  assert.equal(p.muted(2), false);
  assert.equal(p.strike(2), FIRST_MUTE_MS);
  assert.equal(p.muted(2), true);
  assert.equal(p.muted(1), false, 'another validator is not muted');
  t += FIRST_MUTE_MS;
  assert.equal(p.muted(2), false, 'the mute ends');
  for (let i = 1; i < STRIKES_TO_MUTE; i++) p.strike(2);
  assert.equal(p.strike(2), 2 * FIRST_MUTE_MS, 'the second mute is twice as long');
  for (let k = 0; k < 20; k++) { t += MAX_MUTE_MS; for (let i = 0; i < STRIKES_TO_MUTE; i++) p.strike(2); }
  t += 1;
  assert.ok(p.muted(2));
  assert.ok(p.summary().find((s) => s.peer === 2)!.mutes > 2);
});

test('strikes spread wider than the window never mute', () => {
  let t = 0;
  const p = new PeerPenalties({ now: () => t });
  for (let i = 0; i < 10 * STRIKES_TO_MUTE; i++) {
    assert.equal(p.strike(0), 0, `strike ${i}`);
    t += WINDOW_MS / (STRIKES_TO_MUTE - 2);
  }
  assert.equal(p.muted(0), false);
});
