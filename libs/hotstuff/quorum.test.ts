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

test('quorum is more than 2f+1 when N is not 3f+1', () => {
  // N = 6: f = 1 but 2f+1 = 3 quorums could be disjoint; the formula gives 4.
  assert.equal(faultBound(6), 1);
  assert.ok(2 * 3 - 6 < 1, '2f+1 would not intersect');
  assert.ok(2 * quorumSize(6) - 6 >= 2);
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
