// The identity the signer reports at start (GetPublicKey), held against this member's validator
// set: its key must be this member's seat, and its own view of the set (index, size), chain,
// parameter set and member name must be ours. A signer configured for another seat, set or chain
// would sign for the wrong validator or refuse every request; consensus refuses to start instead,
// naming both identities and every field that differs.
// Pure: the identity is fetched by the caller.

import { FedError } from '#libs/errors/index.ts';
import { toHex } from '#libs/hotstuff/index.ts';
import type { ValidatorSet } from '#libs/validators/index.ts';
import type { SignerIdentity } from '../signer/index.ts';

export interface ExpectedSigner {
  chainId: string;
  paramSet: string;
  /** Where the signer was reached, for the error. */
  address: string;
}

const short = (hex: string) => `${hex.slice(0, 16)}…`;

/** Why the signer's identity is not this member's seat in `validators`, one line per field; [] when it is. */
export function signerIdentityProblems(validators: ValidatorSet, id: SignerIdentity, expect: Omit<ExpectedSigner, 'address'>): string[] {
  const self = validators.self;
  if (self === undefined) return ['this member is not a validator, so no signer is its own'];
  const problems: string[] = [];
  const key = toHex(id.publicKey);
  const at = validators.indexOfKey(key);
  if (at === undefined) problems.push(`its public key ${short(key)} is not in conf.yaml's validators`);
  else if (at !== self.index) problems.push(`its public key is validators[${at}] (${validators.byIndex(at).name})'s, not ours`);
  if (id.epoch !== validators.epoch) problems.push(`it signs for epoch ${id.epoch}, we run epoch ${validators.epoch}`);
  if (!id.seated) problems.push(`its key is not in the validator set of its epoch ${id.epoch} (removed, rotated out, or waiting to be added)`);
  if (id.validatorIndex !== self.index) problems.push(`it signs as validator ${id.validatorIndex}, we are validator ${self.index}`);
  if (id.validatorCount !== validators.n) problems.push(`its signer.yaml lists ${id.validatorCount} validators, conf.yaml ${validators.n}`);
  if (id.member !== self.name) problems.push(`it is member ${id.member}, we are ${self.name}`);
  if (id.chainId !== expect.chainId) problems.push(`it signs for chain ${id.chainId}, we run ${expect.chainId}`);
  if (id.paramSet !== expect.paramSet) problems.push(`its key is ${id.paramSet}, conf.yaml says ${expect.paramSet}`);
  return problems;
}

/** Throws SIGNER_IDENTITY_MISMATCH, naming the signer's identity and ours, unless they agree. */
export function assertSignerIdentity(validators: ValidatorSet, id: SignerIdentity, expect: ExpectedSigner): void {
  const problems = signerIdentityProblems(validators, id, expect);
  if (problems.length === 0) return;
  const self = validators.self;
  const theirs = `member ${id.member}, validator ${id.validatorIndex} of ${id.validatorCount}, key ${short(toHex(id.publicKey))}, chain ${id.chainId}`;
  const ours = self ? `member ${self.name}, validator ${self.index} of ${validators.n}, key ${short(self.publicKey)}, chain ${expect.chainId}` : 'not a validator';
  throw new FedError('SIGNER_IDENTITY_MISMATCH',
    `the signer at ${expect.address} is ${theirs}; this member is ${ours}: ${problems.join('; ')}`,
    { address: expect.address, problems });
}
