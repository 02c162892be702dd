// Soak (`npm run bench -- soak [--testbed] [--members 4] [--minutes 10] [--rate 300] [--every 30] [--churn 60]
// [--keep-blocks K [--baseline-minutes B]]`):
// a federation of N members under a steady open-loop load for a long window — a loopback devnet,
// or with --testbed members on hosts of their own (network namespaces; per member one host for
// store + gateway + consensus and one for its signer; a 3-node NATS cluster with the stream R3, set
// up with the operator's commands: test/testbed/federation.ts) — with churn — every
// `--churn` seconds one member's gateway is restarted (its libp2p connections drop and are made
// again) and one member's conf.yaml is changed (peers.exchange_interval, applied by hot reload) — sampled
// every `--every` seconds: each service's resident memory, V8 heap in use (from its metrics
// endpoint) and open file descriptors (summed over members), the gateways' connected peers,
// every member's committed height and mempool, and the bytes the member dirs take on disk. What it looks for is
// what a short benchmark cannot see — memory or descriptors that grow with time rather than with
// load, a mempool that never drains, disk that grows faster than the log. The baseline is the
// same run's first sample after warm-up; growth is reported per minute and per committed block.
// With --keep-blocks K every member keeps only its last K blocks' bodies and QCs (consensus.keep_blocks,
// set by hot reload once the federation runs); --baseline-minutes B first soaks the same federation
// without retention for B minutes (a devnet of its own, same run), so the block stores' growth per
// block is printed for both. Never asserted (the machine is shared and noisy).

import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { parseDocument } from 'yaml';
import { call } from '#libs/rpc/index.ts';
import type { ConsensusServiceClient } from '#libs/gen/btcfed/v1/consensus.pb.ts';
import { memberPorts } from '../cli/init.ts';
import { BASE_PORT, Federation } from '../test/testbed/federation.ts';
import { unavailableReason } from '../test/testbed/netns.ts';
import { benchDevnet, offerLoad, printMachine, processRssMiB, processRssSplitMiB, scrapeMetrics, table } from './support.ts';

const { values: f } = parseArgs({ options: {
  members: { type: 'string', default: '4' }, minutes: { type: 'string', default: '10' }, rate: { type: 'string', default: '300' },
  every: { type: 'string', default: '30' }, size: { type: 'string', default: '250' }, quick: { type: 'boolean', default: false },
  churn: { type: 'string', default: '60' }, testbed: { type: 'boolean', default: false },
  'keep-blocks': { type: 'string', default: '0' }, 'baseline-minutes': { type: 'string', default: '0' },
} });
const N = Number(f.members);
const minutes = f.quick ? 1.5 : Number(f.minutes);
const rate = Number(f.rate);
const everyS = f.quick ? 15 : Number(f.every);
const txSize = Number(f.size);
const WARMUP_S = f.quick ? 10 : 30;
const churnS = f.quick ? 30 : Number(f.churn);
const SERVICES = ['store', 'signer', 'gateway', 'consensus'] as const;
/** What is sampled: the members' four services, and on the test bed its NATS servers too. */
const SAMPLED = f.testbed ? [...SERVICES, 'nats'] : [...SERVICES];
const keepBlocks = Number(f['keep-blocks']);
const baselineMinutes = f.quick ? (keepBlocks > 0 ? 1.5 : 0) : Number(f['baseline-minutes']);

/** Where the soak runs: the same questions asked of a loopback devnet or of the test bed. */
interface Target {
  clients: ConsensusServiceClient[];
  /** Every process to sample, by service ("nats" for the test bed's NATS servers). */
  procs(): { service: string; pid: number | undefined }[];
  /** Member i's metrics pages, in SERVICES order. */
  metricsUrls(i: number): string[];
  /** Directories whose bytes on disk are summed (every member dir, and on the test bed the signer dirs). */
  dataDirs: string[];
  /** Every member's block store (its consensus dir). */
  storeDirs: string[];
  confPath(i: number): string;
  restartGateway(i: number): Promise<void>;
  close(): Promise<void>;
}

async function devnetTarget(): Promise<Target> {
  const { dir, basePort, net, clients, close } = await benchDevnet('soak', N);
  return {
    clients, close, dataDirs: [dir], storeDirs: clients.map((_, i) => path.join(dir, `m${i}`, 'consensus')),
    procs: () => net.procs.map((p) => ({ service: p.service, pid: p.child.pid })),
    metricsUrls: (i) => {
      const p = memberPorts(basePort, i);
      return [p.storeMetrics, p.signerMetrics, p.gatewayMetrics, p.consensusMetrics].map((port) => `http://127.0.0.1:${port}/metrics`);
    },
    confPath: (i) => path.join(dir, `m${i}`, 'conf.yaml'),
    restartGateway: (i) => net.restart(i, 'gateway'),
  };
}

async function testbedTarget(): Promise<Target> {
  const why = unavailableReason();
  if (why) throw new Error(`soak --testbed: ${why}`);
  const fed = await Federation.start({ members: N, chainId: `soak-${Date.now().toString(36)}`, log: (s) => console.log(s) });
  const p = memberPorts(BASE_PORT);
  return {
    clients: fed.clients,
    dataDirs: fed.members.flatMap((m) => [m.dir, m.signerDir]),
    storeDirs: fed.members.map((m) => path.join(m.dir, 'consensus')),
    procs: () => [...fed.runner.services.values()].map((s) => ({ service: s.name.startsWith('nats.') ? 'nats' : s.name.slice(s.name.indexOf('.') + 1), pid: s.pid })),
    metricsUrls: (i) => {
      const m = fed.members[i]!;
      return [[m.host.addr, p.storeMetrics], [m.signerHost.addr, p.signerMetrics], [m.host.addr, p.gatewayMetrics], [m.host.addr, p.consensusMetrics]]
        .map(([a, port]) => `http://${a}:${port}/metrics`);
    },
    confPath: (i) => path.join(fed.members[i]!.dir, 'conf.yaml'),
    restartGateway: (i) => fed.runner.restart(fed.service(i, 'gateway')),
    close: () => fed.stop(),
  };
}

interface Sample {
  atS: number;
  rss: Record<string, number>;
  /** Of rss, the anonymous part (heap, buffers); the rest is mapped files (LMDB). */
  anon: Record<string, number>;
  heap: Record<string, number>;
  /** Memory V8 accounts for outside its heap: Buffers and other external allocations. */
  external: Record<string, number>;
  fds: Record<string, number>;
  /** Connected peers summed over every gateway (N·(N−1) when fully meshed). */
  connected: number;
  heights: number[];
  mempool: number[];
  diskMiB: number;
  /** The members' block stores, summed. */
  storeMiB: number;
  accepted: number;
  refused: number;
}

function openFds(pid: number): number {
  try { return fs.readdirSync(`/proc/${pid}/fd`).length; } catch { return 0; }
}

/** Bytes the files under `dir` occupy on disk (allocated blocks, so sparse LMDB maps count as used). */
function diskBytes(dir: string): number {
  let total = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (!e.isFile()) continue;
    try { total += fs.statSync(path.join(e.parentPath, e.name)).blocks * 512; } catch { /* removed meanwhile */ }
  }
  return total;
}

/** A gauge's value from a Prometheus text page: the first series of `name` holding `label` (e.g. state="connected"). */
function gauge(text: string, name: string, label = ''): number {
  const line = text.split('\n').find((l) => (l.startsWith(`${name}{`) || l.startsWith(`${name} `)) && l.includes(label));
  return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : 0;
}

async function sample(t: Target, t0: number, load: { accepted: number; refused: number }): Promise<Sample> {
  const rss: Record<string, number> = {};
  const anon: Record<string, number> = {};
  const heap: Record<string, number> = {};
  const external: Record<string, number> = {};
  const fds: Record<string, number> = {};
  for (const p of t.procs()) {
    if (p.pid === undefined) continue;
    rss[p.service] = (rss[p.service] ?? 0) + (processRssMiB(p.pid) ?? 0);
    anon[p.service] = (anon[p.service] ?? 0) + (processRssSplitMiB(p.pid)?.anon ?? 0);
    fds[p.service] = (fds[p.service] ?? 0) + openFds(p.pid);
  }
  let connected = 0;
  for (let i = 0; i < N; i++) {
    const pages = await Promise.all(t.metricsUrls(i).map(scrapeMetrics));
    SERVICES.forEach((s, k) => {
      heap[s] = (heap[s] ?? 0) + gauge(pages[k]!, 'nodejs_heap_size_used_bytes') / 2 ** 20;
      external[s] = (external[s] ?? 0) + gauge(pages[k]!, 'nodejs_external_memory_bytes') / 2 ** 20;
    });
    connected += gauge(pages[2]!, 'btcfed_gateway_peers', 'state="connected"');
  }
  const statuses = await Promise.all(t.clients.map((c) => call(c.getStatus.bind(c), {}, { deadlineMs: 5000 }).catch(() => undefined)));
  return {
    atS: (Date.now() - t0) / 1000, rss, anon, heap, external, fds, connected,
    heights: statuses.map((s) => Number(s?.committedHeight ?? -1)), mempool: statuses.map((s) => Number(s?.mempoolSize ?? -1)),
    diskMiB: t.dataDirs.reduce((sum, d) => sum + diskBytes(d), 0) / 2 ** 20,
    storeMiB: t.storeDirs.reduce((sum, d) => sum + diskBytes(d), 0) / 2 ** 20, accepted: load.accepted, refused: load.refused,
  };
}

/**
 * Every `churnS` seconds: one member's gateway restarted (round robin), and one member's
 * peers.exchange_interval flipped between 30s and 31s in its conf.yaml (the store reloads it live).
 */
async function churn(t: Target, stop: () => boolean): Promise<number> {
  let k = 0;
  for (;;) {
    for (let waited = 0; waited < churnS * 1000 && !stop(); waited += 500) await new Promise((r) => setTimeout(r, 500));
    if (stop()) return k;
    const i = k % N;
    const conf = t.confPath((i + 1) % N);
    const text = fs.readFileSync(conf, 'utf8');
    // (Not logging.level: the devnet sees a restarted service ready by its info-level log line.)
    fs.writeFileSync(`${conf}.tmp`, text.replace(/^(\s*exchange_interval:\s*)(30s|31s)\s*$/m, (_m, pre: string, v: string) => `${pre}${v === '30s' ? '31s' : '30s'}`));
    fs.renameSync(`${conf}.tmp`, conf);
    await t.restartGateway(i).catch((err: unknown) => console.error(`churn: restarting m${i}'s gateway failed: ${String(err)}`));
    k++;
  }
}

printMachine(`soak${f.testbed ? ' on the test bed (members on hosts of their own)' : ''}: N=${N}, ${minutes} min at ${rate} tx/s offered (${txSize}-byte transactions), sampled every ${everyS} s, churn every ${churnS} s`
  + (keepBlocks > 0 ? `, keep_blocks ${keepBlocks}${baselineMinutes > 0 ? ` (baseline: ${baselineMinutes} min without retention first)` : ''}` : ''));

/** Sets consensus.keep_blocks in every member's conf.yaml (the store reloads it; consensus prunes live). */
function setKeepBlocks(t: Target, k: number): void {
  for (let i = 0; i < N; i++) {
    const conf = t.confPath(i);
    const doc = parseDocument(fs.readFileSync(conf, 'utf8'));
    doc.setIn(['consensus', 'keep_blocks'], k);
    fs.writeFileSync(`${conf}.tmp`, doc.toString());
    fs.renameSync(`${conf}.tmp`, conf);
  }
}

/** One soak of `mins` minutes on a federation of its own; returns its block-store row for the comparison. */
async function soak(label: string, mins: number, keep: number): Promise<string[]> {
  console.log(`\n== ${label} ==`);
  const target = await (f.testbed ? testbedTarget() : devnetTarget());
  const load = { accepted: 0, refused: 0 };
  const samples: Sample[] = [];
  try {
    if (keep > 0) setKeepBlocks(target, keep);
    const t0 = Date.now();
    const end = t0 + mins * 60_000;
    const loading = offerLoad(target.clients, rate, txSize, () => Date.now() >= end, load);
    const churned = churn(target, () => Date.now() >= end);
    await new Promise((r) => setTimeout(r, WARMUP_S * 1000));
    while (Date.now() < end) {
      samples.push(await sample(target, t0, load));
      const s = samples.at(-1)!;
      console.log(`[${s.atS.toFixed(0).padStart(5)} s] height ${Math.min(...s.heights)}–${Math.max(...s.heights)}  mempool ${s.mempool.join('/')}  `
        + `rss ${SAMPLED.map((x) => `${x} ${(s.rss[x] ?? 0).toFixed(0)}`).join(' ')} MiB (anon ${SAMPLED.map((x) => (s.anon[x] ?? 0).toFixed(0)).join('/')})  heap ${SERVICES.map((x) => (s.heap[x] ?? 0).toFixed(0)).join('/')} ext ${SERVICES.map((x) => (s.external[x] ?? 0).toFixed(0)).join('/')} MiB  `
        + `fds ${SAMPLED.map((x) => s.fds[x] ?? 0).join('/')}  connected ${s.connected}  disk ${s.diskMiB.toFixed(1)} MiB (block stores ${s.storeMiB.toFixed(1)})`);
      await new Promise((r) => setTimeout(r, Math.max(0, Math.min(everyS * 1000, end - Date.now()))));
    }
    await loading;
    const churns = await churned;
    samples.push(await sample(target, t0, load));

    const first = samples[0]!;
    const last = samples.at(-1)!;
    const window = (last.atS - first.atS) / 60;
    const blocks = Math.min(...last.heights) - Math.min(...first.heights);
    const perMin = (a: number, b: number) => (window > 0 ? ((b - a) / window).toFixed(2) : 'n/a');
    const perBlock = (a: number, b: number) => (blocks > 0 ? (((b - a) * 1024) / blocks / N).toFixed(1) : 'n/a');
    console.log('');
    console.log(`churn: ${churns} gateway restarts and ${churns} conf.yaml changes (every ${churnS} s)`);
    console.log(`window ${window.toFixed(1)} min after a ${WARMUP_S} s warm-up; ${blocks} blocks committed in it (lowest member); `
      + `${load.accepted} tx accepted, ${load.refused} refused in the whole run; baseline = the first sample (same run)`);
    console.log(table(['service (sum over members)', '', 'RSS first (MiB)', 'RSS last', 'RSS growth (MiB/min)', 'anon first', 'anon last', 'anon growth (MiB/min)', 'heap first', 'heap last', 'heap growth (MiB/min)', 'external first', 'external last', 'fds first', 'fds last'], SAMPLED.map((s) => [
      s, '', (first.rss[s] ?? 0).toFixed(0), (last.rss[s] ?? 0).toFixed(0), perMin(first.rss[s] ?? 0, last.rss[s] ?? 0),
      (first.anon[s] ?? 0).toFixed(0), (last.anon[s] ?? 0).toFixed(0), perMin(first.anon[s] ?? 0, last.anon[s] ?? 0),
      (first.heap[s] ?? 0).toFixed(0), (last.heap[s] ?? 0).toFixed(0),
      perMin(first.heap[s] ?? 0, last.heap[s] ?? 0), (first.external[s] ?? 0).toFixed(0), (last.external[s] ?? 0).toFixed(0),
      String(first.fds[s] ?? 0), String(last.fds[s] ?? 0),
    ])));
    console.log(`connected  first ${first.connected}, last ${last.connected}, lowest ${Math.min(...samples.map((x) => x.connected))} (of ${N * (N - 1)} when fully meshed)`);
    console.log(`disk       ${first.diskMiB.toFixed(1)} → ${last.diskMiB.toFixed(1)} MiB over ${N} members (${perMin(first.diskMiB, last.diskMiB)} MiB/min; `
      + `${perBlock(first.diskMiB, last.diskMiB)} KiB per block per member)`);
    console.log(`stores     ${first.storeMiB.toFixed(1)} → ${last.storeMiB.toFixed(1)} MiB over ${N} members (${perMin(first.storeMiB, last.storeMiB)} MiB/min; `
      + `${perBlock(first.storeMiB, last.storeMiB)} KiB per block per member)`);
    console.log(`mempool    first ${first.mempool.join('/')}, last ${last.mempool.join('/')} (a mempool that only grows means the offered rate is above what commits)`);
    console.log(`heights    last ${last.heights.join('/')} (spread ${Math.max(...last.heights) - Math.min(...last.heights)})`);
    const txPerMin = last.atS > 0 ? load.accepted / (last.atS / 60) : 0;
    return [label, `${window.toFixed(1)} min`, String(blocks), `${txPerMin.toFixed(0)}`, `${first.storeMiB.toFixed(1)} → ${last.storeMiB.toFixed(1)}`,
      perMin(first.storeMiB, last.storeMiB), perBlock(first.storeMiB, last.storeMiB)];
  } finally {
    await target.close();
  }
}

const rows: string[][] = [];
if (keepBlocks > 0 && baselineMinutes > 0) rows.push(await soak('baseline: every block kept (keep_blocks 0)', baselineMinutes, 0));
rows.push(await soak(keepBlocks > 0 ? `keep_blocks ${keepBlocks}` : 'every block kept (keep_blocks 0)', minutes, keepBlocks));
if (rows.length > 1) {
  console.log('');
  console.log(table(['federation', 'window', 'blocks', 'tx accepted/min', 'block stores (MiB, sum over members)', 'growth (MiB/min)', 'KiB per block per member'], rows));
  console.log('(with retention the block stores still hold every height\'s summary and the transaction index: what is left grows with transactions, not with blocks\' bodies)');
}
