// A crashed member the others hear of (its gateway says its consensus is gone, or every connection
// to it closes: the simulator's announced crash) costs them no view timer: its views are given up
// at once. Against the same crash unannounced, in the same seeds, the federation reaches the same
// commits sooner and with fewer timers fired; safety and liveness hold either way.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runScenario, type SimResult } from './simulator.ts';
import type { Scenario } from './scenario.ts';

function run(s: Scenario): SimResult {
  const r = runScenario(s, { trace: true });
  assert.deepEqual(r.violations, []);
  assert.ok(r.livenessMet, `seed ${s.seed}: ${s.liveness && s.liveness.commits} commits within ${s.liveness && s.liveness.views} views`);
  return r;
}

const fired = (r: SimResult): number => r.trace.filter((l) => / timer v\d+/.test(l)).length;
const skippedAbsent = (r: SimResult): number => r.trace.filter((l) => /skip v\d+ \(leader \d+ absent\)/.test(l)).length;

test('a crashed member the others hear of costs no view timer; unannounced, it costs one per view it leads until the schedule drops it', () => {
  for (const n of [4, 7]) {
    for (const seed of [1, 2, 3]) {
      const base: Scenario = { n, seed, timeouts: { baseMs: 400, multiplier: 1.5, capMs: 5000 }, liveness: { commits: 40, views: 400 } };
      const heard = run({ ...base, crashes: [{ instance: 1, atMs: 200 }] });
      const silent = run({ ...base, crashes: [{ instance: 1, atMs: 200, unannounced: true }] });
      assert.ok(skippedAbsent(heard) > 0, `N=${n} seed ${seed}: no view given up for an absent leader`);
      assert.equal(skippedAbsent(silent), 0, `N=${n} seed ${seed}: an unannounced crash is heard of by no one`);
      assert.ok(fired(heard) < fired(silent), `N=${n} seed ${seed}: ${fired(heard)} timers fired when heard of, ${fired(silent)} when not`);
      assert.ok(heard.endMs < silent.endMs, `N=${n} seed ${seed}: ${heard.endMs} ms against ${silent.endMs} ms for the same commits`);
    }
  }
});

test('a member that restarts is heard of again and leads its views', () => {
  const r = run({ n: 4, seed: 5, crashes: [{ instance: 2, atMs: 300, restartAtMs: 1500 }], timeouts: { baseMs: 400, multiplier: 1.5, capMs: 5000 },
    liveness: { commits: 120, views: 400 } });
  const proposedAfter = new Set(r.trace.filter((l) => /recv PROPOSAL\(v\d+ [^)]* from 2\)/.test(l)).map((l) => Number(/^\s*(\d+)/.exec(l)?.[1] ?? 0)).filter((t) => t > 1500));
  assert.ok(proposedAfter.size > 0, 'member 2 proposed again after its restart');
});
