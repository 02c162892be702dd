import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EQUIVOCATION_STRIKES, USELESS_PER_VIEW, FIRST_MUTE_MS, MAX_MUTE_MS, PeerPenalties, REFUSALS_PER_STRIKE, REPEATED_REFUSAL_WEIGHT, STRIKES_TO_MUTE, USELESS_BURST, USELESS_PER_SECOND, WINDOW_MS } from './penalties.ts';

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

test('a repeated request counts REPEATED_REFUSAL_WEIGHT refusals: a flood of one request mutes after 64; a follower polling at its fastest never', () => {
  let t = 0;
  const p = new PeerPenalties({ now: () => t });
  // A follower at the tip asks again every 300 ms (follower.ts IDLE_POLL_MS): were each a repeat, for a minute.
  for (let i = 0; i < 200; i++) { p.refusal(1, REPEATED_REFUSAL_WEIGHT); t += 300; }
  assert.equal(p.muted(1), false, 'a repeat every 300 ms never mutes');
  let muted = 0;
  let n = 0;
  while (!muted) { muted = p.refusal(2, REPEATED_REFUSAL_WEIGHT); n++; }
  assert.equal(n, (REFUSALS_PER_STRIKE / REPEATED_REFUSAL_WEIGHT) * STRIKES_TO_MUTE);
  assert.equal(n, 64);
  // A weight above a strike's worth is one strike, not more.
  const q = new PeerPenalties({ now: () => t });
  for (let i = 1; i < STRIKES_TO_MUTE; i++) assert.equal(q.refusal(3, 10 * REFUSALS_PER_STRIKE), 0);
  assert.ok(q.refusal(3, 10 * REFUSALS_PER_STRIKE) > 0, 'the sixteenth mutes');
});

test('refusal logs are throttled per peer and reason: 1, 2, 4, 8, …', () => {
  const p = new PeerPenalties({ now: () => 0 });
  const logged = [];
  for (let i = 1; i <= 20; i++) if (p.logCount(3, 'undecodable')) logged.push(i);
  assert.deepEqual(logged, [1, 2, 4, 8, 16]);
  assert.equal(p.logCount(3, 'not_leader'), 1, 'another reason is counted apart');
  assert.equal(p.logCount(2, 'undecodable'), 1, 'and another peer');
});

test('useless messages: free at the rate honest members send them (per second and per view), a strike beyond', () => {
  let t = 0;
  const p = new PeerPenalties({ now: () => t });
  // An honest member for ten minutes: five late or repeated messages in each of ten views a second.
  for (let s = 0; s < 600; s++) {
    for (let v = 0; v < 10; v++) { p.viewEntered(); for (let k = 0; k < 5; k++) assert.equal(p.useless(1), 0, `second ${s}`); }
    t += 1000;
  }
  assert.equal(p.muted(1), false);
  // A member stuck in one view (no credit per view): USELESS_PER_SECOND a second is free.
  for (let s = 0; s < 600; s++) { for (let k = 0; k < USELESS_PER_SECOND; k++) assert.equal(p.useless(4), 0); t += 1000; }
  // A flood: the burst, then a strike each, muted STRIKES_TO_MUTE later.
  let n = 0;
  while (!p.muted(2)) { p.useless(2); n++; }
  assert.equal(n, USELESS_BURST + STRIKES_TO_MUTE, 'the burst is free, then every useless message is a strike');
});

test('forgiveness lifts a mute and clears the record: the next mute is a first one', () => {
  let t = 0;
  const p = new PeerPenalties({ now: () => t });
  for (let m = 0; m < 3; m++) { for (let i = 0; i < STRIKES_TO_MUTE; i++) p.strike(3); t += MAX_MUTE_MS; }
  for (let i = 0; i < STRIKES_TO_MUTE; i++) p.strike(3);
  assert.ok(p.muted(3));
  assert.ok(p.mutedUntil(3) > t);
  assert.equal(p.forgive(3), true, 'it was muted');
  assert.equal(p.muted(3), false);
  assert.equal(p.mutedUntil(3), 0);
  let ms = 0;
  for (let i = 0; i < STRIKES_TO_MUTE; i++) ms = p.strike(3);
  assert.equal(ms, FIRST_MUTE_MS, 'its history went with the forgiveness');
  assert.equal(p.forgive(1), false, 'a peer never muted');
});

test('useless messages cost their size: big ones spend the budget and earn strikes by their cost, an honest trickle of one-token messages stays free', () => {
  let t = 0;
  const p = new PeerPenalties({ now: () => t });
  // An honest member: five one-token messages (late votes, QCs) a view, four views a second, for ten minutes.
  for (let s = 0; s < 600; s++) {
    for (let v = 0; v < 4; v++) { p.viewEntered(); for (let k = 0; k < 5; k++) assert.equal(p.useless(1, 1), 0); }
    t += 1000;
  }
  assert.equal(p.muted(1), false);
  // Proposals of 47 tokens (4 MiB) for views far ahead, five a second: the burst lasts about a
  // second, then the first one beyond it is 47 strikes — muted at once, as a flood of small ones is.
  let sent = 0;
  let mutedAfter = 0;
  while (!p.muted(2)) {
    p.viewEntered();
    mutedAfter = p.useless(2, 47);
    sent++;
    t += 200;
  }
  assert.ok(mutedAfter > 0);
  assert.ok(sent <= Math.ceil(USELESS_BURST / 30) + 1, `muted after ${sent} proposals (within about a second and a half)`);
  // Counted as one token each, they would not be muted within a minute (5 a second against 16 + 8 a view).
  const q = new PeerPenalties({ now: () => t });
  for (let k = 0; k < 300; k++) { q.viewEntered(); q.useless(3, 1); t += 200; }
  assert.equal(q.muted(3), false);
  assert.ok(USELESS_PER_VIEW > 0);
});

test('one equivocation mutes: it is proof of a fault and weighs EQUIVOCATION_STRIKES, a whole mute', () => {
  const t = 1_000_000;
  const p = new PeerPenalties({ now: () => t });
  for (let i = 0; i < STRIKES_TO_MUTE - 1; i++) assert.equal(p.strike(1), 0, `refused frame ${i + 1}`);
  assert.equal(p.muted(1), false, 'refused frames mute only at STRIKES_TO_MUTE');
  const q = new PeerPenalties({ now: () => t });
  assert.equal(q.strike(1, EQUIVOCATION_STRIKES), FIRST_MUTE_MS, 'the first equivocation mutes');
  assert.equal(q.muted(1), true);
  assert.equal(q.muted(2), false, 'only the offender');
});

test('a new epoch renumbers the validators: a mute and its history follow the member; a removed member\'s record goes', () => {
  let t = 1_000_000;
  const p = new PeerPenalties({ now: () => t });
  assert.equal(p.strike(3, STRIKES_TO_MUTE), FIRST_MUTE_MS, 'validator 3 muted in epoch e');
  p.strike(2, STRIKES_TO_MUTE);
  // Epoch e + 1 removed validator 2: validator 3 is number 2 now, 2 is gone.
  p.renumber((peer) => (peer === 2 ? undefined : peer === 3 ? 2 : peer));
  assert.equal(p.muted(2), true, 'the mute followed the member to its new number');
  assert.equal(p.muted(3), false, 'nobody is number 3 any more');
  t += FIRST_MUTE_MS + 1;
  assert.equal(p.muted(2), false);
  assert.equal(p.strike(2, STRIKES_TO_MUTE), 2 * FIRST_MUTE_MS, 'its history moved too: its next mute is a second one');
});

test('strikes while muted count for nothing: work begun before the mute does not lengthen it', () => {
  let t = 1_000_000;
  const mutes: number[] = [];
  const p = new PeerPenalties({ now: () => t, onMute: (_peer, ms) => mutes.push(ms) });
  // A forged 4 MiB proposal strikes by its size and mutes; three more were being checked at the time.
  assert.equal(p.strike(3, 60), FIRST_MUTE_MS);
  for (let i = 0; i < 3; i++) assert.equal(p.strike(3, 60), 0, `in-flight forged proposal ${i + 1}`);
  assert.equal(p.mutedUntil(3), t + FIRST_MUTE_MS, 'the mute is as long as the first one set');
  assert.deepEqual(mutes, [FIRST_MUTE_MS], 'muted once');
  t += FIRST_MUTE_MS;
  assert.equal(p.strike(3, 60), 2 * FIRST_MUTE_MS, 'the next offence after the mute is the second mute, not the fifth');
});
