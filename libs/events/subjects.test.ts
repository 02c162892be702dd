// Subject building and checking: tokens may not be empty or hold spaces or wildcards; the
// event may be dotted; subscription patterns take whole-token wildcards only.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isFedError } from '#libs/errors/index.ts';
import { BLOCKS_SUBJECT, checkPattern, parseSubject, patternOf, subject } from './index.ts';

const invalid = (fn: () => unknown) => assert.throws(fn, (err) => isFedError(err, 'EVENT_SUBJECT_INVALID'));

test('subject builds btcfed.<member>.<service>.<event>, dotted events included', () => {
  assert.equal(subject('m0', 'store', 'config.reloaded'), 'btcfed.m0.store.config.reloaded');
  assert.equal(subject('m1', 'consensus', 'block.committed'), 'btcfed.m1.consensus.block.committed');
  assert.equal(BLOCKS_SUBJECT, 'btcfed.*.consensus.block.committed');
});

test('subject refuses empty tokens, spaces and wildcards', () => {
  invalid(() => subject('', 'store', 'x'));
  invalid(() => subject('m 0', 'store', 'x'));
  invalid(() => subject('m0', 'st*re', 'x'));
  invalid(() => subject('m0', 'store', '>'));
  invalid(() => subject('m0', 'store', 'config..reloaded'));
  invalid(() => subject('m0', 'store', '.reloaded'));
  invalid(() => subject('m0', 'store', 'config.*'));
  invalid(() => subject('m.0', 'store', 'x'));
  invalid(() => subject('m0', 'store', 'tab\there'));
});

test('patterns take whole-token wildcards under btcfed.', () => {
  assert.equal(patternOf({ service: 'consensus', event: 'block.committed' }), BLOCKS_SUBJECT);
  assert.equal(patternOf({ member: 'm2', event: 'config.*' }), 'btcfed.m2.*.config.*');
  assert.equal(checkPattern('btcfed.>'), 'btcfed.>');
  assert.equal(checkPattern('btcfed.m0.store.>'), 'btcfed.m0.store.>');
  invalid(() => checkPattern('other.m0.store.x'));
  invalid(() => checkPattern('btcfed.m0.st*.x'));
  invalid(() => checkPattern('btcfed.>.store.x'));
  invalid(() => checkPattern('btcfed.m0'));
  invalid(() => patternOf({ member: 'a b', event: 'x' }));
});

test('parseSubject splits a received subject', () => {
  assert.deepEqual(parseSubject('btcfed.m0.store.config.reloaded'), { member: 'm0', service: 'store', event: 'config.reloaded' });
  assert.equal(parseSubject('btcfed.m0.store'), undefined);
  assert.equal(parseSubject('nats.m0.store.x'), undefined);
});
