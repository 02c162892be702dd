import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FIRST_MUTE_MS, MAX_MUTE_MS, PeerPenalties, REFUSALS_PER_STRIKE, STRIKES_TO_MUTE, WINDOW_MS } from './penalties.ts';

test('strikes inside the window mute a validator, for longer each time; others are untouched', () => {
  let t = 1_000_000;
  const mutes: Array<[number, number]> = [];
  const p = new PeerPenalties({ now: () => t, onMute: (peer, ms) => mutes.push([peer, ms]) });
  for (let i = 1; i < STRIKES_TO_MUTE; i++) assert.equal(p.strike(2), 0);
  assert.equal(p.muted(2), false);
  assert.deepEqual(mutes, []);
  assert.equal(p.strike(2), FIRST_MUTE_MS);
  assert.deepEqual(mutes, [[2, FIRST_MUTE_MS]], 'each mute is reported once, with its length');
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

test('refusals strike once per REFUSALS_PER_STRIKE: a flood mutes, an honest trickle does not', () => {
  let t = 0;
  const p = new PeerPenalties({ now: () => t });
  // An honest member catching up: a few refused requests a second, for a minute.
  for (let i = 0; i < 60 * 4; i++) { p.refusal(1); t += 250; }
  assert.equal(p.muted(1), false, 'four refusals a second never mute');
  let muted = 0;
  let n = 0;
  while (!muted) { muted = p.refusal(2); n++; }
  assert.equal(n, REFUSALS_PER_STRIKE * STRIKES_TO_MUTE, 'a flood is muted after STRIKES_TO_MUTE strikes of refusals');
  assert.ok(p.muted(2));
});

test('refusal logs are throttled per peer and reason: 1, 2, 4, 8, …', () => {
  const p = new PeerPenalties({ now: () => 0 });
  const logged = [];
  for (let i = 1; i <= 20; i++) if (p.logCount(3, 'undecodable')) logged.push(i);
  assert.deepEqual(logged, [1, 2, 4, 8, 16]);
  assert.equal(p.logCount(3, 'not_leader'), 1, 'another reason is counted apart');
  assert.equal(p.logCount(2, 'undecodable'), 1, 'and another peer');
});
