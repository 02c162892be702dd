// The campaigns CI runs: 10,002 Twins scenarios (N = 4 with one twin, exhaustive over two
// rounds and sampled over four; N = 7 with two twins, sampled over three rounds) and 600
// chaos scenarios (crashes, partitions, one-way cuts, rough network, up to f Byzantine
// members of every kind). Any violation fails with its replay command.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runCampaign, type CampaignKind, type CampaignReport } from './campaign.ts';

const SEED = 20260101;

function run(kind: CampaignKind, from: number, to: number): CampaignReport {
  const r = runCampaign({ kind, seed: SEED, from, to }, () => performance.now());
  const f = r.failures[0];
  const replay = f ? `node scripts/sim.ts --${kind === 'chaos' ? 'chaos' : 'scenarios'} 1 --seed ${SEED} --only ${f.index} --trace` : '';
  assert.equal(r.violations, 0, f ? `${f.family}: ${JSON.stringify(f.result.violations.slice(0, 2))}\nreplay: ${replay}` : '');
  assert.equal(r.scenarios, to - from);
  console.log(`${kind} [${from}, ${to}): scenarios=${r.scenarios} violations=${r.violations} steps=${r.steps} ${r.elapsedMs.toFixed(0)} ms, max views after heal ${r.maxViewsAfterHeal}`, r.byFamily);
  return r;
}

test('Twins campaign, first half (5,001 scenarios)', () => {
  const r = run('twins', 0, 5001);
  assert.ok(r.byFamily['n4-t1-r2-exhaustive']! > 0 && r.byFamily['n7-t2-r3-sampled']! > 0);
});

test('Twins campaign, second half (5,001 scenarios)', () => {
  run('twins', 5001, 10002);
});

test('chaos campaign (600 scenarios)', () => {
  run('chaos', 0, 600);
});
