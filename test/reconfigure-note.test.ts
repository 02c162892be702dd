// What `btcfed reconfigure submit` says when the member holding the change is out of the leader
// rotation (cli/reconfigure.ts rotationNote, from the member's DumpState): only that member
// proposes the change, so its operator learns when it will at the latest, and what to do instead.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rotationNote } from '../cli/reconfigure.ts';
import { nextProbeView } from '#libs/hotstuff/index.ts';

test('a member in the rotation: nothing to say', () => {
  assert.equal(rotationNote({ view: 17, self: 1, validators: 5, skippedLeaders: [] }), undefined);
  assert.equal(rotationNote({ view: 17, self: 1, validators: 5, skippedLeaders: [3] }), undefined);
});

test('a skipped member: the view it leads at the latest (its own in the next probe rotation), and the way out', () => {
  const note = rotationNote({ view: 17, self: 1, validators: 5, skippedLeaders: [1] });
  assert.ok(note, 'a skipped member is said to be so');
  assert.equal(nextProbeView(1, 17, 5), 41);
  assert.match(note, /out of the leader rotation/);
  assert.match(note, /at the latest view 41 \(the next probe rotation; it is in view 17\)/);
  assert.match(note, /Submitting the same file to a member in the rotation/);
});

test('a dump without the fields (an older consensus) or from an observer says nothing', () => {
  assert.equal(rotationNote({ view: 17, skippedLeaders: [1] }), undefined);
  assert.equal(rotationNote({ view: 17, self: 1, skippedLeaders: [1] }), undefined);
  assert.equal(rotationNote({ view: 17, self: -1, validators: 5, skippedLeaders: [-1] }), undefined);
});
