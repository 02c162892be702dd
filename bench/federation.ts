// The federation benchmark (`npm run bench -- federation` or `node bench/federation.ts`):
// starts a devnet of N members (real processes), drives load through the public API with
// SubmitTransactions, and prints throughput, commit latency (submit → seen committed by a
// StreamCommits reader) p50/p95/p99 and the block interval. In the same run it measures
// SLH-DSA sign and verify here and prints the block interval against the signing floor:
// three sequential signatures (PREPARE, PRE-COMMIT, COMMIT votes) plus one QC verification.
// Never asserted: it prints figures.
//
//   node bench/federation.ts [--members 4] [--backend node|noble|both] [--seconds 20]
//     [--tx-size 250] [--batch 500] [--clients 2] [--outstanding 40000] [--quick] [--no-recovery] [--keep-logs]
//     [--rate 5000]   (open loop: this many tx/s offered, in batches every 100 ms, instead of the closed loop)
//     [--warm-up 60]  (seconds of empty blocks before the idle window; 0 with --quick)
//     [--dead-member] (after the load, kill m(N−1)'s consensus, never restarted, and load again for
//                      as long: committed tx/s with one member dead; on by default from N = 7)
//     [--index-prefill 1000000] (each member's transaction index starts holding this many ids, as
//                      after a long history: written into its block store before the services start)
//     [--max-block-txs 10000] (consensus.max_block_txs of every member; max_block_bytes grows with it
//                      when the default 4 MiB would bind first)
//     [--no-batches-on-disk] (consensus.batches_on_disk false on every member: the other validators'
//                      batches held in memory only, the baseline for what writing them costs)
//
// Where the CPU goes: every service process's CPU time (/proc) is read when the idle window
// starts and ends and when the load's backlog has committed, and its RSS every second. Printed:
// what an idle process costs (CPU-ms per second, per service), the CPU per block outside SLH-DSA,
// the CPU per committed transaction per service and per member (against the 100 µs per member
// that 10,000 tx/s on one dedicated core allows), RSS per service, and what one member's dir
// (without its logs) grew by on disk per committed transaction over the load. Between the idle window
// and the load, the leader's consensus service is killed with kill -9 and the time to the next
// block of a later view is measured (the recovery requirement: under 10 s); the service is then
// restarted and the load waits for it to catch up. Over the idle window it also reads every
// member's QC-formation and signer round-trip histograms: where an idle view's time goes. The
// run ends with the performance targets that apply to it, each met / not met / not measured
// (bench/targets.ts).

import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { open } from 'lmdb';
import { parseArgs } from 'node:util';
import { createSlhDsa, toHex, txHash, type BackendName } from '#libs/crypto/index.ts';
import { quorumSize } from '#libs/hotstuff/index.ts';
import { call } from '#libs/rpc/index.ts';
import type { ConsensusServiceClient, StreamCommitsResponse } from '#libs/gen/btcfed/v1/consensus.pb.ts';
import { consensusClient } from '../cli/client.ts';
import { parseDocument } from 'yaml';
import { runDevnet, type Devnet } from '../cli/devnet.ts';
import { initFederation } from '../cli/init.ts';
import { memberTargets } from '../cli/prometheus.ts';
import { du, ms, printMachine, processCpuMs, processRssMiB, samplesByLabel, scrapeByLabel, scrapeMetrics, stats, table } from './support.ts';
import { targetRows } from './targets.ts';
import { freePortBlock } from '../test/support/ports.ts';
import { TX_INDEX_MERGE_AT } from '../services/consensus/tx-index.ts';
import { TxRuns } from '../services/consensus/tx-runs.ts';
import { randomIdSeed } from '#libs/blocks/index.ts';

const { values: f } = parseArgs({ allowNegative: true, options: {
  members: { type: 'string', default: '4' }, backend: { type: 'string', default: 'both' }, seconds: { type: 'string' },
  'tx-size': { type: 'string', default: '250' }, batch: { type: 'string', default: '500' }, clients: { type: 'string', default: '2' },
  quick: { type: 'boolean', default: false }, outstanding: { type: 'string', default: '40000' },
  recovery: { type: 'boolean', default: true }, rate: { type: 'string' }, 'base-timeout': { type: 'string' },
  'warm-up': { type: 'string' }, 'dead-member': { type: 'boolean' }, 'keep-logs': { type: 'boolean', default: false },
  'index-prefill': { type: 'string', default: '0' }, 'max-block-txs': { type: 'string' },
  'batches-on-disk': { type: 'boolean', default: true },
} });
const indexPrefill = Number(f['index-prefill']);
/** Open loop: transactions per second offered whatever the federation commits (undefined: the closed loop). */
const openRate = f.rate === undefined ? undefined : Number(f.rate);
const maxOutstanding = Number(f.outstanding);
/** Seconds of empty blocks before the idle window (steady state: see the comment where it is used). */
const warmUpSeconds = Number(f['warm-up'] ?? (f.quick ? 0 : 60));
const N = Number(f.members);
const seconds = Number(f.seconds ?? (f.quick ? 5 : 20));
const txSize = Number(f['tx-size']);
const batch = Number(f.batch);
const clientsPerMember = Number(f.clients);
const backends: BackendName[] = f.backend === 'both' ? ['node', 'noble'] : [f.backend as BackendName];
/** After the load: kill one member's consensus for good and load again (default from N = 7). */
const deadMember = f['dead-member'] ?? N >= 7;

/**
 * A long history's transaction index, without the history: `n` random ids (no transaction will
 * ever have them) written as the block store's merges write them, in sorted runs of 131,072 with
 * their compactions (tx-runs.ts), before the consensus service first opens the store (which then
 * takes it as a fresh store whose index already holds them).
 */
async function prefillIndex(storeDir: string, n: number): Promise<void> {
  const root = open({ path: storeDir, compression: false });
  const meta = root.openDB<string, string>({ name: 'meta', encoding: 'string', keyEncoding: 'ordered-binary' });
  const runs = new TxRuns(root.openDB<Uint8Array, Uint8Array>({ name: 'txruns', encoding: 'binary', keyEncoding: 'binary' }), { write: (_what, body) => root.transaction(body), meta }, randomIdSeed());
  for (let done = 0; done < n; done += TX_INDEX_MERGE_AT) {
    const ids = Array.from({ length: Math.min(TX_INDEX_MERGE_AT, n - done) }, () => randomBytes(32)).sort(Buffer.compare);
    await runs.add({ ids: Buffer.concat(ids), heights: new Float64Array(ids.length), indexes: Uint32Array.from(ids.keys()) }, () => {});
    await runs.settled();
  }
  await root.close();
}

function signingFloor(backend: BackendName): { signMs: number; verifyMs: number; floorMs: number } {
  const dsa = createSlhDsa({ backend });
  const k = dsa.generateKeyPair();
  const msg = randomBytes(120);
  const n = f.quick ? 3 : 10;
  let t0 = performance.now();
  let sig = dsa.signSync(k.secretKey, msg);
  for (let i = 1; i < n; i++) sig = dsa.signSync(k.secretKey, msg);
  const signMs = (performance.now() - t0) / n;
  t0 = performance.now();
  for (let i = 0; i < n * 5; i++) dsa.verifySync(k.publicKey, msg, sig);
  const verifyMs = (performance.now() - t0) / (n * 5);
  return { signMs, verifyMs, floorMs: 3 * signMs + quorumSize(N) * verifyMs };
}

/**
 * The CPU floor of one committed view for the whole federation, divided by the cores it shares:
 * every signature of a steady-state view made (a proposal, three votes from each member; no
 * NEW-VIEW after a decide) and verified once by each receiver (the proposal by N − 1 replicas, the
 * votes by the leader, the three QCs' quorum signatures by N − 1 replicas).
 */
function cpuFloor(signMs: number, verifyMs: number): { signs: number; verifies: number; cores: number; floorMs: number; signerChecks: number; withSignerMs: number } {
  const q = quorumSize(N);
  const signs = 1 + 3 * N;
  const verifies = (N - 1) * (1 + 3 + 3 * q);
  const cores = os.availableParallelism();
  // The signer checks the QC each vote stands on again, against its own validator set (its
  // defence against a compromised consensus host): the PRE-COMMIT vote's prepareQC and the COMMIT
  // vote's precommitQC; the PREPARE vote's justify is the last view's prepareQC, already checked.
  const signerChecks = N * 2 * q;
  return { signs, verifies, cores, floorMs: (signs * signMs + verifies * verifyMs) / cores,
    signerChecks, withSignerMs: (signs * signMs + (verifies + signerChecks) * verifyMs) / cores };
}

/**
 * Closed loop: clients keep at most `maxOutstanding` transactions accepted but not yet seen
 * committed, so the figures describe what the federation sustains, not how deep a queue grows.
 */
/**
 * Open loop: every 100 ms each member gets its share of `rate` tx/s, sent whether or not earlier
 * calls have answered, so latency includes the queueing a real offered load causes.
 */
async function openLoad(clients: ConsensusServiceClient[], rate: number, until: number, submitted: Map<string, number>): Promise<{ accepted: number; refused: number }> {
  let accepted = 0;
  let refused = 0;
  const inFlight = new Set<Promise<void>>();
  const perTick = rate / 10 / clients.length;
  let carry = 0;
  for (let tick = Date.now(); tick < until; tick += 100) {
    carry += perTick;
    const n = Math.floor(carry);
    carry -= n;
    for (const c of clients) {
      if (n === 0) continue;
      const txs = Array.from({ length: n }, () => new Uint8Array(randomBytes(txSize)));
      const t = Date.now();
      for (const tx of txs) submitted.set(toHex(txHash(tx)), t);
      const p = call(c.submitTransactions.bind(c), { txs }, { deadlineMs: 30_000 })
        .then((r) => { accepted += r.accepted; refused += txs.length - r.accepted; }, () => { refused += txs.length; })
        .finally(() => inFlight.delete(p));
      inFlight.add(p);
    }
    const wait = tick + 100 - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  }
  await Promise.all(inFlight);
  return { accepted, refused };
}

async function load(clients: ConsensusServiceClient[], until: number, submitted: Map<string, number>, committed: () => number): Promise<{ accepted: number; refused: number }> {
  let accepted = 0;
  let refused = 0;
  await Promise.all(clients.flatMap((c) => Array.from({ length: clientsPerMember }, async () => {
    while (Date.now() < until) {
      if (accepted - committed() > maxOutstanding) {
        await new Promise((res) => setTimeout(res, 10));
        continue;
      }
      const txs = Array.from({ length: batch }, () => new Uint8Array(randomBytes(txSize)));
      const t = Date.now();
      for (const tx of txs) submitted.set(toHex(txHash(tx)), t);
      try {
        const r = await call(c.submitTransactions.bind(c), { txs }, { deadlineMs: 30_000 });
        accepted += r.accepted;
        refused += txs.length - r.accepted;
        if (r.accepted < txs.length) await new Promise((res) => setTimeout(res, 50)); // mempool full: back off
      } catch {
        refused += txs.length;
        await new Promise((res) => setTimeout(res, 200));
      }
    }
  })));
  return { accepted, refused };
}

type Procs = Devnet['procs'];
const SERVICE_NAMES = ['store', 'signer', 'gateway', 'consensus'] as const;

/** CPU time (ms) of every service process now, by "member/service". */
function cpuSnapshot(procs: Procs): Map<string, number> {
  const out = new Map<string, number>();
  for (const p of procs) {
    const cpuMs = p.child.pid === undefined ? undefined : processCpuMs(p.child.pid);
    if (cpuMs !== undefined) out.set(`${p.member}/${p.service}`, cpuMs);
  }
  return out;
}

/** CPU used between two snapshots, summed by service (over members) and by member (over services). */
function cpuBetween(a: Map<string, number>, b: Map<string, number>): { byService: Map<string, number>; byMember: Map<string, number>; total: number } {
  const byService = new Map<string, number>();
  const byMember = new Map<string, number>();
  let total = 0;
  for (const [key, end] of b) {
    const start = a.get(key);
    if (start === undefined) continue;
    const [member, service] = key.split('/') as [string, string];
    const used = end - start;
    byService.set(service, (byService.get(service) ?? 0) + used);
    byMember.set(member, (byMember.get(member) ?? 0) + used);
    total += used;
  }
  return { byService, byMember, total };
}

interface Recovery {
  leader: number;
  /** Kill → a block of a later view committed on the next member; undefined: not in 120 s. */
  ms: number | undefined;
  /** The next member's view timer when the leader died (s): the dead view costs up to this much. */
  timerS: number | undefined;
  /** Restart → the restarted member committed the witness's height again (ms); undefined: not in 60 s. */
  catchUpMs: number | undefined;
}

/** A histogram's sum and count over every member's consensus service, by one label's value. */
type Totals = Map<string, { sum: number; count: number }>;

/** Each histogram's totals (by its label), from one scrape of every member's consensus service. */
async function histogramTotals(dir: string, histograms: readonly { name: string; label: string }[]): Promise<Totals[]> {
  const out: Totals[] = histograms.map(() => new Map());
  for (let i = 0; i < N; i++) {
    const endpoint = memberTargets(path.join(dir, `m${i}`)).targets.consensus;
    const text = endpoint ? await scrapeMetrics(`http://${endpoint}/metrics`) : '';
    histograms.forEach(({ name, label }, h) => {
      const counts = samplesByLabel(text, `${name}_count`, label);
      for (const [k, sum] of samplesByLabel(text, `${name}_sum`, label)) {
        const t = out[h]!.get(k) ?? { sum: 0, count: 0 };
        out[h]!.set(k, { sum: t.sum + sum, count: t.count + (counts.get(k) ?? 0) });
      }
    });
  }
  return out;
}

/** Mean in ms of one label's observations between two snapshots; NaN when there were none. */
function meanMsBetween(a: Totals, b: Totals, key: string): number {
  const x = b.get(key);
  const y = a.get(key) ?? { sum: 0, count: 0 };
  return x && x.count > y.count ? ((x.sum - y.sum) / (x.count - y.count)) * 1000 : Number.NaN;
}

/**
 * Kill -9 of the current leader's consensus service in the steady state (empty blocks, no
 * backlog: after a load the figure would measure the backlog's blocks, not the view change);
 * ms until a block of a later view commits on the next member. Then the service is restarted
 * and the bench waits for it to catch up, so the load that follows meets a whole federation.
 */
async function leaderRecovery(net: Devnet, clients: ConsensusServiceClient[], dir: string): Promise<Recovery | undefined> {
  // Not m0: the bench reads commits from it.
  let s = await call(clients[0]!.getStatus.bind(clients[0]!), {}, { deadlineMs: 5000 });
  for (let i = 0; i < 600 && s.leader === 0; i++) {
    await new Promise((r) => setTimeout(r, 50));
    s = await call(clients[0]!.getStatus.bind(clients[0]!), {}, { deadlineMs: 5000 });
  }
  const leader = s.leader;
  if (leader === 0) return undefined;
  const viewAtKill = Number(s.view);
  const next = (leader + 1) % N;
  const witness = clients[next]!;
  const proc = net.procs.find((p) => p.member === `m${leader}` && p.service === 'consensus' && !p.exited);
  if (!proc?.child.pid) return undefined;
  const t0 = Date.now();
  proc.child.kill('SIGKILL'); // at once: at N = 4 a view lasts a few hundred ms
  // The witness is still in the dead leader's view: its timer now is the one that has to run out.
  const endpoint = memberTargets(path.join(dir, `m${next}`)).targets.consensus;
  const timerS = endpoint ? (await scrapeByLabel(endpoint, 'btcfed_consensus_view_timeout_seconds', 'view'))?.get('') : undefined;
  let recovered: number | undefined;
  let height = 0n;
  while (Date.now() - t0 < 120_000 && recovered === undefined) {
    await new Promise((r) => setTimeout(r, 50));
    try {
      const st = await call(witness.getStatus.bind(witness), {}, { deadlineMs: 2000 });
      const b = await call(witness.getBlock.bind(witness), { by: { $case: 'height', value: st.committedHeight } }, { deadlineMs: 2000 });
      if (Number(b.block?.header?.view ?? 0) > viewAtKill) { recovered = Date.now() - t0; height = BigInt(st.committedHeight); }
    } catch { /* the witness is busy: ask again */ }
  }
  const t1 = Date.now();
  await net.restart(leader, 'consensus');
  // A new channel: the old one has been backing off its reconnects (up to two minutes) while the
  // service was dead, which would time the client rather than the member.
  clients[leader]!.close();
  const restarted = consensusClient(path.join(dir, `m${leader}`));
  clients[leader] = restarted;
  let catchUpMs: number | undefined;
  while (Date.now() - t1 < 60_000 && catchUpMs === undefined) {
    await new Promise((r) => setTimeout(r, 200));
    try {
      const st = await call(restarted.getStatus.bind(restarted), {}, { deadlineMs: 2000 });
      if (BigInt(st.committedHeight) >= height) catchUpMs = Date.now() - t1;
    } catch { /* still starting */ }
  }
  return { leader, ms: recovered, timerS, catchUpMs };
}

/** One field of a member's conf.yaml. */
async function setConf(file: string, at: string[], value: unknown): Promise<void> {
  const doc = parseDocument(await fs.readFile(file, 'utf8'));
  doc.setIn(at, value);
  await fs.writeFile(file, doc.toString());
}

/** consensus.max_block_txs, and max_block_bytes where the default would bind first (the transactions and their framing). */
async function setBlockLimit(file: string, txs: number): Promise<void> {
  const doc = parseDocument(await fs.readFile(file, 'utf8'));
  doc.setIn(['consensus', 'max_block_txs'], txs);
  doc.setIn(['consensus', 'max_block_bytes'], Math.max(4 * 1024 * 1024, txs * (txSize + 16)));
  await fs.writeFile(file, doc.toString());
}

async function runOnce(backend: BackendName): Promise<string[]> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'btcfed-bench-'));
  const basePort = await freePortBlock(10_000, 70); // below the ephemeral port range
  await initFederation({ members: N, out: dir, basePort, chainId: `bench-${backend}`, paramSet: 'slh-dsa-sha2-128f',
    baseTimeout: f['base-timeout'] ?? (backend === 'noble' ? '4s' : '2s'), logFormat: 'json', natsUrl: process.env.NATS_URL ?? 'nats://127.0.0.1:4222' });
  for (let i = 0; i < N; i++) {
    for (const file of [path.join(dir, `m${i}`, 'conf.yaml'), path.join(dir, `m${i}`, 'signer', 'signer.yaml')]) {
      await fs.writeFile(file, (await fs.readFile(file, 'utf8')).replace('backend: auto', `backend: ${backend}`));
    }
    if (f['max-block-txs'] !== undefined) await setBlockLimit(path.join(dir, `m${i}`, 'conf.yaml'), Number(f['max-block-txs']));
    if (!f['batches-on-disk']) await setConf(path.join(dir, `m${i}`, 'conf.yaml'), ['consensus', 'batches_on_disk'], false);
  }
  for (let i = 0; i < N && indexPrefill > 0; i++) await prefillIndex(path.join(dir, `m${i}`, 'consensus'), indexPrefill);
  const floor = signingFloor(backend); // on a quiet machine, before the federation starts
  const cpu = cpuFloor(floor.signMs, floor.verifyMs);
  const t0 = Date.now();
  const net = await runDevnet({ dir, members: N, basePort, natsUrl: process.env.NATS_URL ?? 'nats://127.0.0.1:4222', quiet: true })
    .catch(async (err: unknown) => { console.log(`(logs kept in ${dir})`); throw err; });
  const startup = (Date.now() - t0) / 1000;
  const clients = Array.from({ length: N }, (_, i) => consensusClient(path.join(dir, `m${i}`)));
  const interrupt = () => { void net.stop().then(() => process.exit(130)); };
  process.once('SIGINT', interrupt);
  process.once('SIGTERM', interrupt);
  try {
    const submitted = new Map<string, number>();
    const latencies: number[] = [];
    const intervals: number[] = [];
    const idleIntervals: number[] = [];
    let loading = false;
    let committedTxs = 0;
    let blocks = 0;
    let lastTs = 0;
    const watcher = clients[0]!.streamCommits({ fromHeight: 0, headersOnly: false });
    watcher.on('data', (r: StreamCommitsResponse) => {
      const b = r.block?.block;
      if (!b?.header) return;
      const now = Date.now();
      blocks++;
      if (lastTs > 0) (loading ? intervals : idleIntervals).push(b.header.timestampMs - lastTs);
      lastTs = b.header.timestampMs;
      for (const tx of b.txs) {
        const at = submitted.get(toHex(txHash(tx)));
        if (at !== undefined) { latencies.push(now - at); committedTxs++; }
      }
    });
    watcher.on('error', () => undefined);
    // Large federations on one machine take a while to make their first blocks: wait for them (≤ 5 min),
    // then --warm-up seconds (and a few blocks) before the idle window: in its first minute a
    // member costs more (an N = 4 gateway 306 CPU-ms/s 25 s after the start, 169 at 95 s; the idle
    // interval 350 ms measured from the first blocks, 298 ms after a minute), and the target is the
    // steady state. Then watch empty blocks for the idle block interval.
    for (let i = 0; i < 1500 && blocks < 2; i++) await new Promise((r) => setTimeout(r, 200));
    const warmUntil = blocks + (f.quick ? 1 : 4);
    const warmMs = Date.now() + warmUpSeconds * 1000;
    const warmDeadline = warmMs + 60_000;
    while ((blocks < warmUntil || Date.now() < warmMs) && Date.now() < warmDeadline) await new Promise((r) => setTimeout(r, 100));
    idleIntervals.length = 0;
    // Where an idle view's time goes: each QC's time after the proposal as its leader saw it,
    // and the signer's round trip per request, over every member.
    const anatomy = async () => histogramTotals(dir, [
      { name: 'btcfed_consensus_qc_formation_seconds', label: 'phase' },
      { name: 'btcfed_consensus_signer_latency_seconds', label: 'kind' },
    ]);
    const anatomy0 = await anatomy();
    const idleCpu0 = cpuSnapshot(net.procs);
    const idleT0 = Date.now();
    const idleBlocks0 = blocks;
    const idleUntil = blocks + (f.quick ? 3 : 12);
    for (let i = 0; i < 600 && blocks < idleUntil; i++) await new Promise((r) => setTimeout(r, 100));
    const idleCpu = cpuBetween(idleCpu0, cpuSnapshot(net.procs));
    const idleSeconds = (Date.now() - idleT0) / 1000;
    const idleBlocks = blocks - idleBlocks0;
    const idle = stats(idleIntervals);
    const anatomy1 = await anatomy();
    const orNa = (x: number): string => (Number.isFinite(x) ? ms(x) : 'n/a');
    const qcAt = (phase: string): string => orNa(meanMsBetween(anatomy0[0]!, anatomy1[0]!, phase));
    const signerRt = (kind: string): string => orNa(meanMsBetween(anatomy0[1]!, anatomy1[1]!, kind));
    const recovery = f.recovery ? await leaderRecovery(net, clients, dir).catch(() => undefined) : undefined;
    const rss = new Map<string, number>();
    const sampleRss = () => {
      for (const p of net.procs) {
        const mib = p.child.pid === undefined ? undefined : processRssMiB(p.child.pid);
        if (mib !== undefined) rss.set(p.service, Math.max(rss.get(p.service) ?? 0, mib));
      }
    };
    const rssTimer = setInterval(sampleRss, 1000);
    loading = true;
    // How m0's views ended while loading: by a commit, by a quorum of NEW-VIEWs (a view that failed), or by a QC seen ahead.
    const m0Metrics = memberTargets(path.join(dir, 'm0')).targets.consensus;
    const viewCauses = async () => (m0Metrics ? scrapeByLabel(m0Metrics, 'btcfed_consensus_view_changes_total', 'cause') : undefined);
    const views0 = await viewCauses();
    // What a member keeps on disk per committed transaction: m0's dir (its block store, batches,
    // mempool journal, signer state) without its logs, as du counts it, over the load window.
    const m0Dir = path.join(dir, 'm0');
    const diskBytes = async () => (await du(m0Dir)) - (await du(path.join(m0Dir, 'logs')));
    const disk0 = await diskBytes();
    const loadCpu0 = cpuSnapshot(net.procs);
    const start = Date.now();
    const { accepted, refused } = openRate === undefined
      ? await load(clients, start + seconds * 1000, submitted, () => committedTxs)
      : await openLoad(clients, openRate, start + seconds * 1000, submitted);
    const loadEnd = Date.now();
    // let the backlog commit (bounded)
    for (let i = 0; i < 100 && committedTxs < accepted; i++) await new Promise((r) => setTimeout(r, 200));
    const end = Date.now();
    clearInterval(rssTimer);
    sampleRss();
    const loadCpu = cpuBetween(loadCpu0, cpuSnapshot(net.procs));
    const diskGrowth = (await diskBytes()) - disk0;
    const views1 = await viewCauses();
    // Batches over all members while loading: proposals that waited for one, that were given up without; batches asked for, served.
    const batchEvents = new Map<string, number>();
    const travel = new Map<string, number>();
    for (let i = 0; i < N; i++) {
      const at = memberTargets(path.join(dir, `m${i}`)).targets.consensus;
      const got = at ? await scrapeByLabel(at, 'btcfed_consensus_batch_fetch_events_total', 'event') : undefined;
      for (const [k, v] of got ?? []) batchEvents.set(k, (batchEvents.get(k) ?? 0) + v);
      const how = at ? await scrapeByLabel(at, 'btcfed_consensus_proposed_transactions_total', 'travel') : undefined;
      for (const [k, v] of how ?? []) travel.set(k, (travel.get(k) ?? 0) + v);
    }
    const batchEvent = (e: string) => String(batchEvents.get(e) ?? 'n/a');
    const viewsBy = (cause: string) => (views0 && views1 ? String((views1.get(cause) ?? 0) - (views0.get(cause) ?? 0)) : '?');
    const healthyTxS = committedTxs / ((end - start) / 1000);
    // The load window's own figures: the dead-member window below commits more.
    const loadCommitted = committedTxs;
    const loadLatencies = latencies.length;
    // One member dead for good (its consensus killed, not restarted): the same load again, from the
    // kill on, so the figure includes whatever the death costs once (its first views' timers).
    let dead: { member: number; txS: number; views: string; skipped: string } | undefined;
    if (deadMember && N >= 2) {
      const member = N - 1;
      const proc = net.procs.find((p) => p.member === `m${member}` && p.service === 'consensus' && !p.exited);
      proc?.child.kill('SIGKILL');
      const live = clients.filter((_, i) => i !== member);
      const views2 = await viewCauses();
      const before = committedTxs;
      const deadStart = Date.now();
      const r = openRate === undefined
        ? await load(live, deadStart + seconds * 1000, submitted, () => committedTxs - before)
        : await openLoad(live, openRate, deadStart + seconds * 1000, submitted);
      for (let i = 0; i < 100 && committedTxs - before < r.accepted; i++) await new Promise((res) => setTimeout(res, 200));
      const deadEnd = Date.now();
      const views3 = await viewCauses();
      const by = (cause: string) => (views2 && views3 ? String((views3.get(cause) ?? 0) - (views2.get(cause) ?? 0)) : '?');
      const skipped = m0Metrics ? await scrapeByLabel(m0Metrics, 'btcfed_consensus_skipped_leaders_validators', 'view') : undefined;
      dead = { member, txS: (committedTxs - before) / ((deadEnd - deadStart) / 1000), views: `${by('commit')} / ${by('new-view-quorum')} / ${by('qc')}`,
        skipped: String(skipped?.get('') ?? '?') };
    }
    watcher.cancel();
    const lat = stats(latencies.slice(0, loadLatencies));
    const iv = stats(intervals);
    const perTx = (cpuMs: number): string => (loadCommitted > 0 ? ((cpuMs * 1000) / loadCommitted).toFixed(1) : 'n/a');
    const memberCosts = [...loadCpu.byMember.values()];
    const perMemberTx = loadCommitted > 0 ? memberCosts.map((c) => (c * 1000) / loadCommitted) : [];
    const idlePerProcess = (service: string): string => ms((idleCpu.byService.get(service) ?? 0) / N / idleSeconds);
    const outsideSlh = idleBlocks > 0 ? idleCpu.total / idleBlocks - cpu.withSignerMs * cpu.cores : Number.NaN;
    const cpuRows: string[][] = [
      ...SERVICE_NAMES.map((sv) => [`idle CPU per ${sv} process (CPU-ms per second)`, '', idlePerProcess(sv)]),
      ['idle CPU per block, all processes (CPU-ms)', '', idleBlocks > 0 ? ms(idleCpu.total / idleBlocks) : 'n/a'],
      ['  of which outside SLH-DSA (CPU-ms per block)', '', Number.isFinite(outsideSlh) ? ms(outsideSlh) : 'n/a'],
      ...SERVICE_NAMES.map((sv) => [`CPU per committed transaction, ${sv} (µs, all members)`, '', perTx(loadCpu.byService.get(sv) ?? 0)]),
      ['CPU per committed transaction (µs), all members', '', perTx(loadCpu.total)],
      ['CPU per committed transaction per member (µs) mean / max', '', perMemberTx.length ? `${stats(perMemberTx).mean.toFixed(1)} / ${stats(perMemberTx).max.toFixed(1)}` : 'n/a'],
      ['  budget for 10,000 tx/s on one dedicated core per member (µs)', '', '100'],
      ...SERVICE_NAMES.map((sv) => [`RSS per ${sv} process, max (MiB)`, '', (rss.get(sv) ?? 0).toFixed(0)]),
      ['disk per committed transaction, one member (bytes; its dir without logs, growth over the load)', '',
        loadCommitted > 0 ? `${(diskGrowth / loadCommitted).toFixed(0)} (${(diskGrowth / 2 ** 20).toFixed(1)} MiB for ${loadCommitted})` : 'n/a'],
      ['recovery: kill -9 of the leader\'s consensus when idle → next block of a later view (ms)', '', !f.recovery ? 'skipped'
        : !recovery ? 'no leader to kill' : recovery.ms === undefined ? `not recovered in 120 s (leader m${recovery.leader})` : `${recovery.ms} (leader m${recovery.leader})`],
      ['  the next member\'s view timer when it died (s)', '', recovery?.timerS === undefined ? 'n/a' : recovery.timerS.toFixed(2)],
      ['  restart → the restarted member caught up (ms)', '', recovery?.catchUpMs === undefined ? (recovery ? 'not in 60 s' : 'n/a') : String(recovery.catchUpMs)],
    ];
    return [
      `backend ${backend}: N=${N}, ${accepted} accepted (${refused} refused while the mempool was full), ${loadCommitted} committed, startup ${startup.toFixed(1)} s`,
      table(['figure', '', 'value'], [
        ['throughput while loading (committed tx/s)', '', healthyTxS.toFixed(0)],
        ...(dead ? [
          [`committed tx/s with one member dead (m${dead.member}'s consensus killed at the start of a second load window)`, '', `${dead.txS.toFixed(0)} (${(100 * dead.txS / healthyTxS).toFixed(0)} % of healthy)`],
          ['  views ended on m0 with it dead: commit / NEW-VIEW quorum / QC ahead', '', dead.views],
          ['  validators m0\'s leader schedule skips at the end', '', dead.skipped],
        ] : []),
        ['offered load (accepted tx/s)', '', (accepted / ((loadEnd - start) / 1000)).toFixed(0)],
        ['commit latency p50 / p95 / p99 (ms)', '', `${ms(lat.p50)} / ${ms(lat.p95)} / ${ms(lat.p99)}`],
        ['block interval idle (empty blocks) p50 / p95 (ms)', '', `${ms(idle.p50)} / ${ms(idle.p95)}`],
        ['block interval under load p50 / p95 (ms)', '', `${ms(iv.p50)} / ${ms(iv.p95)}`],
        ['blocks seen', '', String(blocks)],
        ['views ended on m0 while loading: commit / NEW-VIEW quorum / QC ahead', '', `${viewsBy('commit')} / ${viewsBy('new-view-quorum')} / ${viewsBy('qc')}`],
        ['transactions proposed in named batches / inline (all members, run)', '', `${travel.get('batch') ?? 'n/a'} / ${travel.get('inline') ?? 'n/a'}`],
        ['proposals that waited for a batch / gave up without it, batches asked / served (all members, run)', '',
          `${batchEvent('waited')} / ${batchEvent('unavailable')}, ${batchEvent('asked')} / ${batchEvent('served')}`],
        [`sign / verify here (${backend}, ms)`, '', `${ms(floor.signMs)} / ${ms(floor.verifyMs)}`],
        [`signing floor: 3 signs + ${quorumSize(N)} verifies (ms)`, '', ms(floor.floorMs)],
        ['idle block interval / signing floor', '', (idle.p50 / floor.floorMs).toFixed(2)],
        ['loaded block interval / signing floor', '', (iv.p50 / floor.floorMs).toFixed(2)],
        ['idle view as its leader saw it: prepare / pre-commit / commit QC after the proposal (ms, mean)', '',
          `${qcAt('prepare')} / ${qcAt('pre-commit')} / ${qcAt('commit')}`],
        ['idle signer round trip: proposal / PREPARE / PRE-COMMIT / COMMIT vote (ms, mean; one signature above)', '',
          `${signerRt('proposal')} / ${signerRt('vote-1')} / ${signerRt('vote-2')} / ${signerRt('vote-3')}`],
        [`CPU floor: ${cpu.signs} signs + ${cpu.verifies} verifies per view over ${cpu.cores} cores (ms)`, '', ms(cpu.floorMs)],
        ['idle block interval / CPU floor', '', (idle.p50 / cpu.floorMs).toFixed(2)],
        [`  with the signers' own QC checks (+${cpu.signerChecks} verifies, ms)`, '', ms(cpu.withSignerMs)],
        ['idle block interval / CPU floor with the signers\' checks', '', (idle.p50 / cpu.withSignerMs).toFixed(2)],
        ...cpuRows,
      ]),
      '',
      table(['target (issue 11)', 'measured', 'verdict'], targetRows({
        members: N, openRate, throughputTxS: healthyTxS, committedTxs: loadCommitted, deadThroughputTxS: dead?.txS,
        idleP50Ms: idle.p50, cpuFloorMs: cpu.floorMs, latencyP50Ms: lat.p50, latencyP99Ms: lat.p99,
        recoveryMs: recovery?.ms, perMemberTxUs: perMemberTx.length ? stats(perMemberTx).mean : undefined,
        rssPerMemberMiB: [...rss.values()].reduce((a, b) => a + b, 0),
      }).map((t) => [t.target, t.measured, t.verdict])),
    ];
  } finally {
    process.off('SIGINT', interrupt);
    process.off('SIGTERM', interrupt);
    for (const c of clients) c.close();
    await net.stop();
    if (f['keep-logs']) console.log(`(logs kept in ${dir})`);
    else await fs.rm(dir, { recursive: true, force: true });
  }
}

printMachine(openRate === undefined
  ? `federation benchmark: N=${N}, ${seconds} s of load, ${txSize}-byte transactions, batches of ${batch}, ${clientsPerMember} client(s) per member, at most ${maxOutstanding} outstanding (closed loop)`
  : `federation benchmark: N=${N}, ${seconds} s of open-loop load at ${openRate} tx/s, ${txSize}-byte transactions`,
[`consensus.base_timeout ${f['base-timeout'] ?? '2s (4s with noble)'}`, ...(indexPrefill > 0 ? [`each member's transaction index prefilled with ${indexPrefill} ids`] : []),
  ...(f['max-block-txs'] !== undefined ? [`consensus.max_block_txs ${f['max-block-txs']}`] : [])]);
for (const backend of backends) {
  for (const line of await runOnce(backend)) console.log(line);
  console.log('');
}
