// Benchmark (prints figures, asserts nothing): the same 4-member federation of real processes run
// twice in one sitting — every signer with `file` custody, then every signer's key moved into its
// own SoftHSM2 token (`pkcs11` sealed, import-key) — and, over a window of empty blocks (a block
// every view), the block interval, each signer's time per request (rules, signing, the state
// durable — MAC'd by the token with pkcs11 — and the journal), and the consensus service's round
// trip to its signer, per request kind.
// Needs softhsm2 (scripts/ensure-tools.sh) and NATS. Run: node_modules/.bin/node bench/federation-custody.ts [--seconds 20]

import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { parse, stringify } from 'yaml';
import type { StreamCommitsResponse } from '#libs/gen/btcfed/v1/consensus.pb.ts';
import { consensusClient } from '../cli/client.ts';
import { runDevnet } from '../cli/devnet.ts';
import { initFederation } from '../cli/init.ts';
import { memberTargets } from '../cli/prometheus.ts';
import { makeSoftHsm, SOFTHSM_MODULE } from '../services/signer/softhsm-testkit.ts';
import { signerCli } from '../test/support/signer.ts';
import { ms, printMachine, samplesByLabel, scrapeMetrics, stats, table } from './support.ts';

const { values: f } = parseArgs({ options: { seconds: { type: 'string' } } });
const SECONDS = Number(f.seconds ?? 20);
const N = 4;
const NATS = process.env.NATS_URL ?? 'nats://127.0.0.1:4222';

printMachine('federation by signer key custody: file vs pkcs11 sealed (SoftHSM2), same machine, one run');

type Totals = Map<string, { sum: number; count: number }>;
async function totals(dir: string, service: 'signer' | 'consensus', name: string): Promise<Totals> {
  const out: Totals = new Map();
  for (let i = 0; i < N; i++) {
    const endpoint = memberTargets(path.join(dir, `m${i}`)).targets[service];
    const text = endpoint ? await scrapeMetrics(`http://${endpoint}/metrics`) : '';
    const counts = samplesByLabel(text, `${name}_count`, 'kind');
    for (const [k, sum] of samplesByLabel(text, `${name}_sum`, 'kind')) {
      const t = out.get(k) ?? { sum: 0, count: 0 };
      out.set(k, { sum: t.sum + sum, count: t.count + (counts.get(k) ?? 0) });
    }
  }
  return out;
}
/** Mean in ms of the observations between two snapshots over the labels starting with `prefix` (vote: vote-1, vote-2, vote-3 at consensus). */
const meanMs = (a: Totals, b: Totals, prefix: string) => {
  let sum = 0;
  let count = 0;
  for (const [k, x] of b) {
    if (!k.startsWith(prefix)) continue;
    const y = a.get(k) ?? { sum: 0, count: 0 };
    sum += x.sum - y.sum;
    count += x.count - y.count;
  }
  return count > 0 ? (sum / count) * 1000 : Number.NaN;
};

const hsmDir = await fs.mkdtemp(path.join(os.tmpdir(), 'btcfed-bench-hsm-'));
const hsm = await makeSoftHsm(hsmDir);
process.env.SOFTHSM2_CONF = hsm.confFile; // inherited by every signer process

const rows: string[][] = [];
for (const custody of ['file', 'pkcs11'] as const) {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), `btcfed-bench-${custody}-`));
  const basePort = 10_000 + 100 * Math.floor(Math.random() * 70);
  await initFederation({ members: N, out: dir, basePort, chainId: `bench-${custody}`, paramSet: 'slh-dsa-sha2-128f', baseTimeout: '2s', logFormat: 'json', natsUrl: NATS });
  if (custody === 'pkcs11') {
    for (let i = 0; i < N; i++) {
      const signerDir = path.join(dir, `m${i}`, 'signer');
      hsm.addToken(`bench-m${i}`);
      await hsm.writePin(path.join(signerDir, 'token-pin'));
      const confFile = path.join(signerDir, 'signer.yaml');
      const conf = parse(await fs.readFile(confFile, 'utf8')) as Record<string, unknown>;
      conf.custody = { backend: 'pkcs11', module: SOFTHSM_MODULE, token_label: `bench-m${i}`, pin_file: 'token-pin', key_label: `m${i}-seal` };
      await fs.writeFile(confFile, stringify(conf));
      const r = signerCli(['import-key', '--data-dir', signerDir], hsm.env);
      if (r.status !== 0) throw new Error(`import-key m${i}: ${r.stderr}`);
    }
  }
  const net = await runDevnet({ dir, members: N, basePort, natsUrl: NATS, quiet: true });
  const client = consensusClient(path.join(dir, 'm0'));
  try {
    const stamps: number[] = [];
    const watcher = client.streamCommits({ fromHeight: 0, headersOnly: true });
    watcher.on('data', (r: StreamCommitsResponse) => { const h = r.block?.block?.header; if (h) stamps.push(h.timestampMs); });
    watcher.on('error', () => undefined);
    for (let i = 0; i < 600 && stamps.length < 5; i++) await new Promise((r) => setTimeout(r, 100)); // warm up
    const s0 = await totals(dir, 'signer', 'btcfed_signer_request_duration_seconds');
    const c0 = await totals(dir, 'consensus', 'btcfed_consensus_signer_latency_seconds');
    const from = stamps.length;
    await new Promise((r) => setTimeout(r, SECONDS * 1000));
    const s1 = await totals(dir, 'signer', 'btcfed_signer_request_duration_seconds');
    const c1 = await totals(dir, 'consensus', 'btcfed_consensus_signer_latency_seconds');
    const window = stamps.slice(from - 1);
    const intervals = window.slice(1).map((t, i) => t - window[i]!);
    watcher.cancel();
    const iv = stats(intervals);
    const signs = [...s1.values()].reduce((a, t) => a + t.count, 0) - [...s0.values()].reduce((a, t) => a + t.count, 0);
    rows.push([custody === 'file' ? 'file' : 'pkcs11 sealed', String(intervals.length), ms(iv.p50), ms(iv.p95), String(signs),
      ms(meanMs(s0, s1, 'vote')), ms(meanMs(s0, s1, 'proposal')), ms(meanMs(c0, c1, 'vote')), ms(meanMs(c0, c1, 'proposal'))]);
  } finally {
    client.close();
    await net.stop();
    await fs.rm(dir, { recursive: true, force: true });
  }
}
await fs.rm(hsmDir, { recursive: true, force: true });

console.log(`empty blocks over ${SECONDS} s per run, ${N} members (SLH-DSA-SHA2-128f); ms (signer: in the signer process; round trip: consensus → signer → consensus, gRPC mTLS)`);
console.log(table(['custody', 'blocks', 'interval p50', 'interval p95', 'signer requests', 'signer vote', 'signer proposal', 'round trip vote', 'round trip proposal'], rows));
