// The Quint specification's CI budget (spec/hotstuff.qnt, docs/specification.md): a short
// random-simulation campaign through `npm run spec`'s own script must hold every safety invariant
// and reach the liveness witness; and a deliberately broken copy of the spec must make agreement
// fail within the budget, so the campaign is shown able to fail. Quint's TypeScript backend: the
// Rust one is downloaded at run time and cannot be fetched here.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { quintRun } from '../scripts/spec.ts';

const root = path.join(import.meta.dirname, '..');
const SPEC = path.join(root, 'spec/hotstuff.qnt');

test('npm run spec: a short campaign holds every safety invariant and reaches the liveness witness', () => {
  const r = spawnSync(process.execPath, ['scripts/spec.ts', '--samples', '40', '--seed', '7', '--max-steps', '40'], { cwd: root, encoding: 'utf8' });
  const lines = r.stdout.trim().split('\n');
  assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
  assert.match(lines.at(-1)!, /^spec: samples=40 steps=\d+ violations=0$/);
  assert.ok(lines.some((l) => l.startsWith('spec: liveness witness reached')), r.stdout);
  const steps = Number(/steps=(\d+)/.exec(lines.at(-1)!)![1]);
  assert.ok(steps >= 40 * 30, `steps=${steps}: traces ended early (a deadlock in the spec?)`);
});

test('the directed epoch scenario: a change commits, epoch 1 runs with five members and commits a block, every safety invariant holding at every step', () => {
  const r = spawnSync(path.join(root, 'node_modules/.bin/quint'), ['test', '--backend', 'typescript', SPEC, '--main', 'hotstuff', '--match', 'epochScenario'], { encoding: 'utf8' });
  assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
  assert.match(r.stdout, /ok epochScenario passed/);
});

/**
 * The commit rule broken: a member commits on a PREPARE QC (one phase instead of three); random
 * simulation finds agreement violated within a few traces on every seed tried. A quorum of f+1
 * (Q = 2) is found on some seeds only, and safeNode without the lock clause not within a CI budget
 * (docs/specification.md has the figures): a fork must survive two more phases there.
 */
const COMMIT_RULE = 'q.phase == COMMIT and (q.view > r.lastCommitView';
const COMMIT_ON_PREPARE = 'q.phase == PREPARE and (q.view > r.lastCommitView';

test('a spec whose commit rule commits on a PREPARE QC violates agreement within the budget', async () => {
  const text = await fs.readFile(SPEC, 'utf8');
  assert.equal(text.split(COMMIT_RULE).length, 2, 'the commit rule this test breaks is no longer in spec/hotstuff.qnt');
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'btcfed-spec-'));
  try {
    const mutant = path.join(dir, 'hotstuff.qnt');
    await fs.writeFile(mutant, text.replace(COMMIT_RULE, COMMIT_ON_PREPARE));
    const r = quintRun(mutant, ['agreement'], { samples: 300, seed: '1', maxSteps: 80 });
    assert.ok(r.violated, `agreement held on the mutant:\n${r.output.slice(-2000)}`);
    // The unbroken spec passes the same run: the mutation, not the budget, made it fail.
    const ok = quintRun(SPEC, ['agreement'], { samples: 30, seed: '1', maxSteps: 80 });
    assert.equal(ok.violated, false, ok.output.slice(-2000));
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
});
