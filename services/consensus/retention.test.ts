// Retention over a real LMDB block store: nothing pruned until PRUNE_STEP heights (half of a small keep_blocks) are due, then
// everything older than keep_blocks; never past what the publisher has stored in JetStream; a
// new keep_blocks (hot reload) applies at once; 0 keeps every block; a failed prune is counted.

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { blockHash, sha256 } from '#libs/crypto/index.ts';
import { Phase, genesisBlock, type Block } from '#libs/hotstuff/index.ts';
import { createPromMetrics } from '#libs/metrics/index.ts';
import { BlockStore } from './block-store.ts';
import { PRUNE_STEP, Retention } from './retention.ts';

const dirs: string[] = [];
after(() => Promise.all(dirs.map((d) => fs.rm(d, { recursive: true, force: true }))));
const limits = { validatorCount: 4, signatureBytes: 4, maxBlockTxs: 10, maxBlockBytes: 10_000 };
const log = pino({ level: process.env.TEST_LOG ?? 'silent' });

async function chain(heights: number) {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'btcfed-retention-'));
  dirs.push(dir);
  const store = new BlockStore({ path: dir, limits, hashBlock: blockHash });
  let parent: Block = genesisBlock('retention-test', blockHash);
  const grow = async (n: number) => {
    for (let i = 0; i < n; i++) {
      const header = { ...parent.header, height: parent.header.height + 1, view: parent.header.height + 1, parentHash: parent.hash, stateHash: sha256(parent.hash) };
      const b = { header, hash: blockHash(header), txs: [] };
      await store.commit([b], { phase: Phase.COMMIT, view: header.view, blockHash: b.hash, signers: [0, 1, 2], signatures: [1, 2, 3].map((k) => new Uint8Array(4).fill(k)) });
      parent = b;
    }
  };
  await grow(heights);
  return { store, grow };
}

test('prunes in steps, keeps keep_blocks, never past the published mark; keep_blocks 0 keeps everything', async () => {
  const { store, grow } = await chain(250);
  const metrics = createPromMetrics({ prefix: 'btcfed_', processMetrics: false });
  let published = 10_000;
  const r = new Retention({ store, keep: 200, log, metrics, published: () => published });
  r.committed();
  await r.idle();
  assert.equal(store.prunedTo(), 0, `50 due, fewer than PRUNE_STEP (${PRUNE_STEP}): nothing yet`);
  await grow(20);
  r.committed();
  await r.idle();
  assert.equal(store.prunedTo(), 70, '270 committed, the last 200 kept');
  assert.ok(store.blockAtHeight(71) && !store.blockAtHeight(70));
  assert.match(await metrics.registry.metrics(), /btcfed_consensus_blocks_pruned_total 70\n[\s\S]*btcfed_consensus_oldest_kept_height 71/);
  published = 140;
  await grow(200);
  r.committed();
  await r.idle();
  assert.equal(store.prunedTo(), 140, 'not past what JetStream holds (the publisher reads blocks back)');
  published = 10_000;
  r.setKeep(0);
  await r.idle();
  assert.equal(store.prunedTo(), 140, 'keep_blocks 0: nothing more is pruned');
  r.setKeep(100);
  await r.idle();
  assert.equal(store.prunedTo(), 370, 'a new keep_blocks applies at once');
  // A small keep_blocks prunes in steps of half of it: 32 kept, 16 due start a run.
  r.setKeep(32);
  await r.idle();
  assert.equal(store.prunedTo(), 438);
  await grow(15);
  r.committed();
  await r.idle();
  assert.equal(store.prunedTo(), 438, '15 due: not yet');
  await grow(1);
  r.committed();
  await r.idle();
  assert.equal(store.prunedTo(), 454);
  await store.close();
});

test('a prune the store refuses is logged and counted, and tried again at a later commit', async () => {
  const { store } = await chain(200);
  const metrics = createPromMetrics({ prefix: 'btcfed_', processMetrics: false });
  let fail = true;
  const flaky = { prunedTo: () => store.prunedTo(), committedHeight: () => store.committedHeight(),
    prune: (to: number, max?: number) => (fail ? Promise.reject(new Error('MDB_MAP_FULL')) : store.prune(to, max)) };
  const r = new Retention({ store: flaky, keep: 100, log, metrics });
  r.committed();
  await r.idle();
  assert.equal(store.prunedTo(), 0);
  assert.match(await metrics.registry.metrics(), /btcfed_consensus_prune_failures_total 1/);
  fail = false;
  r.committed();
  await r.idle();
  assert.equal(store.prunedTo(), 100);
  await store.close();
});
