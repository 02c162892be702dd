// Target presence: one message on /btcfed/presence/1.0.0 from any connected peer — a
// length-prefixed PresenceMessage of at most MAX_PRESENCE_MESSAGE_BYTES (services/gateway/presence.ts,
// readOne). Refusal: an Error from the framing or the protobuf reader (the message is counted
// invalid and the stream reset). What it reads must be a yes or a no and a whole sequence number:
// the message names nobody, so a decoded message carrying anything else would be a wrong contract.

import fc from 'fast-check';
import { PresenceMessage } from '#libs/gen/btcfed/v1/gateway.pb.ts';
import { FrameDecoder } from '../../services/gateway/framing.ts';
import { MAX_PRESENCE_MESSAGE_BYTES } from '../../services/gateway/presence.ts';
import { violated, type FuzzTarget } from '../engine.ts';
import { protoBytes } from './wire-frame.ts';
import { streamOf } from './gateway-framing.ts';

const message: fc.Arbitrary<PresenceMessage> = fc.record({ consensusAttached: fc.boolean(), seq: fc.oneof(fc.constant(0), fc.maxSafeNat()), catchingUp: fc.boolean() });
/** Valid messages, and protobuf with fields the message does not have (a peer's later version, or junk). */
const wild = fc.oneof(
  message.map((m) => protoBytes(PresenceMessage.encode, m)),
  fc.uint8Array({ maxLength: 80 }),
  fc.tuple(message, fc.uint8Array({ maxLength: 70 })).map(([m, tail]) => Uint8Array.from([...PresenceMessage.encode(m).finish(), ...tail])),
);

function read(input: Uint8Array): PresenceMessage | undefined {
  const [frame] = new FrameDecoder(MAX_PRESENCE_MESSAGE_BYTES).push(input);
  return frame ? PresenceMessage.decode(frame) : undefined;
}

class ReadFailed extends Error {}

function run(input: Uint8Array): void {
  let msg: PresenceMessage | undefined;
  try { msg = read(input); } catch (err) { throw new ReadFailed(String(err)); }
  if (msg && typeof msg.consensusAttached !== 'boolean') violated(`consensus_attached read as ${typeof msg.consensusAttached}`);
  if (msg && !Number.isSafeInteger(msg.seq)) violated(`seq read as ${String(msg.seq)}`);
  if (msg && typeof msg.catchingUp !== 'boolean') violated(`catching_up read as ${typeof msg.catchingUp}`);
}

export const presence: FuzzTarget<PresenceMessage> = {
  name: 'presence',
  describe: 'a presence message from any connected peer (its consensus attached or not, or catching up), framed and size-checked before it is read',
  sources: ['services/gateway/presence.ts', 'services/gateway/framing.ts', 'libs/gen/btcfed/v1/gateway.pb.ts'],
  generate: wild.map((p) => streamOf([p], 1 << 10)),
  run,
  refusal: (err) => err instanceof ReadFailed,
  roundTrip: { values: message, encode: (m) => streamOf([PresenceMessage.encode(m).finish()], MAX_PRESENCE_MESSAGE_BYTES), decode: read },
};
