// Protobuf bytes written into one buffer of their exact size, for the messages that carry
// transactions by the thousand: a stored block (btcfed.v1.Block: the header, then every
// transaction) and a tx-batch frame (btcfed.v1.ConsensusFrame with a TxBatch). The generated
// encoder grows its buffer by doubling as it goes (each step a new zeroed buffer and a copy of
// what it held) and copies the result out at the end: for a block of thousands of transactions,
// megabytes allocated and copied per block where one copy of each transaction is the floor, and
// those buffers drove the garbage collector's full collections (docs/performance.md). The bytes
// are the generated encoder's, field for field (block-bytes.test.ts checks them against it).

import type { Block } from '#libs/hotstuff/index.ts';
import { BlockHeader as BlockHeaderMsg } from '#libs/gen/btcfed/v1/wire.pb.ts';
import { headerToWire } from './convert.ts';

/** Field 1 (header) and field 2 (txs) of Block, both length-delimited. */
const HEADER_TAG = 0x0a;
const TX_TAG = 0x12;
/** ConsensusFrame's chain_id (1) and tx_batch (8); TxBatch's txs (1). */
const CHAIN_TAG = 0x0a;
const TX_BATCH_TAG = 0x42;
const BATCH_TX_TAG = 0x0a;

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

/** A plain Uint8Array over a Buffer's bytes, as the generated encoder returns (what decodes it makes views of its kind). */
const plain = (b: Buffer): Uint8Array => new Uint8Array(b.buffer, b.byteOffset, b.byteLength);

/** Bytes of `txs` as a repeated bytes field (tag, length, bytes each). */
function repeatedSize(txs: readonly Uint8Array[]): number {
  let size = 0;
  for (const tx of txs) size += 1 + varintBytes(tx.length) + tx.length;
  return size;
}

function writeRepeated(out: Uint8Array, at: number, tag: number, txs: readonly Uint8Array[]): number {
  for (const tx of txs) {
    out[at++] = tag;
    at = writeVarint(out, at, tx.length);
    out.set(tx, at);
    at += tx.length;
  }
  return at;
}

/** `Block.encode(blockToWire(b)).finish()`, in one buffer of the exact size. */
export function encodeBlockBytes(b: Block): Uint8Array {
  const header = BlockHeaderMsg.encode(headerToWire(b.header)).finish();
  const size = 1 + varintBytes(header.length) + header.length + repeatedSize(b.txs);
  // Not zeroed: every byte is written below.
  const out = Buffer.allocUnsafeSlow(size);
  out[0] = HEADER_TAG;
  let at = writeVarint(out, 1, header.length);
  out.set(header, at);
  at += header.length;
  writeRepeated(out, at, TX_TAG, b.txs);
  return plain(out);
}

/** `ConsensusFrame.encode({ chainId, body: { $case: 'txBatch', value: { txs } } }).finish()`, in one buffer of the exact size. */
export function encodeTxBatchFrame(chainId: string, txs: readonly Uint8Array[]): Uint8Array {
  const chainBytes = Buffer.byteLength(chainId, 'utf8');
  const chainSize = chainBytes === 0 ? 0 : 1 + varintBytes(chainBytes) + chainBytes;
  const body = repeatedSize(txs);
  const out = Buffer.allocUnsafeSlow(chainSize + 1 + varintBytes(body) + body);
  let at = 0;
  // The generated encoder leaves an empty string out.
  if (chainBytes > 0) {
    out[at++] = CHAIN_TAG;
    at = writeVarint(out, at, chainBytes);
    at += out.write(chainId, at, 'utf8');
  }
  out[at++] = TX_BATCH_TAG;
  at = writeVarint(out, at, body);
  writeRepeated(out, at, BATCH_TX_TAG, txs);
  return plain(out);
}
