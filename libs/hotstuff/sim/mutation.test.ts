// Proof that the checkers can fail: with honest members deliberately broken at their network
// edge (Scenario.mutation; the engine has no test switch) the campaigns find a safety violation
// within their budget.
//  - 'double-vote' (an honest member may vote twice in a view and phase): the Twins
//    campaign finds two honest members committing different blocks.
//  - 'no-lock' (safeNode ignores lockedQC): the chaos campaign, whose Byzantine forking
//    leaders propose siblings of locked blocks, finds conflicting commits.
// Twins alone rarely trips 'no-lock': a twin is honest code, and basic HotStuff's leader
// builds on the highest prepareQC of a quorum of NEW-VIEWs, which covers every lock unless
// a member timed out of a view before its prepareQC arrived and then still committed in it.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runCampaign, type CampaignKind } from './campaign.ts';
import type { Scenario } from './scenario.ts';

const SAFETY = ['agreement', 'order', 'halted'] as const;

function hunt(kind: CampaignKind, mutation: NonNullable<Scenario['mutation']>, budget: number) {
  const r = runCampaign(
    { kind, seed: 1, from: 0, to: budget, mutation, safetyOnly: true, stopOnViolation: true, kinds: [...SAFETY] },
    () => performance.now(),
  );
  const f = r.failures[0];
  assert.ok(f, `${kind} campaign did not catch '${mutation}' within ${budget} scenarios`);
  const kinds = [...new Set(f.result.violations.map((v) => v.kind))];
  const worst = f.result.violations.find((v) => (SAFETY as readonly string[]).includes(v.kind))!;
  console.log(`mutation '${mutation}': ${kind} campaign found ${kinds.join('+')} after ${r.scenarios} scenarios in ${(r.elapsedMs / 1000).toFixed(1)} s (${f.family}, index ${f.index}): ${worst.kind} ${worst.detail}`);
  return f;
}

test("mutation 'double-vote' is caught by the Twins campaign", () => {
  const f = hunt('twins', 'double-vote', 10_000);
  assert.ok(f.result.violations.some((v) => v.kind === 'agreement' || v.kind === 'halted'));
});

test("mutation 'no-lock' is caught by the chaos campaign", () => {
  hunt('chaos', 'no-lock', 3_000);
});

test('the same campaigns are clean without the mutation', () => {
  for (const kind of ['twins', 'chaos'] as const) {
    const r = runCampaign({ kind, seed: 1, from: 0, to: 300 }, () => performance.now());
    assert.equal(r.violations, 0, kind);
  }
});
