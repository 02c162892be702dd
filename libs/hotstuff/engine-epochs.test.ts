// Epochs in the engine: the block that carries a reconfiguration ends the epoch when it commits;
// the commit stops there even when the commitQC is for an empty block of the epoch's suffix above
// it; a suffix block carrying transactions gets no vote, and a leader on the suffix asks for an
// empty payload; an engine of the next epoch starts from that block; a message of another epoch
// is refused as wrong_epoch, never blamed as a bad signature; an ended engine does nothing more.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { toHex } from './bytes.ts';
import { createEngine } from './engine.ts';
import { rootQC } from './genesis.ts';
import { buildBlock } from './sim/members.ts';
import { CHAIN, Driven, Kit, Phase, ofType, reasons, voteRequests } from './sim/test-kit.ts';
import type { Block, QuorumCert } from './types.ts';

const endsEpoch = (b: Block): boolean => b.txs.some((tx) => new TextDecoder().decode(tx).includes('|reconfig|'));

function epochEngine(k: Kit, self: number, extra: Parameters<Kit['config']>[1] = {}): Driven {
  return new Driven(k, self, createEngine(k.config(self, extra), { ...k.deps, endsEpoch }));
}

/** b1 (view 1) carries a reconfiguration; b2 (view 2) is an empty block of the suffix on it. */
function chain(k: Kit): { b1: Block; b2: Block; pqc1: QuorumCert } {
  const b1 = buildBlock(k.scheme, CHAIN, 1, 'reconfig', 1, k.genesis.hash, 0, k.genesis.header.stateHash, 1);
  const b2 = buildBlock(k.scheme, CHAIN, 2, 'suffix', 2, b1.hash, 1, b1.header.stateHash, 2, 0, true);
  return { b1, b2, pqc1: k.qc(Phase.PREPARE, 1, b1, [1, 2, 3]) };
}

test('a commitQC above the reconfiguration commits up to it only; the suffix rides in epoch-ended', () => {
  const k = new Kit(4);
  const d = epochEngine(k, 0);
  d.step({ type: 'start' });
  const { b1, b2 } = chain(k);
  const cqc2 = k.qc(Phase.COMMIT, 2, b2, [1, 2, 3]);
  d.message({ type: 'qc', epoch: 0, qc: cqc2, sender: 1 });
  const out = d.step({ type: 'blocks-fetched', blocks: [b2, b1], qcs: [] });
  const commits = ofType(out, 'commit');
  assert.equal(commits.length, 1);
  assert.deepEqual(commits[0]!.blocks.map((b) => toHex(b.hash)), [toHex(b1.hash)], 'the suffix block is never committed');
  const ended = ofType(out, 'epoch-ended');
  assert.equal(ended.length, 1);
  assert.equal(ended[0]!.epoch, 0);
  assert.equal(toHex(ended[0]!.last.hash), toHex(b1.hash));
  assert.deepEqual(ended[0]!.suffix.map((b) => toHex(b.hash)), [toHex(b2.hash)]);
  assert.equal(ended[0]!.qc, cqc2);
  assert.equal(d.engine.ended, true);
  assert.equal(ofType(out.slice(out.indexOf(ended[0]!)), 'set-timer').length, 0, 'no view is entered after the end');
  // Nothing more happens in the ended epoch.
  const later = d.message(k.newView(3, k.gqc, 1));
  assert.deepEqual(reasons(later), ['epoch_ended']);
  assert.deepEqual(d.step({ type: 'timer-fired', view: 2 }), []);
});

test('without endsEpoch the same chain commits through (the rule is the injected one)', () => {
  const k = new Kit(4);
  const d = k.engine(0);
  d.step({ type: 'start' });
  const { b1, b2 } = chain(k);
  d.message({ type: 'qc', epoch: 0, qc: k.qc(Phase.COMMIT, 2, b2, [1, 2, 3]), sender: 1 });
  const out = d.step({ type: 'blocks-fetched', blocks: [b2, b1], qcs: [] });
  assert.equal(ofType(out, 'commit')[0]!.blocks.length, 2);
  assert.equal(ofType(out, 'epoch-ended').length, 0);
});

/** An engine at view 2 whose highQC is the prepareQC of the reconfiguration block b1. */
function atView2OnReconfig(k: Kit, self: number): Driven {
  const { b1, pqc1 } = chain(k);
  const d = epochEngine(k, self);
  d.step({ type: 'start' });
  d.message(k.proposal(1, b1, k.gqc));
  d.message({ type: 'qc', epoch: 0, qc: pqc1, sender: 1 });
  for (const s of [0, 1, 3]) if (s !== self) d.message(k.newView(2, pqc1, s));
  d.step({ type: 'timer-fired', view: 1 });
  assert.equal(d.engine.view, 2);
  return d;
}

test('a block on the uncommitted reconfiguration carrying transactions gets no vote; an empty one does', () => {
  const k = new Kit(4);
  const { b1, pqc1 } = chain(k);
  const full = buildBlock(k.scheme, CHAIN, 2, 'more', 2, b1.hash, 1, b1.header.stateHash, 2);
  const d = atView2OnReconfig(k, 0);
  const out = d.message(k.proposal(2, full, pqc1));
  assert.deepEqual(voteRequests(out), []);
  assert.ok(ofType(out, 'rejected').some((r) => r.reason === 'invalid_block' && r.detail.includes('suffix')), JSON.stringify(reasons(out)));
  const e = atView2OnReconfig(new Kit(4), 0);
  const empty = chain(k).b2;
  const ok = e.message(k.proposal(2, empty, pqc1));
  assert.equal(voteRequests(ok).length, 1, JSON.stringify(reasons(ok)));
});

test('a leader on the suffix asks for an empty payload, and its payload carries the epoch', () => {
  const k = new Kit(4);
  const d = atView2OnReconfig(k, 2); // validator 2 leads view 2
  const req = ofType(d.log, 'request-payload').at(-1);
  assert.ok(req, 'a payload was requested');
  assert.equal(req.view, 2);
  assert.equal(req.empty, true);
  assert.equal(req.epoch, 0);
  const first = k.engine(1);
  first.step({ type: 'start' }); // leader of view 1 on genesis: nothing ends the epoch yet
  const r1 = ofType(first.log, 'request-payload').at(-1);
  assert.equal(r1?.empty, false);
});

test('a message of another epoch is refused as wrong_epoch, never as a bad signature', () => {
  const k = new Kit(4);
  const d = epochEngine(k, 0);
  d.step({ type: 'start' });
  const signature = k.scheme.sign(1, { kind: 'new-view', epoch: 1, view: 2, highQC: k.gqc });
  const out = d.message({ type: 'new-view', epoch: 1, view: 2, highQC: k.gqc, sender: 1, signature });
  assert.deepEqual(reasons(out), ['wrong_epoch']);
  const vote = { ...k.vote(Phase.PREPARE, 1, k.genesis, 2), epoch: 3 };
  assert.deepEqual(reasons(d.message(vote)), ['wrong_epoch']);
  // The epoch is signed: the same NEW-VIEW relabelled as epoch 0 fails its signature.
  const relabelled = d.message({ type: 'new-view', epoch: 0, view: 2, highQC: k.gqc, sender: 1, signature });
  assert.deepEqual(reasons(relabelled), ['invalid_signature']);
});

test('the next epoch starts from the last block: its root QC needs no signatures; blocks of the old epoch are refused', () => {
  const k = new Kit(4);
  const { b1 } = chain(k);
  assert.throws(() => createEngine(k.config(0, { epoch: 1 }), k.deps), /root block/);
  assert.throws(() => createEngine(k.config(0, { epoch: 2, root: b1 }), k.deps), /must be a block of epoch 1/);
  const d = new Driven(k, 0, createEngine(k.config(0, { epoch: 1, root: b1 }), { ...k.deps, endsEpoch }));
  d.step({ type: 'start' });
  assert.equal(d.engine.epoch, 1);
  assert.equal(toHex(d.engine.committed.hash), toHex(b1.hash));
  const root = rootQC(b1);
  const next = buildBlock(k.scheme, CHAIN, 1, 'e1', 1, b1.hash, 1, b1.header.stateHash, 3, 1);
  const sign = (block: Block) => k.scheme.sign(1, { kind: 'proposal', epoch: 1, view: 1, blockHash: block.hash, justify: root });
  const out = d.message({ type: 'proposal', view: 1, block: next, justify: root, sender: 1, signature: sign(next) });
  const votes = ofType(out, 'sign').map((a) => a.request).filter((r) => r.kind === 'vote');
  assert.equal(votes.length, 1, JSON.stringify(reasons(out)));
  assert.equal(votes[0]!.epoch, 1, 'the vote is of epoch 1');
  const old = buildBlock(k.scheme, CHAIN, 1, 'e0', 1, b1.hash, 1, b1.header.stateHash, 3, 0);
  const d2 = new Driven(k, 0, createEngine(k.config(0, { epoch: 1, root: b1 }), { ...k.deps, endsEpoch }));
  d2.step({ type: 'start' });
  const refused = d2.message({ type: 'proposal', view: 1, block: old, justify: root, sender: 1, signature: sign(old) });
  assert.deepEqual(reasons(refused), ['wrong_epoch']);
});

test('a proposal waiting for blocks gets no vote once the fetch ends the epoch', () => {
  const k = new Kit(4);
  const d = epochEngine(k, 0);
  d.step({ type: 'start' });
  const { b1, b2 } = chain(k);
  d.message({ type: 'qc', epoch: 0, qc: k.qc(Phase.COMMIT, 2, b2, [1, 2, 3]), sender: 1 }); // b2 wanted; on to view 3
  assert.equal(d.engine.view, 3);
  const b3 = buildBlock(k.scheme, CHAIN, 3, 'suffix2', 3, b2.hash, 2, b2.header.stateHash, 3, 0, true);
  assert.deepEqual(reasons(d.message(k.proposal(3, b3, k.qc(Phase.PREPARE, 2, b2, [1, 2, 3])))), [], 'waits for its parent');
  const out = d.step({ type: 'blocks-fetched', blocks: [b2, b1], qcs: [] });
  assert.equal(ofType(out, 'epoch-ended').length, 1);
  assert.deepEqual(ofType(out, 'sign'), [], 'nothing is signed in an epoch that has ended');
  assert.deepEqual(ofType(out, 'fetch'), [], 'nor fetched');
});

test('an engine created at a checkpoint above its root (a join): committed there, votes for a proposal on it justified by a QC of the epoch, nothing at or below its view', () => {
  const k = new Kit(4);
  const b1 = k.block(1, k.genesis);
  const b2 = k.block(2, b1);
  const joined = () => {
    const d = new Driven(k, 0, createEngine(k.config(0), k.deps, b2));
    d.step({ type: 'start' });
    return d;
  };
  const d = joined();
  assert.equal(toHex(d.engine.committed.hash), toHex(b2.hash), 'its committed log ends at the checkpoint');
  assert.equal(d.engine.view, b2.header.view + 1, 'it starts in the view after the checkpoint\'s');
  // A proposal at the checkpoint's own view: no vote.
  assert.deepEqual(voteRequests(d.message(k.proposal(2, b2, k.qc(Phase.PREPARE, 1, b1, [1, 2, 3])))), []);
  // A proposal that does not extend the checkpoint: no vote.
  const fork = k.block(3, b1, 'fork');
  assert.deepEqual(voteRequests(joined().message(k.proposal(3, fork, k.qc(Phase.PREPARE, 1, b1, [1, 2, 3])))), []);
  // A proposal extending the checkpoint, justified by its QC: a PREPARE vote.
  const b3 = k.block(3, b2);
  assert.deepEqual(voteRequests(joined().message(k.proposal(3, b3, k.qc(Phase.PREPARE, 2, b2, [1, 2, 3])))), [{ phase: Phase.PREPARE, view: 3 }]);
});

test('a checkpoint of another epoch, of another chain or at the root is refused as configuration', () => {
  const k = new Kit(4);
  const b1 = k.block(1, k.genesis);
  assert.throws(() => createEngine(k.config(0), k.deps, k.genesis), /above its root/);
  assert.throws(() => createEngine(k.config(0), k.deps, { ...b1, header: { ...b1.header, epoch: 1 } }), /a checkpoint must be a block of epoch 0/);
  assert.throws(() => createEngine(k.config(0), k.deps, { ...b1, header: { ...b1.header, chainId: 'other' } }), /of this chain/);
});
