// View synchronisation: timeouts, NEW-VIEW messages and the rules that move a member to a
// higher view (see pacemaker.ts for why views move only on certificates and quorums).
//
// On timeout a member signs NEW-VIEW(view+1) with its prepareQC and sends it to EVERY member
// (not only to the next leader): every member needs to count NEW-VIEWs to amplify them at f+1
// and to jump at a quorum, which is what brings members split by a partition back into one
// view. Only the target view's leader gets the prepareQC itself — it proposes on the highest
// one a quorum sent — the others get a reference to it (qcRef: phase, view, block; what the
// signature covers), so the claim verifies without 2f+1 signatures of 17 KB riding along: at
// N = 21 a NEW-VIEW to all was 20 × 273 KB, now 273 KB + 19 × 17 KB.
// It keeps voting in its current view meanwhile — a late proposal can still succeed.
// Must never advance the view on fewer than a quorum of claims.

import type { EngineCore } from './core.ts';
import { isQcRef, qcRef } from './qc.ts';
import { Phase, type NewView, type QuorumCert } from './types.ts';
import { retryFetches } from './sync.ts';
import { mayIdle, othersGaveUp, quietAnyway } from './idle.ts';

/**
 * After every event: a view that outlived its timer while quiet (idle.ts) and is quiet no more.
 * Given up by another validator: so do we, at once (our timer already ran out). Work, a proposal
 * or a vote: the view is live, with a full timer from now.
 */
export function wakeFromIdle(core: EngineCore): void {
  if (!core.round.idled || mayIdle(core)) return;
  core.round.idled = false;
  if (othersGaveUp(core)) return onTimer(core, core.view, true);
  core.armTimer();
}

export function onTimer(core: EngineCore, view: number, force = false): void {
  if (view !== core.view || core.halted || core.ended) return; // a stale timer: nothing to do
  if (!force && mayIdle(core)) {
    core.round.idled = true;
    core.deps.metrics?.increment('idle_timer_extensions');
    return core.armTimer();
  }
  core.round.idled = false;
  core.deps.metrics?.increment('view_timeouts');
  core.round.timedOut = true;
  const signed = core.signedNewView;
  if (core.safety.newViewTarget < view + 1 || !signed || signed.view < view + 1) {
    // Also after a restart: the signed NEW-VIEW was not persisted, so ask for it again.
    const target = Math.max(view + 1, core.safety.newViewTarget);
    if (!pendingNewView(core, target)) requestNewView(core, target);
  } else {
    sendNewView(core, signed); // it may have been lost
  }
  retryFetches(core);
  core.armTimer();
  evaluateClaims(core);
}

/**
 * The leader of `view` sent a proposal that broke a rule (invalid, forged, stamped beyond our
 * clock): its view cannot succeed here, so it is judged failed now and given up at
 * once, not after the timer. Only the leader itself can cause this: its frames come over an
 * authenticated channel, and a proposal must be signed as the view's leader.
 */
export function leaderMisbehaved(core: EngineCore, view: number, leader: number): void {
  if (view !== core.view || core.leaderOf(view) !== leader || leader === core.self || core.round.judged || core.round.skipped) return;
  core.round.judged = true;
  core.suspicion.viewEnded(view, leader, 'failed');
  giveUpIfSuspected(core);
}

/**
 * Gives up the current view at once when its leader is suspected (suspicion.ts): the NEW-VIEW
 * our timer would send later, sent now. The view is not left — a valid proposal still gets our
 * vote — and our timer keeps running; a quorum of NEW-VIEWs (ours among them) moves us on.
 */
export function giveUpIfSuspected(core: EngineCore): void {
  const view = core.view;
  const round = core.round;
  if (round.skipped || core.halted) return;
  const leader = core.leaderOf(view);
  const reason = core.suspicion.suspects(view, leader);
  round.skipDeferred = false;
  if (!reason) return;
  // At idle a quiet view costs nothing whoever leads it: given up once this member has work or
  // another gives it up (the engine asks again after every event while this is deferred).
  if (quietAnyway(core)) {
    round.skipDeferred = true;
    return;
  }
  round.skipped = true;
  core.out.push({ type: 'view-skipped', view, leader, reason });
  core.deps.metrics?.increment('views_skipped');
  if (core.safety.newViewTarget < view + 1 && !pendingNewView(core, view + 1)) requestNewView(core, view + 1);
  evaluateClaims(core);
}

function pendingNewView(core: EngineCore, view: number): boolean {
  for (const r of core.pendingSign.values()) if (r.kind === 'new-view' && r.view >= view) return true;
  return false;
}

function requestNewView(core: EngineCore, view: number): void {
  if (view > core.safety.newViewTarget) core.safety.newViewTarget = view; // persisted before the sign request
  core.claims.setOwn(view);
  core.requestSign({ kind: 'new-view', epoch: core.epoch, view, highQC: core.safety.prepareQC });
}

export function onNewViewSigned(core: EngineCore, view: number, highQC: QuorumCert, signature: Uint8Array): void {
  if (view < core.view) return;
  const nv: NewView = { type: 'new-view', epoch: core.epoch, view, highQC, sender: core.self, signature };
  if (!core.signedNewView || core.signedNewView.view < view) core.signedNewView = nv;
  sendNewView(core, nv);
}

/** The full NEW-VIEW to the target view's leader, one with a reference to its QC to everyone else. */
function sendNewView(core: EngineCore, nv: NewView): void {
  const leader = core.leaderOf(nv.view);
  const slim: NewView = { ...nv, highQC: qcRef(nv.highQC) };
  for (let to = 0; to < core.n; to++) {
    if (to !== core.self) core.emitOutbound({ type: 'send', to, message: to === leader ? nv : slim });
  }
}

export function onNewView(core: EngineCore, nv: NewView): void {
  if (!core.isValidator(nv.sender)) return core.reject(null, 'unknown_sender', `new-view from ${nv.sender}`);
  if (nv.view < core.view) return core.reject(nv.sender, 'stale', `new-view for ${nv.view} < ${core.view}`);
  // A reference claims a view as well as a full QC does; it just brings no QC to learn.
  const ref = isQcRef(nv.highQC);
  if (ref && nv.highQC.phase !== Phase.PREPARE) return core.reject(nv.sender, 'invalid_qc', 'highQC reference is not to a PREPARE QC');
  if (!core.deps.verify(nv)) return core.reject(nv.sender, 'invalid_signature', `new-view for ${nv.view}`);
  let learned: QuorumCert | undefined;
  if (!ref) {
    const checked = core.qcs.check(nv.highQC);
    if (!checked.ok) return core.reject(nv.sender, 'invalid_qc', `highQC: ${checked.why}`);
    if (checked.qc.phase !== Phase.PREPARE) return core.reject(nv.sender, 'invalid_qc', 'highQC is not a PREPARE QC');
    learned = checked.qc;
  }
  switch (core.claims.record(nv)) {
    case 'duplicate':
      return core.reject(nv.sender, 'duplicate', `new-view for ${nv.view}`);
    case 'stale':
      return core.reject(nv.sender, 'stale', `new-view for ${nv.view} below an earlier one`);
    case 'new':
      break;
  }
  if (learned) core.notePrepareQC(learned);
  evaluateClaims(core);
}

/**
 * Quorum claims ≥ w → enter w. f+1 claims ≥ w → claim w too (at least one honest member
 * has given up on the views below w). A quorum, not f+1, is needed to move: f+1 would let
 * f Byzantine members plus one badly connected honest member drag everybody along.
 */
function evaluateClaims(core: EngineCore): void {
  const amplify = core.claims.kthHighest(core.f + 1);
  if (amplify > core.view && amplify > core.safety.newViewTarget && !pendingNewView(core, amplify)) {
    requestNewView(core, amplify);
  }
  const enter = core.claims.kthHighest(core.quorum);
  if (enter > core.view) {
    // The view failed as surely as if our own timer had fired (which it may never do when the
    // others time out a little earlier every view): retry what we are still fetching.
    retryFetches(core);
    core.advance(enter, 'new-view-quorum');
  }
}
