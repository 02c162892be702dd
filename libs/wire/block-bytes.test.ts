import { test } from 'node:test';
import assert from 'node:assert/strict';
import { blockHash, sha256 } from '#libs/crypto/index.ts';
import { genesisBlock, type Block } from '#libs/hotstuff/index.ts';
import { Block as BlockMsg, ConsensusFrame } from '#libs/gen/btcfed/v1/wire.pb.ts';
import { blockToWire, encodeBlockBytes, encodeFrame, encodeTxBatchFrame } from '#libs/wire/index.ts';

const h = (s: string) => sha256(new TextEncoder().encode(s));
const generated = (b: Block) => BlockMsg.encode(blockToWire(b)).finish();

function blockOf(txs: Uint8Array[], over: Partial<Block['header']> = {}): Block {
  const header = { chainId: 'block-bytes', epoch: 3, height: 17, view: 40, parentHash: h('p'), proposer: 2, timestampMs: 1_700_000_000_123,
    txRoot: h('r'), stateHash: h('s'), ...over };
  return { header, hash: blockHash(header), txs };
}

/** Seeded bytes (xorshift), so a failure repeats. */
function bytes(seed: number, n: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed | 1;
  for (let i = 0; i < n; i++) { x ^= x << 13; x ^= x >>> 17; x ^= x << 5; out[i] = x & 0xff; }
  return out;
}

test('a block is the generated encoder\'s bytes, at every length a varint changes size', () => {
  // Lengths on both sides of each varint width, and none at all (an empty transaction is still a field).
  const lengths = [0, 1, 127, 128, 250, 16_383, 16_384, 2_097_151, 2_097_152];
  const block = blockOf(lengths.map((n, i) => bytes(i + 1, n)));
  const ours = encodeBlockBytes(block);
  assert.deepEqual(Buffer.from(ours), Buffer.from(generated(block)));
  assert.equal(ours.length, generated(block).length);
  assert.deepEqual(BlockMsg.decode(ours).txs.map((t) => t.length), lengths);
});

test('an empty block, genesis, and a header of large values', () => {
  for (const b of [blockOf([]), genesisBlock('block-bytes', blockHash), blockOf([bytes(9, 250)], { epoch: 2 ** 40, height: 2 ** 52, view: 2 ** 53 - 1, chainId: 'x'.repeat(64) })]) {
    assert.deepEqual(Buffer.from(encodeBlockBytes(b)), Buffer.from(generated(b)));
  }
});

test('thousands of transactions of seeded sizes', () => {
  const txs: Uint8Array[] = [];
  for (let i = 0; i < 5_000; i++) txs.push(bytes(i + 100, (i * 7919) % 600));
  const block = blockOf(txs);
  assert.deepEqual(Buffer.from(encodeBlockBytes(block)), Buffer.from(generated(block)));
});

test('a tx-batch frame is the generated encoder\'s bytes: chain ids of every size (none, multi-byte UTF-8), batches empty, small and past each varint width', () => {
  const frame = (chainId: string, txs: Uint8Array[]) => ConsensusFrame.encode({ chainId, body: { $case: 'txBatch', value: { txs } } }).finish();
  const batches = [[], [new Uint8Array(0)], [bytes(1, 250)], Array.from({ length: 512 }, (_, i) => bytes(i + 7, (i * 131) % 700)), [bytes(3, 16_384), bytes(4, 2_097_152)]];
  for (const chainId of ['', 'btcfed-devnet', 'é'.repeat(70), 'x'.repeat(200)]) {
    for (const txs of batches) {
      const ours = encodeTxBatchFrame(chainId, txs);
      assert.deepEqual(Buffer.from(ours), Buffer.from(frame(chainId, txs)), `chain id of ${chainId.length}, ${txs.length} transactions`);
      assert.deepEqual(Buffer.from(encodeFrame(chainId, { type: 'tx-batch', txs })), Buffer.from(ours));
    }
  }
});
