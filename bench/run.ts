// `npm run bench`: every benchmark in bench/, one after another, each in its own process so
// one's warm caches do not flatter the next. Extra flags (e.g. --quick) are passed through.

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

const dir = import.meta.dirname;
const skip = new Set(['run.ts', 'support.ts']);
const all = fs.readdirSync(dir).filter((f) => f.endsWith('.ts') && !skip.has(f)).sort();
const names = new Set(all.map((f) => path.basename(f, '.ts')));
// A bare word naming a benchmark picks it; everything else (flags and their values, as in
// `federation --members 21`) is passed through to each benchmark run.
const only = process.argv.slice(2).filter((a) => names.has(a));
const flags = process.argv.slice(2).filter((a) => !names.has(a));
const benches = all.filter((f) => only.length === 0 || only.includes(path.basename(f, '.ts')));

let failed = 0;
for (const file of benches) {
  console.log(`\n======== bench/${file} ${flags.join(' ')}`);
  const r = spawnSync(process.execPath, [path.join(dir, file), ...flags], { stdio: 'inherit' });
  if (r.status !== 0) failed++;
}
process.exitCode = failed > 0 ? 1 : 0;
