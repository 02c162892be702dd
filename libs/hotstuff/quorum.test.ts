// Quorum arithmetic for N = 1..22, checked against the properties it exists for rather than a
// copied table: any two quorums share an honest member, the honest members alone form a
// quorum, and the formula reduces to 2f+1 exactly when N = 3f+1.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { faultBound, quorumSize, roundRobinLeader } from './quorum.ts';
import { viewTimeoutMs } from './pacemaker.ts';

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
