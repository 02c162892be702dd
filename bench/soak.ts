// Soak (`npm run bench -- soak [--members 4] [--minutes 10] [--rate 300] [--every 30]`): a devnet
// of N members under a steady open-loop load for a long window, sampled every `--every` seconds:
// each service's resident memory and open file descriptors (summed over members), every member's
// committed height and mempool, and the bytes the member dirs take on disk. What it looks for is
// what a short benchmark cannot see — memory or descriptors that grow with time rather than with
// load, a mempool that never drains, disk that grows faster than the log. The baseline is the
// same run's first sample after warm-up; growth is reported per minute and per committed block.
// Never asserted (the machine is shared and noisy).

import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { call } from '#libs/rpc/index.ts';
import type { ConsensusServiceClient } from '#libs/gen/btcfed/v1/consensus.pb.ts';
import { consensusClient } from '../cli/client.ts';
import { runDevnet, type Devnet } from '../cli/devnet.ts';
import { initFederation } from '../cli/init.ts';
import { offerLoad, printMachine, processRssMiB, table } from './support.ts';

const { values: f } = parseArgs({ options: {
  members: { type: 'string', default: '4' }, minutes: { type: 'string', default: '10' }, rate: { type: 'string', default: '300' },
  every: { type: 'string', default: '30' }, size: { type: 'string', default: '250' }, quick: { type: 'boolean', default: false },
} });
const N = Number(f.members);
const minutes = f.quick ? 1.5 : Number(f.minutes);
const rate = Number(f.rate);
const everyS = f.quick ? 15 : Number(f.every);
const txSize = Number(f.size);
const WARMUP_S = f.quick ? 10 : 30;
const SERVICES = ['store', 'signer', 'gateway', 'consensus'] as const;

interface Sample {
  atS: number;
  rss: Record<string, number>;
  fds: Record<string, number>;
  heights: number[];
  mempool: number[];
  diskMiB: number;
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

async function sample(net: Devnet, clients: ConsensusServiceClient[], dir: string, t0: number, load: { accepted: number; refused: number }): Promise<Sample> {
  const rss: Record<string, number> = {};
  const fds: Record<string, number> = {};
  for (const p of net.procs) {
    if (p.child.pid === undefined) continue;
    rss[p.service] = (rss[p.service] ?? 0) + (processRssMiB(p.child.pid) ?? 0);
    fds[p.service] = (fds[p.service] ?? 0) + openFds(p.child.pid);
  }
  const statuses = await Promise.all(clients.map((c) => call(c.getStatus.bind(c), {}, { deadlineMs: 5000 }).catch(() => undefined)));
  return {
    atS: (Date.now() - t0) / 1000, rss, fds,
    heights: statuses.map((s) => Number(s?.committedHeight ?? -1)), mempool: statuses.map((s) => Number(s?.mempoolSize ?? -1)),
    diskMiB: diskBytes(dir) / 2 ** 20, accepted: load.accepted, refused: load.refused,
  };
}

printMachine(`soak: N=${N}, ${minutes} min at ${rate} tx/s offered (${txSize}-byte transactions), sampled every ${everyS} s`);
const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'btcfed-bench-soak-'));
const basePort = 10_000 + 100 * Math.floor(Math.random() * 70);
const natsUrl = process.env.NATS_URL ?? 'nats://127.0.0.1:4222';
await initFederation({ members: N, out: dir, basePort, chainId: `bench-soak-${Date.now().toString(36)}`, paramSet: 'slh-dsa-sha2-128f', baseTimeout: '1s', logFormat: 'json', natsUrl });
const net = await runDevnet({ dir, members: N, basePort, natsUrl, quiet: true });
const clients = Array.from({ length: N }, (_, i) => consensusClient(path.join(dir, `m${i}`)));
const load = { accepted: 0, refused: 0 };
const samples: Sample[] = [];
try {
  const t0 = Date.now();
  const end = t0 + minutes * 60_000;
  const loading = offerLoad(clients, rate, txSize, () => Date.now() >= end, load);
  await new Promise((r) => setTimeout(r, WARMUP_S * 1000));
  while (Date.now() < end) {
    samples.push(await sample(net, clients, dir, t0, load));
    const s = samples.at(-1)!;
    console.log(`[${s.atS.toFixed(0).padStart(5)} s] height ${Math.min(...s.heights)}–${Math.max(...s.heights)}  mempool ${s.mempool.join('/')}  `
      + `rss ${SERVICES.map((x) => `${x} ${(s.rss[x] ?? 0).toFixed(0)}`).join(' ')} MiB  fds ${SERVICES.map((x) => s.fds[x] ?? 0).join('/')}  disk ${s.diskMiB.toFixed(1)} MiB`);
    await new Promise((r) => setTimeout(r, Math.max(0, Math.min(everyS * 1000, end - Date.now()))));
  }
  await loading;
  samples.push(await sample(net, clients, dir, t0, load));

  const first = samples[0]!;
  const last = samples.at(-1)!;
  const mins = (last.atS - first.atS) / 60;
  const blocks = Math.min(...last.heights) - Math.min(...first.heights);
  const perMin = (a: number, b: number) => (mins > 0 ? ((b - a) / mins).toFixed(2) : 'n/a');
  console.log('');
  console.log(`window ${mins.toFixed(1)} min after a ${WARMUP_S} s warm-up; ${blocks} blocks committed in it (lowest member); `
    + `${load.accepted} tx accepted, ${load.refused} refused in the whole run; baseline = the first sample (same run)`);
  console.log(table(['service (sum over members)', '', 'RSS first (MiB)', 'RSS last', 'RSS growth (MiB/min)', 'RSS peak', 'fds first', 'fds last'], SERVICES.map((s) => [
    s, '', (first.rss[s] ?? 0).toFixed(0), (last.rss[s] ?? 0).toFixed(0), perMin(first.rss[s] ?? 0, last.rss[s] ?? 0),
    Math.max(...samples.map((x) => x.rss[s] ?? 0)).toFixed(0), String(first.fds[s] ?? 0), String(last.fds[s] ?? 0),
  ])));
  console.log(`disk       ${first.diskMiB.toFixed(1)} → ${last.diskMiB.toFixed(1)} MiB over ${N} member dirs (${perMin(first.diskMiB, last.diskMiB)} MiB/min; `
    + `${blocks > 0 ? (((last.diskMiB - first.diskMiB) * 1024) / blocks / N).toFixed(1) : 'n/a'} KiB per block per member)`);
  console.log(`mempool    first ${first.mempool.join('/')}, last ${last.mempool.join('/')} (a mempool that only grows means the offered rate is above what commits)`);
  console.log(`heights    last ${last.heights.join('/')} (spread ${Math.max(...last.heights) - Math.min(...last.heights)})`);
} finally {
  for (const c of clients) c.close();
  await net.stop();
  await fsp.rm(dir, { recursive: true, force: true });
}
