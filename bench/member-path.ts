// The consensus service's transaction path alone: four consensus drivers in this one process
// (services/consensus/local-federation.ts: real LMDB stores, real mempools, real batches, real
// SLH-DSA checks, an in-memory transport), loaded in a closed loop through the validator's intake
// (the path SubmitTransactions takes, without gRPC and the journal). It reports the CPU this process
// spent per committed transaction over all four members, with the signing taken out (the signer is
// its own service; here, a thread of its own that reports what each signature cost) and the load's
// making of transactions taken out. The federation bench (bench/federation.ts) measures the whole
// member, every process and hop included; this one is what `--cpu-prof` can profile in one process,
// in half a minute.
//
// Windows run from one of member 0's commits to another, so each holds whole blocks' work. Their
// figures still differ by a third and more: the machine's speed moves under its neighbours' load
// within seconds. The baseline, in the same run: the floor of the path as the design has it, each
// transaction hashed once on each member, sampled every quarter second through the windows (its
// time is left out of theirs); the path's cost in floors over all windows is the figure to compare
// between runs. It is steadier than CPU-µs, not steady: judge a change by runs interleaved with the
// code before it, as for the federation bench.
//
// Run: node_modules/.bin/node bench/member-path.ts [--windows 5] [--window-s 4] [--warmup-s 6]
//        [--backlog 20000] [--tx-bytes 250] [--block-txs 10000] [--quick]

import { PerformanceObserver } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { Worker, isMainThread, parentPort } from 'node:worker_threads';
import fs from 'node:fs/promises';
import { pino } from 'pino';
import { txHash, type KeyPair } from '#libs/crypto/index.ts';
import { mempoolIntake, type Intake } from '../services/consensus/api.ts';
import { N, dsa, localFederation, stopAll } from '../services/consensus/local-federation.ts';
import { printMachine, stats, table } from './support.ts';

const { values: f } = parseArgs({ options: {
  windows: { type: 'string' }, 'window-s': { type: 'string' }, 'warmup-s': { type: 'string' }, backlog: { type: 'string', default: '20000' },
  'tx-bytes': { type: 'string', default: '250' }, 'block-txs': { type: 'string', default: '10000' }, quick: { type: 'boolean', default: false },
} });
const WINDOWS = Number(f.windows ?? (f.quick ? 3 : 5));
const WINDOW_MS = 1000 * Number(f['window-s'] ?? (f.quick ? 3 : 4));
const WARMUP_MS = 1000 * Number(f['warmup-s'] ?? (f.quick ? 4 : 6));
const BACKLOG = Number(f.backlog);
const TX_BYTES = Number(f['tx-bytes']);
const BLOCK_TXS = Number(f['block-txs']);

/** This thread's CPU in µs, counted by the kernel in ticks (4 ms here): for spans far longer than that. */
const threadCpuUs = (): number => { const u = process.threadCpuUsage(); return u.user + u.system; };
/** The whole process's CPU in µs: this thread and the thread pool (signature checks, LMDB). */
const processCpuUs = (): number => { const u = process.cpuUsage(); return u.user + u.system; };

/** Transactions of TX_BYTES, each unique (a counter in its first eight bytes), made on demand; what making them costs is kept apart. */
class Load {
  #next = 0;
  makingUs = 0;
  make(count: number): Uint8Array[] {
    const t0 = performance.now(); // a few hundred µs: under the 4 ms tick of the thread's CPU clock
    const txs = Array.from({ length: count }, () => {
      const tx = new Uint8Array(TX_BYTES);
      tx.fill(0x61, 8);
      new DataView(tx.buffer).setFloat64(0, this.#next++);
      return tx;
    });
    this.makingUs += 1000 * (performance.now() - t0);
    return txs;
  }
}

/**
 * The signer, on a thread of its own as it is a service of its own: the drivers' views run while it
 * signs. It reports the CPU each signature took, which is kept apart from the path's.
 */
class WorkerSigner {
  readonly #worker = new Worker(new URL(import.meta.url));
  readonly #waiting = new Map<number, (sig: Uint8Array) => void>();
  #next = 0;
  signUs = 0;
  constructor() {
    this.#worker.on('message', (m: { id: number; sig: Uint8Array; us: number }) => {
      this.signUs += m.us;
      this.#waiting.get(m.id)?.(m.sig);
      this.#waiting.delete(m.id);
    });
  }
  sign(key: KeyPair, bytes: Uint8Array): Promise<Uint8Array> {
    const id = this.#next++;
    return new Promise((resolve) => { this.#waiting.set(id, resolve); this.#worker.postMessage({ id, secretKey: key.secretKey, bytes }); });
  }
  stop(): Promise<number> { return this.#worker.terminate(); }
}

function signerThread(): void {
  parentPort!.on('message', (m: { id: number; secretKey: Uint8Array; bytes: Uint8Array }) => {
    const t0 = threadCpuUs();
    const sig = dsa.signSync(m.secretKey, m.bytes);
    parentPort!.postMessage({ id: m.id, sig, us: threadCpuUs() - t0 });
  });
}

/**
 * The floor, sampled through each window: every quarter second, FLOOR_SAMPLE transactions hashed once
 * on each of the four members (µs per transaction). The time the samples take is kept apart.
 */
const FLOOR_SAMPLE = 1000;
class Floor {
  readonly #txs: Uint8Array[];
  samples: number[] = [];
  takenUs = 0;
  constructor(load: Load) { this.#txs = load.make(FLOOR_SAMPLE); }
  sample(): void {
    // Wall time, not the thread's CPU: the kernel counts that in 4 ms ticks, longer than a sample.
    const t0 = performance.now();
    for (let m = 0; m < N; m++) for (const tx of this.#txs) txHash(tx);
    const us = 1000 * (performance.now() - t0);
    this.samples.push(us / FLOOR_SAMPLE);
    this.takenUs += us;
  }
}

const mean = (xs: readonly number[]): number => xs.reduce((a, x) => a + x, 0) / xs.length;

interface Mark { txs: number; blocks: number; t: number; cpu: number; sign: number; making: number; floorTaken: number; floorSamples: number; gcMs: number }
interface Window { txs: number; blocks: number; wallMs: number; pathUs: number; signUs: number; cpuUs: number; floorUs: number; gcMs: number }

async function main(): Promise<void> {
  printMachine('one member\'s transaction path, four drivers in one process' + (f.quick ? ' (--quick)' : ''),
    [`load       closed loop, ${BACKLOG.toLocaleString('en')} transactions of ${TX_BYTES} bytes waiting in each member's pool; blocks of at most ${BLOCK_TXS.toLocaleString('en')}`,
      `windows    ${WINDOWS} of about ${WINDOW_MS / 1000} s after ${WARMUP_MS / 1000} s of warm-up, each from one of member 0's commits to another`]);
  const load = new Load();
  const floor = new Floor(load);

  const signer = new WorkerSigner();
  let viewChanges = 0;
  const causes = new Map<string, number>();
  // The garbage collector's pauses on this thread (its helper threads are in the CPU, not here).
  let gcMs = 0;
  const gc = new PerformanceObserver((list) => { for (const e of list.getEntries()) gcMs += e.duration; });
  gc.observe({ entryTypes: ['gc'] });
  // A window runs from one of member 0's commits to another: it then holds whole blocks' work (a
  // block of 10,000 is a quarter of a window's transactions: cut anywhere else, the count jumps).
  let committedTxs = 0;
  let committedBlocks = 0;
  let markWanted: ((m: Mark) => void) | undefined;
  const mark = (): Mark => ({ txs: committedTxs, blocks: committedBlocks, t: performance.now(), cpu: processCpuUs(), sign: signer.signUs, making: load.makingUs,
    floorTaken: floor.takenUs, floorSamples: floor.samples.length, gcMs });
  const nextCommit = () => new Promise<Mark>((resolve) => { markWanted = resolve; });
  const fed = await localFederation({
    log: pino({ level: 'error' }), maxBlockTxs: BLOCK_TXS, maxBlockBytes: 4 << 20, poolMaxTxs: 200_000, sign: (_i, key, bytes) => signer.sign(key, bytes), keepCommits: false,
    viewChanged: (i, _view, cause) => { if (i === 0) { viewChanges++; causes.set(cause, (causes.get(cause) ?? 0) + 1); } },
    committed: (i, blocks) => {
      if (i !== 0) return;
      committedBlocks += blocks.length;
      for (const b of blocks) committedTxs += b.txs.length;
      const wanted = markWanted;
      markWanted = undefined;
      wanted?.(mark());
    },
  });
  const { members } = fed;
  const intakes: Intake[] = members.map((m) => mempoolIntake(m.pool, m.driver.isCommitted, (tx, hash) => m.inbound.gossip(tx, hash)));
  members.forEach((m) => m.driver.start());

  // The clients: each member's pool topped up to BACKLOG, at most 512 transactions a member a turn.
  let loading = true;
  let refused = 0;
  const top = (): void => {
    if (!loading) return;
    const now = Date.now();
    for (let i = 0; i < N; i++) {
      const want = Math.min(512, BACKLOG - intakes[i]!.size);
      if (want <= 0) continue;
      for (const tx of load.make(want)) {
        const r = intakes[i]!.offer(tx, now);
        if (r.status === 'added') intakes[i]!.handOff(tx, r.hash); else refused++;
      }
    }
    setTimeout(top, 1);
  };
  top();

  await new Promise((r) => setTimeout(r, WARMUP_MS));
  const sampler = setInterval(() => floor.sample(), 250);
  const windows: Window[] = [];
  let from = await nextCommit();
  for (let w = 0; w < WINDOWS; w++) {
    await new Promise((r) => setTimeout(r, WINDOW_MS));
    const to = await nextCommit();
    const cpuUs = to.cpu - from.cpu;
    const samples = floor.samples.slice(from.floorSamples, to.floorSamples);
    windows.push({ txs: to.txs - from.txs, blocks: to.blocks - from.blocks, wallMs: to.t - from.t, cpuUs, signUs: to.sign - from.sign,
      pathUs: cpuUs - (to.sign - from.sign) - (to.making - from.making) - (to.floorTaken - from.floorTaken),
      floorUs: samples.length ? mean(samples) : Number.NaN, gcMs: to.gcMs - from.gcMs });
    from = to;
  }
  clearInterval(sampler);
  gc.disconnect();
  loading = false;
  await stopAll(members);
  await signer.stop();
  await Promise.all(fed.dirs.map((d) => fs.rm(d, { recursive: true, force: true })));

  const perTx = (w: Window) => w.pathUs / Math.max(1, w.txs);
  console.log(table(['window', 'of', 'committed tx/s', 'blocks', 'CPU-µs/tx (4 members)', 'floor µs/tx', 'in floors', 'GC pauses %', 'signing CPU %', 'CPU busy %'],
    windows.map((w, k) => [String(k + 1), String(WINDOWS), Math.round(w.txs / (w.wallMs / 1000)).toLocaleString('en'), String(w.blocks),
      perTx(w).toFixed(1), w.floorUs.toFixed(2), (perTx(w) / w.floorUs).toFixed(1), (100 * w.gcMs / w.wallMs).toFixed(0),
      (100 * w.signUs / Math.max(1, w.cpuUs)).toFixed(0), (100 * w.cpuUs / 1000 / w.wallMs).toFixed(0)])));
  const spread = (xs: number[]) => (xs.length > 1 ? (Math.max(...xs) - Math.min(...xs)) / stats(xs).p50 : 0);
  const us = windows.map(perTx);
  const floors = windows.map((w) => perTx(w) / w.floorUs);
  console.log('');
  const all = windows.reduce((a, w) => ({ us: a.us + w.pathUs, txs: a.txs + w.txs }), { us: 0, txs: 0 });
  console.log(`CPU per committed transaction, four members, signing and load taken out: ${(all.us / all.txs).toFixed(1)} µs over all windows `
    + `(${all.txs.toLocaleString('en')} transactions); the windows' median ${stats(us).p50.toFixed(1)}, spread ${(100 * spread(us)).toFixed(0)} % of it`);
  // The mean, not the median: the machine runs fast and slow by turns, and the path runs through both.
  const floorAll = mean(floor.samples);
  console.log(`baseline: each transaction hashed once on each member: ${floorAll.toFixed(2)} µs (the mean of ${floor.samples.length} samples through the windows; `
    + `they ranged ${Math.min(...floor.samples).toFixed(2)}–${Math.max(...floor.samples).toFixed(2)} as the machine's speed moved)`);
  console.log(`the path in floors, the figure to compare between runs: ${(all.us / all.txs / floorAll).toFixed(1)} over all windows; the windows' median ${stats(floors).p50.toFixed(1)}, spread ${(100 * spread(floors)).toFixed(0)} %`);
  console.log(`member 0's view changes: ${viewChanges} (${[...causes].map(([c, k]) => `${c} ${k}`).join(', ')})`);
  if (refused > 0) console.log(`note: ${refused} offers were refused (a full pool); the load is then above what the path takes`);
}

if (isMainThread) await main(); else signerThread();
