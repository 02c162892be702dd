// Idle views in the simulator (waitForWork, libs/hotstuff/idle.ts): a federation with nothing to
// order commits only heartbeats and changes no view in between; a client's transaction commits at
// once, also when the leader it reached first is dead; faults keep safety and liveness.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runScenario } from './simulator.ts';
import type { Scenario } from './scenario.ts';

const base: Scenario = { n: 4, seed: 7, healAtMs: 0, liveness: false, maxTimeMs: 10_000 };

function safe(s: Scenario) {
  const r = runScenario(s);
  assert.deepEqual(r.violations, [], JSON.stringify(r.violations.slice(0, 3)));
  return r;
}

test('idle: only heartbeats commit, one view each; without idle views every view commits a block', () => {
  const busy = safe(base);
  assert.ok(busy.heights.every((h) => h > 100), `a block every view: ${busy.heights}`);
  const idle = safe({ ...base, idle: { heartbeatMs: 1000 } });
  assert.ok(idle.heights.every((h) => h >= 8 && h <= 10), `a block per heartbeat in 10 s: ${idle.heights}`);
  assert.ok(idle.maxView <= 11, `a view per heartbeat, no timeouts in between: view ${idle.maxView}`);
});

test('a transaction at an idle federation commits before the next heartbeat', () => {
  const until = { ...base, maxTimeMs: 2_600, idle: { heartbeatMs: 1000 } };
  const quiet = safe(until);
  const busy = safe({ ...until, idle: { heartbeatMs: 1000, work: [{ atMs: 2_450, instance: 2 }] } });
  for (let i = 0; i < 4; i++) assert.equal(busy.heights[i], quiet.heights[i]! + 1, `member ${i}: ${quiet.heights} → ${busy.heights}`);
});

test('the leader a transaction reaches is dead: timed out by the member holding it, committed by the next', () => {
  // Instance 1 leads view 1 and never starts; the transaction reaches member 2 at 300 ms.
  const s: Scenario = { ...base, maxTimeMs: 900, byzantine: { 1: 'silent' }, idle: { heartbeatMs: 60_000, work: [{ atMs: 300, instance: 2 }] } };
  const r = safe(s);
  for (const i of [0, 2, 3]) assert.equal(r.heights[i], 1, `member ${i} committed it: ${r.heights}`);
  const none = safe({ ...s, idle: { heartbeatMs: 60_000 } });
  assert.deepEqual(none.heights, [0, 0, 0, 0], 'nothing to order, nothing committed, though view 1 has no leader');
  assert.equal(none.maxView, 1, 'and no view changed');
});

test('faults with idle views: safe, and heartbeats keep committing', () => {
  for (const [i, kind] of [[1, 'silent'], [2, 'equivocator'], [3, 'stalling-leader'], [0, 'double-voter'], [1, 'forking-leader']] as const) {
    for (const seed of [1, 2, 3]) {
      const r = safe({ n: 4, seed, byzantine: { [i]: kind }, healAtMs: 0, liveness: { commits: 3, views: 40 }, maxTimeMs: 30_000,
        idle: { heartbeatMs: 500, work: [{ atMs: 1_200, instance: (i + 1) % 4 }, { atMs: 2_300, instance: (i + 2) % 4 }] } });
      assert.ok(r.livenessMet, `${kind} seed ${seed}: liveness (heights ${r.heights}, view ${r.maxView})`);
    }
  }
});

test('partitions and drops with idle views: safe, live after the heal', () => {
  for (const seed of [4, 5, 6]) {
    const r = safe({ n: 4, seed, network: { dropRate: 0.1 }, partitions: [{ fromMs: 200, toMs: 2_000, groups: [[0, 1], [2, 3]] }],
      liveness: { commits: 2, views: 40 }, maxTimeMs: 30_000, idle: { heartbeatMs: 400, work: [{ atMs: 500, instance: 0 }] } });
    assert.ok(r.livenessMet, `seed ${seed}: ${r.heights}`);
  }
});
