// A block's stored bytes (`npm run bench -- block-bytes` or `node bench/block-bytes.ts`): the CPU
// to encode a block of thousands of 250-byte transactions in one buffer of its exact size
// (libs/wire/block-bytes.ts, what the block store writes), against the generated protobuf encoder
// in the same run (`Block.encode(blockToWire(b)).finish()`, what it wrote before). CPU time of
// this process over many encodes, so the garbage collector's share of the allocations is in it.
// The two alternate in rounds so a neighbour's load falls on both. Never asserted.
//   node bench/block-bytes.ts [--quick]

import { randomBytes } from 'node:crypto';
import { blockHash, sha256 } from '#libs/crypto/index.ts';
import type { Block } from '#libs/hotstuff/index.ts';
import { Block as BlockMsg } from '#libs/gen/btcfed/v1/wire.pb.ts';
import { blockToWire, encodeBlockBytes } from '#libs/wire/index.ts';
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

printMachine('block bytes' + (quick ? ' (--quick)' : ''), [`rounds     ${ROUNDS}, each ~${BYTES_PER_ROUND >> 20} MiB encoded per way and size, 250-byte transactions`]);
const rows: string[][] = [];
for (const count of [1_000, 5_000, 10_000]) {
  const block = blockOf(count);
  const base: number[] = [];
  const ours: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    base.push(cpuPerEncode(block, generated));
    ours.push(cpuPerEncode(block, encodeBlockBytes));
  }
  const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
  const b = median(base);
  const o = median(ours);
  rows.push([`${count.toLocaleString('en')} txs`, `${(b / 1000).toFixed(2)}`, `${(o / 1000).toFixed(2)}`, `${((b / count) * 1000).toFixed(0)}`, `${((o / count) * 1000).toFixed(0)}`, `${(b / o).toFixed(2)}×`]);
}
console.log(table(['block', 'generated encoder (CPU-ms/block)', 'exact size (CPU-ms/block)', 'generated (CPU-ns/tx)', 'exact size (CPU-ns/tx)', 'ratio'], rows));
console.log('medians of the rounds; baseline: the generated encoder, same run');
