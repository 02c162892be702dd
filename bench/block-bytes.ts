// Encodings written at their exact size (`npm run bench -- block-bytes` or `node bench/block-bytes.ts`):
// the CPU to encode a block of thousands of 250-byte transactions (what the block store writes) and
// a tx-batch frame of 512 (what a member sends its peers) in one buffer of the exact size
// (libs/wire/block-bytes.ts), against the generated protobuf encoder in the same run
// (`Block.encode(blockToWire(b)).finish()`, `ConsensusFrame.encode(...)`, what they were before).
// CPU time of this process over many encodes, so the garbage collector's share is in it.
// The two alternate in rounds so a neighbour's load falls on both. Never asserted.
//   node bench/block-bytes.ts [--quick]

import { randomBytes } from 'node:crypto';
import { blockHash, sha256 } from '#libs/crypto/index.ts';
import type { Block } from '#libs/hotstuff/index.ts';
import { Block as BlockMsg, ConsensusFrame } from '#libs/gen/btcfed/v1/wire.pb.ts';
import { blockToWire, encodeBlockBytes, encodeTxBatchFrame } from '#libs/wire/index.ts';
import { printMachine, table } from './support.ts';

const quick = process.argv.includes('--quick');
const ROUNDS = quick ? 3 : 9;
const BYTES_PER_ROUND = (quick ? 64 : 256) << 20;

function blockOf(count: number): Block {
  const h = sha256(new Uint8Array([1]));
  const header = { chainId: 'bench', epoch: 0, height: 1, view: 1, parentHash: h, proposer: 0, timestampMs: Date.now(), txRoot: h, stateHash: h };
  return { header, hash: blockHash(header), txs: Array.from({ length: count }, () => randomBytes(250)) };
}

/** CPU-µs per encode of `block` by `encode`, over about BYTES_PER_ROUND of output. */
function cpuPerEncode(block: Block, encode: (b: Block) => Uint8Array): number {
  const n = Math.max(4, Math.ceil(BYTES_PER_ROUND / (block.txs.length * 253)));
  let sink = 0;
  const t0 = process.cpuUsage();
  for (let i = 0; i < n; i++) sink += encode(block).length;
  const t = process.cpuUsage(t0);
  if (sink === 0) throw new Error('nothing encoded');
  return (t.user + t.system) / n;
}

const generated = (b: Block): Uint8Array => BlockMsg.encode(blockToWire(b)).finish();
const generatedBatch = (b: Block): Uint8Array => ConsensusFrame.encode({ chainId: 'btcfed-devnet', body: { $case: 'txBatch', value: { txs: b.txs } } }).finish();
const exactBatch = (b: Block): Uint8Array => encodeTxBatchFrame('btcfed-devnet', b.txs);

printMachine('exact-size encodings' + (quick ? ' (--quick)' : ''), [`rounds     ${ROUNDS}, each ~${BYTES_PER_ROUND >> 20} MiB encoded per way and size, 250-byte transactions`]);
const cases: { name: string; count: number; base: (b: Block) => Uint8Array; ours: (b: Block) => Uint8Array }[] = [
  { name: 'tx-batch frame of 512', count: 512, base: generatedBatch, ours: exactBatch },
  ...[1_000, 5_000, 10_000].map((count) => ({ name: `block of ${count.toLocaleString('en')}`, count, base: generated, ours: encodeBlockBytes })),
];
const rows: string[][] = [];
for (const c of cases) {
  const block = blockOf(c.count);
  const base: number[] = [];
  const ours: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    base.push(cpuPerEncode(block, c.base));
    ours.push(cpuPerEncode(block, c.ours));
  }
  const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
  const b = median(base);
  const o = median(ours);
  rows.push([c.name, `${(b / 1000).toFixed(3)}`, `${(o / 1000).toFixed(3)}`, `${((b / c.count) * 1000).toFixed(0)}`, `${((o / c.count) * 1000).toFixed(0)}`, `${(b / o).toFixed(2)}×`]);
}
console.log(table(['what is encoded', 'generated encoder (CPU-ms each)', 'exact size (CPU-ms each)', 'generated (CPU-ns/tx)', 'exact size (CPU-ns/tx)', 'ratio'], rows));
console.log('medians of the rounds; baseline: the generated encoder, same run');
