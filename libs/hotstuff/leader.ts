// The leader role: decide when to propose (a prepareQC of the previous view, or NEW-VIEWs
// from a quorum), ask the driver for a payload, check and sign it, then collect votes into
// QCs and announce them (PRE-COMMIT, COMMIT, DECIDE). Must never propose twice in a view,
// nor count a vote whose signature did not verify.

import { bytesEqual, toHex } from './bytes.ts';
import type { EngineCore } from './core.ts';
import { blockError, considerProposal, onQcAnnounce } from './replica.ts';
import { contentError, inSuffix, want } from './sync.ts';
import { mayHoldProposal } from './idle.ts';
import type { Block, Proposal, QuorumCert, Vote } from './types.ts';

export function tryPropose(core: EngineCore): void {
  const view = core.view;
  if (core.halted || core.ended || core.round.proposing || core.leaderOf(view) !== core.self) return;
  if (core.safety.proposedView >= view) return; // proposed before a restart
  if (mayHoldProposal(core)) return; // nothing to order (idle.ts)
  const high = core.safety.prepareQC;
  // After a decide, the prepareQC of the previous view is the highest QC there can be; otherwise
  // the highQC must be the highest among a quorum of NEW-VIEWs, so that it is at least every
  // honest member's lock and they can all vote for the proposal. A NEW-VIEW counts only when our
  // highQC is at least the QC it names: one for a later view than ours brought us a reference, not
  // the QC, and proposing on an older highQC then met locked members' refusals (found by the
  // specification's model-based replay, docs/specification.md).
  const ready = high.view === view - 1 || core.claims.countCovered(view, high.view) + 1 >= core.quorum;
  if (!ready) return;
  const parent = core.tree.get(toHex(high.blockHash));
  if (!parent) return want(core, high.blockHash, core.leaderOf(high.view));
  core.round.proposing = true;
  core.round.justify = high;
  core.out.push({
    type: 'request-payload',
    epoch: core.epoch,
    view,
    parentHash: parent.hash,
    parentHeight: parent.header.height,
    parentStateHash: parent.header.stateHash,
    parentTimestampMs: parent.header.timestampMs,
    empty: inSuffix(core, parent),
  });
}

export function onPayloadReady(core: EngineCore, view: number, block: Block): void {
  const round = core.round;
  if (view !== core.view || !round.proposing || round.ownProposal || !round.justify) {
    return core.reject(null, 'stale', `payload for view ${view}`);
  }
  const bad = payloadError(core, block, round.justify);
  if (bad) return core.reject(null, 'invalid_block', `payload: ${bad}`);
  round.ownProposal = block;
  core.safety.proposedView = view; // persisted before the proposal's sign request
  core.storeBlock(block);
  core.requestSign({ kind: 'proposal', epoch: core.epoch, view, block, justify: round.justify });
}

/** Our own payload passes what a replica checks of a proposal (replica.ts blockError), its height and its content. */
function payloadError(core: EngineCore, block: Block, justify: QuorumCert): string | null {
  const parent = core.tree.get(toHex(justify.blockHash));
  if (!parent) return 'parent unknown';
  const bad = blockError(core, block, core.view, core.self, justify);
  if (bad) return bad;
  if (block.header.height !== parent.header.height + 1) return 'height is not parent + 1';
  return contentError(core, block, parent);
}

/** The proposal signature came back: send it, then vote on it like any replica. */
export function onProposalSigned(core: EngineCore, view: number, block: Block, justify: QuorumCert, signature: Uint8Array): void {
  if (view !== core.view) return;
  const p: Proposal = { type: 'proposal', view, block, justify, sender: core.self, signature };
  core.round.seenProposals.set(core.self, p);
  core.emitOutbound({ type: 'broadcast', message: p });
  considerProposal(core, p);
}

export function onVote(core: EngineCore, v: Vote, own = false): void {
  if (!core.isValidator(v.sender)) return core.reject(null, 'unknown_sender', `vote from ${v.sender}`);
  if (v.view < core.view) return core.reject(v.sender, 'stale', `vote for view ${v.view} < ${core.view}`);
  if (v.view > core.view) return core.reject(v.sender, 'wrong_view', `vote for view ${v.view} > ${core.view}`);
  if (core.leaderOf(v.view) !== core.self) return core.reject(v.sender, 'not_leader', `vote for view ${v.view}`);
  const round = core.round;
  const key = `${v.sender}:${v.phase}`;
  const first = round.seenVotes.get(key);
  if (first && bytesEqual(first.blockHash, v.blockHash)) return core.reject(v.sender, 'duplicate', `vote ${key}`);
  if (!own && !core.deps.verify(v)) return core.reject(v.sender, 'invalid_signature', `vote ${key}`);
  if (first) {
    core.out.push({ type: 'evidence', evidence: { sender: v.sender, view: v.view, kind: v.phase, first, second: v } });
    return core.reject(v.sender, 'equivocation', `two votes ${key} in view ${v.view}`);
  }
  round.seenVotes.set(key, v);
  if (!round.ownProposal || !bytesEqual(v.blockHash, round.ownProposal.hash)) {
    return core.reject(v.sender, 'unknown_block', `vote ${key} for a block not proposed here`);
  }
  if (round.qcFormed.has(v.phase)) return core.reject(v.sender, 'stale', `vote ${key} after its QC formed`);
  let votes = round.votes.get(v.phase);
  if (!votes) round.votes.set(v.phase, (votes = new Map()));
  votes.set(v.sender, v);
  if (votes.size >= core.quorum) formQC(core, v, votes);
}

function formQC(core: EngineCore, v: Vote, votes: Map<number, Vote>): void {
  const signers = [...votes.keys()].sort((a, b) => a - b);
  const qc: QuorumCert = {
    phase: v.phase,
    view: v.view,
    blockHash: v.blockHash,
    signers,
    signatures: signers.map((s) => votes.get(s)!.signature),
  };
  core.round.qcFormed.add(v.phase);
  core.qcs.adopt(qc);
  const announce = { type: 'qc' as const, epoch: core.epoch, qc, sender: core.self };
  core.emitOutbound({ type: 'broadcast', message: announce });
  onQcAnnounce(core, announce, true);
}
