// The engine's safety rules, one clause per test, each written so that deleting or weakening
// that clause turns it red (checked with Stryker: `npm run mutation`, docs/testing.md).
// safeNode (extends the lock OR justify newer than the lock), the lock taken on a precommitQC
// and only moved up, the commit on a commitQC (ancestors first, once), one vote per
// (view, phase), and QC validation at N = 4, 7, 21 against an independent quorum count.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Kit, Phase, ofType, reasons, voteRequests } from './sim/test-kit.ts';
import { QcVerifier } from './qc.ts';
import { voteAfter } from './core.ts';
import { BlockTree } from './blocks.ts';
import type { QuorumCert } from './types.ts';

/** N = 4, member 0 locked on b1 (view 1), then moved to view 2 by NEW-VIEWs. */
function locked() {
  const k = new Kit(4);
  const d = k.engine(0);
  d.step({ type: 'start' });
  const b1 = k.block(1, k.genesis);
  d.message(k.proposal(1, b1, k.gqc));
  d.message({ type: 'qc', epoch: 0, qc: k.qc(Phase.PREPARE, 1, b1, [1, 2, 3]), sender: 1 });
  d.message({ type: 'qc', epoch: 0, qc: k.qc(Phase.PRE_COMMIT, 1, b1, [1, 2, 3]), sender: 1 });
  assert.equal(d.engine.safety.lockedQC.view, 1);
  for (const s of [1, 2, 3]) d.message(k.newView(2, k.gqc, s));
  assert.equal(d.engine.view, 2);
  return { k, d, b1 };
}

test('safeNode: a fork justified by a QC NEWER than the lock is voted for (the unlock clause)', () => {
  const { k, d, b1 } = locked();
  // View 2: the others certify c2, a fork on genesis (conflicts with b1); member 0 learns it by sync.
  const c2 = k.block(2, k.genesis, 'fork');
  const pqc2 = k.qc(Phase.PREPARE, 2, c2, [1, 2, 3]);
  d.step({ type: 'blocks-fetched', blocks: [c2], qcs: [pqc2] });
  for (const s of [1, 2, 3]) d.message(k.newView(3, pqc2, s));
  assert.equal(d.engine.view, 3);
  const b3 = k.block(3, c2);
  const out = d.message(k.proposal(3, b3, pqc2));
  assert.deepEqual(reasons(out), [], 'not unsafe: justify view 2 > locked view 1');
  assert.deepEqual(voteRequests(out), [{ phase: Phase.PREPARE, view: 3 }]);
  assert.notEqual(b3.header.parentHash, b1.hash);
});

test('safeNode: a fork justified by a QC of the SAME view as the lock is unsafe', () => {
  const { k, d } = locked();
  // A second QC of view 1 on another block cannot exist with honest members, but safeNode must
  // refuse it on its own: "newer" is strictly greater.
  const c1 = k.block(1, k.genesis, 'other');
  const qcSame = k.qc(Phase.PREPARE, 1, c1, [0, 2, 3]);
  d.step({ type: 'blocks-fetched', blocks: [c1], qcs: [qcSame] });
  const out = d.message(k.proposal(2, k.block(2, c1), qcSame));
  assert.deepEqual(reasons(out), ['unsafe']);
  assert.deepEqual(voteRequests(out), []);
});

test('safeNode: a block extending the locked block is safe with a justify no newer than the lock', () => {
  const { k, d, b1 } = locked();
  // Justify is the lock's own prepareQC (view 1 = locked view): only the "extends" clause admits it.
  const b2 = k.block(2, b1);
  const out = d.message(k.proposal(2, b2, k.qc(Phase.PREPARE, 1, b1, [1, 2, 3])));
  assert.deepEqual(reasons(out), []);
  assert.deepEqual(voteRequests(out), [{ phase: Phase.PREPARE, view: 2 }]);
});

test('safeNode: after the lock moves up, a fork justified by an older QC is unsafe', () => {
  const { k, d, b1 } = locked();
  const b2 = k.block(2, b1);
  const qc2 = k.qc(Phase.PREPARE, 2, b2, [1, 2, 3]);
  const c2 = k.block(2, k.genesis, 'fork');
  const b3 = k.block(3, b2);
  d.step({ type: 'blocks-fetched', blocks: [b2, b3], qcs: [qc2, k.qc(Phase.PREPARE, 3, b3, [1, 2, 3])] });
  for (const s of [1, 2, 3]) d.message(k.newView(3, qc2, s));
  // The lock moves to b3 (view 3), then a fork with a view-2 justify is unsafe.
  d.message({ type: 'qc', epoch: 0, qc: k.qc(Phase.PRE_COMMIT, 3, b3, [1, 2, 3]), sender: 3 });
  assert.equal(d.engine.safety.lockedQC.view, 3, 'the lock moves up to the newer precommitQC');
  const c1qc = k.qc(Phase.PREPARE, 2, c2, [1, 2, 3]);
  d.step({ type: 'blocks-fetched', blocks: [c2], qcs: [c1qc] });
  for (const s of [1, 2, 3]) d.message(k.newView(4, c1qc, s));
  assert.equal(d.engine.view, 4);
  const out = d.message(k.proposal(4, k.block(4, c2), c1qc));
  assert.deepEqual(reasons(out), ['unsafe'], 'justify view 2 < locked view 3, block off the locked branch');
});

test('ancestry for the lock rule and the chain to commit (BlockTree)', () => {
  const k = new Kit(4);
  const [g, b1] = [k.genesis, k.block(1, k.genesis)];
  const b2 = k.block(2, b1);
  const b3 = k.block(3, b2);
  const c2 = k.block(2, k.genesis, 'fork');
  const c3 = k.block(3, c2);
  const t = new BlockTree(g);
  for (const b of [b1, b2, b3, c2]) t.add(b);
  const hex = (h: Uint8Array) => Buffer.from(h).toString('hex');
  assert.equal(t.extendsBlock(b3, b1.hash).result, 'yes', 'two levels down');
  assert.equal(t.extendsBlock(b3, g.hash).result, 'yes', 'three levels down');
  assert.equal(t.extendsBlock(b1, b1.hash).result, 'yes', 'a block extends itself');
  assert.equal(t.extendsBlock(c2, b1.hash).result, 'no', 'a fork one level down');
  assert.equal(t.extendsBlock(b3, c2.hash).result, 'no', 'same height as the fork, other branch');
  assert.equal(t.extendsBlock(b1, b2.hash).result, 'no', 'an ancestor does not extend its child');
  assert.equal(t.extendsBlock(c3, c2.hash).result, 'yes', 'known parent');
  const unknownLock = t.extendsBlock(b3, k.block(1, g, 'nowhere').hash);
  assert.equal(unknownLock.result, 'unknown', 'the locked block itself is missing');
  const d3 = k.block(3, k.block(2, b1, 'gap'));
  const missing = t.extendsBlock(d3, b1.hash);
  assert.ok(missing.result === 'unknown' && hex(missing.missing) === hex(d3.header.parentHash), 'a missing ancestor is named');
  // commitPath: parents first from just above the committed tip; missing; done; conflict.
  const path = t.commitPath(b3.hash);
  assert.ok(path.kind === 'chain');
  assert.deepEqual(path.blocks.map((b) => b.header.height), [1, 2, 3]);
  t.add(d3); // known, but its parent (height 2, 'gap') is not
  const gap = t.commitPath(d3.hash);
  assert.ok(gap.kind === 'missing' && hex(gap.hash) === hex(d3.header.parentHash), 'the missing ancestor is named');
  t.remove(hex(d3.hash));
  t.markCommitted(b2);
  const rest = t.commitPath(b3.hash);
  assert.ok(rest.kind === 'chain');
  assert.deepEqual(rest.blocks.map((b) => hex(b.hash)), [hex(b3.hash)]);
  assert.equal(t.commitPath(b2.hash).kind, 'done', 'the tip itself');
  assert.equal(t.commitPath(b1.hash).kind, 'done', 'below the tip');
  assert.equal(t.commitPath(d3.hash).kind, 'missing');
  t.add(c3);
  const fork = t.commitPath(c3.hash); // heights: c2 is 1, c3 is 2 = the tip's height
  assert.ok(fork.kind === 'conflict' && fork.height === 2 && hex(fork.conflicting) === hex(c3.hash), 'a different block at the tip height');
  const c4 = k.block(4, c3);
  t.add(c4);
  const above = t.commitPath(c4.hash);
  assert.ok(above.kind === 'conflict' && above.height === 2 && hex(above.conflicting) === hex(c3.hash), 'a block above the tip on another branch');
});

test('the lock is taken on a precommitQC, not on a prepareQC', () => {
  const k = new Kit(4);
  const d = k.engine(0);
  d.step({ type: 'start' });
  const b1 = k.block(1, k.genesis);
  d.message(k.proposal(1, b1, k.gqc));
  d.message({ type: 'qc', epoch: 0, qc: k.qc(Phase.PREPARE, 1, b1, [1, 2, 3]), sender: 1 });
  assert.equal(d.engine.safety.lockedQC.view, 0, 'a prepareQC does not lock');
  for (const s of [1, 2, 3]) d.message(k.newView(2, k.gqc, s));
  const out = d.message(k.proposal(2, k.block(2, k.genesis, 'fork'), k.gqc));
  assert.deepEqual(reasons(out), [], 'unlocked: a fork on genesis is still safe');
  assert.deepEqual(voteRequests(out), [{ phase: Phase.PREPARE, view: 2 }]);
});

test('the lock never moves down, and a precommitQC of the current view locks its block', () => {
  const { k, d, b1 } = locked();
  const lock = d.engine.safety.lockedQC;
  assert.deepEqual(lock.blockHash, b1.hash);
  assert.equal(lock.phase, Phase.PRE_COMMIT);
  // A stale precommitQC (view 1 again, other block) is refused and leaves the lock alone.
  const c1 = k.block(1, k.genesis, 'other');
  const out = d.message({ type: 'qc', epoch: 0, qc: k.qc(Phase.PRE_COMMIT, 1, c1, [0, 1, 2]), sender: 1 });
  assert.deepEqual(reasons(out), ['stale']);
  assert.equal(d.engine.safety.lockedQC, lock);
  // A precommitQC of view 2 locks and is persisted before the COMMIT vote is requested.
  const b2 = k.block(2, b1);
  const pc2 = k.qc(Phase.PRE_COMMIT, 2, b2, [1, 2, 3]);
  const out2 = d.message({ type: 'qc', epoch: 0, qc: pc2, sender: 2 });
  assert.equal(d.engine.safety.lockedQC.view, 2);
  const persist = ofType(out2, 'persist')[0];
  assert.equal(persist?.safety.lockedQC.view, 2, 'the new lock is persisted');
  assert.deepEqual(voteRequests(out2), [{ phase: Phase.COMMIT, view: 2 }]);
});

test('commit: only a commitQC commits, with its uncommitted ancestors parents first, once', () => {
  const k = new Kit(4);
  const d = k.engine(0);
  d.step({ type: 'start' });
  const b1 = k.block(1, k.genesis);
  const b2 = k.block(2, b1);
  d.step({ type: 'blocks-fetched', blocks: [b1, b2], qcs: [k.qc(Phase.PREPARE, 2, b2, [1, 2, 3])] });
  assert.deepEqual(ofType(d.log, 'commit'), [], 'a prepareQC commits nothing');
  assert.deepEqual(ofType(d.message({ type: 'qc', epoch: 0, qc: k.qc(Phase.PRE_COMMIT, 2, b2, [1, 2, 3]), sender: 2 }), 'commit'), [], 'nor a precommitQC');
  const out = d.message({ type: 'qc', epoch: 0, qc: k.qc(Phase.COMMIT, 2, b2, [1, 2, 3]), sender: 2 });
  const commits = ofType(out, 'commit');
  assert.equal(commits.length, 1);
  assert.deepEqual(commits[0]!.blocks.map((b) => b.header.height), [1, 2], 'parents first');
  assert.equal(d.engine.committed.header.height, 2);
  assert.equal(d.engine.safety.lastCommitView, 2);
  // The same commitQC again, or one of an older view on an ancestor, commits nothing.
  assert.deepEqual(ofType(d.message({ type: 'qc', epoch: 0, qc: k.qc(Phase.COMMIT, 2, b2, [0, 1, 2]), sender: 2 }), 'commit'), []);
  assert.deepEqual(ofType(d.message({ type: 'qc', epoch: 0, qc: k.qc(Phase.COMMIT, 1, b1, [1, 2, 3]), sender: 1 }), 'commit'), []);
  // A commitQC on a block conflicting with what is committed halts instead of committing.
  const c1 = k.block(1, k.genesis, 'fork');
  const c3 = k.block(3, c1);
  d.step({ type: 'blocks-fetched', blocks: [c1, c3], qcs: [k.qc(Phase.PREPARE, 3, c3, [1, 2, 3])] });
  const bad = d.message({ type: 'qc', epoch: 0, qc: k.qc(Phase.COMMIT, 3, c3, [1, 2, 3]), sender: 3 });
  assert.deepEqual(ofType(bad, 'commit'), []);
});

test('one vote per (view, phase): later slots only, in (view, phase) order', () => {
  const at = { view: 3, phase: Phase.PRE_COMMIT };
  assert.equal(voteAfter(at, 3, Phase.PRE_COMMIT), false, 'the same slot');
  assert.equal(voteAfter(at, 3, Phase.PREPARE), false, 'an earlier phase');
  assert.equal(voteAfter(at, 3, Phase.COMMIT), true, 'a later phase');
  assert.equal(voteAfter(at, 2, Phase.COMMIT), false, 'an earlier view');
  assert.equal(voteAfter(at, 4, Phase.PREPARE), true, 'a later view');
});

// ------------------------------------------------------------------ QC validation

/** The quorum by definition, not by formula: the least q such that any two q-subsets of N
 * members share more than f of them (so an honest one), with f the largest f for which 3f < N. */
function quorumByDefinition(n: number): number {
  let f = 0;
  while (3 * (f + 1) < n) f++;
  for (let q = 1; q <= n; q++) if (2 * q - n > f) return q;
  throw new Error(`no quorum for N=${n}`);
}

function verifier(k: Kit): QcVerifier {
  return new QcVerifier(k.n, k.genesis.hash, k.scheme.verify);
}

for (const n of [4, 7, 21]) {
  test(`QC validation at N = ${n}: quorum, distinct validators of the set, signatures over (phase, view, block)`, () => {
    const k = new Kit(n);
    const q = quorumByDefinition(n);
    const b = k.block(1, k.genesis);
    const all = Array.from({ length: n }, (_, i) => i);
    const ok = (qc: QuorumCert) => verifier(k).check(qc).ok;
    assert.ok(ok(k.qc(Phase.PREPARE, 1, b, all.slice(0, q))), `${q} signers are a quorum`);
    assert.ok(ok(k.qc(Phase.COMMIT, 1, b, all.slice(n - q))), 'any q of them');
    assert.ok(ok(k.qc(Phase.PRE_COMMIT, 1, b, all)), 'all of them');
    assert.ok(!ok(k.qc(Phase.PREPARE, 1, b, all.slice(0, q - 1))), `${q - 1} signers are not`);
    // A repeated signer does not count twice.
    const rep = k.qc(Phase.PREPARE, 1, b, all.slice(0, q - 1));
    assert.ok(!ok({ ...rep, signers: [...rep.signers, rep.signers[q - 2]!], signatures: [...rep.signatures, rep.signatures[q - 2]!] }), 'repeated signer');
    const dup = k.qc(Phase.PREPARE, 1, b, all.slice(0, q));
    assert.ok(!ok({ ...dup, signers: [dup.signers[0]!, ...dup.signers.slice(0, q - 1)], signatures: [dup.signatures[0]!, ...dup.signatures.slice(0, q - 1)] }), 'repeated first signer');
    // A signer outside the set: index n (whose "signature" the fake scheme rejects anyway) and index −1.
    const out = k.qc(Phase.PREPARE, 1, b, all.slice(0, q - 1));
    assert.ok(!ok({ ...out, signers: [...out.signers, n], signatures: [...out.signatures, out.signatures[0]!] }), 'signer n');
    assert.ok(!ok({ ...out, signers: [-1, ...out.signers], signatures: [out.signatures[0]!, ...out.signatures] }), 'signer -1');
    // Signatures of another phase, view or block.
    const wrongPhase = k.qc(Phase.PREPARE, 1, b, all.slice(0, q));
    assert.ok(!ok({ ...wrongPhase, phase: Phase.PRE_COMMIT }), 'PREPARE votes presented as a PRE-COMMIT QC');
    assert.ok(!ok({ ...wrongPhase, view: 2 }), 'view 1 votes presented as view 2');
    assert.ok(!ok({ ...wrongPhase, blockHash: k.block(1, k.genesis, 'x').hash }), 'votes for another block');
    // One bad signature anywhere, first or last.
    for (const at of [0, q - 1]) {
      const bad = k.qc(Phase.PREPARE, 1, b, all.slice(0, q));
      const sigs = [...bad.signatures];
      sigs[at] = k.vote(Phase.PREPARE, 1, b, (bad.signers[at]! + 1) % n).signature;
      assert.ok(!ok({ ...bad, signatures: sigs }), `bad signature at ${at}`);
    }
    // Structure.
    assert.ok(!ok({ ...dup, phase: 0 as Phase }), 'phase 0');
    assert.ok(!ok({ ...dup, phase: 4 as Phase }), 'phase 4');
    assert.ok(!ok({ ...dup, view: 0 }), 'view 0 is the genesis QC only');
    assert.ok(!ok({ ...dup, view: 1.5 }), 'fractional view');
    assert.ok(!ok({ ...dup, blockHash: dup.blockHash.subarray(0, 31) }), 'short hash');
    assert.ok(!ok({ ...dup, signatures: dup.signatures.slice(0, q - 1) }), 'fewer signatures than signers');
    assert.ok(!ok({ ...dup, signers: [...dup.signers].reverse(), signatures: [...dup.signatures].reverse() }) || q === 1, 'signers out of order');
    // The genesis QC is valid without signatures; a look-alike on another block is not.
    assert.ok(ok(k.gqc));
    assert.ok(!ok({ ...k.gqc, blockHash: b.hash }), 'a zero-signature QC of view 0 on another block');
  });
}

test('a forged copy of a verified QC is answered with the verified one; a failure is not cached as valid', () => {
  const k = new Kit(4);
  const v = verifier(k);
  const b = k.block(1, k.genesis);
  const good = k.qc(Phase.PREPARE, 1, b, [0, 1, 2]);
  const bad = { ...good, signatures: [good.signatures[1]!, good.signatures[0]!, good.signatures[2]!] };
  assert.equal(v.check(bad).ok, false);
  assert.equal(v.check(bad).ok, false, 'still invalid when asked again');
  const first = v.check(good);
  assert.ok(first.ok && first.qc === good);
  const again = v.check(bad);
  assert.ok(again.ok && again.qc === good, 'the verified object, not the forged copy');
});

test('QC structure is refused before any signature is verified (cheap checks first)', () => {
  const k = new Kit(4);
  let verified = 0;
  const v = new QcVerifier(4, k.genesis.hash, () => (verified++, true)); // a verifier that accepts anything
  const good = k.qc(Phase.PREPARE, 1, k.block(1, k.genesis), [0, 1, 2]);
  for (const [why, bad] of [
    ['phase 0', { ...good, phase: 0 as Phase }],
    ['phase 4', { ...good, phase: 4 as Phase }],
    ['view 0', { ...good, view: 0 }],
    ['view 2^53', { ...good, view: 2 ** 53 }],
    ['short hash', { ...good, blockHash: good.blockHash.subarray(0, 31) }],
    ['signer N', { ...good, signers: [0, 1, 4] }],
    ['signer 1.5', { ...good, signers: [0, 1, 1.5] }],
  ] as const) {
    assert.equal(v.check(bad as QuorumCert).ok, false, why);
  }
  assert.equal(verified, 0, 'no signature verified for a malformed QC');
  assert.equal(v.check(good).ok, true);
  assert.equal(verified, 3);
});

test('a commitQC conflicting with the committed chain halts the engine, which then commits nothing', () => {
  const k = new Kit(4);
  const d = k.engine(0);
  d.step({ type: 'start' });
  const b1 = k.block(1, k.genesis);
  d.step({ type: 'blocks-fetched', blocks: [b1], qcs: [k.qc(Phase.PREPARE, 1, b1, [1, 2, 3])] });
  d.message({ type: 'qc', epoch: 0, qc: k.qc(Phase.COMMIT, 1, b1, [1, 2, 3]), sender: 1 });
  const c1 = k.block(2, k.genesis, 'fork'); // height 1, like b1
  d.step({ type: 'blocks-fetched', blocks: [c1], qcs: [k.qc(Phase.PREPARE, 2, c1, [1, 2, 3])] });
  const out = d.message({ type: 'qc', epoch: 0, qc: k.qc(Phase.COMMIT, 2, c1, [1, 2, 3]), sender: 2 });
  const halted = ofType(out, 'halted');
  assert.equal(halted.length, 1);
  assert.equal(halted[0]!.height, 1);
  assert.deepEqual(halted[0]!.conflicting, c1.hash);
  // Halted: even a commitQC extending our own chain commits nothing any more.
  const b3 = k.block(3, b1);
  d.step({ type: 'blocks-fetched', blocks: [b3], qcs: [k.qc(Phase.PREPARE, 3, b3, [1, 2, 3])] });
  assert.deepEqual(ofType(d.message({ type: 'qc', epoch: 0, qc: k.qc(Phase.COMMIT, 3, b3, [1, 2, 3]), sender: 3 }), 'commit'), []);
  assert.equal(d.engine.committed.header.height, 1);
});

test('a proposal is voted only with a valid PREPARE QC as justify, from a validator', () => {
  const k = new Kit(4);
  const d = k.engine(0);
  d.step({ type: 'start' });
  const b1 = k.block(1, k.genesis);
  d.step({ type: 'blocks-fetched', blocks: [b1], qcs: [k.qc(Phase.PREPARE, 1, b1, [1, 2, 3])] });
  for (const s of [1, 2, 3]) d.message(k.newView(2, k.gqc, s));
  const b2 = k.block(2, b1);
  const pre = k.qc(Phase.PRE_COMMIT, 1, b1, [1, 2, 3]);
  assert.deepEqual(reasons(d.message(k.proposal(2, b2, pre))), ['invalid_qc'], 'a PRE-COMMIT QC as justify');
  const forged = k.qc(Phase.PREPARE, 1, b1, [1, 2, 3]);
  const unseen = k.qc(Phase.PREPARE, 2, b1, [1, 2, 3]); // not cached as verified, unlike `forged`
  const bad = { ...unseen, signatures: [unseen.signatures[1]!, unseen.signatures[0]!, unseen.signatures[2]!] };
  for (const s of [1, 2, 3]) d.message(k.newView(3, k.gqc, s));
  assert.equal(d.engine.view, 3);
  assert.deepEqual(reasons(d.message(k.proposal(3, k.block(3, b1), bad))), ['invalid_qc'], 'a justify that does not verify');
  assert.deepEqual(reasons(d.message({ ...k.proposal(2, b2, forged), sender: 4 })), ['unknown_sender']);
  assert.deepEqual(voteRequests(d.log).filter((v) => v.view >= 2), []);
});
