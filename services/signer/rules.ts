// The signer's voting rules as pure functions: (safety state, request, facts) → decision, and
// (state, decision, signature) → next state. No I/O, no clock, no randomness, so the in-process
// signer, the gRPC signer and the fast-check reference model all run exactly this code.
// QC validity is a fact handed in (ctx.qcError): checking signatures is the caller's job.
// Must never produce a 'sign' decision for a slot that already holds a different message
// (the one exception: a NEW-VIEW re-signed with a newer highQC, which no vote rule depends on),
// nor for a slot below the last one signed of its kind, nor for a view further than
// maxViewJump beyond the QC the request carries (one request must not be able to push the
// marks to the end of time), nor a proposal for a view this signer does not lead.

import { sha256, toHex } from '#libs/crypto/index.ts';
import { signingBytesOfRequest } from '#libs/wire/index.ts';
import { isFedError } from '#libs/errors/index.ts';
import { Phase, bytesEqual, headerError, type BlockHeader, type HeaderField, type QuorumCert, type SignRequest } from '#libs/hotstuff/index.ts';

/** Every rule a refusal can name; docs/signer.md explains each. */
export const RULES = [
  'malformed', 'epoch', 'one-per-slot', 'monotonic', 'view-jump', 'leader', 'chain-id', 'block-hash', 'header', 'proposer',
  'parent', 'justify-qc', 'lock', 'prepare-qc', 'precommit-qc', 'high-qc', 'reconfig', 'epoch-proof',
] as const;
export type Rule = (typeof RULES)[number];

export type SlotKind = SignRequest['kind'];
/** Proposals and new-views have no phase: 0. Votes are ordered by (view, phase). */
export interface Slot { kind: SlotKind; view: number; phase: 0 | Phase }

export interface SignedSlot extends Slot {
  /** SHA-256 (hex) of the canonical signing bytes: "identical request" means equal digests. */
  digest: string;
  /** The block voted or proposed (for a new-view, the highQC's block), hex. */
  blockHash: string;
  /** NEW-VIEW only: the highQC's view, so a re-sign of the slot can be checked to move it forward. */
  qcView?: number;
  signature: Uint8Array;
}

export interface LockRef { view: number; blockHash: string }

/** What must survive a crash so the signer never signs against its past. */
export interface SignerSafety {
  chainId: string;
  publicKey: string;
  /**
   * The epoch these marks are for. Views restart at 1 in each epoch, so the marks of an ended
   * epoch mean nothing in the next: the signer starts the next epoch's afresh (epochSafety) once
   * it has been shown the proof that the epoch ended, and never signs for an earlier one again.
   */
  epoch: number;
  lastVote: { view: number; phase: 0 | Phase };
  lastProposalView: number;
  lastNewView: number;
  locked: LockRef;
  /** The last few signed slots of each kind, so an identical repeat gets the stored signature. */
  recent: SignedSlot[];
  /** Signatures issued so far (replays not counted). */
  signed: number;
}

/** How many signed slots of each kind are kept for identical repeats (signatures are ~17 KB). */
export const RECENT_LIMIT: Readonly<Record<SlotKind, number>> = { vote: 3, proposal: 1, 'new-view': 1 };

/** What the cheap rules (no QC signature checked) need. */
export interface AdmitContext {
  chainId: string;
  /**
   * The epoch of this signer's validator set: it signs for no other (reconfiguration.md; until
   * epochs are wired into the services every signer runs epoch 0).
   */
  epoch: number;
  /** This signer's index in its own validator set. */
  self: number;
  /**
   * Could validator `who` lead `view` in its own validator set (ValidatorSet.mayLead of
   * signer.yaml's validators)? The signer holds no committed record, so it checks the ring
   * positions the schedule can choose (libs/hotstuff schedule.ts): the round-robin leader or, when
   * the schedule skips members, one of the f after it.
   */
  mayLead(view: number, who: number): boolean;
  /** A request at view v must carry a QC of view ≥ v − maxViewJump (signer.yaml max_view_jump). */
  maxViewJump: number;
}

export interface RuleContext extends AdmitContext {
  hashBlock(header: BlockHeader): Uint8Array;
  /** null when the QC is valid against the signer's own validator set, else why not. */
  qcError(qc: QuorumCert): string | null;
}

export type Decision =
  | { type: 'sign'; slot: Slot; message: Uint8Array; digest: string; blockHash: string; lock: LockRef | null; qcView?: number }
  | { type: 'replay'; slot: Slot; digest: string; blockHash: string; signature: Uint8Array }
  | { type: 'refuse'; slot: Slot; rule: Rule; reason: string };

export function initialSafety(chainId: string, publicKey: string, genesisHash: Uint8Array): SignerSafety {
  return {
    chainId, publicKey, epoch: 0,
    lastVote: { view: 0, phase: 0 },
    lastProposalView: 0,
    lastNewView: 0,
    locked: { view: 0, blockHash: toHex(genesisHash) },
    recent: [],
    signed: 0,
  };
}

/**
 * The marks for `epoch`, whose root (the last block of the epoch before, which the engine treats as
 * that epoch's genesis) is `rootHash`: nothing signed, locked on the root. The signed count goes on.
 */
export function epochSafety(state: SignerSafety, epoch: number, rootHash: Uint8Array): SignerSafety {
  return { ...initialSafety(state.chainId, state.publicKey, rootHash), epoch, signed: state.signed };
}

export function slotOf(req: SignRequest): Slot {
  return { kind: req.kind, view: req.view, phase: req.kind === 'vote' ? req.phase : 0 };
}

export function slotKey(s: Slot): string {
  return `${s.kind}:${s.view}:${s.phase}`;
}

/** The bytes a signature over this request covers: the one definition in libs/wire. */
export function signingBytes(req: SignRequest, chainId: string): Uint8Array {
  return signingBytesOfRequest(chainId, req);
}

/**
 * The QC a request stands on: its signatures are checked against the signer's own validator set,
 * and its view is what the federation provably reached (2f+1 signed it).
 */
export function evidenceQc(req: SignRequest): QuorumCert {
  switch (req.kind) {
    case 'proposal': return req.justify;
    case 'new-view': return req.highQC;
    case 'vote':
      switch (req.phase) {
        case Phase.PREPARE: return req.justify;
        case Phase.PRE_COMMIT: return req.prepareQC;
        case Phase.COMMIT: return req.precommitQC;
      }
  }
}

function blockOf(req: SignRequest): Uint8Array {
  switch (req.kind) {
    case 'proposal': return req.block.hash;
    case 'vote': return req.blockHash;
    case 'new-view': return req.highQC.blockHash;
  }
}

/** -1, 0, 1: where `slot` stands against the last signed slot of its kind. */
function againstLast(state: SignerSafety, slot: Slot): number {
  const cmp = (a: number, b: number) => Math.sign(a - b);
  switch (slot.kind) {
    case 'vote': return cmp(slot.view, state.lastVote.view) || cmp(slot.phase, state.lastVote.phase);
    case 'proposal': return cmp(slot.view, state.lastProposalView);
    case 'new-view': return cmp(slot.view, state.lastNewView);
  }
}

function describeLast(state: SignerSafety, kind: SlotKind): string {
  switch (kind) {
    case 'vote': return `last vote (view ${state.lastVote.view}, phase ${state.lastVote.phase})`;
    case 'proposal': return `last proposal view ${state.lastProposalView}`;
    case 'new-view': return `last new-view ${state.lastNewView}`;
  }
}

type Admitted = { slot: Slot; message: Uint8Array; digest: string; blockHash: string };

/** A NEW-VIEW for an already signed view may be signed again with a highQC of a higher view. */
function newViewResign(earlier: SignedSlot, req: SignRequest): boolean {
  return req.kind === 'new-view' && earlier.kind === 'new-view' && earlier.qcView !== undefined && req.highQC.view > earlier.qcView;
}

function admitOrDecide(state: SignerSafety, req: SignRequest, ctx: AdmitContext): Decision | Admitted {
  const slot = slotOf(req);
  const refuse = (rule: Rule, reason: string): Decision => ({ type: 'refuse', slot, rule, reason });
  if (!Number.isSafeInteger(req.view) || req.view < 1) return refuse('malformed', `view ${req.view} is not a positive integer`);
  if (req.epoch !== ctx.epoch) return refuse('epoch', `epoch ${req.epoch} is not this signer's epoch ${ctx.epoch}`);
  const header = req.kind === 'proposal' ? req.block.header : req.kind === 'vote' && req.phase === Phase.PREPARE ? req.header : null;
  if (header && header.epoch !== req.epoch) return refuse('epoch', `header epoch ${header.epoch} is not the request's epoch ${req.epoch}`);
  let message: Uint8Array;
  try {
    message = signingBytes(req, ctx.chainId);
  } catch (err) {
    if (isFedError(err)) return refuse('malformed', err.message);
    throw err;
  }
  const digest = toHex(sha256(message));
  const blockHash = toHex(blockOf(req));
  const key = slotKey(slot);
  const earlier = state.recent.find((r) => slotKey(r) === key);
  if (earlier) {
    if (earlier.digest === digest) return { type: 'replay', slot, digest, blockHash, signature: earlier.signature };
    if (!newViewResign(earlier, req)) {
      const was = earlier.qcView === undefined ? '' : ` (highQC view ${earlier.qcView}; a NEW-VIEW is signed again only with a higher one)`;
      return refuse('one-per-slot', `${key} already signed for block ${earlier.blockHash.slice(0, 16)}…${was}, refused block ${blockHash.slice(0, 16)}…`);
    }
  }
  if (!earlier) {
    const pos = againstLast(state, slot);
    if (pos === 0) return refuse('one-per-slot', `${key} is already signed (${describeLast(state, slot.kind)})`);
    if (pos < 0) return refuse('monotonic', `${key} is below the ${describeLast(state, slot.kind)}`);
  }
  // Cheap checks before any signature is verified: the view bound (against the QC's claimed view;
  // a forged QC is refused by the content rules after) and, for a proposal, the view's leader.
  const qc = evidenceQc(req);
  if (!Number.isSafeInteger(qc.view) || qc.view < 0) return refuse('malformed', `QC view ${qc.view} is not a non-negative integer`);
  if (req.view - qc.view > ctx.maxViewJump) {
    return refuse('view-jump', `view ${req.view} is ${req.view - qc.view} views beyond its QC's view ${qc.view} (max_view_jump ${ctx.maxViewJump})`);
  }
  if (req.kind === 'proposal') {
    if (!ctx.mayLead(req.view, ctx.self)) {
      return refuse('leader', `view ${req.view} cannot be led by this signer (validator ${ctx.self}): not its round-robin leader nor one of the f after it the schedule may choose`);
    }
  }
  return { slot, message, digest, blockHash };
}

/**
 * The decision that needs no QC check (a replay, a slot conflict, a stale slot, a malformed
 * request), or null when the full rules must run. Lets the caller skip verifying signatures.
 */
export function admit(state: SignerSafety, req: SignRequest, ctx: AdmitContext): Decision | null {
  const r = admitOrDecide(state, req, ctx);
  return 'type' in r ? r : null;
}

/** The whole rule set: the slot rules, then the content rules of the request's kind. */
export function decide(state: SignerSafety, req: SignRequest, ctx: RuleContext): Decision {
  const admitted = admitOrDecide(state, req, ctx);
  if ('type' in admitted) return admitted;
  let refusal: [Rule, string] | null;
  try {
    refusal = contentRefusal(state, req, ctx);
  } catch (err) {
    if (!isFedError(err)) throw err;
    refusal = ['malformed', err.message];
  }
  if (refusal) return { type: 'refuse', slot: admitted.slot, rule: refusal[0], reason: refusal[1] };
  const lock = req.kind === 'vote' && req.phase === Phase.COMMIT
    ? { view: req.precommitQC.view, blockHash: toHex(req.precommitQC.blockHash) } : null;
  const { slot, message, digest, blockHash } = admitted;
  return { type: 'sign', slot, message, digest, blockHash, lock, ...(req.kind === 'new-view' ? { qcView: req.highQC.view } : {}) };
}

const short = (h: Uint8Array | string) => (typeof h === 'string' ? h : toHex(h)).slice(0, 16) + '…';

/** The header checks (libs/hotstuff header.ts), each under this signer's rule for it. */
const HEADER_RULE: Partial<Record<HeaderField, Rule>> = { 'chain-id': 'chain-id', view: 'header', proposer: 'proposer', hash: 'block-hash' };

/** A proposal's header names this signer as its proposer (`proposer`); a vote's may name any. */
function headerRefusal(header: BlockHeader, hash: Uint8Array, view: number, ctx: RuleContext, proposer?: number): [Rule, string] | null {
  const bad = headerError(header, hash, { chainId: ctx.chainId, hashBlock: ctx.hashBlock, view, ...(proposer === undefined ? {} : { proposer }) });
  return bad && [HEADER_RULE[bad.field]!, bad.why];
}

/** justify must be a valid PREPARE QC below the view whose block is the header's parent. */
function justifyRefusal(header: BlockHeader, justify: QuorumCert, view: number, ctx: RuleContext): [Rule, string] | null {
  if (justify.phase !== Phase.PREPARE) return ['justify-qc', `justify is a phase ${justify.phase} QC, not PREPARE`];
  if (justify.view >= view) return ['justify-qc', `justify view ${justify.view} is not below view ${view}`];
  const why = ctx.qcError(justify);
  if (why) return ['justify-qc', `justify QC does not verify: ${why}`];
  if (!bytesEqual(header.parentHash, justify.blockHash)) {
    return ['parent', `block parent ${short(header.parentHash)} is not the justify block ${short(justify.blockHash)}`];
  }
  return null;
}

/** A PRE-COMMIT/COMMIT vote needs a valid QC of the previous phase for the same view and block. */
function evidenceRefusal(rule: Rule, qc: QuorumCert, phase: Phase, view: number, block: Uint8Array, ctx: RuleContext): [Rule, string] | null {
  if (qc.phase !== phase) return [rule, `QC phase ${qc.phase} is not ${phase}`];
  if (qc.view !== view) return [rule, `QC view ${qc.view} != vote view ${view}`];
  if (!bytesEqual(qc.blockHash, block)) return [rule, `QC block ${short(qc.blockHash)} != vote block ${short(block)}`];
  const why = ctx.qcError(qc);
  return why ? [rule, `QC does not verify: ${why}`] : null;
}

function contentRefusal(state: SignerSafety, req: SignRequest, ctx: RuleContext): [Rule, string] | null {
  switch (req.kind) {
    case 'proposal': {
      const h = req.block.header;
      return headerRefusal(h, req.block.hash, req.view, ctx, ctx.self) ?? justifyRefusal(h, req.justify, req.view, ctx);
    }
    case 'new-view': {
      if (req.highQC.phase !== Phase.PREPARE) return ['high-qc', `highQC is a phase ${req.highQC.phase} QC, not PREPARE`];
      const why = ctx.qcError(req.highQC);
      return why ? ['high-qc', `highQC does not verify: ${why}`] : null;
    }
    case 'vote':
      switch (req.phase) {
        case Phase.PREPARE: {
          const bad = headerRefusal(req.header, req.blockHash, req.view, ctx) ?? justifyRefusal(req.header, req.justify, req.view, ctx);
          if (bad) return bad;
          const locked = state.locked;
          if (toHex(req.justify.blockHash) === locked.blockHash || req.justify.view > locked.view) return null;
          return ['lock', `justify view ${req.justify.view} <= locked view ${locked.view} and justify block ${short(req.justify.blockHash)} is not the locked block ${short(locked.blockHash)}`];
        }
        case Phase.PRE_COMMIT:
          return evidenceRefusal('prepare-qc', req.prepareQC, Phase.PREPARE, req.view, req.blockHash, ctx);
        case Phase.COMMIT:
          return evidenceRefusal('precommit-qc', req.precommitQC, Phase.PRE_COMMIT, req.view, req.blockHash, ctx);
      }
  }
}

/** The state after `decision` was signed: counters up, the lock moved on COMMIT, the slot kept. */
export function applySigned(state: SignerSafety, decision: Extract<Decision, { type: 'sign' }>, signature: Uint8Array): SignerSafety {
  const { slot } = decision;
  const next: SignerSafety = { ...state, signed: state.signed + 1 };
  const key = slotKey(slot);
  switch (slot.kind) {
    case 'vote':
      next.lastVote = { view: slot.view, phase: slot.phase };
      if (decision.lock && decision.lock.view > state.locked.view) next.locked = decision.lock;
      break;
    case 'proposal':
      next.lastProposalView = slot.view;
      break;
    case 'new-view':
      next.lastNewView = slot.view;
      break;
  }
  const entry: SignedSlot = { ...slot, digest: decision.digest, blockHash: decision.blockHash,
    ...(decision.qcView === undefined ? {} : { qcView: decision.qcView }), signature };
  // A re-signed NEW-VIEW replaces its slot's entry: the newest signature is the one replayed.
  next.recent = trimRecent([...state.recent.filter((r) => slotKey(r) !== key), entry]);
  return next;
}

/** Keeps the newest RECENT_LIMIT entries of each kind (by slot order), oldest first. */
export function trimRecent(recent: readonly SignedSlot[]): SignedSlot[] {
  const byKind = (kind: SlotKind) => recent.filter((r) => r.kind === kind)
    .sort((a, b) => a.view - b.view || a.phase - b.phase)
    .slice(-RECENT_LIMIT[kind]);
  return [...byKind('proposal'), ...byKind('vote'), ...byKind('new-view')];
}
