// Property test: random request sequences through the real rules (rules.ts) and through a
// small reference model of basic HotStuff's voting rules written independently below. They must
// agree on every fresh signature; replays must return the first signature; and across all
// outputs no slot may ever hold two different messages. QC validity is a fact both sides read
// from the QC itself (a marker byte), as the signer reads it from its QC checker.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { blockHash, newViewSigningBytes, proposalSigningBytes, toHex, voteSigningBytes } from '#libs/crypto/index.ts';
import { Phase, genesisBlock, genesisQC, type Block, type BlockHeader, type QuorumCert, type SignRequest } from '#libs/hotstuff/index.ts';
import { applySigned, decide, initialSafety, type RuleContext, type SignerSafety } from './rules.ts';

const CHAIN = 'prop-chain';
const SELF = 1;
const genesis = genesisBlock(CHAIN, blockHash);
const gqc = genesisQC(genesis);

function mkBlock(view: number, parent: Block, salt: number): Block {
  const header: BlockHeader = { chainId: CHAIN, height: parent.header.height + 1, view, parentHash: parent.hash, proposer: SELF,
    timestampMs: view * 100 + salt, txRoot: new Uint8Array(32), stateHash: new Uint8Array(32) };
  return { header, hash: blockHash(header), txs: [] };
}

// A small universe of blocks with varied ancestry: index 0 is genesis.
const POOL: Block[] = [genesis];
for (let v = 1; v <= 5; v++) for (let k = 0; k < 2; k++) POOL.push(mkBlock(v, POOL[(v * 7 + k * 3) % POOL.length]!, k));

const isValid = (qc: QuorumCert): boolean =>
  (qc.view === 0 && qc.signers.length === 0 && toHex(qc.blockHash) === toHex(genesis.hash)) || (qc.view >= 1 && qc.signatures[0]?.[0] === 1);

const qcArb = fc.record({ phase: fc.constantFrom(1, 2, 3), view: fc.integer({ min: 0, max: 6 }), block: fc.nat(POOL.length - 1), valid: fc.boolean() })
  .map(({ phase, view, block, valid }): QuorumCert => {
    const hash = POOL[block]!.hash;
    if (view === 0 && block === 0 && phase === 1 && valid) return gqc;
    return { phase: phase as Phase, view, blockHash: hash, signers: [0, 1, 2], signatures: [new Uint8Array([valid ? 1 : 0])] };
  });

const headerArb = fc.record({ block: fc.integer({ min: 1, max: POOL.length - 1 }), otherProposer: fc.boolean(), tamper: fc.constantFrom(false, false, false, true) })
  .map(({ block, otherProposer, tamper }) => {
    const b = POOL[block]!;
    const header = otherProposer ? { ...b.header, proposer: 3 } : b.header;
    return { header, hash: tamper ? POOL[block === 1 ? 2 : 1]!.hash : blockHash(header) };
  });

/** The QC a proposal on this header would carry: a (usually valid) PREPARE QC of its parent. */
function parentQC(header: BlockHeader, valid: boolean): QuorumCert {
  const parent = POOL.find((b) => toHex(b.hash) === toHex(header.parentHash))!;
  if (parent.header.view === 0) return gqc;
  return { phase: Phase.PREPARE, view: parent.header.view, blockHash: parent.hash, signers: [0, 1, 2], signatures: [new Uint8Array([valid ? 1 : 0])] };
}

/** Mostly the well-formed justify, sometimes any QC at all. */
const justifyArb = (header: BlockHeader) => fc.oneof(
  { arbitrary: fc.boolean().map((valid) => parentQC(header, valid)), weight: 3 },
  { arbitrary: qcArb, weight: 1 },
);

/** A QC that matches the vote (same view and block) half of the time, anything otherwise. */
const evidenceArb = fc.tuple(qcArb, fc.boolean(), fc.boolean());

const requestArb: fc.Arbitrary<SignRequest> = fc.oneof(
  fc.tuple(headerArb, fc.boolean()).chain(([h, w]) => justifyArb(h.header).map((j) => [h, j, w] as const)).map(([h, justify, wrongView]) => ({
    kind: 'proposal' as const, view: h.header.view + (wrongView ? 1 : 0), block: { header: h.header, hash: h.hash, txs: [] }, justify,
  })),
  fc.tuple(headerArb, fc.boolean()).chain(([h, w]) => justifyArb(h.header).map((j) => [h, j, w] as const)).map(([h, justify, wrongView]) => ({
    kind: 'vote' as const, phase: Phase.PREPARE, view: h.header.view + (wrongView ? 1 : 0), blockHash: h.hash, header: h.header, justify,
  })),
  fc.tuple(fc.integer({ min: 1, max: POOL.length - 1 }), evidenceArb, fc.constantFrom(Phase.PRE_COMMIT, Phase.COMMIT))
    .map(([block, [qc, matching, valid], phase]): SignRequest => {
      const b = POOL[block]!;
      const evidence: QuorumCert = matching
        ? { phase: phase === Phase.PRE_COMMIT ? Phase.PREPARE : Phase.PRE_COMMIT, view: b.header.view, blockHash: b.hash, signers: [0, 1, 2], signatures: [new Uint8Array([valid ? 1 : 0])] }
        : qc;
      return phase === Phase.PRE_COMMIT
        ? { kind: 'vote', phase, view: b.header.view, blockHash: b.hash, prepareQC: evidence }
        : { kind: 'vote', phase, view: b.header.view, blockHash: b.hash, precommitQC: evidence };
    }),
  fc.tuple(fc.integer({ min: 1, max: 7 }), qcArb).map(([view, highQC]) => ({ kind: 'new-view' as const, view, highQC })),
);

// ---------------------------------------------------------------- the reference model

interface Model {
  signed: Map<string, string>;
  lastVote: [number, number];
  lastProposal: number;
  lastNewView: number;
  lock: { view: number; block: string };
}

type Outcome = { type: 'sign' } | { type: 'replay' } | { type: 'refuse' };

function messageOf(r: SignRequest): Uint8Array {
  if (r.kind === 'proposal') return proposalSigningBytes({ chainId: CHAIN, view: r.view, blockHash: r.block.hash, justify: r.justify });
  if (r.kind === 'new-view') return newViewSigningBytes({ chainId: CHAIN, view: r.view, highQC: r.highQC });
  return voteSigningBytes({ chainId: CHAIN, phase: r.phase, view: r.view, blockHash: r.blockHash });
}

function modelStep(m: Model, r: SignRequest): Outcome {
  const phase = r.kind === 'vote' ? r.phase : 0;
  const key = `${r.kind}:${r.view}:${phase}`;
  const digest = toHex(messageOf(r));
  const prior = m.signed.get(key);
  if (prior !== undefined) return prior === digest ? { type: 'replay' } : { type: 'refuse' };
  const above = r.kind === 'vote' ? r.view > m.lastVote[0] || (r.view === m.lastVote[0] && phase > m.lastVote[1])
    : r.kind === 'proposal' ? r.view > m.lastProposal : r.view > m.lastNewView;
  if (!above) return { type: 'refuse' };
  if (!ok(m, r)) return { type: 'refuse' };
  m.signed.set(key, digest);
  if (r.kind === 'vote') m.lastVote = [r.view, phase];
  if (r.kind === 'proposal') m.lastProposal = r.view;
  if (r.kind === 'new-view') m.lastNewView = r.view;
  if (r.kind === 'vote' && r.phase === Phase.COMMIT && r.precommitQC.view > m.lock.view) m.lock = { view: r.view, block: toHex(r.blockHash) };
  return { type: 'sign' };
}

function safeBlock(r: { view: number; header: BlockHeader; hash: Uint8Array; justify: QuorumCert }): boolean {
  return r.header.chainId === CHAIN && toHex(blockHash(r.header)) === toHex(r.hash) && r.header.view === r.view
    && r.justify.phase === Phase.PREPARE && r.justify.view < r.view && isValid(r.justify)
    && toHex(r.header.parentHash) === toHex(r.justify.blockHash);
}

function ok(m: Model, r: SignRequest): boolean {
  switch (r.kind) {
    case 'proposal':
      return r.block.header.proposer === SELF && safeBlock({ view: r.view, header: r.block.header, hash: r.block.hash, justify: r.justify });
    case 'new-view':
      return r.highQC.phase === Phase.PREPARE && isValid(r.highQC);
    case 'vote': {
      if (r.phase === Phase.PREPARE) {
        return safeBlock({ view: r.view, header: r.header, hash: r.blockHash, justify: r.justify })
          && (toHex(r.justify.blockHash) === m.lock.block || r.justify.view > m.lock.view);
      }
      const qc = r.phase === Phase.PRE_COMMIT ? r.prepareQC : r.precommitQC;
      return qc.phase === r.phase - 1 && qc.view === r.view && toHex(qc.blockHash) === toHex(r.blockHash) && isValid(qc);
    }
  }
}

// ---------------------------------------------------------------- the property

const ctx: RuleContext = { chainId: CHAIN, self: SELF, hashBlock: blockHash, qcError: (qc) => (isValid(qc) ? null : 'invalid') };

test('the rules agree with the reference model and never sign one slot twice', () => {
  fc.assert(fc.property(fc.array(requestArb, { minLength: 1, maxLength: 40 }), (requests) => {
    let state: SignerSafety = initialSafety(CHAIN, 'aa', genesis.hash);
    const model: Model = { signed: new Map(), lastVote: [0, 0], lastProposal: 0, lastNewView: 0, lock: { view: 0, block: toHex(genesis.hash) } };
    const issued = new Map<string, { digest: string; signature: string }>();
    let counter = 0;
    for (const r of requests) {
      const expected = modelStep(model, r);
      const d = decide(state, r, ctx);
      const key = `${d.slot.kind}:${d.slot.view}:${d.slot.phase}`;
      switch (d.type) {
        case 'sign': {
          assert.equal(expected.type, 'sign', `rules signed ${key}, the model says ${expected.type}`);
          const signature = new Uint8Array([++counter & 0xff, counter >> 8]);
          const first = issued.get(key);
          assert.ok(!first, `second signature for ${key}`);
          issued.set(key, { digest: d.digest, signature: toHex(signature) });
          state = applySigned(state, d, signature);
          break;
        }
        case 'replay':
          assert.equal(expected.type, 'replay', `rules replayed ${key}, the model says ${expected.type}`);
          assert.equal(toHex(d.signature), issued.get(key)?.signature, 'a replay returns the first signature');
          assert.equal(d.digest, issued.get(key)?.digest);
          break;
        case 'refuse':
          // The model keeps every slot; the signer keeps the last few, so an old identical repeat may be refused.
          if (expected.type === 'replay') assert.equal(d.rule, 'monotonic', `old repeat of ${key} refused with ${d.rule}`);
          else assert.equal(expected.type, 'refuse', `rules refused ${key} (${d.rule}: ${d.reason}), the model signs`);
          break;
      }
      assert.equal(state.locked.view, model.lock.view, 'lock view agrees');
    }
  }), { numRuns: 400 });
});
