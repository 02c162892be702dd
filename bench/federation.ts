// The federation benchmark (`npm run bench -- federation` or `node bench/federation.ts`):
// starts a devnet of N members (real processes), drives load through the public API with
// SubmitTransactions, and prints throughput, commit latency (submit → seen committed by a
// StreamCommits reader) p50/p95/p99 and the block interval. In the same run it measures
// SLH-DSA sign and verify here and prints the block interval against the signing floor:
// three sequential signatures (PREPARE, PRE-COMMIT, COMMIT votes) plus one QC verification.
// Never asserted: it prints figures.
//
//   node bench/federation.ts [--members 4] [--backend node|noble|both] [--seconds 20]
//     [--tx-size 250] [--batch 500] [--clients 2] [--outstanding 40000] [--quick]

import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { createSlhDsa, toHex, txHash, type BackendName } from '#libs/crypto/index.ts';
import { quorumSize } from '#libs/hotstuff/index.ts';
import { call } from '#libs/rpc/index.ts';
import type { ConsensusServiceClient, StreamCommitsResponse } from '#libs/gen/btcfed/v1/consensus.pb.ts';
import { consensusClient } from '../cli/client.ts';
import { runDevnet } from '../cli/devnet.ts';
import { initFederation } from '../cli/init.ts';
import { ms, printMachine, stats, table } from './support.ts';

const { values: f } = parseArgs({ options: {
  members: { type: 'string', default: '4' }, backend: { type: 'string', default: 'both' }, seconds: { type: 'string' },
  'tx-size': { type: 'string', default: '250' }, batch: { type: 'string', default: '500' }, clients: { type: 'string', default: '2' },
  quick: { type: 'boolean', default: false }, outstanding: { type: 'string', default: '40000' },
} });
const maxOutstanding = Number(f.outstanding);
const N = Number(f.members);
const seconds = Number(f.seconds ?? (f.quick ? 5 : 20));
const txSize = Number(f['tx-size']);
const batch = Number(f.batch);
const clientsPerMember = Number(f.clients);
const backends: BackendName[] = f.backend === 'both' ? ['node', 'noble'] : [f.backend as BackendName];

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
function cpuFloor(signMs: number, verifyMs: number): { signs: number; verifies: number; cores: number; floorMs: number } {
  const q = quorumSize(N);
  const signs = 1 + 3 * N;
  const verifies = (N - 1) * (1 + 3 + 3 * q);
  const cores = os.availableParallelism();
  return { signs, verifies, cores, floorMs: (signs * signMs + verifies * verifyMs) / cores };
}

/**
 * Closed loop: clients keep at most `maxOutstanding` transactions accepted but not yet seen
 * committed, so the figures describe what the federation sustains, not how deep a queue grows.
 */
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

async function runOnce(backend: BackendName): Promise<string[]> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'btcfed-bench-'));
  const basePort = 10_000 + 100 * Math.floor(Math.random() * 70); // below the ephemeral port range
  await initFederation({ members: N, out: dir, basePort, chainId: `bench-${backend}`, paramSet: 'slh-dsa-sha2-128f',
    baseTimeout: backend === 'noble' ? '4s' : '2s', logFormat: 'json', natsUrl: process.env.NATS_URL ?? 'nats://127.0.0.1:4222' });
  for (let i = 0; i < N; i++) {
    for (const file of [path.join(dir, `m${i}`, 'conf.yaml'), path.join(dir, `m${i}`, 'signer', 'signer.yaml')]) {
      await fs.writeFile(file, (await fs.readFile(file, 'utf8')).replace('backend: auto', `backend: ${backend}`));
    }
  }
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
    // then watch empty blocks for the idle block interval.
    for (let i = 0; i < 1500 && blocks < 2; i++) await new Promise((r) => setTimeout(r, 200));
    const idleUntil = blocks + (f.quick ? 3 : 8);
    for (let i = 0; i < 600 && blocks < idleUntil; i++) await new Promise((r) => setTimeout(r, 100));
    loading = true;
    const start = Date.now();
    const { accepted, refused } = await load(clients, start + seconds * 1000, submitted, () => committedTxs);
    const loadEnd = Date.now();
    // let the backlog commit (bounded)
    for (let i = 0; i < 100 && committedTxs < accepted; i++) await new Promise((r) => setTimeout(r, 200));
    const end = Date.now();
    watcher.cancel();
    const lat = stats(latencies);
    const iv = stats(intervals);
    const idle = stats(idleIntervals);
    return [
      `backend ${backend}: N=${N}, ${accepted} accepted (${refused} refused while the mempool was full), ${committedTxs} committed, startup ${startup.toFixed(1)} s`,
      table(['figure', '', 'value'], [
        ['throughput while loading (committed tx/s)', '', (committedTxs / ((end - start) / 1000)).toFixed(0)],
        ['offered load (accepted tx/s)', '', (accepted / ((loadEnd - start) / 1000)).toFixed(0)],
        ['commit latency p50 / p95 / p99 (ms)', '', `${ms(lat.p50)} / ${ms(lat.p95)} / ${ms(lat.p99)}`],
        ['block interval idle (empty blocks) p50 / p95 (ms)', '', `${ms(idle.p50)} / ${ms(idle.p95)}`],
        ['block interval under load p50 / p95 (ms)', '', `${ms(iv.p50)} / ${ms(iv.p95)}`],
        ['blocks seen', '', String(blocks)],
        [`sign / verify here (${backend}, ms)`, '', `${ms(floor.signMs)} / ${ms(floor.verifyMs)}`],
        [`signing floor: 3 signs + ${quorumSize(N)} verifies (ms)`, '', ms(floor.floorMs)],
        ['idle block interval / signing floor', '', (idle.p50 / floor.floorMs).toFixed(2)],
        ['loaded block interval / signing floor', '', (iv.p50 / floor.floorMs).toFixed(2)],
        [`CPU floor: ${cpu.signs} signs + ${cpu.verifies} verifies per view over ${cpu.cores} cores (ms)`, '', ms(cpu.floorMs)],
        ['idle block interval / CPU floor', '', (idle.p50 / cpu.floorMs).toFixed(2)],
      ]),
    ];
  } finally {
    process.off('SIGINT', interrupt);
    process.off('SIGTERM', interrupt);
    for (const c of clients) c.close();
    await net.stop();
    await fs.rm(dir, { recursive: true, force: true });
  }
}

printMachine(`federation benchmark: N=${N}, ${seconds} s of load, ${txSize}-byte transactions, batches of ${batch}, ${clientsPerMember} client(s) per member, at most ${maxOutstanding} outstanding`);
for (const backend of backends) {
  for (const line of await runOnce(backend)) console.log(line);
  console.log('');
}
