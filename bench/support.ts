// What every benchmark shares: percentiles, a plain-text table, and the machine baseline
// printed in the same run so figures from different machines can be compared.
// Benchmarks print; they never assert.

import { createHash, randomBytes } from 'node:crypto';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { call } from '#libs/rpc/index.ts';
import type { ConsensusServiceClient } from '#libs/gen/btcfed/v1/consensus.pb.ts';
import { consensusClient } from '../cli/client.ts';
import { runDevnet, type Devnet } from '../cli/devnet.ts';
import { initFederation } from '../cli/init.ts';
import { freePortBlock } from '../test/support/ports.ts';

export interface Stats { readonly n: number; readonly mean: number; readonly p50: number; readonly p95: number; readonly p99: number; readonly max: number }

export function stats(samples: readonly number[]): Stats {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;
  const mean = sorted.reduce((s, x) => s + x, 0) / Math.max(1, sorted.length);
  return { n: sorted.length, mean, p50: at(0.5), p95: at(0.95), p99: at(0.99), max: sorted.at(-1) ?? Number.NaN };
}

export function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string =>
    cells.map((c, i) => (i < 2 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join('  ');
  return [line(headers), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

export const ms = (x: number): string => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));

/** SHA-256 throughput of one core: a CPU yardstick that moves with the machine, not the code. */
export function sha256MBps(): number {
  const block = new Uint8Array(1 << 20);
  const t0 = performance.now();
  let bytes = 0;
  while (performance.now() - t0 < 300) {
    createHash('sha256').update(block).digest();
    bytes += block.length;
  }
  return bytes / 1e6 / ((performance.now() - t0) / 1000);
}

export function printMachine(title: string, extra: string[] = []): void {
  const cpus = os.cpus();
  console.log(`# ${title}`);
  console.log(`cpu        ${cpus[0]?.model ?? 'unknown'} × ${cpus.length} (availableParallelism ${os.availableParallelism()}), load ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  console.log(`node       ${process.versions.node}   openssl ${process.versions.openssl}   ${os.platform()} ${os.arch()}`);
  console.log(`baseline   sha256 ${sha256MBps().toFixed(0)} MB/s (1 MiB blocks, one core)`);
  for (const line of extra) console.log(line);
  console.log('');
}

/** A Prometheus text page (its URL), or '' when it cannot be read within 3 s. */
export async function scrapeMetrics(url: string): Promise<string> {
  try {
    const r = await fetch(url, { signal: AbortSignal.timeout(3000) });
    return await r.text();
  } catch {
    return '';
  }
}

/**
 * The samples of one metric from a Prometheus text endpoint (HOST:PORT), summed by the value of
 * `label` ('' when absent); undefined when the page cannot be read.
 */
export async function scrapeByLabel(endpoint: string, name: string, label: string): Promise<Map<string, number> | undefined> {
  const text = await scrapeMetrics(`http://${endpoint}/metrics`);
  return text ? samplesByLabel(text, name, label) : undefined;
}

/** The samples of one metric in a Prometheus text page, summed by the value of `label` ('' when absent). */
export function samplesByLabel(text: string, name: string, label: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const value = new RegExp(`${label}="([^"]*)"`).exec(m[2] ?? '')?.[1] ?? '';
    out.set(value, (out.get(value) ?? 0) + Number(m[3]));
  }
  return out;
}

/** The fields of /proc/PID/stat after the command name (which may hold spaces): index 0 is field 3, `state`. */
function statFields(pid: number | 'self'): string[] {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

/** CPU time a process has used so far (user + system, ms), from /proc; undefined once it is gone. */
export function processCpuMs(pid: number): number | undefined {
  try {
    const f = statFields(pid);
    return ((Number(f[11]) + Number(f[12])) * 1000) / CLOCK_TICKS; // utime, stime (fields 14 and 15)
  } catch {
    return undefined;
  }
}

/** CPU time of this process's children it has waited for (user + system, ms): cutime, cstime (fields 16 and 17). */
export function childrenCpuMs(): number {
  const f = statFields('self');
  return ((Number(f[13]) + Number(f[14])) * 1000) / CLOCK_TICKS;
}

/** Resident set size of a process (MiB), from /proc; undefined once it is gone. */
export function processRssMiB(pid: number): number | undefined {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** Resident memory split (MiB): anonymous (heap, buffers: what a leak grows) and file-backed (mapped files such as LMDB's, which the kernel can drop). */
export function processRssSplitMiB(pid: number): { anon: number; file: number } | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(text)?.[1] ?? 0);
    return { anon: kb('RssAnon') / 1024, file: (kb('RssFile') + kb('RssShmem')) / 1024 };
  } catch {
    return undefined;
  }
}

/** USER_HZ: the unit of /proc/PID/stat's CPU times. 100 on every Linux architecture Node runs on. */
const CLOCK_TICKS = 100;

/** Counts of an offered load: accepted and refused transactions (a failed call counts as refused). */
export interface LoadCount { accepted: number; refused: number }

/**
 * Open-loop background load: `rate` random `txSize`-byte transactions a second, split over the
 * members, sent once a second whether or not earlier calls have answered, until `stop()`.
 */
export async function offerLoad(clients: readonly ConsensusServiceClient[], rate: number, txSize: number, stop: () => boolean, count: LoadCount): Promise<void> {
  const perMember = Math.max(1, Math.round(rate / clients.length));
  const pending = new Set<Promise<void>>();
  for (let next = Date.now(); !stop(); next += 1000) {
    for (const c of clients) {
      const txs = Array.from({ length: perMember }, () => new Uint8Array(randomBytes(txSize)));
      const p = call(c.submitTransactions.bind(c), { txs }, { deadlineMs: 30_000 })
        .then((r) => { count.accepted += r.accepted; count.refused += txs.length - r.accepted; }, () => { count.refused += txs.length; })
        .finally(() => pending.delete(p));
      pending.add(p);
    }
    const wait = next + 1000 - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  }
  await Promise.all(pending);
}

/** A benchmark killed by a signal (Ctrl-C, `timeout`) stops its devnet first instead of orphaning it. */
export function stopOnSignal(net: { stop(): Promise<void> }): void {
  const stop = (): void => { void net.stop().finally(() => process.exit(130)); };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

export interface BenchDevnet {
  dir: string;
  basePort: number;
  net: Devnet;
  /** A ConsensusService client of each member, in member order. */
  clients: ConsensusServiceClient[];
  /** Closes the clients, stops every process and removes the dir. */
  close(): Promise<void>;
}

/**
 * A fresh devnet of `members` members in a temp dir on random ports (chain `bench-<name>-…`),
 * started and stopped on a signal: what the whole-federation benchmarks run against.
 */
export async function benchDevnet(name: string, members: number, observers = 0): Promise<BenchDevnet> {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), `btcfed-bench-${name}-`));
  const basePort = await freePortBlock(10_000, 70);
  const natsUrl = process.env.NATS_URL ?? 'nats://127.0.0.1:4222';
  await initFederation({ members, observers, out: dir, basePort, chainId: `bench-${name}-${Date.now().toString(36)}`, paramSet: 'slh-dsa-sha2-128f', baseTimeout: '1s', logFormat: 'json', natsUrl });
  const net = await runDevnet({ dir, members, observers, basePort, natsUrl, quiet: true });
  stopOnSignal(net);
  const clients = Array.from({ length: members }, (_, i) => consensusClient(path.join(dir, `m${i}`)));
  return {
    dir, basePort, net, clients,
    async close() {
      for (const c of clients) c.close();
      await net.stop();
      await fsp.rm(dir, { recursive: true, force: true });
    },
  };
}

/** Bytes under `p` (allocated blocks, as du counts them). */
export async function du(p: string): Promise<number> {
  const st = await fsp.lstat(p).catch(() => undefined);
  if (!st) return 0;
  if (!st.isDirectory()) return st.blocks * 512;
  let sum = 0;
  for (const e of await fsp.readdir(p)) sum += await du(path.join(p, e));
  return sum;
}
