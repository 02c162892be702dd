// Reads (`npm run bench -- reads [--members 4] [--readers 8] [--followers 4] [--seconds 20] [--rate 200]`):
// what the public read API serves, on a validator and on an observer, and what serving it costs
// the validators. A devnet of N members and one observer (o0, following the validators) commits a
// steady open-loop write load; in one run, four windows:
//   1. no readers (the baseline of the same run);
//   2. `--readers` closed-loop clients on validator m0, each a mix of GetBlock (a random committed
//      height, whole block), GetTransaction with its inclusion proof (a committed transaction)
//      and GetStatus, plus `--followers` StreamCommits followers replaying from height 1;
//   3. the same readers and followers on the observer o0 instead;
//   4. the same readers on m0 with the followers gone (point reads only).
// Per window: reads per second by kind with p50/p99 latency, the federation's block interval,
// CPU-ms per second of m0's consensus against the other validators' mean, and of the observer's.
// Every process shares this machine's cores, so readers on the observer still take CPU from the
// validators here; on hosts of their own they would not. Never asserted.

import path from 'node:path';
import { parseArgs } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { call, hasStatus } from '#libs/rpc/index.ts';
import { txHash } from '#libs/crypto/index.ts';
import type { ConsensusServiceClient, StreamCommitsResponse } from '#libs/gen/btcfed/v1/consensus.pb.ts';
import { consensusClient } from '../cli/client.ts';
import type { Devnet } from '../cli/devnet.ts';
import { benchDevnet, ms, offerLoad, printMachine, processCpuMs, stats, table, type LoadCount } from './support.ts';

const { values: f } = parseArgs({ options: {
  members: { type: 'string', default: '4' }, readers: { type: 'string', default: '8' }, followers: { type: 'string', default: '4' },
  seconds: { type: 'string', default: '20' }, rate: { type: 'string', default: '200' }, quick: { type: 'boolean', default: false },
} });
const N = Number(f.members);
const READERS = Number(f.readers);
const FOLLOWERS = Number(f.followers);
const seconds = f.quick ? 6 : Number(f.seconds);
const rate = Number(f.rate);
const KINDS = ['GetBlock', 'GetTransaction+proof', 'GetStatus'] as const;
type Kind = (typeof KINDS)[number];

interface Window {
  name: string;
  latencies: Record<Kind, number[]>;
  streamed: number;
  blocks: number;
  secs: number;
  cpuM0: number;
  cpuOthers: number;
  cpuObserver: number;
  /** Reads the member refused (RESOURCE_EXHAUSTED: its read limits, docs/consensus.md "Client limits"). */
  refused: number;
}

/** Reads refused in the current window. */
let refusedReads = 0;

async function heightOf(c: ConsensusServiceClient): Promise<number> {
  return Number((await call(c.getStatus.bind(c), {}, { deadlineMs: 5000 })).committedHeight);
}

/** Committed transaction ids seen in blocks the readers fetched (what GetTransaction asks for). */
const knownTxs: Uint8Array[] = [];

async function reader(c: ConsensusServiceClient, stop: () => boolean, lat: Record<Kind, number[]>, top: () => number): Promise<void> {
  for (let k = 0; !stop(); k++) {
    const kind = KINDS[k % KINDS.length]!;
    const t0 = performance.now();
    try {
      if (kind === 'GetBlock') {
        const h = 1 + Math.floor(Math.random() * Math.max(1, top()));
        const b = await call(c.getBlock.bind(c), { by: { $case: 'height', value: h } }, { deadlineMs: 10_000 });
        if (knownTxs.length < 10_000) for (const tx of b.block?.txs.slice(0, 4) ?? []) knownTxs.push(txHash(tx));
      } else if (kind === 'GetTransaction+proof') {
        const tx = knownTxs[Math.floor(Math.random() * knownTxs.length)];
        if (!tx) continue;
        await call(c.getTransaction.bind(c), { txHash: tx, withProof: true }, { deadlineMs: 10_000 });
      } else {
        await call(c.getStatus.bind(c), {}, { deadlineMs: 10_000 });
      }
      lat[kind].push(performance.now() - t0);
    } catch (err) {
      if (hasStatus(err, grpc.status.RESOURCE_EXHAUSTED)) refusedReads++;
      await new Promise((r) => setTimeout(r, 100)); // an overloaded member: back off a little
    }
  }
}

/** A StreamCommits follower from height 1 (replay, then follow); counts blocks received. */
function follower(c: ConsensusServiceClient, onBlock: () => void): () => void {
  const s = c.streamCommits({ fromHeight: 1, headersOnly: false });
  s.on('data', (_r: StreamCommitsResponse) => onBlock());
  s.on('error', (e: grpc.ServiceError) => { if (e.code !== grpc.status.CANCELLED) console.error(`follower: ${e.message}`); });
  return () => s.cancel();
}

async function window(name: string, net: Devnet, clients: ConsensusServiceClient[], readers: number, followers: number, target = 'm0'): Promise<Window> {
  const lat = { GetBlock: [], 'GetTransaction+proof': [], GetStatus: [] } as Record<Kind, number[]>;
  let streamed = 0;
  const pid = (m: string) => net.procs.find((p) => p.member === m && p.service === 'consensus')?.child.pid;
  const cpu = () => [...Array.from({ length: N }, (_, i) => `m${i}`), 'o0'].map((m) => processCpuMs(pid(m) ?? -1) ?? 0);
  const at = consensusClient(path.join(dir, target));
  let top = await heightOf(at);
  const topTimer = setInterval(() => { void heightOf(at).then((h) => { top = h; }, () => undefined); }, 1000);
  const readClients = Array.from({ length: readers }, () => consensusClient(path.join(dir, target)));
  const stops = Array.from({ length: followers }, () => follower(at, () => { streamed++; }));
  const h0 = await heightOf(clients[1]!);
  refusedReads = 0;
  const c0 = cpu();
  const t0 = Date.now();
  const end = t0 + seconds * 1000;
  await Promise.all(readClients.map((c) => reader(c, () => Date.now() >= end, lat, () => top)).concat([new Promise((r) => setTimeout(r, seconds * 1000))]));
  const secs = (Date.now() - t0) / 1000;
  const c1 = cpu();
  const h1 = await heightOf(clients[1]!);
  stops.forEach((s) => s());
  clearInterval(topTimer);
  readClients.forEach((c) => c.close());
  at.close();
  const rates = c1.map((v, i) => (v - c0[i]!) / secs);
  const others = rates.slice(1, N);
  return { name, latencies: lat, streamed, blocks: h1 - h0, secs, cpuM0: rates[0]!, cpuOthers: others.reduce((s, x) => s + x, 0) / Math.max(1, others.length), cpuObserver: rates[N]!, refused: refusedReads };
}

printMachine(`reads: N=${N} and one observer, ${seconds} s windows, ${rate} tx/s written, ${READERS} readers and ${FOLLOWERS} StreamCommits followers on m0 or on the observer`);
const { dir, net, clients, close } = await benchDevnet('reads', N, 1);
const load: LoadCount = { accepted: 0, refused: 0 };
let writing = true;
const loading = offerLoad(clients, rate, 250, () => !writing, load);
try {
  // Warm up: some history to read (and the readers' transaction ids).
  await new Promise((r) => setTimeout(r, (f.quick ? 8 : 15) * 1000));
  const windows = [
    await window('no readers (baseline)', net, clients, 0, 0),
    await window(`${READERS} readers + ${FOLLOWERS} followers on m0`, net, clients, READERS, FOLLOWERS),
    await window(`${READERS} readers + ${FOLLOWERS} followers on o0`, net, clients, READERS, FOLLOWERS, 'o0'),
    await window(`${READERS} readers on m0`, net, clients, READERS, 0),
  ];
  console.log(table(['window', '', 'GetBlock/s (p50/p99 ms)', 'GetTransaction+proof/s (p50/p99)', 'GetStatus/s (p50/p99)', 'streamed blocks/s', 'block interval ms', 'refused/s', 'm0 consensus CPU-ms/s', 'm1-m3 (mean)', 'o0 consensus'],
    windows.map((w) => [
      w.name, '',
      ...KINDS.map((k) => {
        const s = stats(w.latencies[k]);
        return s.n === 0 ? '-' : `${(s.n / w.secs).toFixed(0)} (${ms(s.p50)}/${ms(s.p99)})`;
      }),
      (w.streamed / w.secs).toFixed(0),
      w.blocks > 0 ? ms((w.secs * 1000) / w.blocks) : 'none',
      (w.refused / w.secs).toFixed(0),
      w.cpuM0.toFixed(0), w.cpuOthers.toFixed(0), w.cpuObserver.toFixed(0),
    ])));
  console.log(`\nwrites: ${load.accepted} accepted, ${load.refused} refused over the run; baseline = the first window, same run`);
} finally {
  writing = false;
  await loading.catch(() => undefined);
  await close();
}
