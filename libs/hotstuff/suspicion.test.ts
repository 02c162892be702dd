// Leader suspicion (suspicion.ts) on its own, and in one engine driven by hand: a failed view
// suspects its leader for a while that grows with each failure, a certified view re-admits it,
// a mute suspects it for as long as it lasts, never more than f leaders and never oneself.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CLEAN_VIEWS, LeaderSuspicion, MAX_SUSPICION_LEVEL, MIN_DURATIONS, SLOW_SLACK_MS, SLOW_STRIKES, suspicionWindow } from './suspicion.ts';
import { Kit, Phase, ofType, reasons } from './sim/test-kit.ts';

test('a failed view suspects its leader for its next 16 views, twice as long with each failure, up to 256', () => {
  const s = new LeaderSuspicion(4, 1, 0);
  s.viewEnded(5, 1, 'failed'); // leader 1 leads 5, 9, 13, …
  for (let k = 1; k <= 16; k++) assert.equal(s.suspects(5 + 4 * k, 1), 'failed_views', `its next 16 views are given up (${5 + 4 * k})`);
  assert.equal(s.suspects(5 + 4 * 17, 1), null, 'sixteen views at level 1');
  const second = 5 + 4 * 17;
  s.viewEnded(second, 1, 'failed');
  assert.equal(s.suspects(second + 4 * 32, 1), 'failed_views');
  assert.equal(s.suspects(second + 4 * 33, 1), null, 'thirty-two views at level 2');
  let v = second + 4 * 33;
  for (let k = 0; k < 20; k++, v += 4) s.viewEnded(v, 1, 'failed');
  const last = v - 4;
  assert.equal(suspicionWindow(MAX_SUSPICION_LEVEL), 256);
  assert.equal(s.suspects(last + 4 * 256, 1), 'failed_views', 'the level stops at its ceiling');
  assert.equal(s.suspects(last + 4 * 257, 1), null, 'and every suspicion ends');
});

test('a certified view re-admits a leader at once; clean views bring its level down', () => {
  const s = new LeaderSuspicion(4, 1, 0);
  s.viewEnded(5, 1, 'failed');
  s.viewEnded(5 + 4 * 17, 1, 'failed');
  assert.equal(s.suspects(5 + 4 * 18, 1), 'failed_views');
  s.viewEnded(5 + 4 * 18, 1, 'certified');
  assert.equal(s.suspects(5 + 4 * 19, 1), null, 'it led a view to a QC: no longer suspected');
  for (let k = 0; k < CLEAN_VIEWS; k++) s.viewEnded(5 + 4 * (19 + k), 1, 'certified');
  s.viewEnded(1001, 1, 'failed');
  assert.equal(s.suspects(1001 + 4 * 32, 1), 'failed_views', 'level 2 again (2, down one by the clean views, up one): thirty-two views');
  assert.equal(s.suspects(1001 + 4 * 33, 1), null);
  s.viewEnded(2000, 2, 'unknown');
  assert.equal(s.suspects(2004, 2), null, 'a view we learned nothing of changes nothing');
});

test('never oneself, never more than f, muted leaders first; forgiveness clears it all', () => {
  const s = new LeaderSuspicion(4, 1, 0);
  s.viewEnded(4, 0, 'failed');
  assert.equal(s.suspects(8, 0), null, 'a member never suspects itself');
  s.viewEnded(5, 1, 'failed');
  s.viewEnded(6, 2, 'failed');
  s.viewEnded(10, 2, 'failed');
  assert.deepEqual(s.suspected(12), [2], 'f = 1: only the worst record');
  assert.equal(s.suspects(9, 1), null, 'leader 1 is outranked by leader 2 (level 2)');
  s.setMuted(3, true);
  assert.deepEqual(s.suspected(12), [3], 'a muted leader ranks first');
  assert.equal(s.suspects(11, 3), 'muted');
  s.setMuted(3, false);
  assert.deepEqual(s.suspected(12), [2]);
  s.forgive(2);
  assert.deepEqual(s.suspected(12), [1], 'leader 2 forgiven: leader 1 is the worst record left');
  assert.deepEqual(s.suspected(5 + 1 + 4 * 16), [], 'leader 1\'s suspicion ended after sixteen of its views');
  const tiny = new LeaderSuspicion(3, 0, 0);
  tiny.viewEnded(1, 1, 'failed');
  tiny.setMuted(2, true);
  assert.deepEqual(tiny.suspected(2), [], 'f = 0: nobody is ever suspected (every leader is needed)');
});

test('an engine gives up at once the view of a leader it has muted, and keeps voting in it', () => {
  const k = new Kit(4);
  const d = k.engine(0);
  d.step({ type: 'start' });
  // View 1 is led by member 1: muting it mid-view gives the view up now, with a NEW-VIEW for 2.
  const out = d.step({ type: 'peer-muted', peer: 1, muted: true });
  assert.deepEqual(ofType(out, 'view-skipped').map((a) => [a.view, a.leader, a.reason]), [[1, 1, 'muted']]);
  const nvs = ofType(out, 'sign').filter((a) => a.request.kind === 'new-view');
  assert.deepEqual(nvs.map((a) => a.request.view), [2], 'a NEW-VIEW for the next view, signed at once');
  // A valid proposal of the muted leader that still arrives gets a vote: the view is not left
  // (withholding it would let one suspicious member and a silent Byzantine one deny an honest
  // leader its quorum).
  const b1 = k.block(1, k.genesis);
  const voted = ofType(d.message(k.proposal(1, b1, k.gqc)), 'sign').filter((a) => a.request.kind === 'vote');
  assert.equal(voted.length, 1, 'giving a view up never stops a member from voting in it');
  // Unmuted, its next view (5) runs as usual.
  d.step({ type: 'peer-muted', peer: 1, muted: false });
  d.message({ type: 'qc', epoch: 0, qc: k.qc(Phase.PREPARE, 4, k.block(4, b1), [0, 2, 3]), sender: 0 });
  const into5 = d.message({ type: 'qc', epoch: 0, qc: k.qc(Phase.COMMIT, 4, k.block(4, b1), [0, 2, 3]), sender: 0 });
  assert.equal(d.engine.view, 5);
  assert.deepEqual(ofType(into5, 'view-skipped'), [], 'no longer muted: its view is not given up');
});

test('an engine gives up at once the views of a leader its transport says is absent, and leads it again once it is back', () => {
  const k = new Kit(4);
  const d = k.engine(0);
  d.step({ type: 'start' });
  // View 1 is led by member 1: its consensus gone mid-view, the view is given up now.
  const out = d.step({ type: 'peer-absent', peer: 1, absent: true });
  assert.deepEqual(ofType(out, 'view-skipped').map((a) => [a.view, a.leader, a.reason]), [[1, 1, 'absent']]);
  assert.deepEqual(ofType(out, 'sign').filter((a) => a.request.kind === 'new-view').map((a) => a.request.view), [2]);
  assert.deepEqual(d.engine.suspectedLeaders, [1]);
  // Another member's absence says nothing of this view; this member's own is never believed.
  assert.deepEqual(ofType(d.step({ type: 'peer-absent', peer: 2, absent: true }), 'view-skipped'), []);
  assert.deepEqual(ofType(d.step({ type: 'peer-absent', peer: 0, absent: true }), 'view-skipped'), []);
  assert.ok(!d.engine.suspectedLeaders.includes(0), 'never suspects itself');
  assert.equal(d.engine.suspectedLeaders.length, 1, 'at most f = 1 suspected, however many are said absent');
  d.step({ type: 'peer-absent', peer: 2, absent: false });
  // Back: its next view (5) runs as usual, and no record was kept against it.
  d.step({ type: 'peer-absent', peer: 1, absent: false });
  assert.deepEqual(d.engine.suspectedLeaders, []);
  const b1 = k.block(1, k.genesis);
  d.message({ type: 'qc', epoch: 0, qc: k.qc(Phase.PREPARE, 4, k.block(4, b1), [0, 2, 3]), sender: 0 });
  const into5 = d.message({ type: 'qc', epoch: 0, qc: k.qc(Phase.COMMIT, 4, k.block(4, b1), [0, 2, 3]), sender: 0 });
  assert.equal(d.engine.view, 5);
  assert.deepEqual(ofType(into5, 'view-skipped'), [], 'present again: its view is not given up');
});

test('a leader whose proposal breaks a rule has its view given up at once, not after the timer', () => {
  const k = new Kit(4);
  const d = k.engine(0);
  d.step({ type: 'start' });
  const b1 = k.block(1, k.genesis);
  const liar = { ...b1, hash: k.block(1, k.genesis, 'x').hash }; // a hash its header does not give
  const out = d.message(k.proposal(1, liar, k.gqc));
  assert.deepEqual(reasons(out), ['invalid_block']);
  assert.deepEqual(ofType(out, 'view-skipped').map((a) => [a.view, a.leader, a.reason]), [[1, 1, 'failed_views']]);
  assert.deepEqual(ofType(out, 'sign').map((a) => a.request.kind), ['new-view'], 'its NEW-VIEW goes out now');
  // The driver's own checks (a block time beyond our clock) say the same through an event.
  const k2 = new Kit(4);
  const e = k2.engine(2);
  e.step({ type: 'start' });
  const out2 = e.step({ type: 'leader-offence', peer: 1, view: 1 });
  assert.deepEqual(ofType(out2, 'view-skipped').map((a) => a.leader), [1]);
  assert.deepEqual(ofType(e.step({ type: 'leader-offence', peer: 3, view: 1 }), 'view-skipped'), [], 'an offence of another validator says nothing of this view');
});

/** Leader of view v at N = 4 is v % 4; feeds `views` certified views of `ms` each from view `from`. */
function timeViews(s: LeaderSuspicion, from: number, count: number, ms: (view: number) => number): boolean[] {
  const slow: boolean[] = [];
  for (let v = from; v < from + count; v++) {
    s.viewEnded(v, v % 4, 'certified');
    slow.push(s.viewTimed(v, v % 4, ms(v)));
  }
  return slow;
}

test('a leader whose certified views keep taking far longer than the others\' is suspected for slow views', () => {
  const s = new LeaderSuspicion(4, 1, 0);
  // Before MIN_DURATIONS views there is no median: nothing is judged.
  assert.deepEqual(timeViews(s, 1, MIN_DURATIONS, (v) => (v % 4 === 3 ? 1000 : 150)), new Array(MIN_DURATIONS).fill(false));
  // Leader 3 takes 600 ms where the others take 150: a slow view is a strike, not yet a suspicion…
  const first = timeViews(s, 9, 7, (v) => (v % 4 === 3 ? 600 : 150));
  assert.deepEqual(first, [false, false, true, false, false, false, true], 'views 11 and 15 (leader 3) are slow');
  assert.equal(s.suspects(19, 3), null, `${SLOW_STRIKES - 1} slow views suspect no one`);
  // …SLOW_STRIKES of its last SLOW_WINDOW are.
  timeViews(s, 16, 4, (v) => (v % 4 === 3 ? 600 : 150));
  assert.equal(s.suspects(23, 3), 'slow_views', 'its next views are given up at once');
  assert.equal(s.suspects(19 + 4 * 16, 3), 'slow_views', 'for suspicionWindow(1) = 16 of its views');
  assert.equal(s.suspects(19 + 4 * 17, 3), null, 'and then no longer');
  assert.deepEqual(s.suspected(23), [3]);
  // The honest leaders, at the median, are never judged slow.
  for (const leader of [1, 2]) assert.equal(s.suspects(20 + leader, leader), null);
});

test('slowness is judged against the median of every leader\'s recent views: jitter, a machine slowing down and one slow view do not suspect', () => {
  const s = new LeaderSuspicion(4, 1, 0);
  // Every view twice as slow from view 20 on (load elsewhere): the median follows within a few
  // views, so no leader meets SLOW_STRIKES slow views and none is suspected.
  const step = timeViews(s, 1, 40, (v) => (v < 20 ? 150 : 300));
  assert.ok(step.filter(Boolean).length <= 4, `at most one slow view a leader (${step.join(',')})`);
  for (let v = 41; v < 45; v++) assert.equal(s.suspects(v, v % 4), null, `leader ${v % 4} after the step`);
  // Jitter: views up to SLOW_FACTOR times the median are not slow.
  const jitter = timeViews(s, 41, 40, (v) => (v % 7 === 0 ? 1.4 * 300 : 300));
  assert.equal(jitter.filter(Boolean).length, 0, '1.4 medians is not slow');
  // One slow view of a leader is a strike, not a suspicion.
  assert.deepEqual(timeViews(s, 81, 8, (v) => (v === 83 ? 2000 : 300)), [false, false, true, false, false, false, false, false]);
  assert.equal(s.suspects(87, 3), null);
  assert.deepEqual(s.suspected(87), []);
  // Below the slack a view is not slow however many medians it is (views of a few ms).
  const quick = new LeaderSuspicion(4, 1, 0);
  assert.equal(timeViews(quick, 1, 40, (v) => (v % 4 === 3 ? 60 : 10)).filter(Boolean).length, 0, `${SLOW_SLACK_MS} ms of slack`);
  // Our own views and nonsense durations are never judged.
  const own = new LeaderSuspicion(4, 1, 3);
  assert.equal(timeViews(own, 1, 40, (v) => (v % 4 === 3 ? 5000 : 150)).filter(Boolean).length, 0, 'never oneself');
  assert.equal(own.viewTimed(99, 1, Number.NaN), false);
  assert.equal(own.viewTimed(99, 1, -5), false);
});

test('a slow leader that speeds up is re-admitted like a failed one; a slow view is not clean', () => {
  const s = new LeaderSuspicion(4, 1, 0);
  timeViews(s, 1, 16, () => 150);
  timeViews(s, 17, 12, (v) => (v % 4 === 3 ? 900 : 150)); // views 19, 23 and 27: three slow ones
  assert.equal(s.suspects(31, 3), 'slow_views');
  // A QC of one of its views in time ends the suspicion, as for failed views.
  s.viewEnded(31, 3, 'certified');
  s.viewTimed(31, 3, 150);
  assert.equal(s.suspects(35, 3), null, 'it performed: no longer suspected');
  // Slow again at once: three more slow views and it is suspected again, at the next level (32 views).
  timeViews(s, 32, 12, (v) => (v % 4 === 3 ? 900 : 150));
  assert.equal(s.suspects(43 + 4 * 32, 3), 'slow_views', 'level 2: thirty-two of its views');
});

test('an engine gives up the view of a leader it timed as slow, naming why', () => {
  const k = new Kit(4);
  const d = k.engine(0);
  d.step({ type: 'start' });
  const b1 = k.block(1, k.genesis);
  d.message({ type: 'qc', epoch: 0, qc: k.qc(Phase.PREPARE, 20, k.block(20, b1), [0, 2, 3]), sender: 0 });
  d.message({ type: 'qc', epoch: 0, qc: k.qc(Phase.COMMIT, 20, k.block(20, b1), [0, 2, 3]), sender: 0 });
  assert.equal(d.engine.view, 21);
  assert.equal(d.engine.leaderOf(21), 1);
  // A view not yet left is not judged, however long it has run.
  assert.deepEqual(d.step({ type: 'view-timed', view: 21, ms: 60_000 }), []);
  // Views 1..20 as the driver timed them: leader 1's (1, 5, 9, 13, 17) took 900 ms, the rest 150:
  // 9, 13 and 17 are judged (the first 8 views make the median).
  let skipped: Array<[number, number, string]> = [];
  for (let v = 1; v <= 20; v++) {
    const out = d.step({ type: 'view-timed', view: v, ms: v % 4 === 1 ? 900 : 150 });
    skipped = [...skipped, ...ofType(out, 'view-skipped').map((a): [number, number, string] => [a.view, a.leader, a.reason])];
  }
  assert.deepEqual(skipped, [[21, 1, 'slow_views']], 'view 21, led by the slow leader, is given up once');
  assert.deepEqual(d.engine.suspectedLeaders, [1]);
});

test('a view that failed before the engine\'s first commit suspects no one; one after it does', () => {
  const k = new Kit(4);
  const d = k.engine(2);
  d.step({ type: 'start' });
  // View 1 (member 1's) ends by NEW-VIEWs with no QC seen here: members starting together, each
  // saying it catches up until its first commit, are no record against a leader.
  for (const s of [0, 3]) d.message(k.newView(2, k.gqc, s));
  d.step({ type: 'timer-fired', view: 1 });
  assert.equal(d.engine.view, 2);
  assert.deepEqual(d.engine.suspectedLeaders, [], 'a start-up failure suspects no one');
  // A block commits here (view 2's), and the engine is in view 3, member 3's.
  const b2 = k.block(2, k.genesis);
  d.message({ type: 'qc', epoch: 0, qc: k.qc(Phase.COMMIT, 2, b2, [0, 1, 3]), sender: 0 });
  assert.equal(ofType(d.step({ type: 'blocks-fetched', blocks: [b2], qcs: [] }), 'commit').length, 1);
  assert.equal(d.engine.view, 3);
  // Now a failed view is a failure of its leader.
  for (const s of [0, 1]) d.message(k.newView(4, k.qc(Phase.PREPARE, 2, b2, [0, 1, 3]), s));
  d.step({ type: 'timer-fired', view: 3 });
  assert.equal(d.engine.view, 4);
  assert.deepEqual(d.engine.suspectedLeaders, [3], 'a failure after the first commit suspects its leader');
});
