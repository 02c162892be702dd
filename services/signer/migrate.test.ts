// Import/export merge rules: maxima, never behind, conflicts refused.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isFedError } from '#libs/errors/index.ts';
import { mergeEpochs, mergeSafety } from './migrate.ts';
import { initialSafety, type SignedSlot, type SignerSafety } from './rules.ts';

const base = initialSafety('c', 'ab'.repeat(32), new Uint8Array(32));
const slot = (view: number, phase: 1 | 2 | 3, d: string): SignedSlot =>
  ({ kind: 'vote', view, phase, digest: d.repeat(64), blockHash: d.repeat(64), signature: new Uint8Array([1]) });
const at = (over: Partial<SignerSafety>): SignerSafety => ({ ...base, ...over });
const code = (c: string) => (e: unknown) => isFedError(e, c);

test('merging takes the maximum of every mark and unites the recent slots', () => {
  const cur = at({ lastVote: { view: 5, phase: 1 }, lastNewView: 9, signed: 10, recent: [slot(5, 1, 'a')] });
  const inc = at({ lastVote: { view: 6, phase: 3 }, lastProposalView: 4, locked: { view: 6, blockHash: 'b'.repeat(64) }, signed: 12, recent: [slot(6, 3, 'b')] });
  const r = mergeSafety(cur, inc);
  assert.equal(r.kind, 'merged');
  assert.deepEqual(r.state.lastVote, { view: 6, phase: 3 });
  assert.equal(r.state.lastNewView, 9);
  assert.equal(r.state.lastProposalView, 4);
  assert.equal(r.state.locked.view, 6);
  assert.equal(r.state.signed, 12);
  assert.deepEqual(r.state.recent.map((s) => s.view), [5, 6]);
  assert.equal(mergeSafety(undefined, inc).state, inc, 'a new host takes the import as it is');
});

test('a state behind the current one is refused; the same state is a no-op', () => {
  const cur = at({ lastVote: { view: 5, phase: 1 }, signed: 3 });
  assert.throws(() => mergeSafety(cur, at({ lastVote: { view: 4, phase: 3 }, signed: 3 })), code('SIGNER_IMPORT_BEHIND'));
  assert.equal(mergeSafety(cur, cur).kind, 'unchanged');
});

test('conflicting signatures or locks, another key or chain: refused', () => {
  const cur = at({ lastVote: { view: 5, phase: 1 }, recent: [slot(5, 1, 'a')] });
  assert.throws(() => mergeSafety(cur, at({ lastVote: { view: 6, phase: 1 }, recent: [slot(5, 1, 'c')] })), code('SIGNER_IMPORT_CONFLICT'));
  assert.throws(() => mergeSafety(at({ locked: { view: 3, blockHash: 'a'.repeat(64) } }), at({ signed: 1, locked: { view: 3, blockHash: 'b'.repeat(64) } })), code('SIGNER_IMPORT_CONFLICT'));
  assert.throws(() => mergeSafety(cur, { ...cur, publicKey: 'cd'.repeat(32) }), code('SIGNER_IMPORT_MISMATCH'));
  assert.throws(() => mergeSafety(cur, { ...cur, chainId: 'other' }), code('SIGNER_IMPORT_MISMATCH'));
});

test('epochs: a state of an earlier epoch is behind whatever its marks; one of a later epoch replaces the marks', () => {
  const cur = at({ epoch: 2, lastVote: { view: 3, phase: 1 }, signed: 40 });
  assert.throws(() => mergeSafety(cur, at({ epoch: 1, lastVote: { view: 900, phase: 3 }, signed: 39 })), code('SIGNER_IMPORT_BEHIND'));
  const later = at({ epoch: 3, lastVote: { view: 1, phase: 1 }, signed: 41 });
  const r = mergeSafety(cur, later);
  assert.equal(r.kind, 'merged');
  assert.deepEqual(r.state, later, 'views restart in each epoch: the later epoch\'s marks are taken as they are');
  assert.equal(mergeSafety(cur, at({ epoch: 2, lastVote: { view: 4, phase: 1 }, signed: 41 })).state.epoch, 2);
});

test('epoch histories merge only when one extends the other: the longer is kept, a disagreement refused', () => {
  const end = (height: number, b: number) => ({ height, root: new Uint8Array(32).fill(b), tx: new Uint8Array([b, 1, 2]) });
  const two = [end(10, 1), end(20, 2)];
  assert.deepEqual(mergeEpochs([], two), { kind: 'merged', ended: two });
  assert.deepEqual(mergeEpochs(two, two.slice(0, 1)), { kind: 'unchanged', ended: two }, 'a shorter history changes nothing');
  assert.deepEqual(mergeEpochs(two.slice(0, 1), two), { kind: 'merged', ended: two });
  assert.deepEqual(mergeEpochs(two, two).kind, 'unchanged');
  assert.throws(() => mergeEpochs(two, [end(10, 1), end(21, 2)]), (e: unknown) => code('SIGNER_IMPORT_CONFLICT')(e) && /end of epoch 1/.test((e as Error).message));
  assert.throws(() => mergeEpochs(two, [end(10, 9)]), code('SIGNER_IMPORT_CONFLICT'), 'another block');
  assert.throws(() => mergeEpochs(two, [{ ...end(10, 1), tx: new Uint8Array([7]) }]), code('SIGNER_IMPORT_CONFLICT'), 'another change');
});
