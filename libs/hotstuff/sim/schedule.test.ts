// The leader schedule (schedule.ts) in the simulator: a member that is down stops costing the
// federation a view each rotation, against plain round robin with the same seeds; and the schedule
// keeps safety and liveness where members crash, restart and stall.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MIN_SLOTS, isProbeView } from '../schedule.ts';
import { runScenario, type SimResult } from './simulator.ts';
import type { Scenario } from './scenario.ts';

/** Views that ended by a quorum of NEW-VIEWs (failed), as the honest members' traces say. */
function failedViews(r: SimResult): Set<number> {
  const out = new Set<number>();
  for (const l of r.trace) {
    const m = /view (\d+) \(new-view-quorum\)/.exec(l);
    if (m) out.add(Number(m[1]) - 1);
  }
  return out;
}

function run(s: Scenario): SimResult {
  const r = runScenario(s, { trace: true });
  assert.deepEqual(r.violations, []);
  assert.ok(r.livenessMet, `seed ${s.seed}: ${s.liveness && s.liveness.commits} commits within ${s.liveness && s.liveness.views} views`);
  return r;
}

test('a silent member: round robin loses a view each rotation, the schedule one per probe cycle', () => {
  for (const n of [4, 7]) {
    for (const seed of [1, 2]) {
      const base: Scenario = { n, seed, byzantine: { 1: 'silent' }, healAtMs: 0, timeouts: { baseMs: 100, multiplier: 2, capMs: 5000 },
        liveness: { commits: 40 * n, views: 80 * n } };
      const rr = run({ ...base, leaders: 'round-robin' });
      const sched = run(base);
      const lostRr = failedViews(rr);
      const lostSched = failedViews(sched);
      // Round robin: every one of its views fails (given up at once once suspected, but lost).
      assert.ok(lostRr.size >= 30, `N=${n} seed ${seed}: round robin lost ${lostRr.size} views`);
      // The schedule: its first views (before MIN_SLOTS are counted) and one view per probe rotation.
      const outsideProbes = [...lostSched].filter((v) => v > (MIN_SLOTS + 1) * n && !isProbeView(v, n));
      assert.deepEqual(outsideProbes, [], `N=${n} seed ${seed}: views lost outside probe rotations after start-up`);
      assert.ok(lostSched.size * 4 <= lostRr.size, `N=${n} seed ${seed}: ${lostSched.size} views lost against ${lostRr.size}`);
      assert.ok(sched.endMs < rr.endMs, `N=${n} seed ${seed}: ${sched.endMs} ms against ${rr.endMs} ms for the same commits`);
      // No honest member lost its turns: each proposed in (nearly) every rotation.
      for (let h = 0; h < n; h++) {
        if (h === 1) continue;
        const led = new Set(sched.trace.map((l) => new RegExp(`recv PROPOSAL\\(v(\\d+) [^)]* from ${h}\\)`).exec(l)).filter((m) => m !== null).map((m) => m[1]));
        assert.ok(led.size >= Math.floor(sched.maxView / n) - 2, `N=${n} seed ${seed}: validator ${h} proposed in ${led.size} views of ${sched.maxView}`);
      }
    }
  }
});

test('a member down for a while leads again after a probe rotation once it is back', () => {
  const r = run({ n: 4, seed: 3, crashes: [{ instance: 2, atMs: 300, restartAtMs: 4000 }], timeouts: { baseMs: 100, multiplier: 2, capMs: 5000 },
    liveness: { commits: 260, views: 400 } });
  // Blocks committed by member 2 outside probe rotations, after its restart: it is in the rotation again.
  const proposed = [...new Set(r.trace.map((l) => /recv PROPOSAL\(v(\d+) [^)]* from 2\)/.exec(l)).filter((m) => m !== null).map((m) => Number(m[1])))];
  const late = proposed.filter((v) => v > 80 && !isProbeView(v, 4));
  assert.ok(late.length > 5, `member 2 proposed in ${late.length} views outside probe rotations (${proposed.slice(-5).join(', ')} last)`);
});

test('safety and liveness with the schedule under crashes, drops and a stalling leader', () => {
  for (const seed of [21, 22, 23]) {
    run({ n: 7, seed, byzantine: { 5: 'stalling-leader' }, network: { dropRate: 0.05 }, healAtMs: 3000,
      crashes: [{ instance: 2, atMs: 500, restartAtMs: 2500 }], liveness: { commits: 120, views: 600 } });
  }
});
