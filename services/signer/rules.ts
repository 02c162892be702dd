// The signer's voting rules as pure functions: (safety state, request, facts) → decision, and
// (state, decision, signature) → next state. No I/O, no clock, no randomness, so the in-process
// signer, the gRPC signer and the fast-check reference model all run exactly this code.
// QC validity is a fact handed in (ctx.qcError): checking signatures is the caller's job.
// Must never produce a 'sign' decision for a slot that already holds a different message,
// nor for a slot below the last one signed of its kind.

import { sha256, toHex } from '#libs/crypto/index.ts';
import { signingBytesOfRequest } from '#libs/wire/index.ts';
import { isFedError } from '#libs/errors/index.ts';
import { Phase, bytesEqual, type BlockHeader, type QuorumCert, type SignRequest } from '#libs/hotstuff/index.ts';

/** Every rule a refusal can name; docs/signer.md explains each. */
export const RULES = [
  'malformed', 'one-per-slot', 'monotonic', 'chain-id', 'block-hash', 'header', 'proposer',
  'parent', 'justify-qc', 'lock', 'prepare-qc', 'precommit-qc', 'high-qc',
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
  signature: Uint8Array;
}

export interface LockRef { view: number; blockHash: string }

/** What must survive a crash so the signer never signs against its past. */
export interface SignerSafety {
  chainId: string;
  publicKey: string;
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

export interface RuleContext {
  chainId: string;
  /** This signer's index in its own validator set. */
  self: number;
  hashBlock(header: BlockHeader): Uint8Array;
  /** null when the QC is valid against the signer's own validator set, else why not. */
  qcError(qc: QuorumCert): string | null;
}

export type Decision =
  | { type: 'sign'; slot: Slot; message: Uint8Array; digest: string; blockHash: string; lock: LockRef | null }
  | { type: 'replay'; slot: Slot; digest: string; blockHash: string; signature: Uint8Array }
  | { type: 'refuse'; slot: Slot; rule: Rule; reason: string };

export function initialSafety(chainId: string, publicKey: string, genesisHash: Uint8Array): SignerSafety {
  return {
    chainId, publicKey,
    lastVote: { view: 0, phase: 0 },
    lastProposalView: 0,
    lastNewView: 0,
    locked: { view: 0, blockHash: toHex(genesisHash) },
    recent: [],
    signed: 0,
  };
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

function admitOrDecide(state: SignerSafety, req: SignRequest, chainId: string): Decision | Admitted {
  const slot = slotOf(req);
  const refuse = (rule: Rule, reason: string): Decision => ({ type: 'refuse', slot, rule, reason });
  if (!Number.isSafeInteger(req.view) || req.view < 1) return refuse('malformed', `view ${req.view} is not a positive integer`);
  let message: Uint8Array;
  try {
    message = signingBytes(req, chainId);
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
    return refuse('one-per-slot', `${key} already signed for block ${earlier.blockHash.slice(0, 16)}…, refused block ${blockHash.slice(0, 16)}…`);
  }
  const pos = againstLast(state, slot);
  if (pos === 0) return refuse('one-per-slot', `${key} is already signed (${describeLast(state, slot.kind)})`);
  if (pos < 0) return refuse('monotonic', `${key} is below the ${describeLast(state, slot.kind)}`);
  return { slot, message, digest, blockHash };
}

/**
 * The decision that needs no QC check (a replay, a slot conflict, a stale slot, a malformed
 * request), or null when the full rules must run. Lets the caller skip verifying signatures.
 */
export function admit(state: SignerSafety, req: SignRequest, chainId: string): Decision | null {
  const r = admitOrDecide(state, req, chainId);
  return 'type' in r ? r : null;
}

/** The whole rule set: the slot rules, then the content rules of the request's kind. */
export function decide(state: SignerSafety, req: SignRequest, ctx: RuleContext): Decision {
  const admitted = admitOrDecide(state, req, ctx.chainId);
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
  return { type: 'sign', ...admitted, lock };
}

const short = (h: Uint8Array | string) => (typeof h === 'string' ? h : toHex(h)).slice(0, 16) + '…';

function headerRefusal(header: BlockHeader, hash: Uint8Array, view: number, ctx: RuleContext): [Rule, string] | null {
  if (header.chainId !== ctx.chainId) return ['chain-id', `header chain id ${JSON.stringify(header.chainId)} is not ${JSON.stringify(ctx.chainId)}`];
  if (!bytesEqual(ctx.hashBlock(header), hash)) return ['block-hash', `block hash ${short(hash)} is not the hash of the header`];
  if (header.view !== view) return ['header', `header view ${header.view} != view ${view}`];
  return null;
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
      const bad = headerRefusal(h, req.block.hash, req.view, ctx);
      if (bad) return bad;
      if (h.proposer !== ctx.self) return ['proposer', `header proposer ${h.proposer} is not this signer (validator ${ctx.self})`];
      return justifyRefusal(h, req.justify, req.view, ctx);
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
  const entry: SignedSlot = { ...slot, digest: decision.digest, blockHash: decision.blockHash, signature };
  next.recent = trimRecent([...state.recent, entry]);
  return next;
}

/** Keeps the newest RECENT_LIMIT entries of each kind (by slot order), oldest first. */
export function trimRecent(recent: readonly SignedSlot[]): SignedSlot[] {
  const byKind = (kind: SlotKind) => recent.filter((r) => r.kind === kind)
    .sort((a, b) => a.view - b.view || a.phase - b.phase)
    .slice(-RECENT_LIMIT[kind]);
  return [...byKind('proposal'), ...byKind('vote'), ...byKind('new-view')];
}
