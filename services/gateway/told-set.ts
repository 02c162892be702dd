// The validator set a gateway's consumer tells it (SetValidators on the Attach stream), checked:
// at most WIRE_MAX_VALIDATORS seats, each address one to dial that seat at (memberAddressProblem,
// at most MAX_OP_ADDRESSES), and the set itself sound (ValidatorSet.fromConfig: no name, peer id or
// key twice, keys in hex). Pure; the gateway adopts what this returns (gateway.ts adoptValidators).
// Must never return a set it did not check in full.

import { memberAddressProblem } from '#libs/config/index.ts';
import { MAX_OP_ADDRESSES } from '#libs/crypto/index.ts';
import { FedError } from '#libs/errors/index.ts';
import { ValidatorSet } from '#libs/validators/index.ts';
import { WIRE_MAX_VALIDATORS } from '#libs/wire/index.ts';
import type { SetValidators } from '#libs/gen/btcfed/v1/gateway.pb.ts';

/** The set `req` describes, this gateway (`selfPeerId`) in it or not; FedError VALIDATORS_INVALID naming the seat otherwise. */
export function toldSet(req: SetValidators, selfPeerId: string): ValidatorSet {
  if (req.validators.length > WIRE_MAX_VALIDATORS) {
    throw new FedError('VALIDATORS_INVALID', `validators: ${req.validators.length} seats, at most ${WIRE_MAX_VALIDATORS}`, { count: req.validators.length });
  }
  req.validators.forEach((v, i) => {
    if (v.addresses.length > MAX_OP_ADDRESSES) {
      throw new FedError('VALIDATORS_INVALID', `validators[${i}] (${v.name}): ${v.addresses.length} addresses, at most ${MAX_OP_ADDRESSES}`, { index: i });
    }
    for (const a of v.addresses) {
      const bad = memberAddressProblem(a, v.peerId);
      if (bad) throw new FedError('VALIDATORS_INVALID', `validators[${i}] (${v.name}): address ${JSON.stringify(a)} ${bad}`, { index: i, field: 'addresses' });
    }
  });
  return ValidatorSet.fromConfig(req.validators.map((v) => ({ name: v.name, peer_id: v.peerId, public_key: v.publicKey, addresses: v.addresses })), { epoch: req.epoch })
    .withSelf({ peerId: selfPeerId }, { optional: true });
}
