// What durability costs the consensus service: one engine `persist` (the safety record with its
// two QCs, and a proposed block) through the real BlockStore — fsynced before it resolves — and,
// as the baseline in the same run, the same bytes through raw LMDB with `noSync` (what a store
// that does not flush would cost). A view persists about four times on each member (proposal,
// and one safety update per phase), so the difference × 4 is what durability adds to a block
// interval; the signing floor is printed beside it for scale.
// Run: node_modules/.bin/node bench/durability.ts [--quick]

import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { open } from 'lmdb';
import { blockHash, createSlhDsa, merkleRoot, nextStateHash, txHash } from '#libs/crypto/index.ts';
import { Phase, genesisBlock, type Block, type QuorumCert, type SafetyState } from '#libs/hotstuff/index.ts';
import { BlockStore } from '../services/consensus/block-store.ts';
import { printMachine, stats, table } from './support.ts';

const ms = (x: number): string => `${x.toFixed(2)} ms`;

const quick = process.argv.includes('--quick');
const rounds = quick ? 20 : 200;
const N = 4;
const chainId = 'durability-bench';
const dsa = createSlhDsa();
const genesis = genesisBlock(chainId, blockHash);

function block(parent: Block, txCount: number): Block {
  const txs = Array.from({ length: txCount }, (_, i) => new Uint8Array(250).fill((parent.header.height + i) & 0xff));
  const txRoot = merkleRoot(txs.map((t) => txHash(t)));
  const header = { chainId, epoch: 0, height: parent.header.height + 1, view: parent.header.height + 1, parentHash: parent.hash, proposer: 0,
    timestampMs: Date.now(), txRoot, stateHash: nextStateHash(parent.header.stateHash, txRoot) };
  return { header, hash: blockHash(header), txs };
}
const qcOn = (b: Block, phase: Phase): QuorumCert =>
  ({ phase, view: b.header.view, blockHash: b.hash, signers: [0, 1, 2], signatures: [0, 1, 2].map(() => new Uint8Array(dsa.signatureBytes).fill(7)) });
const safety = (b: Block): SafetyState => ({ view: b.header.view, lockedQC: qcOn(b, Phase.PRE_COMMIT), prepareQC: qcOn(b, Phase.PREPARE),
  lastVoted: { view: b.header.view, phase: Phase.PREPARE }, newViewTarget: b.header.view, lastCommitView: 0, proposedView: 0 });

async function durable(dir: string, txCount: number): Promise<number[]> {
  const store = new BlockStore({ path: dir, limits: { validatorCount: N, signatureBytes: dsa.signatureBytes, maxBlockTxs: 100_000, maxBlockBytes: 64 << 20 }, hashBlock: blockHash });
  const samples: number[] = [];
  let tip = genesis;
  for (let i = 0; i < rounds; i++) {
    const b = block(tip, txCount);
    const t0 = performance.now();
    await store.persist(safety(b), [b], [qcOn(b, Phase.PREPARE)]);
    samples.push(performance.now() - t0);
    tip = b;
  }
  await store.close();
  return samples;
}

async function unsynced(dir: string, txCount: number): Promise<number[]> {
  const db = open({ path: dir, compression: false, noSync: true });
  const samples: number[] = [];
  let tip = genesis;
  for (let i = 0; i < rounds; i++) {
    const b = block(tip, txCount);
    const bytes = b.txs.reduce((n, t) => n + t.length, 0) + 4 * dsa.signatureBytes * 3;
    const t0 = performance.now();
    await db.transaction(() => { db.put(`b${i}`, new Uint8Array(bytes)); db.put('safety', new Uint8Array(8 * dsa.signatureBytes)); });
    samples.push(performance.now() - t0);
    tip = b;
  }
  await db.close();
  return samples;
}

async function main(): Promise<void> {
  const root = await fs.mkdtemp(path.join(os.tmpdir(), 'btcfed-durability-'));
  printMachine('durability benchmark' + (quick ? ' (--quick)' : ''), [`data dir   ${root} (${rounds} persists per row)`]);
  const key = dsa.generateKeyPair();
  const signs: number[] = [];
  for (let i = 0; i < 10; i++) { const t0 = performance.now(); await dsa.sign(key.secretKey, new Uint8Array(64)); signs.push(performance.now() - t0); }
  const rows: string[][] = [];
  try {
    for (const txCount of [0, 1000, 16_000]) {
      const d = stats(await durable(path.join(root, `d${txCount}`), txCount));
      const u = stats(await unsynced(path.join(root, `u${txCount}`), txCount));
      rows.push([String(txCount), ms(d.p50), ms(d.p95), ms(u.p50), ms((d.p50 - u.p50) * 4)]);
    }
  } finally {
    await fs.rm(root, { recursive: true, force: true });
  }
  console.log(table(['txs per block (250 B)', 'persist fsynced p50', 'p95', 'baseline noSync p50', 'added per view (×4)'], rows));
  console.log(`\nfor scale: one SLH-DSA-128f signature p50 ${ms(stats(signs).p50)} (a view signs at least four in sequence)`);
}

await main();
