// Target attach-request: what the gateway's one consumer (the member's consensus, or whoever holds
// its client certificate) writes on the Attach stream (gateway.proto AttachRequest), as the gateway
// reads it before it acts: the protobuf decode, and for a SetValidators the checks of the set it
// would adopt (services/gateway/told-set.ts: seats, their keys, peer ids and the addresses a change
// carried). Refusal: a protobuf reader error (grpc-js drops the stream's message), or FedError
// VALIDATORS_INVALID (the attach point counts a bad_request and changes nothing). Properties: a set
// it returns has at most 256 seats, no name, peer id or key twice, at most 8 addresses a seat, each
// passing memberAddressProblem; a valid request round-trips.

import fc from 'fast-check';
import { isFedError } from '#libs/errors/index.ts';
import { memberAddressProblem } from '#libs/config/index.ts';
import { AttachRequest, type SetValidators } from '#libs/gen/btcfed/v1/gateway.pb.ts';
import { toldSet } from '../../services/gateway/told-set.ts';
import { violated, type FuzzTarget } from '../engine.ts';
import { protoBytes } from './wire-frame.ts';
import { PEERS } from './wire-values.ts';

const SELF = PEERS[0]!;

class ReadFailed extends Error {}

function run(input: Uint8Array): void {
  let req: AttachRequest;
  try { req = AttachRequest.decode(input); } catch (err) { throw new ReadFailed(String(err)); }
  if (req.body?.$case !== 'validators') return;
  const set = toldSet(req.body.value, SELF);
  if (set.n > 256) violated(`a set of ${set.n} seats`);
  for (const field of ['name', 'peerId', 'publicKey'] as const) {
    if (new Set(set.members.map((v) => v[field])).size !== set.n) violated(`a ${field} twice in the set`);
  }
  for (const v of set.members) {
    if (v.addresses.length > 8) violated(`${v.name} has ${v.addresses.length} addresses`);
    for (const a of v.addresses) if (memberAddressProblem(a, v.peerId)) violated(`${v.name}'s address ${a} passed: ${memberAddressProblem(a, v.peerId)}`);
  }
}

const hexKey = fc.oneof(fc.nat({ max: 9 }).map((i) => `${i}`.repeat(64)), fc.string({ maxLength: 70 }), fc.constantFrom('', 'AB', 'zz'));
const address = fc.oneof(
  fc.constantFrom('/ip4/10.0.0.4/tcp/4001', '/dns4/m4.example.org/tcp/4001', '/ip4/0.0.0.0/tcp/1', '/ip4/1.2.3.4/udp/1', 'nope', '',
    `/ip4/10.0.0.4/tcp/4001/p2p/${PEERS[1]}`, `/ip4/10.0.0.4/tcp/4001/p2p/${PEERS[4]}`),
  fc.string({ maxLength: 30 }),
);
const seat = fc.record({
  name: fc.oneof(fc.constantFrom('m0', 'm1', 'm2', 'm3', 'm4', ''), fc.string({ maxLength: 10 })),
  peerId: fc.oneof(fc.constantFrom(...PEERS), fc.string({ maxLength: 20 })),
  publicKey: hexKey,
  addresses: fc.array(address, { maxLength: 10 }),
});
const wildSet = fc.record({ epoch: fc.oneof(fc.nat(), fc.constantFrom(0, 2 ** 53 - 1)), validators: fc.array(seat, { maxLength: 8 }) });
/** Sets a consensus service sends: distinct members, hex keys, good addresses (some with none). */
const goodSet: fc.Arbitrary<SetValidators> = fc.record({
  epoch: fc.nat({ max: 100 }), n: fc.integer({ min: 1, max: 5 }),
  withAddresses: fc.subarray([0, 1, 2, 3, 4]),
}).map(({ epoch, n, withAddresses }) => ({
  epoch,
  validators: Array.from({ length: n }, (_, i) => ({
    name: `m${i}`, peerId: PEERS[i]!, publicKey: `${i}`.repeat(64),
    addresses: withAddresses.includes(i) ? [`/ip4/10.0.0.${i + 1}/tcp/4001`, `/dns4/m${i}.example.org/tcp/4001/p2p/${PEERS[i]}`] : [],
  })),
}));
const requests: fc.Arbitrary<AttachRequest> = fc.oneof(
  goodSet.map((value) => ({ body: { $case: 'validators' as const, value } })),
  fc.record({ to: fc.nat(), frame: fc.uint8Array({ maxLength: 64 }) }).map((v) => ({ body: { $case: 'send' as const, value: { ...v, toPeer: '' } } })),
  fc.uint8Array({ maxLength: 64 }).map((frame) => ({ body: { $case: 'broadcast' as const, value: { frame } } })),
  fc.boolean().map((catchingUp) => ({ body: { $case: 'participation' as const, value: { catchingUp } } })),
);

export const attachRequest: FuzzTarget<AttachRequest> = {
  name: 'attach-request',
  describe: 'a request on the gateway\'s Attach stream (its consumer\'s: send, broadcast, mute, participation, and the validator set it tells), decoded and, for a set, checked as the gateway adopts it',
  sources: ['services/gateway/told-set.ts', 'libs/validators/set.ts', 'libs/gen/btcfed/v1/gateway.pb.ts'],
  generate: fc.oneof(
    wildSet.map((value) => protoBytes(AttachRequest.encode, { body: { $case: 'validators', value } } as AttachRequest)),
    requests.map((r) => AttachRequest.encode(r).finish()),
    fc.uint8Array({ maxLength: 200 }),
  ),
  run,
  refusal: (err) => err instanceof ReadFailed || isFedError(err, 'VALIDATORS_INVALID'),
  roundTrip: { values: requests, encode: (r) => AttachRequest.encode(r).finish(), decode: (b) => AttachRequest.decode(b) },
};
