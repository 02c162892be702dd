// Validator sets for unit tests: m0…m(n−1) with made-up peer ids and the given (or made-up) keys.
// Must never be imported by production code: the peer ids are not real libp2p ids.

import { toHex } from '#libs/hotstuff/index.ts';
import { ValidatorSet } from './set.ts';

export function testValidatorSet(n: number, opts: { self?: number; publicKeys?: readonly Uint8Array[] } = {}): ValidatorSet {
  const set = ValidatorSet.fromConfig(Array.from({ length: n }, (_, i) => ({
    name: `m${i}`, peer_id: `test-peer-${i}`, public_key: opts.publicKeys ? toHex(opts.publicKeys[i]!) : (i + 1).toString(16).padStart(64, '0'),
  })));
  return opts.self === undefined ? set : set.withSelf({ name: `m${opts.self}` });
}
