// `npm run fuzz`: every target (or --target T) for --minutes M each (--seconds S for short runs),
// each in its own process with V8 coverage on. Per target: executions, refusals, round trips and
// the branch coverage of the code under it; on a failure, the input (hex), the seed and the error.
// Ends with one line `fuzz: targets=T execs=E failures=F` and exits 1 when F > 0.
// With --network: the network-level campaign against a real federation instead (fuzz/network.ts).
// --jobs J runs J targets at a time (default 1; each is one process on one core), printed in
// target order as each finishes.
// Usage: node fuzz/run.ts [--target T]... [--network] [--minutes M | --seconds S] [--seed S] [--jobs J]

import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { branchCoverage } from './coverage.ts';
import { TARGETS } from './targets/index.ts';
import type { FuzzResult } from './engine.ts';

const ROOT = new URL('..', import.meta.url).pathname;

const { values } = parseArgs({
  options: {
    target: { type: 'string', multiple: true }, minutes: { type: 'string' }, seconds: { type: 'string' }, seed: { type: 'string' },
    network: { type: 'boolean' }, jobs: { type: 'string' },
  },
});
const ms = values.seconds !== undefined ? Number(values.seconds) * 1000 : Number(values.minutes ?? '1') * 60_000;
const unknown = (values.target ?? []).filter((t) => !TARGETS.some((x) => x.name === t));
const jobs = Number(values.jobs ?? '1');
if (!(ms > 0) || unknown.length > 0 || !(Number.isInteger(jobs) && jobs >= 1)) {
  console.error(unknown.length > 0 ? `fuzz: no target ${unknown.join(', ')} (targets: ${TARGETS.map((t) => t.name).join(', ')})`
    : !(ms > 0) ? 'fuzz: --minutes/--seconds must be a positive number' : 'fuzz: --jobs must be a whole number ≥ 1');
  process.exit(2);
}
const chosen = values.target ? TARGETS.filter((t) => values.target!.includes(t.name)) : TARGETS;
const baseSeed = values.seed !== undefined ? Number(values.seed) : Date.now() % 2 ** 31;

function child(name: string, seed: number, covDir: string): Promise<{ result?: FuzzResult; stderr: string; code: number | null }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, ['--expose-gc', join(ROOT, 'fuzz/child.ts'), name, String(ms), String(seed)], {
      cwd: ROOT, env: { ...process.env, NODE_V8_COVERAGE: covDir }, stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    p.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    p.stderr.on('data', (d: Buffer) => { err += d.toString(); });
    p.on('close', (code) => {
      const line = out.trim().split('\n').at(-1);
      let result: FuzzResult | undefined;
      try { result = line ? JSON.parse(line) as FuzzResult : undefined; } catch { result = undefined; }
      resolve({ ...(result ? { result } : {}), stderr: err, code });
    });
  });
}

if (values.network) {
  // The network-level campaign (fuzz/network.ts) instead of the targets: a real federation under mutated inputs.
  const { networkCampaign } = await import('./network.ts');
  const r = await networkCampaign({ ms, seed: baseSeed, say: (line) => console.log(line) });
  const sent = Object.values(r.sent).reduce((a, b) => a + b, 0);
  console.log(`fuzz: network ${Object.entries(r.sent).map(([k, v]) => `${k}=${v}`).join(' ')} heights=${r.heights.from}->${r.heights.to} seed=${baseSeed}`);
  for (const f of r.failures) console.log(`fuzz: FAILURE network: ${f}`);
  console.log(`fuzz: targets=1 execs=${sent} failures=${r.failures.length}`);
  process.exit(r.failures.length > 0 ? 1 : 0);
}

let execs = 0;
let failures = 0;

/** One target in its own process: what it prints, and whether it failed. */
async function runOne(t: (typeof chosen)[number]): Promise<{ lines: string[]; execs: number; failed: boolean }> {
  // One seed per target, derived from the run's: `--seed S --target T` replays a target of a full run.
  const seed = baseSeed;
  const covDir = mkdtempSync(join(tmpdir(), `btcfed-fuzz-${t.name}-`));
  const lines: string[] = [];
  try {
    const { result, stderr, code } = await child(t.name, seed, covDir);
    const cov = branchCoverage(covDir, ROOT, t.sources);
    const pct = cov.total === 0 ? 0 : (100 * cov.covered) / cov.total;
    if (!result) {
      lines.push(`fuzz: target=${t.name} CRASHED (exit ${code}) seed=${seed}\n${stderr.trim()}`);
      return { lines, execs: 0, failed: true };
    }
    lines.push(`fuzz: target=${t.name} execs=${result.execs} refused=${result.refused} roundtrips=${result.roundTrips} slowest_ms=${result.slowest_ms.toFixed(1)} `
      + `heap_mb=${(result.heapBytes / 2 ** 20).toFixed(0)} branches=${cov.covered}/${cov.total} (${pct.toFixed(1)}%) seed=${seed}`);
    for (const [file, c] of Object.entries(cov.files)) lines.push(`fuzz:   ${file} branches=${c.covered}/${c.total}`);
    if (result.failure) {
      const f = result.failure;
      // The whole input goes to a file; the line shows it whole when it is short.
      const file = join(tmpdir(), `btcfed-fuzz-failure-${t.name}-${seed}.hex`);
      writeFileSync(file, `${f.inputHex}\n`);
      const shown = f.inputHex.length > 4096 ? `${f.inputHex.slice(0, 4096)}… (${f.inputHex.length / 2} bytes, whole in ${file})` : f.inputHex || '(none)';
      lines.push(`fuzz: FAILURE target=${t.name} seed=${f.seed}${f.path ? ` path=${f.path}` : ''} input_file=${file}\nfuzz: input=${shown}\n${f.error}`);
    }
    return { lines, execs: result.execs, failed: Boolean(result.failure) };
  } finally {
    rmSync(covDir, { recursive: true, force: true });
  }
}

// `jobs` targets at a time; each one's lines are printed in target order once those before it are.
type Run = Awaited<ReturnType<typeof runOne>>;
const done = chosen.map(() => Promise.withResolvers<Run>());
let next = 0;
const lane = async () => { for (let i = next++; i < chosen.length; i = next++) done[i]!.resolve(await runOne(chosen[i]!)); };
const lanes = Promise.all(Array.from({ length: Math.min(jobs, chosen.length) }, lane));
for (const d of done) {
  const r = await d.promise;
  for (const l of r.lines) console.log(l);
  execs += r.execs;
  if (r.failed) failures++;
}
await lanes;
console.log(`fuzz: targets=${chosen.length} execs=${execs} failures=${failures}`);
process.exit(failures > 0 ? 1 : 0);
