// Issue 9, item 10 (the signer's share): after a restart the consensus service may ask again for
// the NEW-VIEW of a view it already asked for, with the same highQC or with a newer one it learnt
// meanwhile. The identical request gets the stored signature back; a higher highQC is signed
// again (a NEW-VIEW only tells the next leader our highest QC: no vote rule depends on it); a
// lower or equal-but-different one is refused. Real signer, real files, restarted from disk.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { newViewSigningBytes } from '#libs/crypto/index.ts';
import { Phase, type Block, type QuorumCert } from '#libs/hotstuff/index.ts';
import { refused } from '../services/signer/contract.ts';
import { readJournal } from '../services/signer/journal.ts';
import type { LocalSigner } from '../services/signer/signer.ts';
import { makeSignerWorld, type SignerWorld } from '../services/signer/testkit.ts';
import { openInProcess } from './support/signer.ts';

let w: SignerWorld;
let s: LocalSigner;
let b1: Block;
let b3: Block;
let qc1: QuorumCert;
let qc3: QuorumCert;

before(async () => {
  w = await makeSignerWorld({ n: 4, self: 1 });
  s = await openInProcess(w, { init: true });
  b1 = w.block(1, w.genesis);
  b3 = w.block(3, b1);
  qc1 = await w.qc(Phase.PREPARE, 1, b1.hash);
  qc3 = await w.qc(Phase.PREPARE, 3, b3.hash);
});
after(async () => {
  await s.close();
  await w.cleanup();
});

async function restart(): Promise<void> {
  await s.close();
  s = await openInProcess(w);
}

const verifies = (view: number, highQC: QuorumCert, sig: Uint8Array) =>
  assert.ok(w.slh.verifySync(w.keys[w.self]!.publicKey, newViewSigningBytes({ chainId: w.chainId, epoch: 0, view, highQC }), sig));

test('NEW-VIEW after a restart: the identical request replays, a higher highQC is signed again, a lower one is refused', async () => {
  const first = await s.sign({ kind: 'new-view', epoch: 0, view: 5, highQC: qc1 });
  verifies(5, qc1, first.signature);
  await restart();

  const again = await s.sign({ kind: 'new-view', epoch: 0, view: 5, highQC: qc1 });
  assert.equal(again.replayed, true, 'identical request after restart: the stored signature');
  assert.deepEqual(again.signature, first.signature);

  const newer = await s.sign({ kind: 'new-view', epoch: 0, view: 5, highQC: qc3 });
  assert.equal(newer.replayed, false, 'a newer highQC for the same view is signed again');
  verifies(5, qc3, newer.signature);
  assert.equal(s.state.lastNewView, 5);
  await restart();

  const newerAgain = await s.sign({ kind: 'new-view', epoch: 0, view: 5, highQC: qc3 });
  assert.equal(newerAgain.replayed, true);
  assert.deepEqual(newerAgain.signature, newer.signature, 'the newest signature is the one kept');
  await refused(s.sign({ kind: 'new-view', epoch: 0, view: 5, highQC: qc1 }), 'one-per-slot');
  // Same view as the stored highQC but another block: not newer, refused.
  const other = w.block(3, b1, { salt: 9 });
  await refused(s.sign({ kind: 'new-view', epoch: 0, view: 5, highQC: await w.qc(Phase.PREPARE, 3, other.hash) }), 'one-per-slot');
  // A newer highQC that does not verify is refused by the high-qc rule, and nothing moves.
  const forged = { ...qc3, view: 4 };
  await refused(s.sign({ kind: 'new-view', epoch: 0, view: 5, highQC: forged }), 'high-qc');
  await refused(s.sign({ kind: 'new-view', epoch: 0, view: 4, highQC: qc3 }), 'monotonic');
});

test('the re-sign is journaled as a signature of its own and the state counts it', async () => {
  const signed = [];
  for await (const { entry } of readJournal(`${w.dir}/journal.jsonl`)) {
    if (entry.type === 'request' && entry.kind === 'new-view' && entry.decision === 'signed') signed.push(entry);
  }
  assert.equal(signed.length, 2);
  assert.notEqual(signed[0]!.sig, signed[1]!.sig);
  assert.equal(s.state.signed, 2);
  assert.equal(s.state.recent.filter((r) => r.kind === 'new-view').length, 1);
});

test('import merges a NEW-VIEW signed twice by keeping the one with the newer highQC; equal highQC views with different messages still conflict', async () => {
  const { mergeSafety } = await import('../services/signer/migrate.ts');
  const { initialSafety } = await import('../services/signer/rules.ts');
  const base = initialSafety('c', 'ab'.repeat(32), new Uint8Array(32));
  const nv = (qcView: number, d: string) => ({ kind: 'new-view' as const, epoch: 0, view: 5, phase: 0 as const, digest: d.repeat(64), blockHash: d.repeat(64), qcView, signature: new Uint8Array([1]) });
  const cur = { ...base, lastNewView: 5, signed: 2, recent: [nv(3, 'b')] };
  const older = { ...base, lastNewView: 5, lastVote: { view: 4, phase: 1 as const }, signed: 1, recent: [nv(1, 'a')] };
  const merged = mergeSafety(cur, older);
  assert.equal(merged.state.recent.find((r) => r.kind === 'new-view')?.qcView, 3);
  assert.throws(() => mergeSafety(cur, { ...older, recent: [nv(3, 'c')] }), (e: unknown) => (e as { code?: string }).code === 'SIGNER_IMPORT_CONFLICT');
});
