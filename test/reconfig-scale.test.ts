// The CI version of `npm run reconfig` (scripts/reconfig.ts --short): four real members under an
// open-loop load add a fifth through consensus — a set larger than genesis's, whose QCs carry a
// validator index genesis never had — and every acknowledged transaction is committed exactly
// once, every member holds the same blocks, and `btcfed verify` checks the final block from the
// genesis conf.yaml alone. The full schedule (4 → 5 → 7 → 6 members and a key rotation) is
// `npm run reconfig`, not run here for time.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';

test('npm run reconfig --short: m4 added under load; nothing lost or duplicated, all agree, the light client verifies', { timeout: 400_000 }, async () => {
  const root = path.resolve(import.meta.dirname, '..');
  const child = spawn(process.execPath, [path.join(root, 'scripts', 'reconfig.ts'), '--short', '--rate', '30'], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (c: Buffer) => { out += c.toString(); });
  child.stderr.on('data', (c: Buffer) => { out += c.toString(); });
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  console.log(out.split('\n').filter((l) => l.startsWith('#') || l.startsWith('reconfig:')).join('\n'));
  assert.equal(code, 0, out.slice(-3000));
  assert.match(out, /^reconfig: epochs=2 validators=4,5 acked=[1-9]\d* lost=0 duplicated=0 disagreements=0 light_client=ok$/m);
  assert.match(out, /m4 votes: a commit QC with its signature/);
});
