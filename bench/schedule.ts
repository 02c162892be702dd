// The leader schedule against its baseline, in the simulator: one member silent from the start
// (a crashed member that never comes back), the same seed run with plain round robin (and leader
// suspicion, as before the schedule) and with the schedule (libs/hotstuff schedule.ts). Prints,
// per N, the views lost to NEW-VIEW rounds, the view timers that fired on honest members, the
// simulated time to the same number of commits and the signatures made. Never asserts.
//
//   node bench/schedule.ts [--commits 400] [--seed 1] [--quick]

import { parseArgs } from 'node:util';
import { runScenario, type SimResult } from '../libs/hotstuff/sim/simulator.ts';
import { printMachine, table } from './support.ts';

const { values: f } = parseArgs({ options: { commits: { type: 'string' }, seed: { type: 'string', default: '1' }, quick: { type: 'boolean', default: false } } });
const commits = Number(f.commits ?? (f.quick ? 100 : 400));
const seed = Number(f.seed);

function run(n: number, leaders: 'round-robin' | 'schedule'): SimResult {
  return runScenario({ n, seed, byzantine: { 1: 'silent' }, healAtMs: 0, timeouts: { baseMs: 100, multiplier: 2, capMs: 5000 },
    liveness: { commits, views: commits * 5 }, ...(leaders === 'round-robin' ? { leaders } : {}) }, { trace: true });
}

function figures(r: SimResult): string[] {
  const lost = new Set(r.trace.map((l) => /view (\d+) \(new-view-quorum\)/.exec(l)).filter((m) => m !== null).map((m) => m[1]));
  const timers = r.trace.filter((l) => / timer v/.test(l)).length;
  const ok = r.violations.length === 0 && r.livenessMet ? '' : ' (VIOLATIONS or liveness missed!)';
  return [String(lost.size), String(timers), `${Math.round(r.endMs)}${ok}`, String(r.maxView), r.stats.signatures.toLocaleString('en-US')];
}

printMachine(`leader schedule in the simulator: validator 1 silent from the start, ${commits} commits, seed ${seed}, base timeout 100 ms`, []);
const rows: string[][] = [];
for (const n of f.quick ? [4, 7] : [4, 7, 21]) {
  rows.push([`N=${n} round robin + suspicion (baseline)`, ...figures(run(n, 'round-robin'))]);
  rows.push([`N=${n} leader schedule`, ...figures(run(n, 'schedule'))]);
}
console.log(table(['run', 'views lost', 'timers fired', 'sim ms', 'views', 'signatures'], rows));
