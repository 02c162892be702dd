// A CPU profile of one live process, taken without restarting it: its inspector is opened
// (test/support/inspector.ts), the Chrome DevTools protocol starts and stops the sampling
// profiler, and the profile is written as a .cpuprofile that Chrome's DevTools or
// `node --cpu-prof`'s readers open. Profiling every process of a large devnet from its start
// (NODE_OPTIONS=--cpu-prof) slows all of them; this profiles one, in its steady state. Used by
// `bench idle --profile`; also runnable alone:
//   node bench/attach-profile.ts <pid> <seconds> <out.cpuprofile>

import { writeFile } from 'node:fs/promises';
import { inspect } from '../test/support/inspector.ts';

interface ProfileNode { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; children?: number[] }
export interface CpuProfile { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[]; startTime: number; endTime: number }

/** Profiles process `pid` for `seconds` through its inspector (opened with SIGUSR1). */
export async function profileProcess(pid: number, seconds: number, port = 9229): Promise<CpuProfile> {
  const s = await inspect(pid, port);
  try {
    await s.send('Profiler.enable');
    await s.send('Profiler.setSamplingInterval', { interval: 500 });
    await s.send('Profiler.start');
    await new Promise((r) => setTimeout(r, seconds * 1000));
    const { profile } = (await s.send('Profiler.stop')) as { profile: CpuProfile };
    return profile;
  } finally {
    await s.close();
  }
}

/** Self time per function (ms), largest first, with its share of all samples. */
export function topSelf(p: CpuProfile, n = 25): { fn: string; ms: number; share: number }[] {
  const byId = new Map(p.nodes.map((x) => [x.id, x]));
  const selfUs = new Map<number, number>();
  p.samples.forEach((id, i) => selfUs.set(id, (selfUs.get(id) ?? 0) + (p.timeDeltas[i] ?? 0)));
  const byFn = new Map<string, number>();
  let total = 0;
  for (const [id, us] of selfUs) {
    const f = byId.get(id)!.callFrame;
    const where = f.url ? `${f.url.replace(/^.*node_modules\//, '').replace(/^file:\/\/.*?\/(services|libs)\//, '$1/')}:${f.lineNumber + 1}` : '';
    const key = `${f.functionName || '(anonymous)'} ${where}`.trim();
    byFn.set(key, (byFn.get(key) ?? 0) + us);
    total += us;
  }
  return [...byFn].sort((a, b) => b[1] - a[1]).slice(0, n).map(([fn, us]) => ({ fn, ms: us / 1000, share: us / total }));
}

if (import.meta.main) {
  const [pid, seconds, out] = process.argv.slice(2);
  if (!pid || !seconds || !out) throw new Error('usage: node bench/attach-profile.ts <pid> <seconds> <out.cpuprofile>');
  const p = await profileProcess(Number(pid), Number(seconds));
  await writeFile(out, JSON.stringify(p));
  for (const r of topSelf(p)) console.log(`${(100 * r.share).toFixed(1).padStart(5)} %  ${r.ms.toFixed(0).padStart(6)} ms  ${r.fn}`);
}
