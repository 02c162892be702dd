// The evidence log against a real LMDB block store: a member that equivocates again and again
// leaves one item per (epoch, offender, view, kind), a bounded number per offender (by name, across
// epochs), proposals without their transactions, and the same bounds after a restart.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { blockHash, merkleRoot, nextStateHash, txHash } from '#libs/crypto/index.ts';
import { Phase, genesisBlock, genesisQC, type Block, type Equivocation, type Proposal, type Vote } from '#libs/hotstuff/index.ts';
import { decodeFrame } from '#libs/wire/index.ts';
import { Evidence } from '#libs/gen/btcfed/v1/consensus.pb.ts';
import { BlockStore } from './block-store.ts';
import { EVIDENCE_PER_OFFENDER, EvidenceLog } from './evidence.ts';

const chainId = 'evidence-test';
const limits = { validatorCount: 4, signatureBytes: 4, maxBlockTxs: 100, maxBlockBytes: 1 << 20 };
const genesis = genesisBlock(chainId, blockHash);

function block(view: number, txs: Uint8Array[]): Block {
  const txRoot = merkleRoot(txs.map((t) => txHash(t)));
  const header = { chainId, epoch: 0, height: 1, view, parentHash: genesis.hash, proposer: view % 4, timestampMs: view, txRoot,
    stateHash: nextStateHash(genesis.header.stateHash, txRoot) };
  return { header, hash: blockHash(header), txs };
}
const vote = (view: number, fill: number, sender = 3, epoch = 0): Vote =>
  ({ type: 'vote', epoch, phase: Phase.PREPARE, view, blockHash: new Uint8Array(32).fill(fill), sender, signature: new Uint8Array(4).fill(fill) });
const voteEquivocation = (view: number, fill: number, sender = 3, epoch = 0): Equivocation =>
  ({ sender, view, kind: Phase.PREPARE, first: vote(view, 0, sender, epoch), second: vote(view, fill, sender, epoch) });

async function withStore(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'btcfed-evidence-'));
  try { await fn(dir); } finally { await fs.rm(dir, { recursive: true, force: true }); }
}

test('repeated equivocation in one slot keeps one item; a restart remembers the slot', () => withStore(async (dir) => {
  let store = new BlockStore({ path: dir, limits, hashBlock: blockHash });
  let log = new EvidenceLog(chainId, store);
  const first = log.add(voteEquivocation(7, 1), 1000);
  assert.equal(first.kept, true);
  if (first.kept) await first.stored;
  for (let fill = 2; fill < 50; fill++) assert.deepEqual(log.add(voteEquivocation(7, fill), 1000), { kept: false, reason: 'duplicate' });
  assert.equal(log.add(voteEquivocation(7, 2, 1), 1000).kept, true, 'another offender in the same view is another slot');
  await store.close();

  store = new BlockStore({ path: dir, limits, hashBlock: blockHash });
  log = new EvidenceLog(chainId, store);
  assert.deepEqual(log.add(voteEquivocation(7, 99), 2000), { kept: false, reason: 'duplicate' }, 'the slot survives a restart');
  const page = log.page({ epoch: 0, view: 0 }, 0, 0);
  assert.deepEqual(page.evidence.map((e) => [e.offender, e.view, e.kind, e.seq]), [[3, 7, 'prepare', 1], [1, 7, 'prepare', 2]]);
  assert.equal(page.more, false);
  await store.close();
}));

test('an offender has at most EVIDENCE_PER_OFFENDER items; paging walks them all', () => withStore(async (dir) => {
  const store = new BlockStore({ path: dir, limits, hashBlock: blockHash });
  const log = new EvidenceLog(chainId, store);
  const pending: Promise<void>[] = [];
  for (let view = 1; view <= EVIDENCE_PER_OFFENDER + 10; view++) {
    const r = log.add(voteEquivocation(view, 1), view);
    if (view <= EVIDENCE_PER_OFFENDER) {
      assert.equal(r.kept, true, `view ${view}`);
      if (r.kept) pending.push(r.stored);
    } else {
      assert.deepEqual(r, { kept: false, reason: 'offender_cap' });
    }
  }
  await Promise.all(pending);
  assert.equal([...store.evidence()].length, EVIDENCE_PER_OFFENDER);
  const seen: number[] = [];
  let after = 0;
  for (;;) {
    const p = log.page({ epoch: 0, view: 0 }, after, 5);
    seen.push(...p.evidence.map((e) => e.view));
    if (!p.more) break;
    after = p.evidence.at(-1)!.seq;
  }
  assert.deepEqual(seen, Array.from({ length: EVIDENCE_PER_OFFENDER }, (_, i) => i + 1));
  assert.deepEqual(log.page({ epoch: 0, view: 20 }, 0, 0).evidence.map((e) => e.view)[0], 20, 'from_view filters');
  await store.close();
}));

test('proposal evidence keeps the signed header, not megabytes of transactions', () => withStore(async (dir) => {
  const store = new BlockStore({ path: dir, limits, hashBlock: blockHash });
  const log = new EvidenceLog(chainId, store);
  const big = (fill: number) => Array.from({ length: 8 }, (_, i) => new Uint8Array(64 * 1024).fill(fill + i));
  const proposal = (fill: number): Proposal => ({ type: 'proposal', view: 5, block: block(5, big(fill)), justify: genesisQC(genesis), sender: 1, signature: new Uint8Array(4).fill(fill) });
  const [a, b] = [proposal(1), proposal(2)];
  const r = log.add({ sender: 1, view: 5, kind: 'proposal', first: a, second: b }, 1);
  assert.equal(r.kept, true);
  if (!r.kept) return;
  await r.stored;
  const [stored] = [...store.evidence()];
  assert.ok(stored!.bytes.length < 4096, `${stored!.bytes.length} bytes stored for two 512 KiB proposals`);
  const e = Evidence.decode(stored!.bytes);
  // The header and so the block hash survive: the signature over the hash can still be checked.
  const frame = decodeFrame(e.first, { ...limits, chainId, maxFrameBytes: 1 << 20, maxSyncBlocks: 1, hashBlock: blockHash });
  assert.equal(frame.type, 'consensus');
  if (frame.type === 'consensus' && frame.message.type === 'proposal') assert.deepEqual(frame.message.block.hash, a.block.hash);
  await store.close();
}));

test('views start again at every epoch: the same (offender, view, kind) in a later epoch is new evidence, named by epoch and member; the cap follows the member, not its index', () => withStore(async (dir) => {
  // Epoch 0: m3 is validator 3. Epoch 1: m1 was removed, so m3 is validator 2 and a new member m5 is validator 3.
  const names: Record<number, string[]> = { 0: ['m0', 'm1', 'm2', 'm3'], 1: ['m0', 'm2', 'm3', 'm5'] };
  const nameOf = (epoch: number, i: number) => names[epoch]?.[i];
  let store = new BlockStore({ path: dir, limits, hashBlock: blockHash });
  let log = new EvidenceLog(chainId, store, nameOf);
  const r0 = log.add(voteEquivocation(7, 1, 3, 0), 1000);
  assert.equal(r0.kept, true);
  if (r0.kept) await r0.stored;
  const r1 = log.add(voteEquivocation(7, 1, 3, 1), 2000);
  assert.equal(r1.kept, true, 'validator 3 in view 7 of epoch 1 (m5) is not a repeat of view 7 of epoch 0 (m3)');
  if (r1.kept) await r1.stored;
  assert.deepEqual(log.page({ epoch: 0, view: 0 }, 0, 0).evidence.map((e) => [Number(e.epoch), e.offender, e.offenderName, e.view]), [[0, 3, 'm3', 7], [1, 3, 'm5', 7]]);
  assert.deepEqual(log.page({ epoch: 0, view: 8 }, 0, 0).evidence.map((e) => Number(e.epoch)), [1], 'from (epoch 0, view 8) on: every view of epoch 1');
  assert.deepEqual(log.page({ epoch: 1, view: 0 }, 0, 0).evidence.map((e) => e.offenderName), ['m5']);
  // m3 (validator 2 in epoch 1) fills its cap across both epochs: one item of epoch 0 already counts.
  const stored: Promise<void>[] = [];
  const keep = (e: Equivocation, what: string) => { const r = log.add(e, 3000); assert.equal(r.kept, true, what); if (r.kept) stored.push(r.stored); };
  for (let view = 1; view < EVIDENCE_PER_OFFENDER; view++) keep(voteEquivocation(view, 1, 2, 1), `m3's item ${view + 1}`);
  assert.deepEqual(log.add(voteEquivocation(99, 1, 2, 1), 3000), { kept: false, reason: 'offender_cap' }, 'the cap counts m3 whatever its index');
  keep(voteEquivocation(99, 1, 3, 1), 'm5 has a cap of its own');
  await Promise.all(stored);
  await store.close();

  store = new BlockStore({ path: dir, limits, hashBlock: blockHash });
  log = new EvidenceLog(chainId, store, nameOf);
  assert.deepEqual(log.add(voteEquivocation(7, 9, 3, 1), 4000), { kept: false, reason: 'duplicate' }, 'the epoch\'s slot survives a restart');
  assert.deepEqual(log.add(voteEquivocation(98, 1, 2, 1), 4000), { kept: false, reason: 'offender_cap' }, 'and so does the cap by name');
  await store.close();
}));
