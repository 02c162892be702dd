// The one test suite every Signer implementation must pass (STYLE: one shared suite per
// interface): the request matrix of the voting rules, identical repeats, refusals that still
// hold after a restart, and concurrent identical/conflicting requests. Registered by
// test/signer-contract.test.ts for the in-process signer and for the gRPC signer.
// Must never be imported by production code.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { isFedError } from '#libs/errors/index.ts';
import { newViewSigningBytes, proposalSigningBytes, voteSigningBytes } from '#libs/crypto/index.ts';
import { Phase, type Block, type QuorumCert, type SignRequest } from '#libs/hotstuff/index.ts';
import type { Signer } from './signer.ts';
import type { SignerWorld } from './testkit.ts';

export interface SignerHarness {
  readonly world: SignerWorld;
  /** The signer as it is now (a new object after restart). */
  signer(): Signer;
  /** Stop and start again from the same data dir. */
  restart(): Promise<void>;
  close(): Promise<void>;
}

/** Asserts `p` is refused with `rule` (FedError SIGNER_REFUSED/SIGNER_BAD_REQUEST, details.rule). */
export async function refused(p: Promise<unknown>, rule: string): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(isFedError(err), `a FedError, got ${String(err)}`);
    assert.equal(err.details.rule, rule, `rule of: ${err.message}`);
    assert.match(err.message, new RegExp(`^rule=${rule}: `));
    return true;
  });
}

export function signerContract(label: string, make: () => Promise<SignerHarness>): void {
  describe(`Signer contract: ${label}`, () => {
    let h: SignerHarness;
    let w: SignerWorld;
    let b1: Block;
    let b2: Block;
    let prepare1: QuorumCert;
    let precommit1: QuorumCert;
    const sign = (r: SignRequest) => h.signer().sign(r);
    const prepareVote = (view: number, block: Block, justify: QuorumCert): SignRequest =>
      ({ kind: 'vote', epoch: 0, phase: Phase.PREPARE, view, blockHash: block.hash, header: block.header, justify });
    const verifies = (message: Uint8Array, signature: Uint8Array) =>
      assert.equal(w.slh.verifySync(w.keys[w.self]!.publicKey, message, signature), true, 'signature verifies under the signer key');

    before(async () => {
      h = await make();
      w = h.world;
      b1 = w.block(1, w.genesis, { proposer: w.self });
      b2 = w.block(2, b1);
      prepare1 = await w.qc(Phase.PREPARE, 1, b1.hash);
      precommit1 = await w.qc(Phase.PRE_COMMIT, 1, b1.hash);
    });
    after(() => h.close());

    test('identity: the configured key, its index and the chain', async () => {
      const id = await h.signer().identity();
      assert.deepEqual(new Uint8Array(id.publicKey), w.keys[w.self]!.publicKey);
      assert.equal(id.validatorIndex, w.self);
      assert.equal(id.validatorCount, w.n);
      assert.equal(id.chainId, w.chainId);
    });

    test('proposal: signed when well formed; another proposer or chain is refused', async () => {
      await refused(sign({ kind: 'proposal', epoch: 0, view: 1, block: w.block(1, w.genesis, { proposer: (w.self + 1) % w.n }), justify: w.gqc }), 'proposer');
      const wrongChain = w.block(1, w.genesis, { proposer: w.self });
      wrongChain.header = { ...wrongChain.header, chainId: 'other-chain' };
      await refused(sign({ kind: 'proposal', epoch: 0, view: 1, block: wrongChain, justify: w.gqc }), 'chain-id');
      const r = await sign({ kind: 'proposal', epoch: 0, view: 1, block: b1, justify: w.gqc });
      verifies(proposalSigningBytes({ chainId: w.chainId, epoch: 0, view: 1, blockHash: b1.hash, justify: w.gqc }), r.signature);
      await refused(sign({ kind: 'proposal', epoch: 0, view: 1, block: w.block(1, w.genesis, { proposer: w.self, salt: 7 }), justify: w.gqc }), 'one-per-slot');
    });

    test('PREPARE vote: parent must be the justify block and the justify QC must verify', async () => {
      await refused(sign(prepareVote(1, w.block(1, b1, { salt: 1 }), w.gqc)), 'parent');
      const forged = { ...prepare1, view: 1, blockHash: w.genesis.hash, signatures: prepare1.signatures.map((s) => s.slice().fill(1, 0, 8)) };
      await refused(sign(prepareVote(2, w.block(2, w.genesis), forged)), 'justify-qc');
      const tooFew = { ...prepare1, signers: prepare1.signers.slice(1), signatures: prepare1.signatures.slice(1) };
      await refused(sign(prepareVote(2, b2, tooFew)), 'justify-qc');
    });

    test('PREPARE vote: signed; an identical request gets the same signature; another block is refused', async () => {
      const first = await sign(prepareVote(1, b1, w.gqc));
      assert.equal(first.replayed, false);
      verifies(voteSigningBytes({ chainId: w.chainId, epoch: 0, phase: Phase.PREPARE, view: 1, blockHash: b1.hash }), first.signature);
      const again = await sign(prepareVote(1, b1, w.gqc));
      assert.equal(again.replayed, true);
      assert.deepEqual(again.signature, first.signature);
      await refused(sign(prepareVote(1, w.block(1, w.genesis, { salt: 3 }), w.gqc)), 'one-per-slot');
    });

    test('PRE-COMMIT vote: needs a valid prepareQC of the same view and block', async () => {
      const vote = (qc: QuorumCert): SignRequest => ({ kind: 'vote', epoch: 0, phase: Phase.PRE_COMMIT, view: 1, blockHash: b1.hash, prepareQC: qc });
      await refused(sign(vote(precommit1)), 'prepare-qc'); // wrong phase
      await refused(sign(vote({ ...prepare1, blockHash: w.genesis.hash })), 'prepare-qc');
      await refused(sign(vote({ ...prepare1, signatures: [prepare1.signatures[1]!, prepare1.signatures[0]!, prepare1.signatures[2]!] })), 'prepare-qc');
      const r = await sign(vote(prepare1));
      verifies(voteSigningBytes({ chainId: w.chainId, epoch: 0, phase: Phase.PRE_COMMIT, view: 1, blockHash: b1.hash }), r.signature);
    });

    test('COMMIT vote: needs a valid precommitQC, then the lock moves to it', async () => {
      const vote = (qc: QuorumCert): SignRequest => ({ kind: 'vote', epoch: 0, phase: Phase.COMMIT, view: 1, blockHash: b1.hash, precommitQC: qc });
      await refused(sign(vote(prepare1)), 'precommit-qc');
      await sign(vote(precommit1));
      // Locked on b1 at view 1: a block on genesis justified by the genesis QC is unsafe now.
      await refused(sign(prepareVote(2, w.block(2, w.genesis), w.gqc)), 'lock');
    });

    test('monotonic: a (view, phase) below the last vote is refused even if never signed', async () => {
      await refused(sign({ kind: 'vote', epoch: 0, phase: Phase.PRE_COMMIT, view: 1, blockHash: w.genesis.hash, prepareQC: w.gqc }), 'one-per-slot');
      const r = await sign(prepareVote(2, b2, prepare1)); // justify block is the locked block
      assert.equal(r.replayed, false);
      await refused(sign(prepareVote(1, w.block(1, w.genesis, { salt: 9 }), w.gqc)), 'monotonic');
    });

    test('NEW-VIEW: only above the last one; identical repeats replay, another highQC is refused', async () => {
      const r = await sign({ kind: 'new-view', epoch: 0, view: 3, highQC: prepare1 });
      verifies(newViewSigningBytes({ chainId: w.chainId, epoch: 0, view: 3, highQC: prepare1 }), r.signature);
      assert.deepEqual((await sign({ kind: 'new-view', epoch: 0, view: 3, highQC: prepare1 })).signature, r.signature);
      await refused(sign({ kind: 'new-view', epoch: 0, view: 3, highQC: w.gqc }), 'one-per-slot');
      await refused(sign({ kind: 'new-view', epoch: 0, view: 2, highQC: prepare1 }), 'monotonic');
      await refused(sign({ kind: 'new-view', epoch: 0, view: 4, highQC: precommit1 }), 'high-qc');
    });

    test('after a restart every refusal still holds and repeats still replay', async () => {
      const before = await sign(prepareVote(2, b2, prepare1));
      await h.restart();
      const after = await sign(prepareVote(2, b2, prepare1));
      assert.equal(after.replayed, true);
      assert.deepEqual(after.signature, before.signature);
      await refused(sign(prepareVote(2, w.block(2, b1, { salt: 5 }), prepare1)), 'one-per-slot');
      await refused(sign(prepareVote(1, w.block(1, w.genesis, { salt: 11 }), w.gqc)), 'monotonic');
      await refused(sign(prepareVote(3, w.block(3, w.genesis), w.gqc)), 'lock');
      await refused(sign({ kind: 'new-view', epoch: 0, view: 3, highQC: w.gqc }), 'one-per-slot');
      await refused(sign({ kind: 'proposal', epoch: 0, view: 1, block: w.block(1, w.genesis, { proposer: w.self, salt: 13 }), justify: w.gqc }), 'one-per-slot');
    });

    test('concurrent identical and conflicting requests: one distinct signature per slot', async () => {
      const a = w.block(10, b1, { salt: 1 });
      const b = w.block(10, b1, { salt: 2 });
      const requests = Array.from({ length: 8 }, (_, i) => prepareVote(10, i % 2 ? a : b, prepare1));
      const results = await Promise.allSettled(requests.map((r) => sign(r)));
      const ok = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
      assert.equal(ok.length, 4, 'the four requests of the winning block succeed');
      assert.equal(new Set(ok.map((r) => Buffer.from(r.signature).toString('hex'))).size, 1, 'one distinct signature');
      assert.equal(ok.filter((r) => !r.replayed).length, 1, 'signed once, replayed three times');
      for (const r of results) if (r.status === 'rejected') assert.equal(r.reason.details.rule, 'one-per-slot');
    });
  });
}
