// What answering a committed block costs the consensus service, the read step alone (no gRPC,
// no TLS): from a real LMDB block store to the response bytes handed to grpc-js.
//  - served: the stored Block and QC bytes copied into the response (stored-reads.ts), as GetBlock
//    by height, a ListBlocks page and StreamCommits answer now;
//  - baseline, same run: the block and QC decoded (with the block's hash computed from its
//    header), turned back into wire objects and encoded, as they were answered before.
// Blocks of --txs transactions of 250 bytes, QCs of three 128f-sized signatures (17,088 bytes).
// Run: node_modules/.bin/node bench/block-reads.ts [--txs 1000] [--blocks 200] [--quick]

import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { blockHash, sha256 } from '#libs/crypto/index.ts';
import { Phase, genesisBlock, type Block, type QuorumCert } from '#libs/hotstuff/index.ts';
import { GetBlockResponse, ListBlocksResponse } from '#libs/gen/btcfed/v1/consensus.pb.ts';
import { blockToWire, qcToWire } from '#libs/wire/index.ts';
import { BlockStore } from '../services/consensus/block-store.ts';
import { CONSENSUS_SERVICE } from '../services/consensus/api.ts';
import { encodedBlockList, encodedBlockResponse } from '../services/consensus/stored-reads.ts';
import { printMachine, stats, table } from './support.ts';

const { values: f } = parseArgs({ options: { txs: { type: 'string', default: '1000' }, blocks: { type: 'string' }, quick: { type: 'boolean', default: false } } });
const TXS = Number(f.txs);
const BLOCKS = Number(f.blocks ?? (f.quick ? 40 : 200));
const PAGE = 100;
const SIG = 17_088;
const limits = { validatorCount: 4, signatureBytes: SIG, maxBlockTxs: Math.max(TXS, 1), maxBlockBytes: 64 << 20 };
const genesis = genesisBlock('bench-reads', blockHash);
const serialize = {
  getBlock: (CONSENSUS_SERVICE.getBlock as unknown as { responseSerialize(v: unknown): Buffer }).responseSerialize,
  listBlocks: (CONSENSUS_SERVICE.listBlocks as unknown as { responseSerialize(v: unknown): Buffer }).responseSerialize,
};

function child(parent: Block): Block {
  const view = parent.header.height + 1;
  const header = { chainId: 'bench-reads', epoch: 0, height: view, view, parentHash: parent.hash, proposer: view % 4,
    timestampMs: 1000 + view, txRoot: sha256(Uint8Array.of(view)), stateHash: sha256(Uint8Array.of(view, 1)) };
  return { header, hash: blockHash(header), txs: Array.from({ length: TXS }, () => randomBytes(250) as Uint8Array) };
}
const qcOf = (b: Block): QuorumCert => ({ phase: Phase.COMMIT, view: b.header.view, blockHash: b.hash, signers: [0, 1, 2],
  signatures: [0, 1, 2].map(() => randomBytes(SIG) as Uint8Array) });

/** µs per block over `rounds` passes of `fn` over every height (p50 of the passes). */
function time(rounds: number, fn: () => number): { us: number; bytes: number } {
  const samples: number[] = [];
  let bytes = 0;
  for (let r = 0; r < rounds; r++) {
    const t0 = performance.now();
    bytes = fn();
    samples.push((performance.now() - t0) * 1000 / BLOCKS);
  }
  return { us: stats(samples).p50, bytes };
}

const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'btcfed-bench-reads-'));
printMachine('committed block reads', [`${BLOCKS} blocks of ${TXS} transactions of 250 bytes, QCs of 3 × ${SIG}-byte signatures; ListBlocks pages of ${PAGE}`]);
const store = new BlockStore({ path: dir, limits, hashBlock: blockHash });
try {
  let tip = genesis;
  for (let h = 1; h <= BLOCKS; h++) {
    const b = child(tip);
    await store.commit([b], qcOf(b));
    tip = b;
  }
  const decoded = (h: number, headersOnly: boolean): GetBlockResponse => {
    const b = store.blockAtHeight(h)!;
    const qc = store.qcFor(b.hash);
    return { block: blockToWire(headersOnly ? { ...b, txs: [] } : b), blockHash: b.hash, qc: qc ? qcToWire(qc) : undefined };
  };
  const rounds = f.quick ? 3 : 7;
  const heights = Array.from({ length: BLOCKS }, (_, i) => i + 1);
  const pages = (fn: (from: number) => number) => () => {
    let n = 0;
    for (let from = 1; from <= BLOCKS; from += PAGE) n += fn(from);
    return n;
  };
  const page = (from: number) => heights.slice(from - 1, from - 1 + PAGE);
  const rows: string[][] = [];
  for (const headersOnly of [false, true]) {
    const what = headersOnly ? 'headers only' : 'whole';
    if (!headersOnly) {
      const before = time(rounds, () => heights.reduce((n, h) => n + serialize.getBlock(decoded(h, false)).length, 0));
      const after = time(rounds, () => heights.reduce((n, h) => n + serialize.getBlock(encodedBlockResponse(store.storedAtHeight(h)!)).length, 0));
      rows.push(['GetBlock by height', before.us.toFixed(1), after.us.toFixed(1), `${(before.us / after.us).toFixed(1)}×`, String(after.bytes === before.bytes)]);
    }
    const before = time(rounds, pages((from) => serialize.listBlocks({ blocks: page(from).map((h) => decoded(h, headersOnly)) }).length));
    const after = time(rounds, pages((from) => serialize.listBlocks(encodedBlockList(page(from).map((h) => store.storedAtHeight(h)!), headersOnly)).length));
    rows.push([`ListBlocks, ${what}`, before.us.toFixed(1), after.us.toFixed(1), `${(before.us / after.us).toFixed(1)}×`, String(after.bytes === before.bytes)]);
  }
  const one = Buffer.from(GetBlockResponse.encode(decoded(1, false)).finish()).length;
  const list = Buffer.from(ListBlocksResponse.encode({ blocks: [decoded(1, true)] }).finish()).length;
  console.log(table(['answer', 'baseline: decoded and encoded again (µs/block)', 'served from stored bytes (µs/block)', 'speed-up', 'same size'], rows));
  console.log(`one whole block answered: ${one} bytes; one header in a page: ${list} bytes`);
} finally {
  await store.close();
  await fs.rm(dir, { recursive: true, force: true });
}
