// The replica role: checks a proposal or a leader's QC announcement and votes. The safety
// rule lives here — vote PREPARE only if the block extends the justify block and safeNode
// holds (the block extends lockedQC's block, or the justify QC is newer than the lock) —
// and every vote goes through core.claimVote (one vote per (view, phase), persisted before
// the signature is requested). Must never vote on anything it has not checked.

import { bytesEqual, shortHex, toHex } from './bytes.ts';
import type { EngineCore } from './core.ts';
import { blockHeaderError } from './header.ts';
import { qcKey } from './qc.ts';
import { commitWith, committedHere, contentError, want } from './sync.ts';
import { leaderMisbehaved } from './synchronizer.ts';
import { Phase, type Block, type Proposal, type QcAnnounce, type QuorumCert } from './types.ts';

/** How far ahead a proposal may be buffered until this member reaches its view. */
const FUTURE_VIEWS = 2;
const FUTURE_PER_VIEW = 2;

export function onProposal(core: EngineCore, p: Proposal): void {
  if (!core.isValidator(p.sender)) return core.reject(null, 'unknown_sender', `proposal from ${p.sender}`);
  if (p.view < core.view) return core.reject(p.sender, 'stale', `proposal for view ${p.view} < ${core.view}`);
  if (core.leaderOf(p.view) !== p.sender) return core.reject(p.sender, 'not_leader', `view ${p.view}`);
  if (p.view > core.view) return bufferFuture(core, p);
  const first = core.round.seenProposals.get(p.sender);
  if (first && bytesEqual(first.block.hash, p.block.hash)) return core.reject(p.sender, 'duplicate', `proposal view ${p.view}`);
  if (!core.deps.verify(p)) return refuseProposal(core, p, 'invalid_signature', `proposal view ${p.view}`);
  if (first) {
    core.out.push({ type: 'evidence', evidence: { sender: p.sender, view: p.view, kind: 'proposal', first, second: p } });
    return core.reject(p.sender, 'equivocation', `two proposals in view ${p.view}`);
  }
  core.round.seenProposals.set(p.sender, p);
  const checked = core.qcs.check(p.justify);
  if (!checked.ok) return refuseProposal(core, p, 'invalid_qc', `justify: ${checked.why}`);
  if (checked.qc.phase !== Phase.PREPARE) return refuseProposal(core, p, 'invalid_qc', 'justify is not a PREPARE QC');
  const bad = blockError(core, p.block, p.view, p.sender, checked.qc);
  if (bad) return refuseProposal(core, p, 'invalid_block', bad);
  core.notePrepareQC(checked.qc);
  considerProposal(core, { ...p, justify: checked.qc });
}

/** A proposal its leader should never have sent: refused, and the leader's view given up at once. */
function refuseProposal(core: EngineCore, p: Proposal, reason: 'invalid_signature' | 'invalid_qc' | 'invalid_block', detail: string): void {
  core.reject(p.sender, reason, detail);
  leaderMisbehaved(core, p.view, p.sender);
}

/** What is wrong with a proposed block's header, checked without its parent (header.ts); null if nothing. */
export function blockError(core: EngineCore, block: Block, view: number, proposer: number, justify: QuorumCert): string | null {
  return blockHeaderError(block, {
    chainId: core.config.chainId, hashBlock: core.deps.hashBlock, epoch: core.epoch, view, proposer, parentHash: justify.blockHash,
  });
}

/** The part of proposal handling that needs ancestors; re-run after a fetch. */
export function considerProposal(core: EngineCore, p: Proposal): void {
  const parent = core.tree.get(toHex(p.block.header.parentHash));
  if (!parent) {
    core.round.waiting = p;
    return want(core, p.block.header.parentHash, p.sender);
  }
  const link = blockHeaderError(p.block, { parent });
  if (link) return core.reject(p.sender, 'invalid_block', link);
  // Exactly-once needs every uncommitted ancestor: fetch a missing one first.
  const path = core.tree.commitPath(parent.hash);
  if (path.kind === 'missing') {
    core.round.waiting = p;
    return want(core, path.hash, p.sender);
  }
  // Content (tx root, state hash from the now-known parent, exactly-once), re-run after a fetch.
  const bad = contentError(core, p.block, parent);
  // A proposal that waited while catch-up committed its block fails on the log: no vote, no blame.
  if (bad) return committedHere(core, p.block) ? core.reject(p.sender, 'stale', bad) : refuseProposal(core, p, 'invalid_block', bad);
  if (!safeNode(core, p)) return;
  core.storeBlock(p.block);
  if (!core.claimVote(p.view, Phase.PREPARE)) return;
  core.requestSign({
    kind: 'vote',
    epoch: core.epoch,
    phase: Phase.PREPARE,
    view: p.view,
    blockHash: p.block.hash,
    header: p.block.header,
    justify: p.justify,
  });
}

/** safeNode: extends the locked block, or justified by a QC newer than the lock. */
function safeNode(core: EngineCore, p: Proposal): boolean {
  const locked = core.safety.lockedQC;
  if (p.justify.view > locked.view) return true;
  const anc = core.tree.extendsBlock(p.block, locked.blockHash);
  switch (anc.result) {
    case 'yes':
      return true;
    case 'no':
      core.reject(p.sender, 'unsafe', `block ${shortHex(p.block.hash)} conflicts with lock of view ${locked.view}`);
      return false;
    case 'unknown':
      core.round.waiting = p;
      want(core, anc.missing, p.sender);
      return false;
  }
}

function bufferFuture(core: EngineCore, p: Proposal): void {
  if (p.view > core.view + FUTURE_VIEWS) return core.reject(p.sender, 'wrong_view', `proposal view ${p.view}, at ${core.view}`);
  const list = core.future.get(p.view) ?? [];
  if (list.length >= FUTURE_PER_VIEW) return core.reject(p.sender, 'wrong_view', `buffer for view ${p.view} full`);
  list.push(p);
  core.future.set(p.view, list);
}

/** PRE-COMMIT / COMMIT / DECIDE: the leader's announcement of a QC. */
export function onQcAnnounce(core: EngineCore, m: QcAnnounce, own = false): void {
  if (!core.isValidator(m.sender)) return core.reject(null, 'unknown_sender', `qc from ${m.sender}`);
  let qc = m.qc;
  if (!own) {
    const checked = core.qcs.check(qc);
    if (!checked.ok) return core.reject(m.sender, 'invalid_qc', checked.why);
    qc = checked.qc;
  }
  noteCertified(core, qc);
  switch (qc.phase) {
    case Phase.PREPARE:
      return onPrepareQC(core, qc, m.sender);
    case Phase.PRE_COMMIT:
      return onPrecommitQC(core, qc, m.sender);
    case Phase.COMMIT:
      return onCommitQC(core, qc, m.sender);
  }
}

/** A QC of the current view: its leader performed (the suspicion record learns it when the view ends). */
function noteCertified(core: EngineCore, qc: QuorumCert): void {
  if (qc.view === core.view) core.round.certified = true;
}

/** True the first time this QC is acted on in the current view. */
function firstInView(core: EngineCore, qc: QuorumCert, from: number): boolean {
  const key = qcKey(qc);
  if (core.round.announced.has(key)) {
    core.reject(from, 'duplicate', `qc ${key.slice(0, 16)}`);
    return false;
  }
  core.round.announced.add(key);
  return true;
}

function onPrepareQC(core: EngineCore, qc: QuorumCert, from: number): void {
  const improved = core.notePrepareQC(qc);
  if (qc.view > core.view) core.advance(qc.view, 'qc');
  noteCertified(core, qc);
  if (qc.view < core.view) {
    if (!improved) core.reject(from, 'stale', `prepareQC view ${qc.view} < ${core.view}`);
    return;
  }
  if (!firstInView(core, qc, from)) return;
  if (!core.tree.get(toHex(qc.blockHash))) want(core, qc.blockHash, from);
  if (!core.claimVote(qc.view, Phase.PRE_COMMIT)) return;
  core.requestSign({ kind: 'vote', epoch: core.epoch, phase: Phase.PRE_COMMIT, view: qc.view, blockHash: qc.blockHash, prepareQC: qc });
}

function onPrecommitQC(core: EngineCore, qc: QuorumCert, from: number): void {
  if (qc.view > core.view) core.advance(qc.view, 'qc');
  noteCertified(core, qc);
  if (qc.view < core.view) return core.reject(from, 'stale', `precommitQC view ${qc.view} < ${core.view}`);
  if (!firstInView(core, qc, from)) return;
  if (qc.view > core.safety.lockedQC.view) core.safety.lockedQC = qc; // persisted before the COMMIT vote's sign request
  if (!core.claimVote(qc.view, Phase.COMMIT)) return;
  core.requestSign({ kind: 'vote', epoch: core.epoch, phase: Phase.COMMIT, view: qc.view, blockHash: qc.blockHash, precommitQC: qc });
}

function onCommitQC(core: EngineCore, qc: QuorumCert, from: number): void {
  const progressed = commitWith(core, qc, from);
  if (core.ended) return;
  if (qc.view >= core.view) core.advance(qc.view + 1, 'commit');
  else if (!progressed) core.reject(from, 'stale', `commitQC view ${qc.view} < ${core.view}`);
}
