// What a Byzantine scenario measures: the honest commit rate (blocks a second, the slowest honest
// member's), the memory of the honest services, and the CPU the attacker spends.
//
// The attacker — this test process, which plays m3 (its consensus, its signing and the attack),
// and m3's gateway, which carries the attack onto libp2p — runs in a CPU cgroup of its own, capped
// at ATTACKER_CPUS, as if on a host of its own: on these two shared cores an uncapped flood would
// take the CPU the honest members need, and the bar would measure the test rig, not the defence.
// Without cgroups (not root, no cpu controller) it runs at nice 19 instead. Either way its CPU
// is measured and reported with every scenario.

import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { BYZANTINE, HONEST, sleep, sumMetric, type Federation } from './federation.ts';
import { collectGarbage as collectGarbageOf } from '../support/inspector.ts';

/** The attacker's CPU: half a core of the machine's two. */
export const ATTACKER_CPUS = 0.5;
const CGROUP_CPU = '/sys/fs/cgroup/cpu';
const TICKS_PER_SECOND = 100; // Linux USER_HZ

/** User + system CPU time of a process, in seconds (0 when it is gone). */
export async function cpuSeconds(pid: number): Promise<number> {
  try {
    const stat = await fs.readFile(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / TICKS_PER_SECOND;
  } catch {
    return 0;
  }
}

/** Resident memory of a process in MiB (0 when it is gone). */
export async function rssMiB(pid: number): Promise<number> {
  try {
    const status = await fs.readFile(`/proc/${pid}/status`, 'utf8');
    return Number(/VmRSS:\s+(\d+)/.exec(status)![1]) / 1024;
  } catch {
    return 0;
  }
}

/** Anonymous resident memory of a process (heap, buffers) in MiB, and file-backed (mapped files: LMDB's map), 0 when gone. */
export async function rssParts(pid: number): Promise<{ anon: number; file: number }> {
  try {
    const status = await fs.readFile(`/proc/${pid}/status`, 'utf8');
    const kib = (k: string) => Number(new RegExp(`${k}:\\s+(\\d+)`).exec(status)?.[1] ?? 0) / 1024;
    return { anon: kib('RssAnon'), file: kib('RssFile') };
  } catch {
    return { anon: 0, file: 0 };
  }
}

/** Busy CPU seconds of the whole machine so far (all cores: user, nice, system, irq, softirq, steal). */
export async function machineCpuSeconds(): Promise<number> {
  const line = (await fs.readFile('/proc/stat', 'utf8')).split('\n')[0]!;
  const f = line.trim().split(/\s+/).slice(1).map(Number);
  return (f[0]! + f[1]! + f[2]! + f[5]! + f[6]! + f[7]!) / TICKS_PER_SECOND;
}

/** The attacker's processes, held to ATTACKER_CPUS. */
export class AttackerBox {
  readonly how: string;
  readonly #dir: string | undefined;
  readonly #pids = new Set<number>();

  private constructor(how: string, dir: string | undefined) {
    this.how = how;
    this.#dir = dir;
  }

  static async open(): Promise<AttackerBox> {
    const dir = path.join(CGROUP_CPU, `btcfed-byz-${process.pid}`);
    try {
      await fs.mkdir(dir);
      await fs.writeFile(path.join(dir, 'cpu.cfs_period_us'), '100000');
      await fs.writeFile(path.join(dir, 'cpu.cfs_quota_us'), String(Math.round(ATTACKER_CPUS * 100_000)));
      return new AttackerBox(`${ATTACKER_CPUS} CPU (cgroup cpu quota)`, dir);
    } catch {
      await fs.rmdir(dir).catch(() => undefined);
      return new AttackerBox('nice 19 (no cgroup cpu controller here)', undefined);
    }
  }

  /** Puts a process (every thread of it) under the attacker's limit. */
  async add(pid: number): Promise<void> {
    this.#pids.add(pid);
    if (this.#dir) {
      await fs.writeFile(path.join(this.#dir, 'cgroup.procs'), String(pid));
      return;
    }
    for (const tid of await fs.readdir(`/proc/${pid}/task`).catch(() => [] as string[])) {
      try { os.setPriority(Number(tid), 19); } catch { /* gone, or not allowed */ }
    }
  }

  /** A process the attacker spawned that is not the attacker's (a restarted honest service): out of the limit. */
  async release(pid: number): Promise<void> {
    this.#pids.delete(pid);
    if (this.#dir) await fs.writeFile(path.join(CGROUP_CPU, 'cgroup.procs'), String(pid)).catch(() => undefined);
    else for (const tid of await fs.readdir(`/proc/${pid}/task`).catch(() => [] as string[])) {
      try { os.setPriority(Number(tid), 0); } catch { /* gone, or not allowed */ }
    }
  }

  get pids(): number[] { return [...this.#pids]; }

  /** CPU seconds the attacker's processes have used so far. */
  async cpu(): Promise<number> {
    let s = 0;
    for (const pid of this.#pids) s += await cpuSeconds(pid);
    return s;
  }

  async close(): Promise<void> {
    if (!this.#dir) return;
    for (const pid of this.#pids) await fs.writeFile(path.join(CGROUP_CPU, 'cgroup.procs'), String(pid)).catch(() => undefined);
    await fs.rmdir(this.#dir).catch(() => undefined);
  }
}

/** CPU seconds so far of every process of the federation (each member's and the observer's services). */
async function federationCpu(fed: Federation): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const p of fed.net.procs) out.set(`${p.member}/${p.service}`, p.exited ? 0 : await cpuSeconds(p.child.pid!));
  return out;
}

/** m0's counters of how views ended and which were given up, summed by label value ("cause=qc" → n). */
async function viewCounters(fed: Federation): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  let text = '';
  try { text = await fed.metrics(0, 'consensus'); } catch { return out; }
  for (const line of text.split('\n')) {
    const m = /^btcfed_consensus_(view_changes_total|views_skipped_total|view_duration_seconds_sum|view_duration_seconds_count|signer_latency_seconds_sum|signer_latency_seconds_count)\{([^}]*)\} ([0-9.e+]+)$/.exec(line);
    if (!m) continue;
    const labels = m[2]!.replace(/"/g, '').split(',').filter((l) => !/^(member|service)=/.test(l)).join(',');
    const kind = m[1]!.startsWith('view_changes') ? 'entered' : m[1]!.startsWith('views_skipped') ? 'skipped' : m[1]!.startsWith('view_duration') ? 'view' : 'signer';
    const key = `${kind} ${labels}${m[1]!.endsWith('_sum') ? ' sum' : m[1]!.endsWith('_count') ? ' count' : ''}`;
    out.set(key, (out.get(key) ?? 0) + Number(m[3]));
  }
  return out;
}

/** Counts over the window, and the mean of each histogram (views by how they ended, signer round trips by kind) in ms. */
function viewLine(v0: Map<string, number>, v1: Map<string, number>): string {
  const d = (k: string) => (v1.get(k) ?? 0) - (v0.get(k) ?? 0);
  const counts: string[] = [];
  const means: string[] = [];
  for (const k of v1.keys()) {
    if (k.endsWith(' sum')) continue;
    if (k.endsWith(' count')) {
      const base = k.slice(0, -' count'.length);
      const n = d(k);
      if (n > 0) means.push(`${base} ${(1000 * d(`${base} sum`) / n).toFixed(0)} ms ×${n}`);
    } else if (d(k) > 0) counts.push(`${k} ${d(k)}`);
  }
  return [counts.join(', '), means.length ? `mean ${means.join(', ')}` : ''].filter(Boolean).join('; ');
}

export interface Window {
  /** Blocks a second committed by the slowest honest member over the window. */
  rate: number;
  seconds: number;
  /** The attacker's CPU over the window, in cores (1 = one core busy). */
  attackerCpu: number;
  /** Peak resident memory of each honest member's consensus and gateway over the window (MiB). */
  peakRss: number[];
  /** CPU of each honest service over the window, in cores (e.g. "m0/consensus" → 0.41). */
  cpu: Map<string, number>;
  /** CPU over the window of everything on the machine that is neither the federation nor the attacker (other engineers' work), in cores. */
  otherCpu: number;
  /** m0's views over the window: how they were entered, and which were given up ("entered cause=qc 40, skipped leader=3,reason=muted 9"). */
  views: string;
}

/** Honest services whose memory is watched: consensus and gateway of m0–m2. */
export function watchedPids(fed: Federation): Array<{ name: string; pid: number }> {
  return HONEST.flatMap((i) => (['consensus', 'gateway'] as const).map((s) => ({ name: `m${i}/${s}`, pid: fed.proc(i, s).child.pid! })));
}

/**
 * The honest services' anonymous resident memory (heap, buffers: what the process allocated), MiB.
 * Not VmRSS: that also counts the pages of LMDB's memory map the process touched — the block store's
 * file in the page cache, which grows with the chain whatever the attack (some 0.25 MiB a block here,
 * from 60 to over 600 MiB in a full run) and which the kernel reclaims under pressure; it is printed
 * apart (memoryParts).
 */
export async function memory(fed: Federation): Promise<number[]> {
  return Promise.all(watchedPids(fed).map(async (p) => (await rssParts(p.pid)).anon));
}

/**
 * What each watched service's JavaScript holds, MiB: V8's heap in use plus the buffers outside it
 * (its own metrics, nodejs_heap_size_used_bytes + nodejs_external_memory_bytes). Anonymous memory
 * also counts pages glibc's malloc keeps after a burst of large buffers is freed (a flood of 4 MiB
 * frames raises its mmap threshold, so later frames come from a heap it returns only from the top):
 * memory the allocator caches, not memory the service keeps. A queue or map that outside input
 * grows shows here.
 */
export async function heldMemory(fed: Federation): Promise<number[]> {
  return Promise.all(HONEST.flatMap((i) => (['consensus', 'gateway'] as const).map(async (s) => {
    const text = await fed.metrics(i, s);
    return (sumMetric(text, 'nodejs_heap_size_used_bytes') + sumMetric(text, 'nodejs_external_memory_bytes')) / (1 << 20);
  })));
}

/**
 * Has each watched service at these indices (of watchedPids) run a full garbage collection, one
 * after the other: the heap in use counts garbage until V8 collects it, and a quiet service
 * collects its old generation rarely, so what it holds is read after a collection.
 */
export async function collectGarbage(fed: Federation, which: readonly number[]): Promise<void> {
  const pids = watchedPids(fed);
  for (const k of which) await collectGarbageOf(pids[k]!.pid);
}

/** Measures the honest commit rate over `ms`, sampling memory every second and the attacker's CPU. */
export async function measure(fed: Federation, box: AttackerBox, ms: number): Promise<Window> {
  const h0 = await fed.heights();
  const c0 = await box.cpu();
  const f0 = await federationCpu(fed);
  const m0 = await machineCpuSeconds();
  const v0 = await viewCounters(fed);
  const t0 = Date.now();
  const peakRss = await memory(fed);
  while (Date.now() - t0 < ms) {
    await sleep(Math.min(1000, ms - (Date.now() - t0)));
    const now = await memory(fed);
    now.forEach((m, k) => { peakRss[k] = Math.max(peakRss[k]!, m); });
  }
  const h1 = await fed.heights();
  const seconds = (Date.now() - t0) / 1000;
  const c1 = await box.cpu();
  const f1 = await federationCpu(fed);
  const m1 = await machineCpuSeconds();
  const v1 = await viewCounters(fed);
  const views = viewLine(v0, v1);
  const cpu = new Map<string, number>();
  let fedTotal = 0;
  for (const [name, s1] of f1) {
    const d = Math.max(0, s1 - (f0.get(name) ?? s1));
    if (name.startsWith(`m${BYZANTINE}/`)) continue; // the attacker: its gateway is counted with the box (its signer idles: the test process signs)
    fedTotal += d;
    if (HONEST.some((i) => name.startsWith(`m${i}/`))) cpu.set(name, d / seconds);
  }
  const otherCpu = Math.max(0, (m1 - m0) - fedTotal - (c1 - c0)) / seconds;
  return { rate: Math.min(...h1.map((h, k) => h - h0[k]!)) / seconds, seconds, attackerCpu: (c1 - c0) / seconds, peakRss, cpu, otherCpu, views };
}

/** "m0/consensus 0.41, m0/gateway 0.12, …" of the honest services, busiest first (those above 0.02 cores). */
export function cpuLine(w: Window): string {
  return [...w.cpu].filter(([, c]) => c >= 0.02).sort((a, b) => b[1] - a[1]).map(([n, c]) => `${n} ${c.toFixed(2)}`).join(', ');
}

/** "m0/consensus anon 210 + file 420" of the honest services' resident memory, MiB. */
export async function memoryParts(fed: Federation): Promise<string> {
  const parts = await Promise.all(watchedPids(fed).map(async (p) => ({ name: p.name, ...(await rssParts(p.pid)) })));
  return parts.map((p) => `${p.name} ${p.anon.toFixed(0)}+${p.file.toFixed(0)}`).join(', ');
}

/** "m0/consensus 312→340→318" for each watched service. */
export function memoryLine(fed: Federation, before: number[], peak: number[], after: number[]): string {
  return watchedPids(fed).map((p, k) => `${p.name} ${before[k]!.toFixed(0)}→${peak[k]!.toFixed(0)}→${after[k]!.toFixed(0)}`).join(', ');
}
