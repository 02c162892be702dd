// Following the validator set across epochs from genesis alone (epochs.ts), with real SLH-DSA
// keys: an epoch-change proof — the block carrying an approved change, an empty suffix block and
// a COMMIT QC of the old epoch — gives the next set, against which a block of the next epoch then
// verifies; every forgery is refused naming what failed, and a refused proof changes nothing.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { blockHash, createSlhDsa, merkleProof, merkleRoot, nextStateHash, reconfigSigningBytes, toHex, txHash, voteSigningBytes } from '#libs/crypto/index.ts';
import { Phase, genesisBlock, type Block, type QuorumCert } from '#libs/hotstuff/index.ts';
import { EpochHistory, ValidatorSet, encodeReconfigTx, type Reconfiguration } from '#libs/validators/index.ts';
import { epochHeights, followEpoch, trustRootOf, verifyCommitted, verifyIncluded, verifyServedRun } from './index.ts';

const CHAIN = 'epochs-verify';
const dsa = createSlhDsa();
const keys = Array.from({ length: 6 }, (_, i) => dsa.generateKeyPair(new Uint8Array(dsa.seedBytes).fill(40 + i)));
const genesisSet = ValidatorSet.fromConfig(keys.slice(0, 4).map((k, i) => ({ name: `m${i}`, peer_id: `peer-${i}`, public_key: toHex(k.publicKey) })));
const rules = { chainId: CHAIN, publicKeyBytes: dsa.publicKeyBytes };
const verify = (pk: Uint8Array, m: Uint8Array, s: Uint8Array) => dsa.verifySync(pk, m, s);
const history = () => EpochHistory.fromGenesis(genesisSet, rules, verify);
const enc = (s: string) => new TextEncoder().encode(s);

function child(parent: Block, view: number, txs: Uint8Array[], epoch = parent.header.epoch): Block {
  const txRoot = merkleRoot(txs.map((t) => txHash(t)));
  const header = { chainId: CHAIN, epoch, height: parent.header.height + 1, view, parentHash: parent.hash, proposer: 0, timestampMs: parent.header.timestampMs + 1,
    txRoot, stateHash: nextStateHash(parent.header.stateHash, txRoot) };
  return { header, hash: blockHash(header), txs };
}

/** A COMMIT QC on `b` by `signers` (indices), signing with `keyOf(index)` as votes of `epoch`. */
function commitQc(b: Block, signers: number[], keyOf: (i: number) => Uint8Array, epoch = b.header.epoch): QuorumCert {
  const bytes = voteSigningBytes({ chainId: CHAIN, epoch, phase: Phase.COMMIT, view: b.header.view, blockHash: b.hash });
  return { phase: Phase.COMMIT, view: b.header.view, blockHash: b.hash, signers, signatures: signers.map((i) => dsa.signSync(keyOf(i), bytes)) };
}

const change: Reconfiguration = { chainId: CHAIN, epoch: 0, ops: [{ kind: 'add', name: 'm4', peerId: 'peer-4', publicKey: keys[4]!.publicKey }] };
const approvals = (c: Reconfiguration, by: number[]) => by.map((validator) => ({ validator, signature: dsa.signSync(keys[validator]!.secretKey, reconfigSigningBytes(c)) }));
const genesis = genesisBlock(CHAIN, blockHash);
const last = child(genesis, 1, [enc('a'), encodeReconfigTx({ change, approvals: approvals(change, [0, 1, 2]) })]);
const suffix = child(last, 2, []);
const key0 = (i: number) => keys[i]!.secretKey;

test('genesis → epoch 1 by the proof; a block of epoch 1 then verifies against epoch 1\'s keys only', () => {
  const h = history();
  const v = followEpoch(h, CHAIN, { last, suffix: [suffix.header], qc: commitQc(suffix, [0, 1, 3], key0) }, dsa);
  assert.ok(v.ok, v.ok ? '' : v.reason);
  assert.equal(v.set.epoch, 1);
  assert.deepEqual(v.set.members.map((m) => m.name), ['m0', 'm1', 'm2', 'm3', 'm4']);
  assert.equal(h.current.epoch, 1);
  const next = child(last, 1, [enc('b')], 1);
  const epoch1 = trustRootOf(CHAIN, v.set, dsa);
  const qc = commitQc(next, [0, 2, 3, 4], key0);
  assert.equal(verifyCommitted(epoch1, next, { qc }).ok, true);
  const asGenesis = verifyCommitted(trustRootOf(CHAIN, genesisSet, dsa), next, { qc });
  assert.ok(!asGenesis.ok && /of epoch 1, the trusted keys are epoch 0's/.test(asGenesis.reason));
  const oldVotes = verifyCommitted(epoch1, next, { qc: commitQc(next, [0, 2, 3, 4], key0, 0) });
  assert.ok(!oldVotes.ok && /bad signature/.test(oldVotes.reason), 'votes signed as epoch 0 do not make a QC of epoch 1');
});

test('forged proofs are refused naming what failed, and the history stays where it was', () => {
  const cases: Array<[string, Parameters<typeof followEpoch>[2], RegExp]> = [
    ['a QC below quorum', { last, suffix: [suffix.header], qc: commitQc(suffix, [0, 1], key0) }, /qc: 2 signers < quorum 3/],
    ['a QC signed by outsiders', { last, suffix: [suffix.header], qc: commitQc(suffix, [0, 1, 2], (i) => keys[i + 3]!.secretKey) }, /qc: bad signature/],
    ['a QC on another block', { last, suffix: [], qc: commitQc(suffix, [0, 1, 2], key0) }, /qc: certifies/],
    ['a suffix carrying transactions', { last, suffix: [child(last, 2, [enc('x')]).header], qc: commitQc(child(last, 2, [enc('x')]), [0, 1, 2], key0) }, /suffix\[0\]: carries transactions/],
    ['no change in the last block', { last: child(genesis, 1, [enc('a')]), suffix: [], qc: commitQc(child(genesis, 1, [enc('a')]), [0, 1, 2], key0) }, /carries 0 reconfigurations/],
    ['a change approved by two', (() => {
      const b = child(genesis, 1, [encodeReconfigTx({ change, approvals: approvals(change, [0, 1]) })]);
      return { last: b, suffix: [], qc: commitQc(b, [0, 1, 2], key0) };
    })(), /transaction 0: 2 approvals, a quorum of epoch 0 is 3/],
    ['a block of another epoch', (() => {
      const b = child(genesis, 1, [encodeReconfigTx({ change, approvals: approvals(change, [0, 1, 2]) })], 1);
      return { last: b, suffix: [], qc: commitQc(b, [0, 1, 2], key0) };
    })(), /last block: of epoch 1, the history is at epoch 0/],
  ];
  for (const [what, proof, pattern] of cases) {
    const h = history();
    const v = followEpoch(h, CHAIN, proof, dsa);
    assert.ok(!v.ok && pattern.test(v.reason), `${what}: ${v.ok ? 'accepted' : v.reason}`);
    assert.equal(h.current.epoch, 0, `${what}: nothing changed`);
  }
});

test('a block of an ended epoch above its last block is refused where that end is known, whatever its retired keys signed', () => {
  const h = history();
  const v = followEpoch(h, CHAIN, { last, suffix: [suffix.header], qc: commitQc(suffix, [0, 1, 3], key0) }, dsa);
  assert.ok(v.ok, v.ok ? '' : v.reason);
  assert.deepEqual(epochHeights(h, 0), { first: 0, last: 1 });
  assert.deepEqual(epochHeights(h, 1), { first: 2 });
  // A quorum of epoch 0's keys — retired once epoch 0 ended — signs a block of epoch 0 on top of
  // its last block: what they can forge after the fact.
  const forgedTx = enc('forged');
  const forged = child(last, 2, [forgedTx]);
  const qc = commitQc(forged, [0, 1, 2], key0);
  assert.equal(verifyCommitted(trustRootOf(CHAIN, genesisSet, dsa), forged, { qc }).ok, true, 'with the end unknown, the keys are all there is');
  const epoch0 = trustRootOf(CHAIN, genesisSet, dsa, epochHeights(h, 0));
  const block = verifyCommitted(epoch0, forged, { qc });
  assert.ok(!block.ok && /block: height 2 is above its epoch's last block \(1\)/.test(block.reason), block.ok ? 'accepted' : block.reason);
  const inc = verifyIncluded(epoch0, { header: forged.header, txHash: txHash(forgedTx), index: 0, txCount: 1, siblings: merkleProof([txHash(forgedTx)], 0) }, { qc });
  assert.ok(!inc.ok && /height 2 is above its epoch's last block \(1\)/.test(inc.reason), inc.ok ? 'accepted' : inc.reason);
  // The epoch's own blocks still verify: its last, by the proof whose suffix lies above it.
  assert.equal(verifyCommitted(epoch0, last, { qc: commitQc(suffix, [0, 1, 3], key0), descendants: [suffix.header] }).ok, true);
  // And a block of epoch 1 below epoch 1's first height is not one of it.
  const early = child(genesis, 1, [enc('early')], 1);
  const low = verifyCommitted(trustRootOf(CHAIN, v.set, dsa, epochHeights(h, 1)), early, { qc: commitQc(early, [0, 1, 2], key0) });
  assert.ok(!low.ok && /height 1 is below its epoch's first block \(2\)/.test(low.reason), low.ok ? 'accepted' : low.reason);
});

test('a served run: no block of an epoch after the one carrying its change, the tip included, even with no end height known', () => {
  const forged = child(last, 2, [enc('forged')]);
  const qc = commitQc(forged, [0, 1, 2], key0);
  const root = trustRootOf(CHAIN, genesisSet, dsa);
  const reconfig = { set: genesisSet, rules, verify };
  const fromTip = verifyServedRun(root, last, [{ block: forged, qc }], () => false, reconfig);
  assert.ok(!fromTip.ok && /block 0 of 1 \(height 2\): height 2 is above its epoch's last block \(1\)/.test(fromTip.reason), fromTip.ok ? 'accepted' : fromTip.reason);
  const inRun = verifyServedRun(root, genesis, [{ block: last }, { block: forged, qc }], () => false, reconfig);
  assert.ok(!inRun.ok && /block 1 of 2 \(height 2\): height 2 is above/.test(inRun.reason), inRun.ok ? 'accepted' : inRun.reason);
  // The epoch's last block itself, committed by a QC of its own, is followed as before.
  const own = verifyServedRun(root, genesis, [{ block: last, qc: commitQc(last, [0, 1, 2], key0) }], () => false, reconfig);
  assert.ok(own.ok && own.blocks.length === 1, own.ok ? '' : own.reason);
});
