// The engine's message checks and voting rules, one engine driven by hand: every rejection
// reason, equivocation evidence, persist-before-sign, and that a restarted engine never
// votes against what it voted before the crash.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Kit, Phase, ofType, reasons, voteRequests } from './sim/test-kit.ts';
import type { Block } from './types.ts';

/** N = 4, member 0; view 1's leader is member 1. */
function setup() {
  const k = new Kit(4);
  const d = k.engine(0);
  d.step({ type: 'start' });
  const b1 = k.block(1, k.genesis);
  return { k, d, b1, p1: k.proposal(1, b1, k.gqc) };
}

test('a valid proposal gets a PREPARE vote, persisted before the signature request', () => {
  const { d, p1 } = setup();
  const out = d.message(p1);
  assert.deepEqual(voteRequests(out), [{ phase: Phase.PREPARE, view: 1 }]);
  const persistAt = out.findIndex((a) => a.type === 'persist' && a.safety.lastVoted.view === 1 && a.safety.lastVoted.phase === Phase.PREPARE);
  const signAt = out.findIndex((a) => a.type === 'sign');
  assert.ok(persistAt >= 0 && persistAt < signAt, 'persist comes first');
  const sends = ofType(out, 'send');
  assert.equal(sends.length, 1);
  assert.equal(sends[0]!.to, 1, 'the vote goes to the leader');
  assert.equal(sends[0]!.message.type, 'vote');
});

test('each rejection reason', () => {
  const { k, d, b1, p1 } = setup();
  d.message(p1);
  assert.deepEqual(reasons(d.message(p1)), ['duplicate']);
  assert.deepEqual(reasons(d.message({ ...k.vote(Phase.PREPARE, 1, b1, 2), sender: 9 })), ['unknown_sender']);
  const other = k.block(1, k.genesis, 'other');
  assert.deepEqual(reasons(d.message({ ...k.proposal(1, other, k.gqc), signature: p1.signature })), ['invalid_signature']);
  assert.deepEqual(reasons(d.message(k.proposal(1, b1, k.gqc, 2))), ['not_leader']);
  assert.deepEqual(reasons(d.message(k.proposal(9, k.block(9, k.genesis), k.gqc))), ['wrong_view']);
  assert.deepEqual(reasons(d.message({ type: 'qc', epoch: 0, qc: k.qc(Phase.PREPARE, 1, b1, [1, 2]), sender: 1 })), ['invalid_qc'], 'too few signers');
  const forged = k.qc(Phase.PREPARE, 1, b1, [1, 2, 3]);
  forged.signatures = [forged.signatures[1]!, forged.signatures[0]!, forged.signatures[2]!];
  assert.deepEqual(reasons(d.message({ type: 'qc', epoch: 0, qc: forged, sender: 1 })), ['invalid_qc'], 'signatures swapped');
  assert.deepEqual(reasons(d.message(k.vote(Phase.PREPARE, 1, b1, 2))), ['not_leader'], 'votes go to the leader');
  // A bad block hash in a fresh view (view 2, leader 2).
  d.message({ type: 'qc', epoch: 0, qc: k.qc(Phase.COMMIT, 1, b1, [1, 2, 3]), sender: 1 });
  assert.equal(d.engine.view, 2);
  const b2 = k.block(2, b1);
  const liar: Block = { ...b2, hash: k.block(2, b1, 'x').hash };
  assert.deepEqual(reasons(d.message(k.proposal(2, liar, k.qc(Phase.PREPARE, 1, b1, [1, 2, 3])))), ['invalid_block']);
  // Move on; an old-view message is stale.
  d.message({ type: 'qc', epoch: 0, qc: k.qc(Phase.PREPARE, 3, k.block(3, b2), [0, 1, 2]), sender: 3 });
  assert.equal(d.engine.view, 3);
  assert.deepEqual(reasons(d.message(p1)), ['stale']);
});

test('two proposals of one leader for one view yield evidence holding both, and no second vote', () => {
  const { k, d, p1 } = setup();
  d.message(p1);
  const p1b = k.proposal(1, k.block(1, k.genesis, 'b'), k.gqc);
  const out = d.message(p1b);
  const ev = ofType(out, 'evidence');
  assert.equal(ev.length, 1);
  assert.equal(ev[0]!.evidence.first, p1);
  assert.equal(ev[0]!.evidence.second, p1b);
  assert.equal(ev[0]!.evidence.kind, 'proposal');
  assert.deepEqual(reasons(out), ['equivocation']);
  assert.deepEqual(voteRequests(out), []);
});

test('a leader collects votes, rejects votes for other blocks and catches double votes', () => {
  const k = new Kit(4);
  const d = k.engine(1); // leader of view 1
  const out = d.step({ type: 'start' });
  const req = ofType(out, 'request-payload')[0]!;
  const block = k.block(1, k.genesis);
  assert.ok(Buffer.from(req.parentHash).equals(Buffer.from(k.genesis.hash)));
  const after = d.step({ type: 'payload-ready', view: 1, block });
  assert.equal(ofType(after, 'broadcast')[0]?.message.type, 'proposal');
  assert.deepEqual(reasons(d.message(k.vote(Phase.PREPARE, 1, k.block(1, k.genesis, 'z'), 2))), ['unknown_block']);
  const formed = d.message(k.vote(Phase.PREPARE, 1, block, 3));
  // Own vote + 3's vote = 2 < 3: not yet.
  assert.equal(ofType(formed, 'broadcast').length, 0);
  const q = d.message(k.vote(Phase.PREPARE, 1, block, 0));
  const ann = ofType(q, 'broadcast')[0]?.message;
  assert.equal(ann?.type, 'qc');
  if (ann?.type === 'qc') assert.deepEqual(ann.qc.signers, [0, 1, 3]);
  const twice = d.message(k.vote(Phase.PRE_COMMIT, 1, block, 2));
  assert.deepEqual(reasons(twice), []);
  const dbl = d.message(k.vote(Phase.PRE_COMMIT, 1, k.block(1, k.genesis, 'y'), 2));
  assert.equal(ofType(dbl, 'evidence')[0]?.evidence.kind, Phase.PRE_COMMIT);
});

test('the lock: a conflicting proposal justified by an older QC is unsafe', () => {
  const { k, d, b1, p1 } = setup();
  d.message(p1);
  d.message({ type: 'qc', epoch: 0, qc: k.qc(Phase.PREPARE, 1, b1, [1, 2, 3]), sender: 1 });
  d.message({ type: 'qc', epoch: 0, qc: k.qc(Phase.PRE_COMMIT, 1, b1, [1, 2, 3]), sender: 1 });
  assert.equal(d.engine.safety.lockedQC.view, 1);
  // Everyone times out of view 1; view 2's leader proposes a fork on genesis.
  for (const s of [1, 2, 3]) d.message(k.newView(2, k.gqc, s));
  assert.equal(d.engine.view, 2);
  const fork = k.block(2, k.genesis, 'fork');
  const out = d.message(k.proposal(2, fork, k.gqc));
  assert.deepEqual(reasons(out), ['unsafe']);
  assert.deepEqual(voteRequests(out), []);
  // A proposal justified by a QC newer than the lock is safe even on another branch.
  const ok = d.message(k.proposal(2, k.block(2, b1), k.qc(Phase.PREPARE, 1, b1, [1, 2, 3]), 2));
  assert.deepEqual(reasons(ok), ['equivocation']); // same leader, same view: evidence, no vote
});

test('restarted from its persisted record, an engine never votes against its past votes or lock', () => {
  const { k, d, b1, p1 } = setup();
  d.message(p1);
  const restarted = k.restore(0, d.record);
  restarted.step({ type: 'start' });
  const p1b = k.proposal(1, k.block(1, k.genesis, 'b'), k.gqc);
  assert.deepEqual(voteRequests(restarted.message(p1b)), [], 'no second PREPARE vote in view 1');
  // Lock, crash, restart: the lock survives.
  restarted.message({ type: 'qc', epoch: 0, qc: k.qc(Phase.PREPARE, 1, b1, [1, 2, 3]), sender: 1 });
  restarted.message({ type: 'qc', epoch: 0, qc: k.qc(Phase.PRE_COMMIT, 1, b1, [1, 2, 3]), sender: 1 });
  const again = k.restore(0, restarted.record);
  again.step({ type: 'start' });
  assert.equal(again.engine.safety.lockedQC.view, 1);
  assert.equal(again.engine.safety.lastVoted.phase, Phase.COMMIT);
  for (const s of [1, 2, 3]) again.message(k.newView(2, k.gqc, s));
  assert.deepEqual(reasons(again.message(k.proposal(2, k.block(2, k.genesis, 'fork'), k.gqc))), ['unsafe']);
});

test('a signature that comes back after the view moved on is dropped', () => {
  const { k, d, b1, p1 } = setup();
  d.autoSign = false;
  const out = d.message(p1);
  const sign = ofType(out, 'sign')[0]!;
  d.message({ type: 'qc', epoch: 0, qc: k.qc(Phase.COMMIT, 1, b1, [1, 2, 3]), sender: 1 });
  assert.equal(d.engine.view, 2);
  const late = d.step({ type: 'signature-ready', requestId: sign.requestId, signature: new Uint8Array(8) });
  assert.deepEqual(ofType(late, 'send'), []);
  const refused = d.step({ type: 'signature-refused', requestId: 999, reason: 'nope' });
  assert.deepEqual(refused, [], 'unknown request ids are ignored');
});
