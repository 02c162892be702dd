// The identity a signer reports at start, held against this member's seat: consensus refuses a
// signer of another seat, set, chain or parameter set, naming both identities.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isFedError } from '#libs/errors/index.ts';
import { testValidatorSet } from '#libs/validators/test-kit.ts';
import type { SignerIdentity } from '../signer/index.ts';
import { assertSignerIdentity, signerIdentityProblems } from './signer-identity.ts';

const keys = Array.from({ length: 4 }, (_, i) => new Uint8Array(32).fill(i + 1));
const ours = testValidatorSet(4, { self: 1, publicKeys: keys });
const expect = { chainId: 'c1', paramSet: 'slh-dsa-sha2-128f', address: '127.0.0.1:7400' };
const honest: SignerIdentity = { publicKey: keys[1]!, paramSet: 'slh-dsa-sha2-128f', validatorIndex: 1, validatorCount: 4, chainId: 'c1', member: 'm1', epoch: 0, seated: true };

const mismatch = (pattern: RegExp) => (err: unknown) => isFedError(err, 'SIGNER_IDENTITY_MISMATCH') && pattern.test(err.message);

test('the signer of this member\'s seat is accepted', () => {
  assert.deepEqual(signerIdentityProblems(ours, honest, expect), []);
  assertSignerIdentity(ours, honest, expect);
});

test('a signer holding another validator\'s key is refused, naming both identities', () => {
  const other = { ...honest, publicKey: keys[2]!, validatorIndex: 2, member: 'm2' };
  assert.throws(() => assertSignerIdentity(ours, other, expect), mismatch(
    /the signer at 127\.0\.0\.1:7400 is member m2, validator 2 of 4, key 0303.*; this member is member m1, validator 1 of 4, key 0202.*: its public key is validators\[2\] \(m2\)'s, not ours/));
});

test('each field the signer reports is compared: key, index, set size, member, chain, parameter set, epoch, seat', () => {
  const cases: [Partial<SignerIdentity>, RegExp][] = [
    [{ publicKey: new Uint8Array(32).fill(9) }, /its public key 0909.* is not in conf\.yaml's validators/],
    [{ validatorIndex: 3 }, /it signs as validator 3, we are validator 1/],
    [{ validatorCount: 5 }, /its signer\.yaml lists 5 validators, conf\.yaml 4/],
    [{ member: 'm7' }, /it is member m7, we are m1/],
    [{ chainId: 'other' }, /it signs for chain other, we run c1/],
    [{ paramSet: 'slh-dsa-sha2-256f' }, /its key is slh-dsa-sha2-256f, conf\.yaml says slh-dsa-sha2-128f/],
    [{ epoch: 1 }, /it signs for epoch 1, we run epoch 0/],
    [{ seated: false }, /its key is not in the validator set of its epoch 0/],
  ];
  for (const [change, pattern] of cases) {
    const id = { ...honest, ...change };
    assert.equal(signerIdentityProblems(ours, id, expect).length, 1, JSON.stringify(Object.keys(change)));
    assert.throws(() => assertSignerIdentity(ours, id, expect), mismatch(pattern));
  }
});

test('a member without a seat has no signer of its own', () => {
  assert.throws(() => assertSignerIdentity(testValidatorSet(4, { publicKeys: keys }), honest, expect), mismatch(/not a validator/));
});
