// Benchmark of the HotStuff simulator: machine baseline, simulator steps per second (the
// Twins campaign and a long happy path), and simulated commits per second at N = 4, 7, 10,
// 21 with the fake signature scheme, plus a small sample with real SLH-DSA. Prints figures;
// never asserts (the machine is shared and noisy).
//
//   node bench/hotstuff.ts [--quick]

import { runCampaign } from '../libs/hotstuff/sim/campaign.ts';
import { runScenario } from '../libs/hotstuff/sim/simulator.ts';
import { createSlhScheme } from '../libs/hotstuff/sim/slh-scheme.ts';
import { printMachine } from './support.ts';

const quick = process.argv.includes('--quick');

function campaign(): void {
  const count = quick ? 500 : 3000;
  runCampaign({ seed: 1, from: 0, to: 50 }, () => performance.now()); // warm-up
  const r = runCampaign({ seed: 2, from: 0, to: count }, () => performance.now());
  const s = r.elapsedMs / 1000;
  console.log(`twins campaign: ${count} scenarios in ${s.toFixed(2)} s = ${Math.round(count / s)} scenarios/s, ${Math.round(r.steps / s).toLocaleString('en')} steps/s (1 thread)`);
}

function commitsPerSecond(n: number, commits: number): void {
  const t0 = performance.now();
  const r = runScenario({ n, seed: n, healAtMs: 0, liveness: { commits, views: commits * 2 }, maxTimeMs: 1e9, maxSteps: 1e9 });
  const s = (performance.now() - t0) / 1000;
  const committed = Math.min(...r.heights);
  const ok = r.violations.length === 0 && r.livenessMet ? '' : ' (VIOLATIONS!)';
  console.log(
    `N=${String(n).padStart(2)}: ${committed} commits in ${s.toFixed(2)} s wall = ${Math.round(committed / s).toLocaleString('en')} commits/s, ` +
      `${Math.round(r.steps / s).toLocaleString('en')} steps/s, ${(r.steps / committed).toFixed(0)} steps/commit, ` +
      `${(r.endMs / committed).toFixed(1)} ms virtual/commit${ok}`,
  );
}

function slhSample(): void {
  const commits = quick ? 2 : 5;
  const t0 = performance.now();
  const scheme = createSlhScheme('bench', 4, 1);
  const r = runScenario({ n: 4, seed: 1, chainId: 'bench', healAtMs: 0, liveness: { commits, views: 20 }, signDelayMs: 11 }, { scheme });
  const s = (performance.now() - t0) / 1000;
  console.log(`N= 4 with ${scheme.name}: ${Math.min(...r.heights)} commits, ${r.stats.signatures} signatures in ${s.toFixed(2)} s wall = ${(Math.min(...r.heights) / s).toFixed(2)} commits/s`);
}

printMachine('hotstuff simulator', [`mode       ${quick ? 'quick' : 'full'}`]);
campaign();
for (const n of [4, 7, 10, 21]) commitsPerSecond(n, quick ? 200 : n <= 10 ? 2000 : 500);
slhSample();
