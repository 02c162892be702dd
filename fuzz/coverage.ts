// Branch coverage from the V8 coverage files a process leaves in NODE_V8_COVERAGE, for chosen
// source files, the way c8 counts it: every block range V8 reports for a function compiled with
// block coverage is a branch (the function's own range included), covered when its count is above
// zero. One stricter rule: a function that never ran (V8 reports no blocks for it) counts as one
// uncovered branch, so code the campaign never reached is not left out of the total.
// Type stripping keeps offsets, so ranges name the .ts files directly.

import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

interface Range { startOffset: number; endOffset: number; count: number }
interface FunctionCoverage { functionName: string; ranges: Range[]; isBlockCoverage: boolean }
interface ScriptCoverage { url: string; functions: FunctionCoverage[] }

export interface BranchCoverage { covered: number; total: number; files: Record<string, { covered: number; total: number }> }

export function branchCoverage(dir: string, root: string, sources: readonly string[]): BranchCoverage {
  const urls = new Map(sources.map((s) => [pathToFileURL(resolve(root, s)).href, s]));
  // Per file, per range: the highest count seen in any process.
  const seen = new Map<string, Map<string, number>>();
  for (const f of readdirSync(dir).filter((n) => n.endsWith('.json'))) {
    const data = JSON.parse(readFileSync(join(dir, f), 'utf8')) as { result: ScriptCoverage[] };
    for (const script of data.result) {
      const file = urls.get(script.url);
      if (!file) continue;
      const ranges = seen.get(file) ?? new Map<string, number>();
      seen.set(file, ranges);
      for (const fn of script.functions) {
        const list = fn.isBlockCoverage ? fn.ranges : fn.ranges.slice(0, 1);
        for (const r of list) {
          const key = `${r.startOffset}:${r.endOffset}`;
          ranges.set(key, Math.max(ranges.get(key) ?? 0, r.count));
        }
      }
    }
  }
  const out: BranchCoverage = { covered: 0, total: 0, files: {} };
  for (const s of sources) {
    const ranges = seen.get(s) ?? new Map<string, number>();
    const total = ranges.size;
    const covered = [...ranges.values()].filter((c) => c > 0).length;
    out.files[s] = { covered, total };
    out.covered += covered;
    out.total += total;
  }
  return out;
}
