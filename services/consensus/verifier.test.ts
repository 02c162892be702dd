// The verifier with real SLH-DSA keys, counting the verifications it asks the backend for:
// a QC's shape is refused before any signature, its first bad signature ends the check, and a
// forgery sent again costs no verification at all.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { availableParallelism } from 'node:os';
import { blockHash, createSlhDsa, newViewSigningBytes, voteSigningBytes, type SlhDsa } from '#libs/crypto/index.ts';
import { Phase, genesisBlock, type NewView, type QuorumCert, type Vote } from '#libs/hotstuff/index.ts';
import { SignatureVerifier } from './verifier.ts';

const CHAIN = 'verifier-test';
const N = 21;
const real = createSlhDsa();
const keys = Array.from({ length: N }, () => real.generateKeyPair());

function counting(): { dsa: SlhDsa; calls: () => number } {
  let calls = 0;
  const dsa: SlhDsa = {
    ...real,
    verify: (pk, msg, sig) => { calls++; return real.verify(pk, msg, sig); },
    verifySync: (pk, msg, sig) => { calls++; return real.verifySync(pk, msg, sig); },
  };
  return { dsa, calls: () => calls };
}
const verifierWith = (dsa: SlhDsa) =>
  new SignatureVerifier({ chainId: CHAIN, publicKeys: keys.map((k) => k.publicKey), dsa, genesisHash: genesisBlock(CHAIN, blockHash).hash });

const blockHashOf = new Uint8Array(32).fill(7);
/** A PREPARE QC by `signers`; with `forgeFirst` the first signature is another validator's key. */
async function qc(signers: number[], forgeFirst = false): Promise<QuorumCert> {
  const bytes = voteSigningBytes({ chainId: CHAIN, epoch: 0, phase: Phase.PREPARE, view: 9, blockHash: blockHashOf });
  const signatures = await Promise.all(signers.map((s, i) => real.sign(keys[forgeFirst && i === 0 ? (s + 1) % N : s]!.secretKey, bytes)));
  return { phase: Phase.PREPARE, view: 9, blockHash: blockHashOf, signers, signatures };
}

test('a QC with fewer signers than a quorum is refused before any signature is verified', async () => {
  const { dsa, calls } = counting();
  const r = await verifierWith(dsa).verifyQc(await qc([0, 1, 2]));
  assert.equal(r.ok, false);
  assert.equal(calls(), 0);
});

test('a QC whose quorum repeats one signer (each signature valid) is refused before any signature is verified', async () => {
  const { dsa, calls } = counting();
  const one = await qc([4]);
  const quorum = 15; // ⌈(21 + 6 + 1) / 2⌉
  const repeated: QuorumCert = { ...one, signers: Array(quorum).fill(4), signatures: Array(quorum).fill(one.signatures[0]!) };
  const r = await verifierWith(dsa).verifyQc(repeated);
  assert.equal(r.ok, false);
  if (!r.ok) assert.match(r.what, /strictly increasing/);
  assert.equal(calls(), 0, 'the shape fails first');
});

test('the first bad signature of a QC ends its check; the same forgery again costs nothing', async () => {
  const signers = Array.from({ length: 15 }, (_, i) => i); // quorum at N = 21
  const forged = await qc(signers, true);
  const { dsa, calls } = counting();
  const v = verifierWith(dsa);
  const r = await v.verifyQc(forged);
  assert.deepEqual(r, { ok: false, what: 'qc(1,9) vote', sender: 0 });
  const batch = Math.max(2, availableParallelism());
  assert.ok(calls() <= batch, `${calls()} verifications for a QC whose first signature is bad (batch ${batch})`);
  const before = calls();
  assert.equal((await v.verifyQc(forged)).ok, false);
  const vote: Vote = { type: 'vote', epoch: 0, phase: Phase.PREPARE, view: 9, blockHash: blockHashOf, sender: 0, signature: forged.signatures[0]! };
  assert.equal((await v.verifyMessage(vote)).ok, false);
  assert.equal(v.verifySync(vote), false);
  assert.equal(calls(), before, 'a remembered failure is not verified again');
});

test('a good QC verifies, and its votes are cache hits afterwards', async () => {
  const good = await qc(Array.from({ length: 15 }, (_, i) => i));
  const { dsa, calls } = counting();
  const v = verifierWith(dsa);
  assert.deepEqual(await v.verifyQc(good), { ok: true });
  assert.equal(calls(), 15);
  assert.deepEqual(await v.verifyQc(good), { ok: true });
  assert.equal(calls(), 15);
});

test('a NEW-VIEW with a QC reference costs one verification, its own; a forged one is refused', async () => {
  const ref: QuorumCert = { phase: Phase.PREPARE, view: 9, blockHash: blockHashOf, signers: [], signatures: [] };
  const bytes = newViewSigningBytes({ chainId: CHAIN, epoch: 0, view: 10, highQC: ref });
  const nv: NewView = { type: 'new-view', epoch: 0, view: 10, highQC: ref, sender: 3, signature: await real.sign(keys[3]!.secretKey, bytes) };
  const { dsa, calls } = counting();
  const v = verifierWith(dsa);
  assert.deepEqual(await v.verifyMessage(nv), { ok: true });
  assert.equal(calls(), 1);
  assert.deepEqual(await v.verifyMessage({ ...nv, sender: 4 }), { ok: false, what: 'new-view', sender: 4 });
  // With the QC's signatures it is checked as a QC: too few signers.
  const full = { ...nv, highQC: { ...ref, signers: [0], signatures: [nv.signature] } };
  assert.equal((await v.verifyMessage(full)).ok, false);
});
