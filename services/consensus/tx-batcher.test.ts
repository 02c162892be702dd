// Batches of clients' transactions: one frame per GOSSIP_MAX_TXS, per half a block of bytes (so a
// batch of large transactions still fits the gateway's frame limit), or per GOSSIP_DELAY_MS.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { blockHash } from '#libs/crypto/index.ts';
import { decodeFrame } from '#libs/wire/index.ts';
import { GOSSIP_DELAY_MS, GOSSIP_MAX_TXS, TxBatcher, batchDelayMs } from './tx-batcher.ts';

const limits = { chainId: 'batch-test', validatorCount: 4, signatureBytes: 64, maxBlockTxs: 10_000, maxBlockBytes: 1 << 20,
  maxFrameBytes: 64 << 20, maxSyncBlocks: 64, hashBlock: blockHash };

function batcher() {
  const batches: number[][] = [];
  const timers: (() => void)[] = [];
  const b = new TxBatcher({ chainId: limits.chainId, maxBlockBytes: limits.maxBlockBytes,
    clock: { now: () => 0, setTimeout: (fn, ms) => { assert.equal(ms, GOSSIP_DELAY_MS); timers.push(fn); return { cancel: () => { timers.splice(timers.indexOf(fn), 1); } }; } },
    send: (frame) => {
      const f = decodeFrame(frame, limits);
      assert.equal(f.type, 'tx-batch');
      if (f.type === 'tx-batch') batches.push(f.txs.map((t) => t.length));
    } });
  return { b, batches, timers };
}

const ID = new Uint8Array(32);

test('a batch goes out at GOSSIP_MAX_TXS transactions, at half a block of bytes, or after GOSSIP_DELAY_MS', () => {
  const { b, batches, timers } = batcher();
  for (let i = 0; i < GOSSIP_MAX_TXS; i++) b.add(new Uint8Array(10), ID);
  assert.deepEqual(batches.map((x) => x.length), [GOSSIP_MAX_TXS]);
  assert.equal(timers.length, 0, 'the delay timer went with the batch');
  // 64 KiB transactions: the frame would pass the block size long before 512 of them.
  for (let i = 0; i < 8; i++) b.add(new Uint8Array(64 << 10), ID);
  assert.deepEqual(batches.at(-1), Array(8).fill(64 << 10), 'half a block of bytes (512 KiB) is a batch');
  b.add(new Uint8Array(3), ID);
  assert.equal(batches.length, 2, 'one small transaction waits');
  timers[0]!();
  assert.deepEqual(batches.at(-1), [3], 'until the delay');
  b.flush();
  assert.equal(batches.length, 3, 'an empty flush sends nothing');
});

test('a validator\'s batch collects longer the more validators it goes to: 5 ms per three peers', () => {
  assert.deepEqual([1, 4, 7, 10, 21].map(batchDelayMs), [5, 5, 10, 15, 35]);
  let asked = 0;
  const b = new TxBatcher({ chainId: 'tx-batcher-test', maxBlockBytes: 1 << 20, delayMs: () => batchDelayMs(21), send: () => {},
    clock: { now: () => 0, setTimeout: (_fn, ms) => { asked = ms; return { cancel: () => {} }; } } });
  b.add(new Uint8Array(10), ID);
  assert.equal(asked, 35);
});
