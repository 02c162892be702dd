// Idle views (config.waitForWork): a federation with nothing to order makes no blocks.
//
// The driver tells the engine, as a level, whether it has work (`work` events): transactions in
// its mempool, a reconfiguration to propose, or a heartbeat due (it owns the clock). A commit
// clears the level (sync.ts): the driver says again, once it has handled the commit, whether work
// remains — so a heartbeat makes one block, not one per leader that saw it. Without work
// a leader does not propose, and a member without work lets such a quiet view outlive its timer
// instead of giving it up — re-arming the timer each time it fires. A view stops being quiet, and
// is timed out as usual, as soon as any of these holds:
//   - this member has work: its timer is re-armed in full (the leader has a whole timeout to propose),
//   - a proposal came, or this member voted in the view: the view is live, with a full timer,
//   - another validator gave the view up (its NEW-VIEW for a later view): it had work and the
//     leader did not propose it, so this member gives up at once too (its timer already ran out),
//   - a block above the committed tip is prepared but not committed (a view failed half-way, or an
//     epoch's last block awaits its commit): the leader proposes even without work, to commit it,
//   - the view's leader is suspected and the view is not quiet anyway (quietAnyway below): a
//     suspected leader's view is given up when this member has work, not on entering it.
// So a member holding a transaction times a silent leader out exactly as before, and one NEW-VIEW
// brings every member along; a leader that holds back what it was handed costs what any silent
// leader costs. A Byzantine member that sends NEW-VIEWs at idle brings back at most what every
// view cost before (a timeout and an empty block). Heartbeats (work from the clock) bound how long
// a federation stays without a block, so monitoring still sees it live.

import { toHex } from './bytes.ts';
import type { EngineCore } from './core.ts';

/**
 * Another validator has given up our current view: its NEW-VIEW for the next view — what a member
 * whose timer ran out in this view sends — or f + 1 NEW-VIEWs for later views. One member's claim of
 * a view far ahead proves nothing of ours (a Byzantine member's one message would keep every view
 * from idling for good); its claims of the next view cost it a signature each, and at most bring
 * back the view changes of a federation without idle views.
 */
export function othersGaveUp(core: EngineCore): boolean {
  const next = core.claims.countAtLeast(core.view + 1);
  return next - core.claims.countAtLeast(core.view + 2) > 0 || next >= core.f + 1;
}

/** Nothing prepared above the committed tip: the highest prepared block is committed. */
export function nothingUncommitted(core: EngineCore): boolean {
  const prepared = core.tree.get(toHex(core.safety.prepareQC.blockHash));
  return prepared !== undefined && prepared.header.height <= core.tree.committed.header.height;
}

/** Nothing calls for the current view here: no work, no proposal, nobody gave it up, nothing prepared and uncommitted. */
function nothingCalls(core: EngineCore): boolean {
  return core.config.waitForWork === true && !core.workAvailable && core.round.seenProposals.size === 0
    && !othersGaveUp(core) && nothingUncommitted(core);
}

/** The current view may outlive its timer: no work here, no proposal, nobody gave it up. */
export function mayIdle(core: EngineCore): boolean {
  const round = core.round;
  return !core.halted && !core.ended && !round.skipped && !round.proposing && round.waiting === null
    && core.safety.lastVoted.view < core.view && nothingCalls(core);
}

/**
 * Nothing to order here and no one else gave the view up: the view stays quiet whoever leads it,
 * so a suspected leader costs nothing yet and its view is not given up (synchronizer.ts
 * giveUpIfSuspected) until one of these changes. Giving it up would cost the federation a view
 * change for nothing — and at a federation's start, where every member says it catches up until
 * its first commit, a member's word that it takes part again reached the others just after they
 * entered its view, and they gave it up (one view or more lost at idle, test/idle.test.ts).
 */
export function quietAnyway(core: EngineCore): boolean {
  return !core.round.judged && nothingCalls(core);
}

/** A leader without work proposes only to commit what is prepared and uncommitted. */
export function mayHoldProposal(core: EngineCore): boolean {
  return core.config.waitForWork === true && !core.workAvailable && nothingUncommitted(core);
}
