// The shipped Prometheus alert rules (deploy/prometheus/alerts.yml) are valid and behave as
// their unit tests say (alerts.test.yml: each alert fires on the series it is for and not on
// healthy ones), checked by the real promtool (Debian's `prometheus` package, installed by
// scripts/ensure-tools.sh). Without promtool the test is skipped locally and fails in CI.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '..');
const promtool = spawnSync('promtool', ['--version'], { encoding: 'utf8' });
const missing = promtool.error !== undefined || promtool.status !== 0;
const skip = missing && !process.env.CI ? 'promtool not installed (bash scripts/ensure-tools.sh installs it)' : false;

function run(...args: string[]): string {
  const r = spawnSync('promtool', args, { cwd: root, encoding: 'utf8', timeout: 60_000 });
  assert.ok(!r.error, `promtool could not run: ${r.error?.message}`);
  const out = `${r.stdout}${r.stderr}`;
  assert.equal(r.status, 0, `promtool ${args.join(' ')} failed:\n${out}`);
  return out;
}

test('the alert rules are valid', { skip }, () => {
  assert.match(run('check', 'rules', 'deploy/prometheus/alerts.yml'), /SUCCESS: \d+ rules found/);
});

test('every alert rule passes its unit tests, and every alert has one', { skip }, async () => {
  assert.match(run('test', 'rules', 'deploy/prometheus/alerts.test.yml'), /SUCCESS/);
  const fs = await import('node:fs/promises');
  const rules = await fs.readFile(path.join(root, 'deploy/prometheus/alerts.yml'), 'utf8');
  const tests = await fs.readFile(path.join(root, 'deploy/prometheus/alerts.test.yml'), 'utf8');
  const alerts = [...rules.matchAll(/- alert: (\w+)/g)].map((m) => m[1]!);
  assert.ok(alerts.length >= 10, `${alerts.length} alerts`);
  const untested = alerts.filter((a) => !new RegExp(`alertname: ${a}\\n\\s+exp_alerts:\\n\\s+- exp_labels`).test(tests));
  assert.deepEqual(untested, [], 'alerts without a test case in which they fire');
});
