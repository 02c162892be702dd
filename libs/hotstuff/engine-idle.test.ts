// Idle views (config.waitForWork, idle.ts), one engine driven by hand: no work, no proposal and
// no timeout; work, a proposal or another member's NEW-VIEW ends the quiet; an uncommitted
// prepared block is proposed on even without work.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Kit, Phase, ofType, voteRequests } from './sim/test-kit.ts';
import type { EngineAction } from './events.ts';

const idle = { waitForWork: true } as const;
const newViewSigns = (out: EngineAction[]) => ofType(out, 'sign').filter((s) => s.request.kind === 'new-view');

test('a leader without work does not propose; work makes it propose at once', () => {
  const k = new Kit(4);
  const d = k.engine(1, idle); // leader of view 1
  assert.equal(ofType(d.step({ type: 'start' }), 'request-payload').length, 0, 'no payload without work');
  assert.equal(ofType(d.step({ type: 'work', available: false }), 'request-payload').length, 0);
  const out = d.step({ type: 'work', available: true });
  assert.equal(ofType(out, 'request-payload')[0]?.view, 1, 'work: a proposal');
});

test('without waitForWork a leader proposes at once, work or not (the default is unchanged)', () => {
  const k = new Kit(4);
  const d = k.engine(1);
  assert.equal(ofType(d.step({ type: 'start' }), 'request-payload').length, 1);
  const r = k.engine(0);
  r.step({ type: 'start' });
  assert.equal(newViewSigns(r.step({ type: 'timer-fired', view: 1 })).length, 1, 'a timer gives the view up');
});

test('a quiet view outlives its timer: re-armed, no NEW-VIEW', () => {
  const k = new Kit(4);
  const d = k.engine(0, idle);
  d.step({ type: 'start' });
  for (let i = 0; i < 3; i++) {
    const out = d.step({ type: 'timer-fired', view: 1 });
    assert.equal(newViewSigns(out).length, 0, `fire ${i}: no NEW-VIEW`);
    assert.equal(ofType(out, 'set-timer')[0]?.view, 1, `fire ${i}: re-armed`);
  }
  assert.equal(d.engine.view, 1);
});

test('another member giving the quiet view up makes us give it up at once', () => {
  const k = new Kit(4);
  const d = k.engine(0, idle);
  d.step({ type: 'start' });
  d.step({ type: 'timer-fired', view: 1 }); // idled
  const out = d.message(k.newView(2, k.gqc, 3));
  const nv = newViewSigns(out);
  assert.equal(nv.length, 1, 'our NEW-VIEW at once, without waiting for the timer');
  assert.equal(nv[0]!.request.view, 2);
});

test('one member\'s NEW-VIEW for a view far ahead does not end the quiet; f + 1 of them do', () => {
  const k = new Kit(4);
  const d = k.engine(0, idle);
  d.step({ type: 'start' });
  d.step({ type: 'timer-fired', view: 1 }); // idled
  assert.equal(newViewSigns(d.message(k.newView(50, k.gqc, 3))).length, 0, 'a claim of view 50 alone: still quiet');
  assert.equal(newViewSigns(d.step({ type: 'timer-fired', view: 1 })).length, 0, 'and the timer still re-arms');
  const out = d.message(k.newView(40, k.gqc, 2));
  assert.ok(newViewSigns(out).length >= 1, 'f + 1 members gave our view up: so do we');
});

test('a NEW-VIEW before our timer fired: the view is no longer quiet, the timer gives it up when it fires', () => {
  const k = new Kit(4);
  const d = k.engine(0, idle);
  d.step({ type: 'start' });
  assert.equal(newViewSigns(d.message(k.newView(2, k.gqc, 3))).length, 0, 'one claim moves nothing by itself');
  assert.equal(newViewSigns(d.step({ type: 'timer-fired', view: 1 })).length, 1);
});

test('work at an idled member re-arms its timer in full; if the leader still does not propose, it times out', () => {
  const k = new Kit(4);
  const d = k.engine(0, idle);
  d.step({ type: 'start' });
  d.step({ type: 'timer-fired', view: 1 }); // idled
  const woke = d.step({ type: 'work', available: true });
  assert.equal(newViewSigns(woke).length, 0, 'work is no timeout');
  assert.equal(ofType(woke, 'set-timer')[0]?.view, 1, 'a full timer from now');
  assert.equal(newViewSigns(d.step({ type: 'timer-fired', view: 1 })).length, 1, 'then the silent leader is timed out');
});

test('a proposal at an idled member: it votes and re-arms; the view then times out as usual', () => {
  const k = new Kit(4);
  const d = k.engine(0, idle);
  d.step({ type: 'start' });
  d.step({ type: 'timer-fired', view: 1 }); // idled
  const b1 = k.block(1, k.genesis);
  const out = d.message(k.proposal(1, b1, k.gqc));
  assert.deepEqual(voteRequests(out), [{ phase: Phase.PREPARE, view: 1 }]);
  assert.equal(ofType(out, 'set-timer')[0]?.view, 1, 're-armed in full');
  assert.equal(newViewSigns(d.step({ type: 'timer-fired', view: 1 })).length, 1, 'a live view that stalls is given up');
});

test('a prepared block above the committed tip: never quiet, and its next leader proposes on it without work', () => {
  const k = new Kit(4);
  const d = k.engine(2, idle); // leader of view 2
  d.step({ type: 'start' });
  const b1 = k.block(1, k.genesis);
  d.message(k.proposal(1, b1, k.gqc));
  const pqc = k.qc(Phase.PREPARE, 1, b1, [0, 1, 3]);
  d.message({ type: 'qc', epoch: 0, qc: pqc, sender: 1 }); // prepared, not committed
  const fired = d.step({ type: 'timer-fired', view: 1 });
  assert.equal(newViewSigns(fired).length, 1, 'a half-done view is timed out');
  const out = [...d.message(k.newView(2, pqc, 0)), ...d.message(k.newView(2, pqc, 3))];
  assert.equal(d.engine.view, 2);
  const req = ofType(out, 'request-payload')[0];
  assert.ok(req, 'the leader proposes to commit the prepared block');
  assert.equal(req.parentHeight, 1);
});

test('an operator\'s forced timeout gives a quiet view up', () => {
  const k = new Kit(4);
  const d = k.engine(0, idle);
  d.step({ type: 'start' });
  assert.equal(newViewSigns(d.step({ type: 'timer-fired', view: 1, force: true })).length, 1);
});
