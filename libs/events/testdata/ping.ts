// A hand-written protobuf codec for events tests, shaped like ts-proto output
// (message Ping { string text = 1; uint32 n = 2; }), so the tests do not depend on the
// project's generated contracts. Must never be used outside tests.

import { BinaryReader, BinaryWriter } from '@bufbuild/protobuf/wire';
import type { Codec } from '../codec.ts';

export interface Ping {
  text: string;
  n: number;
}

export const Ping: Codec<Ping> = {
  encode(message: Ping, writer: BinaryWriter = new BinaryWriter()): BinaryWriter {
    if (message.text !== '') writer.uint32(10).string(message.text);
    if (message.n !== 0) writer.uint32(16).uint32(message.n);
    return writer;
  },
  decode(input: Uint8Array): Ping {
    const reader = new BinaryReader(input);
    const message: Ping = { text: '', n: 0 };
    while (reader.pos < reader.len) {
      const tag = reader.uint32();
      switch (tag >>> 3) {
        case 1:
          if ((tag & 7) !== 2) throw new Error(`field 1: wire type ${tag & 7}`);
          message.text = reader.string();
          break;
        case 2:
          if ((tag & 7) !== 0) throw new Error(`field 2: wire type ${tag & 7}`);
          message.n = reader.uint32();
          break;
        default:
          reader.skip(tag & 7);
      }
    }
    return message;
  },
};

/** Bytes that no protobuf decoder accepts: a length-delimited field 1 longer than the input. */
export const UNDECODABLE = new Uint8Array([0x0a, 0x7f, 0x01]);
