// The simulator's command line: runs the Twins campaign (and optionally chaos scenarios)
// over two worker threads and ends with exactly one summary line
//   scenarios=<count> violations=<count> seed=<seed>
// On a violation it prints the replay command and the trace of the first failing scenario,
// and exits 1. Must never hide a violation behind a zero exit code.
//
//   node scripts/sim.ts --scenarios 10000 --seed 7          # the Twins campaign
//   node scripts/sim.ts --scenarios 10000 --chaos 1000      # plus chaos scenarios
//   node scripts/sim.ts --seed 7 --only 123 [--kind chaos]  # replay one scenario, with its trace
//   node scripts/sim.ts --reconfig 2000 --seed 7           # reconfiguration campaign (epochs.ts)
//   node scripts/sim.ts --reconfig 1 --seed 7 --only 42    # replay one, printing its scenario

import { availableParallelism } from 'node:os';
import { parseArgs } from 'node:util';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { runCampaign, scenarioAt, type CampaignKind, type CampaignReport } from '../libs/hotstuff/sim/campaign.ts';
import { runScenario } from '../libs/hotstuff/sim/simulator.ts';
import { runReconfig } from '../libs/hotstuff/sim/epochs.ts';
import { drawReconfig } from '../libs/hotstuff/sim/epoch-scenarios.ts';

interface Job {
  kind: CampaignKind;
  seed: number;
  from: number;
  to: number;
  mutation?: 'no-lock' | 'double-vote';
}

interface Summary {
  kind: CampaignKind;
  scenarios: number;
  violations: number;
  steps: number;
  maxViewsAfterHeal: number;
  failures: { index: number; family: string; violations: string[] }[];
}

function summarize(kind: CampaignKind, r: CampaignReport): Summary {
  return {
    kind,
    scenarios: r.scenarios,
    violations: r.violations,
    steps: r.steps,
    maxViewsAfterHeal: r.maxViewsAfterHeal,
    failures: r.failures.slice(0, 5).map((f) => ({ index: f.index, family: f.family, violations: f.result.violations.slice(0, 3).map((v) => `${v.kind}: ${v.detail}`) })),
  };
}

if (!isMainThread) {
  const job = workerData as Job;
  const r = runCampaign({ ...job, ...(job.mutation ? { mutation: job.mutation } : {}) }, () => performance.now());
  parentPort!.postMessage(summarize(job.kind, r));
} else {
  await main();
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      scenarios: { type: 'string', default: '1000' },
      chaos: { type: 'string', default: '0' },
      seed: { type: 'string' },
      only: { type: 'string' },
      kind: { type: 'string', default: 'twins' },
      trace: { type: 'boolean', default: false },
      workers: { type: 'string' },
      mutation: { type: 'string' },
      reconfig: { type: 'string' },
    },
  });
  const seed = values.seed !== undefined ? Number(values.seed) >>> 0 : (Date.now() ^ (process.pid << 16)) >>> 0;
  const mutation = values.mutation === 'no-lock' || values.mutation === 'double-vote' ? values.mutation : undefined;
  if (values.reconfig !== undefined) return reconfigCampaign(seed, Number(values.reconfig), values.only === undefined ? undefined : Number(values.only));
  if (values.only !== undefined) return replay(values.kind === 'chaos' ? 'chaos' : 'twins', seed, Number(values.only), mutation);
  const workers = Math.max(1, Number(values.workers ?? availableParallelism()));
  const t0 = performance.now();
  const jobs = [...split('twins', seed, Number(values.scenarios), workers, mutation), ...split('chaos', seed, Number(values.chaos), workers, mutation)];
  const results = await Promise.all(jobs.map(runJob));
  const seconds = (performance.now() - t0) / 1000;
  const total = results.reduce((a, r) => ({ scenarios: a.scenarios + r.scenarios, violations: a.violations + r.violations, steps: a.steps + r.steps }), { scenarios: 0, violations: 0, steps: 0 });
  for (const kind of ['twins', 'chaos'] as const) {
    const rs = results.filter((r) => r.kind === kind);
    if (rs.length === 0) continue;
    const n = rs.reduce((a, r) => a + r.scenarios, 0);
    const v = rs.reduce((a, r) => a + r.violations, 0);
    console.log(`${kind}: ${n} scenarios, ${v} violations, most views after the heal before commits resumed: ${Math.max(...rs.map((r) => r.maxViewsAfterHeal))}`);
  }
  console.log(`${total.steps} steps in ${seconds.toFixed(1)} s on ${workers} worker(s) (${Math.round(total.steps / seconds)} steps/s)`);
  const failed = results.find((r) => r.failures.length > 0);
  if (failed) {
    const f = failed.failures[0]!;
    console.log(`FIRST VIOLATION: ${failed.kind} scenario ${f.index} (${f.family}):\n  ${f.violations.join('\n  ')}`);
    console.log(`replay: node scripts/sim.ts --seed ${seed} --only ${f.index} --kind ${failed.kind}${mutation ? ` --mutation ${mutation}` : ''}`);
    printTrace(failed.kind, seed, f.index, mutation);
  }
  console.log(`scenarios=${total.scenarios} violations=${total.violations} seed=${seed}`);
  process.exitCode = total.violations > 0 ? 1 : 0;
}

function split(kind: CampaignKind, seed: number, count: number, workers: number, mutation?: Job['mutation']): Job[] {
  const jobs: Job[] = [];
  const per = Math.ceil(count / workers);
  for (let from = 0; from < count; from += per) jobs.push({ kind, seed, from, to: Math.min(count, from + per), ...(mutation ? { mutation } : {}) });
  return jobs;
}

function runJob(job: Job): Promise<Summary> {
  return new Promise((resolve, reject) => {
    const w = new Worker(new URL(import.meta.url), { workerData: job });
    w.once('message', resolve);
    w.once('error', reject);
  });
}

function printTrace(kind: CampaignKind, seed: number, index: number, mutation?: Job['mutation'], all = false): void {
  const { scenario } = scenarioAt(kind, seed, index);
  const r = runScenario(mutation ? { ...scenario, mutation } : scenario, { trace: true });
  const lines = all ? r.trace : r.trace.slice(-200);
  console.log(`--- trace of ${kind} scenario ${index} (${all ? 'all' : 'last'} ${lines.length} of ${r.trace.length} steps; trace hash ${r.traceHash}) ---`);
  console.log(lines.join('\n'));
  console.log('--- end of trace ---');
}

function replay(kind: CampaignKind, seed: number, index: number, mutation?: Job['mutation']): void {
  const { family, scenario } = scenarioAt(kind, seed, index);
  console.log(`scenario ${index} (${family}): ${JSON.stringify(mutation ? { ...scenario, mutation } : scenario)}`);
  printTrace(kind, seed, index, mutation, true);
  const r = runScenario(mutation ? { ...scenario, mutation } : scenario);
  for (const v of r.violations) console.log(`VIOLATION ${v.kind} at step ${v.step} (${v.atMs.toFixed(1)} ms, instance ${v.instance}): ${v.detail}`);
  console.log(`scenarios=1 violations=${r.violations.length > 0 ? 1 : 0} seed=${seed}`);
  process.exitCode = r.violations.length > 0 ? 1 : 0;
}

/**
 * Drawn reconfiguration scenarios, in this thread (each takes milliseconds). Scenario i has seed
 * `seed + i`. Prints the stall at the boundaries (virtual ms from the change's commit to the next
 * epoch's first commit) and ends with the usual one line.
 */
function reconfigCampaign(seed: number, count: number, only?: number): void {
  const t0 = performance.now();
  const indices = only === undefined ? Array.from({ length: count }, (_, i) => i) : [only];
  let violations = 0;
  let steps = 0;
  const stalls: number[] = [];
  for (const i of indices) {
    const scenario = drawReconfig((seed + i) >>> 0);
    const r = runReconfig(scenario);
    steps += r.steps;
    if (only !== undefined) console.log(`scenario ${i}: ${JSON.stringify(scenario)}\nresult: ${JSON.stringify({ ...r, violations: undefined })}`);
    if (r.violations.length > 0) {
      if (violations === 0) {
        console.log(`FIRST VIOLATION: reconfig scenario ${i}:\n  ${r.violations.slice(0, 5).join('\n  ')}`);
        console.log(`replay: node scripts/sim.ts --reconfig 1 --seed ${seed} --only ${i}`);
      }
      violations++;
    }
    stalls.push(...r.stallMs.filter(Number.isFinite));
  }
  stalls.sort((a, b) => a - b);
  const at = (q: number) => (stalls.length ? stalls[Math.min(stalls.length - 1, Math.floor(q * stalls.length))]!.toFixed(0) : '-');
  console.log(`reconfig: ${indices.length} scenarios, ${stalls.length} boundaries crossed, stall ms p50=${at(0.5)} p90=${at(0.9)} max=${at(1)} (rough networks and cut-off members included)`);
  console.log(`${steps} steps in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  console.log(`scenarios=${indices.length} violations=${violations} seed=${seed}`);
  process.exitCode = violations > 0 ? 1 : 0;
}
