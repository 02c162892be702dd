// Target events-codec: a JetStream/NATS event as a subscriber receives it — its subject and its
// protobuf payload (libs/events/events.ts handle: parseSubject, then the event type's codec) — for
// every event type of events.proto. Anyone with publish rights on the bus chooses both.
// Refusal: an Error while decoding (the subscription drops the event and counts a decode error).
// parseSubject must never throw. Round trip: an event that decodes re-encodes to the same event.
// The input: byte 0 picks the codec, byte 1 the subject's length, then the subject, then the payload.

import fc from 'fast-check';
import {
  BlockCommitted, ConfigRejected, ConfigReloaded, EquivocationEvidence, InvalidSignature, PeerStateChanged, PeersChanged, SignerRefused, ViewChanged,
} from '#libs/gen/btcfed/v1/events.pb.ts';
import { parseSubject, subject } from '#libs/events/subjects.ts';
import type { Codec } from '#libs/events/codec.ts';
import { encodeWith } from '#libs/events/index.ts';
import type { FuzzTarget } from '../engine.ts';

export const CODECS: readonly Codec<unknown>[] = [
  ConfigReloaded, ConfigRejected, PeersChanged, PeerStateChanged, BlockCommitted, ViewChanged, EquivocationEvidence, InvalidSignature, SignerRefused,
] as Codec<unknown>[];

class DecodeFailed extends Error {}

const utf8 = new TextDecoder();

function handle(input: Uint8Array): { subject: ReturnType<typeof parseSubject>; message: unknown } {
  const codec = CODECS[(input[0] ?? 0) % CODECS.length]!;
  const len = input[1] ?? 0;
  const subj = utf8.decode(input.subarray(2, 2 + len));
  const meta = parseSubject(subj);
  try {
    return { subject: meta, message: codec.decode(input.subarray(2 + len)) };
  } catch (err) {
    throw new DecodeFailed(String(err));
  }
}

export function eventInput(codecIndex: number, subj: string, payload: Uint8Array): Uint8Array {
  const s = new TextEncoder().encode(subj).subarray(0, 255);
  return Uint8Array.from([codecIndex, s.length, ...s, ...payload]);
}

const subjects = fc.oneof(
  fc.constantFrom(subject('m0', 'consensus', 'block.committed'), 'btcfed.m0.store.config.reloaded', 'btcfed..x.y', 'btcfed', 'btcfed.a.b', '', '....', 'btcfed.m0.consensus.'),
  fc.string({ maxLength: 40 }),
);

/** Valid events: whatever decodes, as the decoder made it. */
const values = fc.tuple(fc.nat({ max: CODECS.length - 1 }), fc.uint8Array({ maxLength: 200 })).map(([i, b]) => {
  try { return { i, event: CODECS[i]!.decode(b) }; } catch { return { i, event: CODECS[i]!.decode(new Uint8Array()) }; }
});

export const eventsCodec: FuzzTarget<{ i: number; event: unknown }> = {
  name: 'events-codec',
  describe: 'an event from NATS/JetStream (subject and protobuf payload) for each events.proto type, as libs/events subscriptions decode it',
  sources: ['libs/events/subjects.ts', 'libs/gen/btcfed/v1/events.pb.ts'],
  generate: fc.tuple(fc.nat({ max: CODECS.length - 1 }), subjects, fc.uint8Array({ maxLength: 300 })).map(([i, s, p]) => eventInput(i, s, p)),
  run: (input) => { handle(input); },
  refusal: (err) => err instanceof DecodeFailed,
  roundTrip: {
    values,
    encode: ({ i, event }) => eventInput(i, 'btcfed.m0.consensus.x', encodeWith(CODECS[i]!, event)),
    decode: (b) => ({ i: b[0], event: handle(b).message }),
  },
};
