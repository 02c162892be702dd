// Target gateway-framing: the raw bytes of a libp2p stream a peer (any peer: no seat needed) opens
// on the consensus or exchange protocol, through the gateway's length-prefix framing
// (services/gateway/framing.ts FrameDecoder), in chunks as the transport delivers them.
// Refusal: FedError FRAME_TOO_LARGE or FRAME_INVALID (the stream is then reset). Whatever comes
// in, no frame above the limit comes out and the decoder buffers at most one frame plus one chunk.
// The input's first byte picks the chunk size; the rest is the stream.

import fc from 'fast-check';
import { isFedError } from '#libs/errors/index.ts';
import { FrameDecoder, encodeFrame } from '../../services/gateway/framing.ts';
import { violated, type FuzzTarget } from '../engine.ts';
import { encodeVarint } from '../mutate.ts';

/** services.gateway's default max frame (conf.yaml services.gateway.max_frame_bytes) is far larger; a small one reaches the edges. */
export const MAX = 64 * 1024;

function concat(parts: Uint8Array[]): Uint8Array {
  return Uint8Array.from(Buffer.concat(parts));
}

/** Frames as a member's sender writes them: each payload behind its varint length. */
export const streamOf = (payloads: readonly Uint8Array[], max = MAX): Uint8Array => concat(payloads.map((p) => encodeFrame(p, max).subarray()));

function feed(input: Uint8Array): Uint8Array[] {
  const chunk = 1 + (input[0] ?? 0) * 7;
  const stream = input.subarray(1);
  const d = new FrameDecoder(MAX);
  const out: Uint8Array[] = [];
  for (let at = 0; at < stream.length; at += chunk) {
    for (const f of d.push(stream.subarray(at, at + chunk))) {
      if (f.length > MAX) violated(`a frame of ${f.length} bytes came out (limit ${MAX})`);
      out.push(f);
    }
    if (d.bufferedBytes > MAX + chunk + 5) violated(`decoder buffers ${d.bufferedBytes} bytes (limit ${MAX} + chunk ${chunk})`);
  }
  return out;
}

const payloads = fc.array(fc.oneof(fc.uint8Array({ maxLength: 200 }), fc.constantFrom(0, 127, 128, MAX - 1, MAX).map((n) => new Uint8Array(n))), { maxLength: 6 });

const generate = fc.oneof(
  fc.tuple(fc.nat({ max: 255 }), payloads).map(([c, ps]) => concat([Uint8Array.of(c), streamOf(ps)])),
  // A hostile prefix: an announced length at and past the limit, 6-byte varints, a prefix cut short.
  fc.tuple(fc.nat({ max: 255 }), fc.constantFrom(MAX, MAX + 1, 2 ** 32, 2 ** 35, 2 ** 53), fc.uint8Array({ maxLength: 16 }))
    .map(([c, n, tail]) => concat([Uint8Array.of(c), Uint8Array.from(encodeVarint(n)), tail])),
  fc.tuple(fc.nat({ max: 255 }), fc.uint8Array({ minLength: 1, maxLength: 8 })).map(([c, b]) => concat([Uint8Array.of(c), b.map((x) => x | 0x80)])),
);

export const gatewayFraming: FuzzTarget<{ chunk: number; payloads: Uint8Array[] }> = {
  name: 'gateway-framing',
  describe: 'the byte stream of a libp2p stream any peer opens (consensus and peer-exchange protocols): varint length prefix, frame limit, chunking',
  sources: ['services/gateway/framing.ts'],
  generate,
  run: (input) => { feed(input); },
  // One push per byte at worst (chunk 1): linear, about a microsecond a byte.
  msPerKiB: 2,

  refusal: (err) => isFedError(err, 'FRAME_TOO_LARGE') || isFedError(err, 'FRAME_INVALID'),
  roundTrip: {
    values: fc.record({ chunk: fc.nat({ max: 255 }), payloads }),
    encode: (v) => concat([Uint8Array.of(v.chunk), streamOf(v.payloads)]),
    decode: (b) => feed(b),
    expected: (v) => v.payloads,
  },
};
