// The signer's seat in its own validator set: found by its key, and the member name in
// signer.yaml must be that same validator (one resolver, libs/validators).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isFedError } from '#libs/errors/index.ts';
import { ownSeat } from './open.ts';

const key = (i: number) => new Uint8Array(32).fill(i + 1);
const hex = (i: number) => Buffer.from(key(i)).toString('hex');
const validators = [0, 1, 2, 3].map((i) => ({ name: `m${i}`, peer_id: `peer-${i}`, public_key: hex(i) }));
const refused = (pattern: RegExp) => (err: unknown) => isFedError(err, 'SIGNER_NOT_A_VALIDATOR') && pattern.test(err.message);

test('the seat of the key, named as signer.yaml names the member', () => {
  const set = ownSeat({ member: 'm2', validators }, key(2));
  assert.equal(set.selfIndex, 2);
  assert.equal(set.n, 4);
  assert.equal(set.mayLead(6, 2), true);
});

test('a key outside the set, or a member name that is another validator, is refused naming both', () => {
  assert.throws(() => ownSeat({ member: 'm9', validators }, key(9)), refused(/member m9, public key 0a0a.*not a validator of epoch 0/));
  assert.throws(() => ownSeat({ member: 'm1', validators }, key(2)), refused(/name m1 is validators\[1\] \(m1\); public key 0303.* is validators\[2\] \(m2\)/));
  assert.throws(() => ownSeat({ member: 'm1', validators }, key(9)), refused(/name m1 is validators\[1\] \(m1\); public key 0a0a.* is not in the set/));
  assert.throws(() => ownSeat({ member: 'm0', validators: [] }, key(0)), refused(/empty/));
});
