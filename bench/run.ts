// `npm run bench`: every benchmark in bench/, one after another, each in its own process so
// one's warm caches do not flatter the next. Extra flags (e.g. --quick) are passed through.

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

const dir = import.meta.dirname;
const skip = new Set(['run.ts', 'support.ts']);
const only = process.argv.slice(2).filter((a) => !a.startsWith('--'));
const flags = process.argv.slice(2).filter((a) => a.startsWith('--'));
const benches = fs.readdirSync(dir).filter((f) => f.endsWith('.ts') && !skip.has(f))
  .filter((f) => only.length === 0 || only.includes(path.basename(f, '.ts'))).sort();

let failed = 0;
for (const file of benches) {
  console.log(`\n======== bench/${file} ${flags.join(' ')}`);
  const r = spawnSync(process.execPath, [path.join(dir, file), ...flags], { stdio: 'inherit' });
  if (r.status !== 0) failed++;
}
process.exitCode = failed > 0 ? 1 : 0;
