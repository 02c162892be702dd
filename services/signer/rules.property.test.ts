// Property test: random request sequences through the real rules (rules.ts) and through a
// reference model written from basic HotStuff's voting rules, not from rules.ts. The model keeps
// the whole history of what it signed and derives everything from it (no counters, no "recent"
// window): a slot holds one message, a kind's slots only go up, the lock is the newest
// precommitQC of any COMMIT vote signed, a PREPARE vote needs its justify on the locked block or
// newer than the lock, a request may not reach more than MAX_JUMP views past the QC it carries,
// a proposal only for a view this signer leads. Both must agree on every request; replays must
// return the first signature; no slot may ever hold two messages. QC validity is a fact both
// sides read from the QC itself (a marker byte), as the signer reads it from its QC checker.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { blockHash, newViewSigningBytes, proposalSigningBytes, toHex, voteSigningBytes } from '#libs/crypto/index.ts';
import { Phase, genesisBlock, genesisQC, type Block, type BlockHeader, type QuorumCert, type SignRequest } from '#libs/hotstuff/index.ts';
import { testValidatorSet } from '#libs/validators/test-kit.ts';
import { applySigned, decide, initialSafety, type RuleContext, type SignerSafety } from './rules.ts';

const CHAIN = 'prop-chain';
const N = 4;
const SELF = 1;
const MAX_JUMP = 3;
const genesis = genesisBlock(CHAIN, blockHash);
const gqc = genesisQC(genesis);

function mkBlock(view: number, parent: Block, salt: number): Block {
  const header: BlockHeader = { chainId: CHAIN, epoch: 0, height: parent.header.height + 1, view, parentHash: parent.hash, proposer: SELF,
    timestampMs: view * 100 + salt, txRoot: new Uint8Array(32), stateHash: new Uint8Array(32) };
  return { header, hash: blockHash(header), txs: [] };
}

// A small universe of blocks with varied ancestry over views 1..9 (SELF leads 1, 5, 9): index 0 is genesis.
const POOL: Block[] = [genesis];
for (let v = 1; v <= 9; v++) for (let k = 0; k < 2; k++) POOL.push(mkBlock(v, POOL[(v * 7 + k * 3) % POOL.length]!, k));

const marked = (phase: Phase, view: number, hash: Uint8Array, valid: boolean): QuorumCert =>
  ({ phase, view, blockHash: hash, signers: [0, 1, 2], signatures: [new Uint8Array([valid ? 1 : 0])] });
const isValid = (qc: QuorumCert): boolean =>
  (qc.view === 0 && qc.signers.length === 0 && toHex(qc.blockHash) === toHex(genesis.hash)) || (qc.view >= 1 && qc.signatures[0]?.[0] === 1);

const qcArb = fc.record({ phase: fc.constantFrom(1, 2, 3), view: fc.integer({ min: 0, max: 9 }), block: fc.nat(POOL.length - 1), valid: fc.boolean() })
  .map(({ phase, view, block, valid }): QuorumCert => {
    if (view === 0 && block === 0 && phase === 1 && valid) return gqc;
    return marked(phase as Phase, view, POOL[block]!.hash, valid);
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
  return parent.header.view === 0 ? gqc : marked(Phase.PREPARE, parent.header.view, parent.hash, valid);
}

const justifyArb = (header: BlockHeader) => fc.oneof(
  { arbitrary: fc.boolean().map((valid) => parentQC(header, valid)), weight: 3 },
  { arbitrary: qcArb, weight: 1 },
);

/** View offsets: mostly the header's view, sometimes later (a wrong header view, or a view jump). */
const shiftArb = fc.constantFrom(0, 0, 0, 1, 4);

const requestArb: fc.Arbitrary<SignRequest> = fc.oneof(
  fc.tuple(headerArb, shiftArb).chain(([h, s]) => justifyArb(h.header).map((j) => [h, j, s] as const)).map(([h, justify, s]) => ({
    kind: 'proposal' as const, epoch: 0, view: h.header.view + s, block: { header: h.header, hash: h.hash, txs: [] }, justify,
  })),
  fc.tuple(headerArb, shiftArb).chain(([h, s]) => justifyArb(h.header).map((j) => [h, j, s] as const)).map(([h, justify, s]) => ({
    kind: 'vote' as const, epoch: 0, phase: Phase.PREPARE, view: h.header.view + s, blockHash: h.hash, header: h.header, justify,
  })),
  fc.tuple(fc.integer({ min: 1, max: POOL.length - 1 }), qcArb, fc.boolean(), fc.boolean(), fc.constantFrom(Phase.PRE_COMMIT, Phase.COMMIT))
    .map(([block, any, matching, valid, phase]): SignRequest => {
      const b = POOL[block]!;
      const evidence = matching ? marked((phase - 1) as Phase, b.header.view, b.hash, valid) : any;
      return phase === Phase.PRE_COMMIT
        ? { kind: 'vote', epoch: 0, phase, view: b.header.view, blockHash: b.hash, prepareQC: evidence }
        : { kind: 'vote', epoch: 0, phase, view: b.header.view, blockHash: b.hash, precommitQC: evidence };
    }),
  fc.tuple(fc.integer({ min: 1, max: 12 }), qcArb).map(([view, highQC]) => ({ kind: 'new-view' as const, epoch: 0, view, highQC })),
);

// ---------------------------------------------------------------- the reference model

/** One signed message, as the model remembers it. */
interface Entry { kind: SignRequest['kind']; view: number; phase: number; bytes: string; request: SignRequest }

type Outcome = 'sign' | 'replay' | 'refuse';

function bytesOf(r: SignRequest): string {
  if (r.kind === 'proposal') return toHex(proposalSigningBytes({ chainId: CHAIN, epoch: 0, view: r.view, blockHash: r.block.hash, justify: r.justify }));
  if (r.kind === 'new-view') return toHex(newViewSigningBytes({ chainId: CHAIN, epoch: 0, view: r.view, highQC: r.highQC }));
  return toHex(voteSigningBytes({ chainId: CHAIN, epoch: 0, phase: r.phase, view: r.view, blockHash: r.blockHash }));
}

const phaseOf = (r: SignRequest) => (r.kind === 'vote' ? r.phase : 0);
/** Slot order: by view, then phase (votes); -1/0/1. */
const order = (a: { view: number; phase: number }, b: { view: number; phase: number }) => Math.sign(a.view - b.view) || Math.sign(a.phase - b.phase);

/** The QC a request stands on (its view bounds the request's view). */
function standsOn(r: SignRequest): QuorumCert {
  if (r.kind === 'proposal') return r.justify;
  if (r.kind === 'new-view') return r.highQC;
  if (r.phase === Phase.PREPARE) return r.justify;
  return r.phase === Phase.PRE_COMMIT ? r.prepareQC : r.precommitQC;
}

/** The lock: the newest precommitQC among the COMMIT votes signed; genesis before any. */
function lockOf(history: Entry[]): { view: number; block: string } {
  let lock = { view: 0, block: toHex(genesis.hash) };
  for (const e of history) {
    const r = e.request;
    if (r.kind === 'vote' && r.phase === Phase.COMMIT && r.precommitQC.view > lock.view) lock = { view: r.precommitQC.view, block: toHex(r.precommitQC.blockHash) };
  }
  return lock;
}

/** A proposed block is well formed: our chain, its hash, its view, on the justify's block. */
function wellFormed(view: number, header: BlockHeader, hash: Uint8Array, justify: QuorumCert): boolean {
  return header.chainId === CHAIN && toHex(blockHash(header)) === toHex(hash) && header.view === view
    && justify.phase === Phase.PREPARE && justify.view < view && isValid(justify) && toHex(header.parentHash) === toHex(justify.blockHash);
}

function contentOk(history: Entry[], r: SignRequest): boolean {
  switch (r.kind) {
    case 'proposal':
      return r.block.header.proposer === SELF && wellFormed(r.view, r.block.header, r.block.hash, r.justify);
    case 'new-view':
      return r.highQC.phase === Phase.PREPARE && isValid(r.highQC);
    case 'vote': {
      if (r.phase === Phase.PREPARE) {
        const lock = lockOf(history);
        return wellFormed(r.view, r.header, r.blockHash, r.justify) && (toHex(r.justify.blockHash) === lock.block || r.justify.view > lock.view);
      }
      const qc = standsOn(r);
      return qc.phase === r.phase - 1 && qc.view === r.view && toHex(qc.blockHash) === toHex(r.blockHash) && isValid(qc);
    }
  }
}

function modelStep(history: Entry[], r: SignRequest): Outcome {
  const slot = { kind: r.kind, view: r.view, phase: phaseOf(r) };
  const bytes = bytesOf(r);
  const same = history.filter((e) => e.kind === slot.kind && order(e, slot) === 0).at(-1);
  let fresh = true;
  if (same) {
    if (same.bytes === bytes) return 'replay';
    const resign = r.kind === 'new-view' && same.request.kind === 'new-view' && r.highQC.view > same.request.highQC.view;
    if (!resign) return 'refuse';
    fresh = false;
  }
  if (fresh && history.some((e) => e.kind === slot.kind && order(e, slot) >= 0)) return 'refuse';
  if (r.view - standsOn(r).view > MAX_JUMP) return 'refuse';
  // The ring positions the schedule may choose: view mod N, or one of the f after it outside probe rotations (every 8th of N views).
  const k = (SELF - (r.view % N) + N) % N;
  if (r.kind === 'proposal' && k !== 0 && (k > Math.floor((N - 1) / 3) || Math.floor(r.view / N) % 8 === 0)) return 'refuse';
  if (!contentOk(history, r)) return 'refuse';
  history.push({ ...slot, bytes, request: r });
  return 'sign';
}

// ---------------------------------------------------------------- the property

const ctx: RuleContext = {
  chainId: CHAIN, epoch: 0, self: SELF, mayLead: (v, who) => testValidatorSet(N).mayLead(v, who), maxViewJump: MAX_JUMP, hashBlock: blockHash,
  qcError: (qc) => (isValid(qc) ? null : 'invalid'),
};

test('the rules agree with an independent model of the voting rules and never sign one slot twice', () => {
  const seen = { sign: 0, replay: 0, refuse: 0 };
  // Requests drawn from a small set, so repeats (replays, second messages for a slot) are common.
  const sequenceArb = fc.array(requestArb, { minLength: 1, maxLength: 16 })
    .chain((set) => fc.array(fc.nat(set.length - 1), { minLength: 1, maxLength: 40 }).map((ix) => ix.map((i) => set[i]!)));
  fc.assert(fc.property(sequenceArb, (requests) => {
    let state: SignerSafety = initialSafety(CHAIN, 'aa', genesis.hash);
    const history: Entry[] = [];
    const issued = new Map<string, { digest: string; signature: string }>();
    let counter = 0;
    for (const r of requests) {
      const expected = modelStep(history, r);
      const d = decide(state, r, ctx);
      const key = `${d.slot.kind}:${d.slot.view}:${d.slot.phase}`;
      seen[d.type]++;
      switch (d.type) {
        case 'sign': {
          assert.equal(expected, 'sign', `rules signed ${key}, the model says ${expected}`);
          const signature = new Uint8Array([++counter & 0xff, counter >> 8]);
          const first = issued.get(key);
          assert.ok(!first || r.kind === 'new-view', `second signature for ${key}`);
          issued.set(key, { digest: d.digest, signature: toHex(signature) });
          state = applySigned(state, d, signature);
          break;
        }
        case 'replay':
          assert.equal(expected, 'replay', `rules replayed ${key}, the model says ${expected}`);
          assert.equal(toHex(d.signature), issued.get(key)?.signature, 'a replay returns the signature issued');
          assert.equal(d.digest, issued.get(key)?.digest);
          break;
        case 'refuse':
          // The model keeps every slot; the signer keeps the last few, so an old identical repeat may be refused.
          if (expected === 'replay') assert.equal(d.rule, 'monotonic', `old repeat of ${key} refused with ${d.rule}`);
          else assert.equal(expected, 'refuse', `rules refused ${key} (${d.rule}: ${d.reason}), the model signs`);
          break;
      }
      const lock = lockOf(history);
      assert.deepEqual(state.locked, { view: lock.view, blockHash: lock.block }, 'the lock agrees');
    }
  }), { numRuns: 500, seed: 20261122 });
  // The generator must reach every outcome often, or the property says little.
  for (const [k, v] of Object.entries(seen)) assert.ok(v > 100, `${k}: ${v}`);
});
