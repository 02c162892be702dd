// A block's protobuf bytes (btcfed.v1.Block: the header, then every transaction) written into one
// buffer of their exact size. The generated encoder grows its buffer by doubling as it goes (each
// step a new zeroed buffer and a copy of what it held) and copies the result out at the end: for a
// block of thousands of transactions, megabytes allocated and copied per block where one copy of
// each transaction is the floor. Every member stores each block it holds this way. The bytes are
// the generated encoder's, field for field (block-bytes.test.ts checks them against it).

import type { Block } from '#libs/hotstuff/index.ts';
import { BlockHeader as BlockHeaderMsg } from '#libs/gen/btcfed/v1/wire.pb.ts';
import { headerToWire } from './convert.ts';

/** Field 1 (header) and field 2 (txs) of Block, both length-delimited. */
const HEADER_TAG = 0x0a;
const TX_TAG = 0x12;

/** Bytes of `n` as a protobuf varint (n below 2^32: lengths). */
function varintBytes(n: number): number {
  return n < 0x80 ? 1 : n < 0x4000 ? 2 : n < 0x200000 ? 3 : n < 0x10000000 ? 4 : 5;
}

function writeVarint(out: Uint8Array, at: number, n: number): number {
  while (n >= 0x80) {
    out[at++] = (n & 0x7f) | 0x80;
    n >>>= 7;
  }
  out[at++] = n;
  return at;
}

/** `Block.encode(blockToWire(b)).finish()`, in one buffer of the exact size. */
export function encodeBlockBytes(b: Block): Uint8Array {
  const header = BlockHeaderMsg.encode(headerToWire(b.header)).finish();
  let size = 1 + varintBytes(header.length) + header.length;
  for (const tx of b.txs) size += 1 + varintBytes(tx.length) + tx.length;
  // Not zeroed: every byte is written below.
  const out = Buffer.allocUnsafeSlow(size);
  out[0] = HEADER_TAG;
  let at = writeVarint(out, 1, header.length);
  out.set(header, at);
  at += header.length;
  for (const tx of b.txs) {
    out[at++] = TX_TAG;
    at = writeVarint(out, at, tx.length);
    out.set(tx, at);
    at += tx.length;
  }
  return out;
}
