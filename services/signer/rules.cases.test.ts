// The signer's rules, one case per rule and boundary, each naming the rule it expects — so a
// mutant that refuses for the wrong reason, or moves a boundary by one, turns a test red
// (`npm run mutation`, docs/testing.md). The property test (rules.property.test.ts) covers the
// sequences; these cover the edges a random generator rarely hits.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { blockHash, toHex } from '#libs/crypto/index.ts';
import { Phase, genesisBlock, genesisQC, type Block, type BlockHeader, type QuorumCert, type SignRequest } from '#libs/hotstuff/index.ts';
import { testValidatorSet } from '#libs/validators/test-kit.ts';
import { RECENT_LIMIT, admit, applySigned, decide, initialSafety, trimRecent, type Decision, type RuleContext, type SignerSafety, type SignedSlot } from './rules.ts';

const CHAIN = 'cases-chain';
const SELF = 1;
const genesis = genesisBlock(CHAIN, blockHash);
const gqc = genesisQC(genesis);
const ctx: RuleContext = {
  chainId: CHAIN, epoch: 0, self: SELF, mayLead: (v, who) => testValidatorSet(4).mayLead(v, who), maxViewJump: 3, hashBlock: blockHash,
  qcError: (qc) => (qc.view === 0 || qc.signatures[0]?.[0] === 1 ? null : 'bad signature'),
};

function block(view: number, parent: Block, proposer = SELF, salt = 0): Block {
  const header: BlockHeader = { chainId: CHAIN, epoch: 0, height: parent.header.height + 1, view, parentHash: parent.hash, proposer,
    timestampMs: view + salt, txRoot: new Uint8Array(32), stateHash: new Uint8Array(32) };
  return { header, hash: blockHash(header), txs: [] };
}
const qc = (phase: Phase, view: number, b: Block, valid = true): QuorumCert =>
  ({ phase, view, blockHash: b.hash, signers: [0, 1, 2], signatures: [new Uint8Array([valid ? 1 : 0])] });
const prepare = (view: number, b: Block, justify: QuorumCert): SignRequest =>
  ({ kind: 'vote', epoch: 0, phase: Phase.PREPARE, view, blockHash: b.hash, header: b.header, justify });
const precommit = (view: number, b: Block, prepareQC: QuorumCert): SignRequest =>
  ({ kind: 'vote', epoch: 0, phase: Phase.PRE_COMMIT, view, blockHash: b.hash, prepareQC });
const commit = (view: number, b: Block, precommitQC: QuorumCert): SignRequest =>
  ({ kind: 'vote', epoch: 0, phase: Phase.COMMIT, view, blockHash: b.hash, precommitQC });
const proposal = (view: number, b: Block, justify: QuorumCert): SignRequest => ({ kind: 'proposal', epoch: 0, view, block: b, justify });
const newView = (view: number, highQC: QuorumCert): SignRequest => ({ kind: 'new-view', epoch: 0, view, highQC });

const fresh = () => initialSafety(CHAIN, 'aa', genesis.hash);
let sigs = 0;
/** Sign if the rules say so, returning the new state; fails the test otherwise. */
function sign(s: SignerSafety, r: SignRequest): SignerSafety {
  const d = decide(s, r, ctx);
  assert.equal(d.type, 'sign', d.type === 'refuse' ? `${d.rule}: ${d.reason}` : d.type);
  return applySigned(s, d as Extract<Decision, { type: 'sign' }>, new Uint8Array([++sigs]));
}
function refused(s: SignerSafety, r: SignRequest, rule: string, c: RuleContext = ctx): void {
  const d = decide(s, r, c);
  assert.equal(d.type, 'refuse');
  assert.equal(d.type === 'refuse' && d.rule, rule, d.type === 'refuse' ? d.reason : '');
}

const b1 = block(1, genesis);
const b2 = block(2, b1);

test('the lock: a PREPARE vote needs its justify on the locked block or newer than the lock', () => {
  let s = sign(fresh(), prepare(1, b1, gqc));
  s = sign(s, precommit(1, b1, qc(Phase.PREPARE, 1, b1)));
  s = sign(s, commit(1, b1, qc(Phase.PRE_COMMIT, 1, b1)));
  assert.deepEqual(s.locked, { view: 1, blockHash: toHex(b1.hash) }, 'COMMIT vote locks on its precommitQC');
  // View 2 fork on genesis with the genesis QC: older than the lock, not the locked block.
  const fork2 = block(2, genesis, SELF, 7);
  refused(s, prepare(2, fork2, gqc), 'lock');
  // On the locked block with a QC of the lock's own view: allowed (equal view, same block).
  s = sign(s, prepare(2, b2, qc(Phase.PREPARE, 1, b1)));
  // View 4: a fork justified by a QC newer than the lock (view 3 > 1): allowed.
  const c3 = block(3, genesis, SELF, 9);
  const c4 = block(4, c3);
  sign(s, prepare(4, c4, qc(Phase.PREPARE, 3, c3)));
  // A QC of exactly the lock's view on another block is not newer.
  const c1 = block(1, genesis, SELF, 5);
  refused(s, prepare(3, block(3, c1), qc(Phase.PREPARE, 1, c1)), 'lock');
});

test('the lock moves only up, and only with a COMMIT vote', () => {
  let s = sign(fresh(), precommit(2, b2, qc(Phase.PREPARE, 2, b2)));
  assert.equal(s.locked.view, 0, 'a PRE-COMMIT vote does not lock');
  s = sign(s, commit(2, b2, qc(Phase.PRE_COMMIT, 2, b2)));
  assert.deepEqual(s.locked, { view: 2, blockHash: toHex(b2.hash) });
  const d = decide(s, commit(3, b1, qc(Phase.PRE_COMMIT, 3, b1)), ctx);
  assert.ok(d.type === 'sign' && d.lock?.view === 3);
  // A decision carrying an older lock (a journal replay, say) leaves the newer lock in place.
  const older = applySigned(s, { ...(d as Extract<Decision, { type: 'sign' }>), lock: { view: 1, blockHash: toHex(b1.hash) } }, new Uint8Array([1]));
  assert.deepEqual(older.locked, s.locked);
  const same = applySigned(s, { ...(d as Extract<Decision, { type: 'sign' }>), lock: { view: 2, blockHash: toHex(b1.hash) } }, new Uint8Array([1]));
  assert.deepEqual(same.locked, s.locked, 'an equal view does not replace the lock');
  assert.equal(older.signed, s.signed + 1);
});

test('one message per slot, slots only go up, identical repeats replay the signature', () => {
  let s = sign(fresh(), prepare(1, b1, gqc));
  const again = decide(s, prepare(1, b1, gqc), ctx);
  assert.ok(again.type === 'replay' && again.signature[0] === sigs, 'replay of the stored signature');
  refused(s, prepare(1, block(1, genesis, SELF, 3), gqc), 'one-per-slot');
  s = sign(s, precommit(2, b2, qc(Phase.PREPARE, 2, b2)));
  refused(s, prepare(2, b2, qc(Phase.PREPARE, 1, b1)), 'monotonic'); // (2, PREPARE) < (2, PRE_COMMIT)
  refused(s, commit(1, b1, qc(Phase.PRE_COMMIT, 1, b1)), 'monotonic');
  // Kinds are independent: a proposal and a new-view of view 1 are still fine.
  s = sign(s, proposal(1, b1, gqc));
  refused(s, proposal(1, block(1, genesis, SELF, 4), gqc), 'one-per-slot');
  s = sign(s, newView(1, gqc));
  assert.equal(s.lastNewView, 1);
  assert.equal(s.lastProposalView, 1);
  assert.deepEqual(s.lastVote, { view: 2, phase: Phase.PRE_COMMIT });
  assert.equal(s.signed, 4);
  // Below the last of each kind, with no stored message for the slot: 'monotonic', by kind.
  let t = sign(fresh(), newView(5, qc(Phase.PREPARE, 4, b1)));
  refused(t, newView(4, qc(Phase.PREPARE, 3, b1)), 'monotonic');
  t = sign(t, proposal(5, block(5, b1), qc(Phase.PREPARE, 4, b1)));
  refused(t, proposal(1, b1, gqc), 'monotonic');
  // The slot of the last one signed, with its stored message gone: still refused.
  refused({ ...t, recent: [] }, proposal(5, block(5, b1), qc(Phase.PREPARE, 4, b1)), 'one-per-slot');
  refused({ ...t, recent: [] }, newView(5, qc(Phase.PREPARE, 4, b1)), 'one-per-slot');
  refused({ ...s, recent: [] }, precommit(2, b2, qc(Phase.PREPARE, 2, b2)), 'one-per-slot');
});

test('a NEW-VIEW is signed again only with a strictly newer highQC, and the newest is replayed', () => {
  let s = sign(fresh(), newView(3, qc(Phase.PREPARE, 1, b1)));
  refused(s, newView(3, qc(Phase.PREPARE, 1, block(1, genesis, SELF, 2))), 'one-per-slot');
  s = sign(s, newView(3, qc(Phase.PREPARE, 2, b2)));
  assert.equal(s.recent.filter((r) => r.kind === 'new-view').length, 1, 'the re-signed slot replaces its entry');
  assert.equal(s.recent.find((r) => r.kind === 'new-view')?.qcView, 2);
  const replay = decide(s, newView(3, qc(Phase.PREPARE, 2, b2)), ctx);
  assert.ok(replay.type === 'replay' && replay.signature[0] === sigs);
  refused(s, newView(3, qc(Phase.PREPARE, 1, b1)), 'one-per-slot');
  refused(s, newView(3, qc(Phase.PREPARE, 2, b1)), 'one-per-slot');
  // Re-signing does not apply to votes: a second PREPARE of a slot with a newer justify is refused.
  const v = sign(fresh(), prepare(2, b2, qc(Phase.PREPARE, 1, b1)));
  refused(v, prepare(2, block(2, b1, SELF, 8), qc(Phase.PREPARE, 1, b1)), 'one-per-slot');
  // A re-sign still goes through the content rules.
  refused(s, newView(3, qc(Phase.PREPARE, 3, b2, false)), 'high-qc');
});

test('the view bound: at most maxViewJump views beyond the QC carried, for every kind', () => {
  const far = block(4, b1); // parent b1, view 4: 3 views beyond a view-1 QC
  sign(fresh(), prepare(4, far, qc(Phase.PREPARE, 1, b1)));
  refused(fresh(), prepare(5, block(5, b1), qc(Phase.PREPARE, 1, b1)), 'view-jump');
  sign(fresh(), newView(3, gqc));
  refused(fresh(), newView(4, gqc), 'view-jump');
  refused(fresh(), newView(2 ** 53 - 1, gqc), 'view-jump');
  refused(fresh(), proposal(5, block(5, b1), qc(Phase.PREPARE, 1, b1)), 'view-jump');
  refused(fresh(), commit(9, b2, qc(Phase.PRE_COMMIT, 2, b2)), 'view-jump');
  refused(fresh(), precommit(9, b2, qc(Phase.PREPARE, 2, b2)), 'view-jump');
  // With a larger bound the same request is judged on its content.
  refused(fresh(), precommit(9, b2, qc(Phase.PREPARE, 2, b2)), 'prepare-qc', { ...ctx, maxViewJump: 100 });
  // The QC's own view must be a non-negative integer.
  refused(fresh(), newView(2, { ...gqc, view: -1 }), 'malformed');
  refused(fresh(), newView(2, { ...gqc, view: 0.5 }), 'malformed');
});

test('proposals only for views this signer may lead (view mod N, or one of the f after it outside probe rotations), by itself as proposer', () => {
  const b5 = block(5, b1);
  refused(fresh(), proposal(2, b2, qc(Phase.PREPARE, 1, b1)), 'leader');
  // View 2 mod 4 in the probe rotation (views 0–3): round robin only, though validator 1 is f = 1 ring position before it.
  refused(fresh(), proposal(2, b2, gqc), 'leader');
  // View 6 mod 4 = 2: validator 1 is three ring positions after it, more than f = 1.
  refused(fresh(), proposal(6, block(6, b1), qc(Phase.PREPARE, 5, b1)), 'leader');
  sign(fresh(), proposal(1, b1, gqc));
  sign(fresh(), proposal(5, b5, qc(Phase.PREPARE, 4, b1)));
  // View 4 mod 4 = 0: validator 1 leads it when the schedule skips validator 0.
  sign(fresh(), proposal(4, block(4, b1), qc(Phase.PREPARE, 3, b1)));
  // Views 32–35 are the next probe rotation (every eighth): round robin again.
  refused(fresh(), proposal(32, block(32, b1), qc(Phase.PREPARE, 31, b1)), 'leader');
  const n3 = { ...ctx, self: 2, mayLead: (v: number, who: number) => testValidatorSet(3).mayLead(v, who) }; // 5 mod 3 = 2: validator 2 leads view 5 of 3; f = 0
  refused(fresh(), proposal(5, b5, qc(Phase.PREPARE, 4, b1)), 'proposer', n3);
  const h2 = { ...b5.header, proposer: 2 };
  const d = decide(fresh(), proposal(5, { header: h2, hash: blockHash(h2), txs: [] }, qc(Phase.PREPARE, 4, b1)), n3);
  assert.equal(d.type, 'sign');
  refused(fresh(), proposal(4, block(4, b1), qc(Phase.PREPARE, 1, b1)), 'leader', n3);
  const other = { ...b1.header, proposer: 3 };
  refused(fresh(), proposal(1, { header: other, hash: blockHash(other), txs: [] }, gqc), 'proposer');
});

test('header and justify rules of PREPARE votes and proposals', () => {
  const wrongChain = { ...b1.header, chainId: 'other' };
  refused(fresh(), prepare(1, { header: wrongChain, hash: blockHash(wrongChain), txs: [] }, gqc), 'chain-id');
  refused(fresh(), proposal(1, { header: wrongChain, hash: blockHash(wrongChain), txs: [] }, gqc), 'chain-id');
  refused(fresh(), { ...prepare(1, b1, gqc), blockHash: b2.hash } as SignRequest, 'block-hash');
  refused(fresh(), proposal(1, { ...b1, hash: b2.hash }, gqc), 'block-hash');
  refused(fresh(), prepare(2, b1, gqc), 'header', { ...ctx, self: 2 });
  refused(fresh(), prepare(2, b1, gqc), 'header');
  refused(fresh(), prepare(2, b2, qc(Phase.PRE_COMMIT, 1, b1)), 'justify-qc');
  refused(fresh(), prepare(2, b2, qc(Phase.PREPARE, 2, b1)), 'justify-qc'); // justify view = vote view
  refused(fresh(), prepare(2, b2, qc(Phase.PREPARE, 3, b1)), 'justify-qc');
  refused(fresh(), prepare(2, b2, qc(Phase.PREPARE, 1, b1, false)), 'justify-qc');
  refused(fresh(), prepare(2, b2, qc(Phase.PREPARE, 1, block(1, genesis, SELF, 6))), 'parent');
  refused(fresh(), proposal(5, block(5, b1), qc(Phase.PREPARE, 4, b2)), 'parent');
  refused(fresh(), proposal(5, block(5, b1), qc(Phase.PREPARE, 4, b1, false)), 'justify-qc');
  sign(fresh(), prepare(2, b2, qc(Phase.PREPARE, 1, b1)));
});

test('PRE-COMMIT and COMMIT votes need a valid QC of the previous phase, same view, same block', () => {
  sign(fresh(), precommit(2, b2, qc(Phase.PREPARE, 2, b2)));
  refused(fresh(), precommit(2, b2, qc(Phase.PRE_COMMIT, 2, b2)), 'prepare-qc');
  refused(fresh(), precommit(2, b2, qc(Phase.PREPARE, 1, b2)), 'prepare-qc');
  refused(fresh(), precommit(2, b2, qc(Phase.PREPARE, 2, b1)), 'prepare-qc');
  refused(fresh(), precommit(2, b2, qc(Phase.PREPARE, 2, b2, false)), 'prepare-qc');
  sign(fresh(), commit(2, b2, qc(Phase.PRE_COMMIT, 2, b2)));
  refused(fresh(), commit(2, b2, qc(Phase.PREPARE, 2, b2)), 'precommit-qc');
  refused(fresh(), commit(2, b2, qc(Phase.COMMIT, 2, b2)), 'precommit-qc');
  refused(fresh(), commit(3, b2, qc(Phase.PRE_COMMIT, 2, b2)), 'precommit-qc');
  refused(fresh(), commit(2, b2, qc(Phase.PRE_COMMIT, 2, b1)), 'precommit-qc');
  refused(fresh(), commit(2, b2, qc(Phase.PRE_COMMIT, 2, b2, false)), 'precommit-qc');
  refused(fresh(), newView(2, qc(Phase.PRE_COMMIT, 1, b1)), 'high-qc');
  refused(fresh(), newView(2, qc(Phase.PREPARE, 1, b1, false)), 'high-qc');
});

test('malformed requests and the admit shortcut', () => {
  refused(fresh(), newView(0, gqc), 'malformed');
  refused(fresh(), newView(1.5, gqc), 'malformed');
  refused(fresh(), newView(2 ** 53, gqc), 'malformed');
  refused(fresh(), newView(-1, gqc), 'malformed');
  sign(fresh(), newView(1, gqc));
  // admit: null when the full rules must run, the decision when none are needed.
  const s = sign(fresh(), prepare(1, b1, gqc));
  assert.equal(admit(s, prepare(2, b2, qc(Phase.PREPARE, 1, b1, false)), ctx), null, 'content not checked by admit');
  assert.equal(admit(s, prepare(1, b1, gqc), ctx)?.type, 'replay');
  const a = admit(s, prepare(1, block(1, genesis, SELF, 3), gqc), ctx);
  assert.ok(a?.type === 'refuse' && a.rule === 'one-per-slot');
  const j = admit(fresh(), newView(9, gqc), ctx);
  assert.ok(j?.type === 'refuse' && j.rule === 'view-jump');
  const l = admit(fresh(), proposal(2, b2, qc(Phase.PREPARE, 1, b1)), ctx);
  assert.ok(l?.type === 'refuse' && l.rule === 'leader');
  const d = decide(fresh(), commit(2, b2, qc(Phase.PRE_COMMIT, 2, b2)), ctx);
  assert.ok(d.type === 'sign');
  assert.deepEqual(d.slot, { kind: 'vote', view: 2, phase: Phase.COMMIT });
  assert.deepEqual(d.lock, { view: 2, blockHash: toHex(b2.hash) });
  assert.equal(d.blockHash, toHex(b2.hash));
  const nv = decide(fresh(), newView(2, qc(Phase.PREPARE, 1, b1)), ctx);
  assert.ok(nv.type === 'sign' && nv.qcView === 1 && nv.lock === null && nv.blockHash === toHex(b1.hash));
  const pv = decide(fresh(), prepare(1, b1, gqc), ctx);
  assert.ok(pv.type === 'sign' && pv.lock === null && !('qcView' in pv));
});

test('recent keeps the newest signed slots of each kind, in slot order', () => {
  const e = (kind: SignedSlot['kind'], view: number, phase: 0 | Phase): SignedSlot =>
    ({ kind, view, phase, digest: `${kind}${view}${phase}`, blockHash: '00', signature: new Uint8Array() });
  const votes = [e('vote', 3, 1), e('vote', 1, 3), e('vote', 2, 1), e('vote', 3, 2), e('vote', 2, 3)];
  const kept = trimRecent([e('new-view', 2, 0), ...votes, e('proposal', 1, 0), e('proposal', 5, 0), e('new-view', 4, 0)]);
  assert.deepEqual(kept.map((r) => `${r.kind}:${r.view}:${r.phase}`), ['proposal:5:0', 'vote:2:3', 'vote:3:1', 'vote:3:2', 'new-view:4:0']);
  assert.equal(RECENT_LIMIT.vote, 3);
  let s = fresh();
  for (let v = 1; v <= 5; v++) s = sign(s, newView(v, gqc.view + v > 3 ? qc(Phase.PREPARE, v - 1, b1) : gqc));
  assert.equal(s.recent.length, 1);
  assert.equal(s.recent[0]!.view, 5);
});

test('epoch: a request for another epoch, or carrying a header of another, is refused before any other rule', () => {
  refused(fresh(), { ...newView(1, gqc), epoch: 1 }, 'epoch');
  refused(fresh(), { ...precommit(1, b1, qc(Phase.PREPARE, 1, b1)), epoch: 2 }, 'epoch');
  // Even a replay of a signed slot: the epoch is part of the signed bytes, so it is another message.
  const s = sign(fresh(), prepare(1, b1, gqc));
  refused(s, { ...prepare(1, b1, gqc), epoch: 1 }, 'epoch');
  const header = { ...b1.header, epoch: 1 };
  const other = { header, hash: blockHash(header), txs: [] };
  refused(fresh(), prepare(1, other, gqc), 'epoch');
  refused(fresh(), proposal(1, other, gqc), 'epoch');
  // A signer of epoch 3 refuses epoch 0 and signs its own.
  refused(fresh(), newView(1, gqc), 'epoch', { ...ctx, epoch: 3 });
  assert.equal(decide(fresh(), { ...newView(1, gqc), epoch: 3 }, { ...ctx, epoch: 3 }).type, 'sign');
});
