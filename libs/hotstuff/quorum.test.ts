// Quorum arithmetic for N = 1..22, checked against the properties it exists for rather than a
// copied table: any two quorums share an honest member, the honest members alone form a
// quorum, and the formula reduces to 2f+1 exactly when N = 3f+1.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { faultBound, quorumSize, roundRobinLeader } from './quorum.ts';
import { MAX_TIMER_DECAY_VIEWS, MAX_TIMER_LEVEL, TIMER_DECAY_VIEWS, TimerLevel, viewTimeoutMs } from './pacemaker.ts';

test('quorum sizes for N = 1..22 keep safety and liveness', () => {
  for (let n = 1; n <= 22; n++) {
    const f = faultBound(n);
    const q = quorumSize(n);
    assert.equal(f, Math.floor((n - 1) / 3), `f for N=${n}`);
    assert.ok(3 * f < n, `N=${n} tolerates f=${f}`);
    assert.ok(2 * q - n >= f + 1, `N=${n}: two quorums of ${q} share ≥ f+1 = ${f + 1}`);
    assert.ok(q <= n - f, `N=${n}: the ${n - f} honest members form a quorum of ${q}`);
    assert.ok(q * 2 >= n + f + 1 && (q - 1) * 2 < n + f + 1, `N=${n}: q is the ceiling`);
    if (n === 3 * f + 1) assert.equal(q, 2 * f + 1, `N=${n} = 3f+1`);
  }
  assert.equal(quorumSize(1), 1, 'a single member is its own quorum');
});

/**
 * The definitions, computed by search rather than by formula: f is the largest number of faults
 * with 3f < N; the quorum is the least q for which any two q-subsets of the N members share more
 * than f members (so at least one honest one). The overlap of two q-subsets is at least 2q − N,
 * and some pair reaches exactly that, so "any two share > f" is "2q − N > f".
 */
function byDefinition(n: number): { f: number; q: number } {
  let f = 0;
  while (3 * (f + 1) < n) f++;
  let q = 1;
  while (2 * q - n <= f) q++;
  return { f, q };
}

test('quorum and fault bound equal their definitions for N = 1..64, and are not 2f+1 when N != 3f+1', () => {
  for (let n = 1; n <= 64; n++) {
    const { f, q } = byDefinition(n);
    assert.equal(faultBound(n), f, `f for N=${n}`);
    assert.equal(quorumSize(n), q, `quorum for N=${n}`);
    assert.ok(q <= n - f, `N=${n}: the honest members alone are a quorum`);
  }
  // The cases where 2f+1 would be wrong: N = 6 (f = 1, 2f+1 = 3 could be disjoint), 9, 20, 21.
  for (const [n, q] of [[4, 3], [5, 4], [6, 4], [7, 5], [9, 6], [10, 7], [19, 13], [20, 14], [21, 14]] as const) {
    assert.equal(quorumSize(n), q, `N=${n}`);
  }
});

test('round-robin leader is view mod N', () => {
  for (const n of [1, 4, 7]) for (let v = 0; v < 20; v++) assert.equal(roundRobinLeader(v, n), v % n);
});

test('view timeout backs off from the last commit and is capped', () => {
  const cfg = { baseMs: 100, multiplier: 2, capMs: 1000 };
  assert.equal(viewTimeoutMs(cfg, 5, 4), 100, 'the view right after a commit');
  assert.equal(viewTimeoutMs(cfg, 6, 4), 200);
  assert.equal(viewTimeoutMs(cfg, 7, 4), 400);
  assert.equal(viewTimeoutMs(cfg, 50, 4), 1000, 'capped');
  assert.equal(viewTimeoutMs(cfg, 1e9, 0), 1000, 'no overflow');
});

test('the timer level adds to the back-off, and the cap still holds', () => {
  const cfg = { baseMs: 100, multiplier: 2, capMs: 1000 };
  assert.equal(viewTimeoutMs(cfg, 5, 4, 1), 200, 'right after a commit, one level up');
  assert.equal(viewTimeoutMs(cfg, 6, 4, 2), 800);
  assert.equal(viewTimeoutMs(cfg, 5, 4, 16), 1000, 'capped');
});

const slow = (leader: number) => ({ cause: 'new-view-quorum' as const, timedOut: true, voted: true, leader });
const onTime = (leader: number) => ({ cause: 'commit' as const, timedOut: false, voted: true, leader });

test('the timer level rises once live views of f + 1 distinct leaders outlived their timer', () => {
  const t = new TimerLevel(1); // N = 4
  t.viewEnded(slow(3));
  t.viewEnded({ cause: 'commit', timedOut: true, voted: true, leader: 3 });
  assert.equal(t.level, 0, 'one leader\'s slow views, however many, are not enough: it may be faulty');
  t.viewEnded({ cause: 'new-view-quorum', timedOut: true, voted: false, leader: 0 });
  assert.equal(t.level, 0, 'no proposal reached us: a dead leader, not a short timer');
  t.viewEnded({ cause: 'qc', timedOut: false, voted: true, leader: 1 });
  assert.equal(t.level, 0, 'a jump to a higher QC says nothing about the timer');
  t.viewEnded({ cause: 'commit', timedOut: true, voted: true, leader: 1 });
  assert.equal(t.level, 1, 'a second leader\'s view committed, but after our timer fired');
  t.viewEnded(slow(2));
  assert.equal(t.level, 1, 'the leaders count again from the last change');
  t.viewEnded(slow(0));
  assert.equal(t.level, 2);
  for (let i = 0; i < 4 * MAX_TIMER_LEVEL; i++) t.viewEnded(slow(i % 4));
  assert.equal(t.level, MAX_TIMER_LEVEL, 'bounded');

  const big = new TimerLevel(6); // N = 21
  for (let leader = 0; leader < 6; leader++) big.viewEnded(slow(leader));
  assert.equal(big.level, 0, 'six faulty leaders at N = 21 do not raise it');
  big.viewEnded(slow(6));
  assert.equal(big.level, 1);
});

test('the timer level comes down after a run of on-time commits, and the run grows when a decay was premature', () => {
  const t = new TimerLevel(1);
  for (const l of [0, 1, 2, 3]) t.viewEnded(slow(l));
  assert.equal(t.level, 2);
  for (let i = 0; i < TIMER_DECAY_VIEWS - 1; i++) t.viewEnded(onTime(i % 4));
  assert.equal(t.level, 2, 'one view short');
  t.viewEnded(slow(3));
  t.viewEnded(onTime(0));
  assert.equal(t.level, 1, 'one leader\'s slow view does not break the run');
  assert.equal(t.decayViews, TIMER_DECAY_VIEWS);
  t.viewEnded(slow(1));
  t.viewEnded(slow(2));
  assert.equal(t.level, 2, 'views were slow again at the lower level');
  assert.equal(t.decayViews, 2 * TIMER_DECAY_VIEWS, 'so the next decay waits twice as long');
  for (let i = 0; i < 2 * TIMER_DECAY_VIEWS - 1; i++) t.viewEnded(onTime(i % 4));
  assert.equal(t.level, 2);
  t.viewEnded(onTime(0));
  assert.equal(t.level, 1);
  for (let i = 0; i < 2 * TIMER_DECAY_VIEWS; i++) t.viewEnded(onTime(i % 4));
  assert.equal(t.level, 0, 'two decays in a row');
  assert.equal(t.decayViews, TIMER_DECAY_VIEWS, 'reset the run');
  for (let k = 0; k < 20; k++) {
    t.viewEnded(slow(0));
    t.viewEnded(slow(1));
    for (let i = 0; i < t.decayViews; i++) t.viewEnded(onTime(i % 4));
  }
  assert.equal(t.decayViews, MAX_TIMER_DECAY_VIEWS, 'bounded');
  for (let i = 0; i < 5 * MAX_TIMER_DECAY_VIEWS; i++) t.viewEnded(onTime(i % 4));
  assert.equal(t.level, 0, 'never below 0');
});

test('a leader that proposes and then stalls every view it leads does not raise the timer level', () => {
  // N = 4, one Byzantine member: its view is alive (we voted) and then times out, every rotation.
  const cfg = { baseMs: 2000, multiplier: 1.5, capMs: 60_000 };
  const t = new TimerLevel(1);
  let highest = 0;
  for (let rotation = 0; rotation < 500; rotation++) {
    t.viewEnded(slow(3));
    for (let leader = 0; leader < 3; leader++) t.viewEnded(onTime(leader));
    highest = Math.max(highest, t.level);
  }
  assert.equal(highest, 0, 'the stalls alone never raise the level');
  assert.equal(viewTimeoutMs(cfg, 10, 9, t.level), cfg.baseMs, 'its views cost the base timeout');
  // Honest views that are slow too still raise it: the stalling leader plus one honest one.
  t.viewEnded(slow(3));
  t.viewEnded(slow(0));
  assert.equal(t.level, 1);
});
