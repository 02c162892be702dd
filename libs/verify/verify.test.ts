// A client that trusts no member: a committed block and its COMMIT QC, made with real SLH-DSA
// keys, are accepted against the validator set alone; every kind of forgery is refused, naming
// what failed.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { blockHash, createSlhDsa, merkleProof, merkleRoot, nextStateHash, txHash, voteSigningBytes } from '#libs/crypto/index.ts';
import { Phase, genesisBlock, type Block, type QuorumCert } from '#libs/hotstuff/index.ts';
import { verifyCommitted, verifyIncluded, verifyServedRun, type TrustRoot } from './index.ts';

const CHAIN = 'verify-test';
const dsa = createSlhDsa();
const keys = Array.from({ length: 4 }, () => dsa.generateKeyPair());
const outsider = dsa.generateKeyPair();
const root: TrustRoot = { chainId: CHAIN, publicKeys: keys.map((k) => k.publicKey), dsa };
const enc = (s: string) => new TextEncoder().encode(s);

function child(parent: Block, view: number, txs: Uint8Array[]): Block {
  const txRoot = merkleRoot(txs.map((t) => txHash(t)));
  const header = { chainId: CHAIN, epoch: 0, height: parent.header.height + 1, view, parentHash: parent.hash, proposer: view % 4, timestampMs: view,
    txRoot, stateHash: nextStateHash(parent.header.stateHash, txRoot) };
  return { header, hash: blockHash(header), txs };
}

async function qcOf(b: Block, signers: number[], opts: { phase?: Phase; view?: number; signWith?: (i: number) => Uint8Array } = {}): Promise<QuorumCert> {
  const phase = opts.phase ?? Phase.COMMIT;
  const view = opts.view ?? b.header.view;
  const bytes = voteSigningBytes({ chainId: CHAIN, epoch: 0, phase, view, blockHash: b.hash });
  const signatures = await Promise.all(signers.map((i) => dsa.sign(opts.signWith?.(i) ?? keys[i]!.secretKey, bytes)));
  return { phase, view, blockHash: b.hash, signers, signatures };
}

const genesis = genesisBlock(CHAIN, blockHash);
const b1 = child(genesis, 1, [enc('alice pays bob'), enc('carol pays dan')]);
const b2 = child(b1, 2, [enc('erin pays frank')]);

test('a committed block and a transaction in it are accepted against the validator set alone', async () => {
  const qc = await qcOf(b1, [0, 1, 3]);
  const v = verifyCommitted(root, b1, { qc }, txHash(enc('carol pays dan')));
  assert.deepEqual(v, { ok: true, height: 1, view: 1, signers: [0, 1, 3], txIndex: 1 });
  // Committed by a descendant's QC, reached through its header.
  const qc2 = await qcOf(b2, [1, 2, 3]);
  assert.equal(verifyCommitted(root, b1, { qc: qc2, descendants: [b2.header] }).ok, true);
});

test('every forgery is refused, naming what failed', async () => {
  const good = await qcOf(b1, [0, 1, 2]);
  const refused = (v: ReturnType<typeof verifyCommitted>, pattern: RegExp, what: string) => {
    assert.equal(v.ok, false, what);
    if (!v.ok) assert.match(v.reason, pattern, what);
  };
  refused(verifyCommitted(root, { ...b1, txs: [enc('alice pays mallory'), b1.txs[1]!] }, { qc: good }), /tx_root/, 'a changed transaction');
  refused(verifyCommitted(root, b1, { qc: good }, txHash(enc('not in it'))), /not in block 1/, 'a transaction not in the block');
  refused(verifyCommitted(root, b1, { qc: await qcOf(b1, [0, 1]) }), /2 signers < quorum 3/, 'too few signers');
  const repeated = await qcOf(b1, [0, 1, 1]);
  refused(verifyCommitted(root, b1, { qc: repeated }), /strictly increasing/, 'a repeated signer');
  refused(verifyCommitted(root, b1, { qc: await qcOf(b1, [0, 1, 2], { signWith: (i) => (i === 2 ? outsider.secretKey : keys[i]!.secretKey) }) }),
    /bad signature of 2/, 'a signature from outside the set');
  refused(verifyCommitted(root, b1, { qc: { ...good, signers: [0, 1, 4] } }), /strictly increasing validator indices/, 'a signer index outside the set');
  refused(verifyCommitted(root, b1, { qc: await qcOf(b1, [0, 1, 2], { phase: Phase.PRE_COMMIT }) }), /not COMMIT/, 'the wrong phase');
  refused(verifyCommitted(root, b1, { qc: { ...good, view: 2 } }), /view 2/, 'the wrong view');
  refused(verifyCommitted(root, b1, { qc: { ...(await qcOf(b1, [0, 1, 2], { view: 1 })), signatures: good.signatures.map((s, i) => (i === 0 ? (good.signatures[1]!) : s)) } }),
    /bad signature of 0/, 'a signature moved to another signer');
  refused(verifyCommitted({ ...root, chainId: 'other' }, b1, { qc: good }), /chain id/, 'another chain');
  refused(verifyCommitted(root, { ...b1, hash: b2.hash }, { qc: good }), /not the hash of its header/, 'a hash that is not the header\'s');
  refused(verifyCommitted(root, b1, { qc: await qcOf(b2, [0, 1, 2]) }), /certifies/, 'a QC of another block');
  const stranger = child(genesis, 2, [enc('x')]);
  refused(verifyCommitted(root, b1, { qc: await qcOf(stranger, [0, 1, 2]), descendants: [stranger.header] }), /does not extend/, 'a "descendant" that is not one');
});

test('a transaction is proved by its Merkle branch and the header alone; a bent branch or header is refused', async () => {
  const txs = Array.from({ length: 7 }, (_, i) => enc(`tx ${i}`));
  const b = child(genesis, 1, txs);
  const qc = await qcOf(b, [0, 2, 3]);
  const hashes = txs.map((t) => txHash(t));
  const inc = (index: number) => ({ header: b.header, txHash: hashes[index]!, index, txCount: txs.length, siblings: merkleProof(hashes, index) });
  for (let i = 0; i < txs.length; i++) assert.deepEqual(verifyIncluded(root, inc(i), { qc }), { ok: true, height: 1, view: 1, signers: [0, 2, 3], txIndex: i });
  const refused = (v: ReturnType<typeof verifyIncluded>, pattern: RegExp, what: string) => {
    assert.equal(v.ok, false, what);
    if (!v.ok) assert.match(v.reason, pattern, what);
  };
  refused(verifyIncluded(root, { ...inc(3), txHash: txHash(enc('not in it')) }, { qc }), /does not lead to the header's tx_root/, 'another transaction');
  refused(verifyIncluded(root, { ...inc(3), siblings: inc(4).siblings }, { qc }), /Merkle branch/, 'another branch');
  const other = child(genesis, 1, [enc('x')]);
  refused(verifyIncluded(root, { ...inc(3), header: { ...b.header, timestampMs: 99 } }, { qc }), /qc: certifies/, 'a changed header');
  refused(verifyIncluded(root, inc(3), { qc: await qcOf(other, [0, 1, 2]) }), /qc: certifies/, 'the QC of another block');
  refused(verifyIncluded(root, { ...inc(3), header: { ...b.header, chainId: 'other' } }, { qc }), /chain id "other"/, 'another chain');
});

test('a served run is proven up to its last COMMIT QC; blocks above it wait; any break refuses the whole run, naming the block', async () => {
  const b3 = child(b2, 3, [enc('gina pays hal')]);
  const none = () => false;
  const run = [{ block: b1 }, { block: b2, qc: await qcOf(b2, [0, 1, 2]) }, { block: b3 }];
  const v = verifyServedRun(root, genesis, run, none);
  assert.equal(v.ok, true);
  if (v.ok) {
    assert.deepEqual(v.blocks.map((b) => b.header.height), [1, 2], 'b3 has no COMMIT QC yet: left out');
    assert.equal(v.qc?.view, 2);
    assert.equal(v.servedTop, 3);
  }
  // Nothing certified: nothing proven (not an error: the source may be mid-view).
  const bare = verifyServedRun(root, genesis, [{ block: b1 }], none);
  assert.deepEqual(bare.ok && bare.blocks, []);
  const refused = (r: ReturnType<typeof verifyServedRun>, pattern: RegExp, what: string) => {
    assert.equal(r.ok, false, what);
    if (!r.ok) assert.match(r.reason, pattern, what);
  };
  const good = await qcOf(b2, [0, 1, 2]);
  refused(verifyServedRun(root, genesis, [{ block: { ...b1, txs: [enc('forged')] } }, { block: b2, qc: good }], none), /block 0 of 2 \(height 1\)/, 'a changed transaction');
  refused(verifyServedRun(root, genesis, [{ block: b2, qc: good }], none), /parent/, 'a run that does not start above the tip');
  refused(verifyServedRun(root, b1, [{ block: b1 }, { block: b2, qc: good }], none), /height|parent/, 'a run that repeats the tip');
  refused(verifyServedRun(root, genesis, [{ block: b1 }, { block: b2, qc: await qcOf(b2, [0, 1]) }], none), /block 1 of 2.*quorum/, 'too few signers');
  refused(verifyServedRun(root, genesis, [{ block: b1 }, { block: b2, qc: await qcOf(b2, [0, 1, 2], { signWith: (i) => (i === 1 ? outsider.secretKey : keys[i]!.secretKey) }) }], none),
    /bad signature of 1/, 'a signature from outside the set');
  refused(verifyServedRun(root, genesis, [{ block: b1 }, { block: b2, qc: { ...good, view: 7 } }], none), /view 7/, 'a QC of the wrong view');
  // A transaction the log holds already (committed at or below the tip, or earlier in the run).
  refused(verifyServedRun(root, genesis, [{ block: b1 }, { block: b2, qc: good }], (id) => Buffer.from(id).equals(Buffer.from(txHash(enc('erin pays frank'))))),
    /block 1 of 2/, 'a transaction already committed');
  const again = child(b1, 2, [enc('alice pays bob')]);
  refused(verifyServedRun(root, genesis, [{ block: b1 }, { block: again, qc: await qcOf(again, [0, 1, 2]) }], none), /block 1 of 2/, 'a transaction twice in the run');
});
