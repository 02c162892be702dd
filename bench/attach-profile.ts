// A CPU profile of one live process, taken without restarting it: SIGUSR1 opens Node's inspector
// (on 127.0.0.1, port 9229 unless the process says otherwise on stderr), the Chrome DevTools
// protocol starts and stops the sampling profiler, and the profile is written as a .cpuprofile
// that Chrome's DevTools or `node --cpu-prof`'s readers open. Profiling every process of a large
// devnet from its start (NODE_OPTIONS=--cpu-prof) slows all of them; this profiles one, in its
// steady state. Used by `bench idle --profile`; also runnable alone:
//   node bench/attach-profile.ts <pid> <seconds> <out.cpuprofile>

import { writeFile } from 'node:fs/promises';

interface ProfileNode { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; children?: number[] }
export interface CpuProfile { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[]; startTime: number; endTime: number }

async function inspectorUrl(port: number, deadline: number): Promise<string> {
  for (;;) {
    try {
      const res = await fetch(`http://127.0.0.1:${port}/json/list`);
      const list = (await res.json()) as { webSocketDebuggerUrl: string }[];
      if (list[0]) return list[0].webSocketDebuggerUrl;
    } catch { /* not open yet */ }
    if (Date.now() > deadline) throw new Error(`no inspector on 127.0.0.1:${port}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Profiles process `pid` for `seconds` through its inspector (opened with SIGUSR1). */
export async function profileProcess(pid: number, seconds: number, port = 9229): Promise<CpuProfile> {
  process.kill(pid, 'SIGUSR1');
  const keepAlive = setInterval(() => {}, 1000); // an open WebSocket does not hold the event loop
  const ws = new WebSocket(await inspectorUrl(port, Date.now() + 10_000));
  await new Promise<void>((resolve, reject) => { ws.onopen = () => resolve(); ws.onerror = () => reject(new Error('inspector socket failed')); });
  let next = 1;
  const pending = new Map<number, (r: unknown) => void>();
  let closed: Error | undefined;
  ws.onclose = (e) => {
    closed = new Error(`inspector socket closed (${e.code} ${e.reason})`);
    for (const r of pending.values()) r(closed);
  };
  ws.onmessage = (e) => {
    const m = JSON.parse(String(e.data)) as { id?: number; result?: unknown };
    if (m.id !== undefined) pending.get(m.id)?.(m.result);
  };
  const send = async (method: string, params: object = {}): Promise<unknown> => {
    if (closed) throw closed;
    const id = next++;
    const result = await new Promise<unknown>((resolve) => {
      pending.set(id, resolve);
      ws.send(JSON.stringify({ id, method, params }));
    });
    pending.delete(id);
    if (result instanceof Error) throw result;
    return result;
  };
  try {
    await send('Profiler.enable');
    await send('Profiler.setSamplingInterval', { interval: 500 });
    await send('Profiler.start');
    await new Promise((r) => setTimeout(r, seconds * 1000));
    const { profile } = (await send('Profiler.stop')) as { profile: CpuProfile };
    // Close the inspector again; it ends the session before it answers, so nothing is awaited.
    ws.send(JSON.stringify({ id: next++, method: 'Runtime.evaluate', params: { expression: 'process._debugEnd?.()' } }));
    return profile;
  } finally {
    ws.close();
    clearInterval(keepAlive);
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
