// Persist-before-act, one kind of change per test: a vote, a lock, a new highQC, a NEW-VIEW
// target, a view change, a commit, a leader's proposal, a fetched block. Each test checks that the
// last persist before the action that depends on the change (the sign request, the commit)
// carries the new value, and that an engine restored from the record those persists wrote
// never votes again where it voted. core.ts derives what a persist carries by comparing the
// safety state with the last persisted one; the first test checks that comparison field by
// field, so a change that only one field shows is never left out.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Kit, Phase, ofType, voteRequests, type Driven } from './sim/test-kit.ts';
import { EngineCore } from './core.ts';
import { toHex } from './bytes.ts';
import type { EngineAction, SafetyState } from './events.ts';

type Persist = Extract<EngineAction, { type: 'persist' }>;

/** Index of the first action matching `pick`; fails the test if there is none. */
function indexOf(out: EngineAction[], pick: (a: EngineAction) => boolean, what: string): number {
  const i = out.findIndex(pick);
  assert.ok(i >= 0, `no ${what} among: ${out.map((a) => a.type).join(', ')}`);
  return i;
}

const isVoteSign = (phase: Phase, view: number) => (a: EngineAction) =>
  a.type === 'sign' && a.request.kind === 'vote' && a.request.phase === phase && a.request.view === view;

/** The safety state durable when action `i` is carried out: that of the last persist before it. */
function durableAt(out: EngineAction[], i: number): SafetyState {
  const p = ofType(out.slice(0, i), 'persist').at(-1);
  assert.ok(p, `no persist before ${out[i]?.type} (action ${i})`);
  return p.safety;
}

/** Every QC persisted before action `i`, as phase/view. */
function qcsBefore(out: EngineAction[], i: number): string[] {
  return ofType(out.slice(0, i), 'persist').flatMap((p: Persist) => p.qcs.map((q) => `${q.phase}/${q.view}`));
}

/** A restart from the last record this member's persists and commits wrote. */
function restart(d: Driven): Driven {
  const r = d.kit.restore(d.self, d.record);
  r.step({ type: 'start' });
  return r;
}

/** N = 4, member 0 at view 1 (leader 1), with view 1's block, QCs and proposal ready. */
function setup() {
  const k = new Kit(4);
  const d = k.engine(0);
  d.step({ type: 'start' });
  const b1 = k.block(1, k.genesis);
  const pqc1 = k.qc(Phase.PREPARE, 1, b1, [1, 2, 3]);
  const pcqc1 = k.qc(Phase.PRE_COMMIT, 1, b1, [1, 2, 3]);
  const cqc1 = k.qc(Phase.COMMIT, 1, b1, [1, 2, 3]);
  return { k, d, b1, pqc1, pcqc1, cqc1, p1: k.proposal(1, b1, k.gqc) };
}

test('flush persists a change of any single field of the safety state, with a new lock or highQC among its QCs, and nothing when nothing changed', () => {
  const k = new Kit(4);
  const b1 = k.block(1, k.genesis);
  const b1x = k.block(1, k.genesis, 'x');
  const pqc1 = k.qc(Phase.PREPARE, 1, b1, [1, 2, 3]);
  const initial = (): SafetyState => ({
    view: 2,
    lockedQC: k.gqc,
    prepareQC: pqc1,
    lastVoted: { view: 1, phase: Phase.PRE_COMMIT },
    newViewTarget: 2,
    lastCommitView: 0,
    proposedView: 0,
  });
  // One change per entry; each differs from the initial state in that one field only.
  const changes: [string, (s: SafetyState) => void][] = [
    ['view', (s) => (s.view = 3)],
    ['lockedQC', (s) => (s.lockedQC = k.qc(Phase.PRE_COMMIT, 1, b1, [1, 2, 3]))],
    ['prepareQC: view', (s) => (s.prepareQC = k.qc(Phase.PREPARE, 2, b1, [1, 2, 3]))],
    ['prepareQC: block', (s) => (s.prepareQC = k.qc(Phase.PREPARE, 1, b1x, [1, 2, 3]))],
    ['prepareQC: phase', (s) => (s.prepareQC = k.qc(Phase.COMMIT, 1, b1, [1, 2, 3]))],
    ['lastVoted: view', (s) => (s.lastVoted = { view: 2, phase: Phase.PRE_COMMIT })],
    ['lastVoted: phase', (s) => (s.lastVoted = { view: 1, phase: Phase.COMMIT })],
    ['newViewTarget', (s) => (s.newViewTarget = 3)],
    ['lastCommitView', (s) => (s.lastCommitView = 1)],
    ['proposedView', (s) => (s.proposedView = 2)],
  ];
  for (const [field, change] of changes) {
    const core = new EngineCore(k.config(0), k.deps, k.genesis, initial(), k.genesis);
    core.flush();
    assert.deepEqual(core.out, [], `${field}: nothing changed since the restore, nothing persisted`);
    change(core.safety);
    const expected = { ...core.safety };
    core.flush();
    assert.equal(core.out.length, 1, `${field}: a change of this field alone is persisted`);
    const p = ofType(core.out, 'persist')[0]!;
    assert.deepEqual(p.safety, expected, `${field}: the persist carries the new value`);
    for (const qc of [core.safety.lockedQC, core.safety.prepareQC]) {
      const isNew = qc !== k.gqc && qc !== pqc1;
      assert.equal(p.qcs.includes(qc), isNew, `${field}: the QC of view ${qc.view} is among the persisted QCs only if new`);
    }
    core.flush();
    assert.equal(core.out.length, 1, `${field}: persisted once, not again on the next flush`);
  }
  // The same certificate under another signer set is no change.
  const core = new EngineCore(k.config(0), k.deps, k.genesis, initial(), k.genesis);
  core.safety.prepareQC = k.qc(Phase.PREPARE, 1, b1, [0, 1, 2]);
  core.flush();
  assert.deepEqual(core.out, [], 'same phase, view and block: nothing to persist');
});

test('a PREPARE vote: lastVoted is persisted before the sign request, and a restarted member does not vote PREPARE again in that view', () => {
  const { k, d, p1 } = setup();
  const out = d.message(p1);
  const sign = indexOf(out, isVoteSign(Phase.PREPARE, 1), 'PREPARE vote request');
  assert.deepEqual(durableAt(out, sign).lastVoted, { view: 1, phase: Phase.PREPARE });
  const r = restart(d);
  assert.deepEqual(voteRequests(r.message(p1)), [], 'not for the same block');
  assert.deepEqual(voteRequests(r.message(k.proposal(1, k.block(1, k.genesis, 'b'), k.gqc))), [], 'nor for another');
});

test('a PRE-COMMIT vote on a prepareQC already held: the vote mark alone changes and is persisted before the sign request', () => {
  const { d, p1, pqc1 } = setup();
  d.message(p1);
  d.step({ type: 'blocks-fetched', blocks: [], qcs: [pqc1] }); // the highQC arrives first (and is persisted)
  assert.equal(d.engine.safety.prepareQC.view, 1);
  const out = d.message({ type: 'qc', epoch: 0, qc: pqc1, sender: 1 });
  const sign = indexOf(out, isVoteSign(Phase.PRE_COMMIT, 1), 'PRE-COMMIT vote request');
  assert.deepEqual(durableAt(out, sign).lastVoted, { view: 1, phase: Phase.PRE_COMMIT });
  const r = restart(d);
  assert.deepEqual(voteRequests(r.message({ type: 'qc', epoch: 0, qc: pqc1, sender: 1 })), [], 'no second PRE-COMMIT vote in view 1');
});

test('a new prepareQC: it and the vote on it are persisted, the QC among the persisted QCs, before the PRE-COMMIT sign request', () => {
  const { d, p1, pqc1 } = setup();
  d.message(p1);
  const out = d.message({ type: 'qc', epoch: 0, qc: pqc1, sender: 1 });
  const sign = indexOf(out, isVoteSign(Phase.PRE_COMMIT, 1), 'PRE-COMMIT vote request');
  const s = durableAt(out, sign);
  assert.equal(s.prepareQC, pqc1);
  assert.deepEqual(s.lastVoted, { view: 1, phase: Phase.PRE_COMMIT });
  assert.ok(qcsBefore(out, sign).includes(`${Phase.PREPARE}/1`), 'the prepareQC goes to the QC store');
  const r = restart(d);
  assert.equal(r.engine.safety.prepareQC.view, 1, 'the highQC survives the restart');
  assert.deepEqual(voteRequests(r.message({ type: 'qc', epoch: 0, qc: pqc1, sender: 1 })), []);
});

test('every highQC a step passes through is among the persisted QCs, not only the last one', () => {
  const { k, d, b1, pqc1 } = setup();
  const pqc2 = k.qc(Phase.PREPARE, 2, k.block(2, b1), [0, 1, 3]);
  // QCs of blocks this member does not hold: only notePrepareQC keeps them.
  const out = d.step({ type: 'blocks-fetched', blocks: [], qcs: [pqc1, pqc2] });
  assert.equal(d.engine.safety.prepareQC, pqc2);
  assert.deepEqual(qcsBefore(out, out.length).sort(), [`${Phase.PREPARE}/1`, `${Phase.PREPARE}/2`]);
});

test('a lock from a precommitQC: persisted with its QC before the COMMIT sign request; restarted, the member keeps it and does not vote COMMIT again', () => {
  const { k, d, p1, pqc1, pcqc1 } = setup();
  d.message(p1);
  d.message({ type: 'qc', epoch: 0, qc: pqc1, sender: 1 });
  const out = d.message({ type: 'qc', epoch: 0, qc: pcqc1, sender: 1 });
  const sign = indexOf(out, isVoteSign(Phase.COMMIT, 1), 'COMMIT vote request');
  const s = durableAt(out, sign);
  assert.equal(s.lockedQC, pcqc1);
  assert.deepEqual(s.lastVoted, { view: 1, phase: Phase.COMMIT });
  assert.ok(qcsBefore(out, sign).includes(`${Phase.PRE_COMMIT}/1`), 'the lock goes to the QC store');
  const r = restart(d);
  assert.equal(r.engine.safety.lockedQC.view, 1);
  assert.deepEqual(voteRequests(r.message({ type: 'qc', epoch: 0, qc: pcqc1, sender: 1 })), [], 'no second COMMIT vote in view 1');
  for (const s of [1, 2, 3]) r.message(k.newView(2, k.gqc, s));
  assert.equal(r.engine.view, 2);
  assert.deepEqual(voteRequests(r.message(k.proposal(2, k.block(2, k.genesis, 'fork'), k.gqc))), [], 'the lock still refuses a fork');
});

test('a timeout: the NEW-VIEW target is persisted before the NEW-VIEW sign request and survives a restart', () => {
  const { d } = setup();
  const out = d.step({ type: 'timer-fired', view: 1 });
  const sign = indexOf(out, (a) => a.type === 'sign' && a.request.kind === 'new-view', 'NEW-VIEW request');
  assert.equal(durableAt(out, sign).newViewTarget, 2);
  assert.equal(restart(d).engine.safety.newViewTarget, 2);
});

test('a NEW-VIEW carrying a higher highQC: that highQC is persisted before the NEW-VIEW it makes this member sign', () => {
  const { k, d, pqc1 } = setup();
  d.message(k.newView(2, k.gqc, 2));
  // f + 1 = 2 claims for view 2: member 0 joins with its own NEW-VIEW, carrying the new highQC.
  const out = d.message(k.newView(2, pqc1, 3));
  const sign = indexOf(out, (a) => a.type === 'sign' && a.request.kind === 'new-view', 'NEW-VIEW request');
  const req = (out[sign] as Extract<EngineAction, { type: 'sign' }>).request;
  assert.equal(req.kind === 'new-view' && req.highQC, pqc1);
  const s = durableAt(out, sign);
  assert.equal(s.prepareQC, pqc1);
  assert.equal(s.newViewTarget, 2);
  assert.ok(qcsBefore(out, sign).includes(`${Phase.PREPARE}/1`));
});

test('a view change on NEW-VIEWs: the new view alone changes and is persisted; restarted, the member does not vote in the view it left', () => {
  const { k, d, p1 } = setup();
  d.step({ type: 'timer-fired', view: 1 }); // own NEW-VIEW(2), persisted
  d.message(k.newView(2, k.gqc, 1));
  const out = d.message(k.newView(2, k.gqc, 2)); // a quorum: into view 2, nothing else changes
  assert.equal(d.engine.view, 2);
  assert.equal(durableAt(out, out.length).view, 2);
  const r = restart(d);
  assert.equal(r.engine.view, 2);
  assert.deepEqual(voteRequests(r.message(p1)), [], 'view 1 is over');
});

test('a commit: the commitQC is persisted before the commit action, lastCommitView after it and before the next vote', () => {
  const { k, d, b1, p1, pqc1, pcqc1, cqc1 } = setup();
  d.message(p1);
  d.message({ type: 'qc', epoch: 0, qc: pqc1, sender: 1 });
  d.message({ type: 'qc', epoch: 0, qc: pcqc1, sender: 1 });
  const p2 = k.proposal(2, k.block(2, b1), pqc1);
  d.message(p2); // buffered until view 2
  const out = d.message({ type: 'qc', epoch: 0, qc: cqc1, sender: 1 });
  const commit = indexOf(out, (a) => a.type === 'commit', 'commit');
  assert.ok(qcsBefore(out, commit).includes(`${Phase.COMMIT}/1`), 'the commitQC is durable before the commit');
  assert.equal(durableAt(out, commit).lastCommitView, 0, 'not yet: a crash before the commit must leave cqc1 usable');
  const sign = indexOf(out, isVoteSign(Phase.PREPARE, 2), 'PREPARE vote request of view 2');
  const s = durableAt(out, sign);
  assert.equal(s.lastCommitView, 1);
  assert.equal(s.view, 2);
  assert.deepEqual(s.lastVoted, { view: 2, phase: Phase.PREPARE });
  const r = restart(d);
  assert.equal(r.engine.committed.header.height, 1);
  assert.equal(r.engine.safety.lastCommitView, 1);
  assert.deepEqual(voteRequests(r.message(p2)), [], 'no second PREPARE vote in view 2');
});

test('a commit for a view already left: lastCommitView alone changes, and is persisted after the commit action', () => {
  const { k, d, p1, cqc1 } = setup();
  d.message(p1);
  for (const s of [1, 2, 3]) d.message(k.newView(3, k.gqc, s));
  assert.equal(d.engine.view, 3);
  const out = d.message({ type: 'qc', epoch: 0, qc: cqc1, sender: 1 });
  const commit = indexOf(out, (a) => a.type === 'commit', 'commit');
  assert.equal(d.engine.view, 3, 'no view change');
  assert.equal(durableAt(out, out.length).lastCommitView, 1);
  assert.ok(ofType(out.slice(commit), 'persist').length > 0, 'persisted after the commit');
  const r = restart(d);
  assert.equal(r.engine.safety.lastCommitView, 1);
  assert.deepEqual(ofType(r.log, 'set-timer').map((t) => t.ms), [200], 'the back-off counts from the last commit');
});

test('a fetched block alone, with no change of the safety state, is persisted in the step that stores it', () => {
  const { d, b1, pqc1 } = setup();
  d.message({ type: 'qc', epoch: 0, qc: pqc1, sender: 1 }); // b1 unknown: fetched
  const out = d.step({ type: 'blocks-fetched', blocks: [b1], qcs: [] });
  assert.deepEqual(ofType(out, 'persist').flatMap((p) => p.blocks), [b1]);
  assert.ok(restart(d).engine.block(toHex(b1.hash)), 'a restarted member still holds it');
});

test("a leader's proposal: proposedView is persisted before the proposal's sign request; restarted, the leader does not propose again", () => {
  const k = new Kit(4);
  const d = k.engine(1); // leader of view 1
  d.step({ type: 'start' });
  const out = d.step({ type: 'payload-ready', view: 1, block: k.block(1, k.genesis) });
  const sign = indexOf(out, (a) => a.type === 'sign' && a.request.kind === 'proposal', 'proposal request');
  assert.equal(durableAt(out, sign).proposedView, 1);
  assert.deepEqual(ofType(restart(d).log, 'request-payload'), [], 'no second proposal in view 1');
});
