// Committed blocks answered as they are stored. The block store keeps each block and its QC as
// their wire encodings (Block, QuorumCert), which are exactly the nested messages of a
// GetBlockResponse. Decoding them to answer a read, only for the response to encode them again,
// was most of what a read cost: under a flood of reads (the Byzantine `read-hammer`) m0's
// consensus spent 14 % of its time encoding responses, and more decoding and re-hashing blocks.
// Here the stored bytes are copied into the response once. What is stored was checked when it
// was stored, and a reader checks a block by its QC, not by trusting this member.

import type * as grpc from '@grpc/grpc-js';
import { BinaryReader, BinaryWriter, WireType } from '@bufbuild/protobuf/wire';
import { GetBlockResponse } from '#libs/gen/btcfed/v1/consensus.pb.ts';

/** A committed block as the store holds it: its hash, its encoded Block, its encoded QC. */
export interface StoredBlock {
  readonly hash: Uint8Array;
  readonly block: Uint8Array;
  readonly qc: Uint8Array | undefined;
}

// Field tags (field number << 3 | wire type LEN) of GetBlockResponse, ListBlocksResponse and Block.
const RESPONSE_BLOCK = 10;
const RESPONSE_HASH = 18;
const RESPONSE_QC = 26;
const BLOCKS = 10;
const BLOCK_HEADER = 10;

/** The encoded Block with its header only (what a headers-only read answers): its transactions dropped. */
export function headerOnly(block: Uint8Array): Uint8Array {
  const r = new BinaryReader(block);
  while (r.pos < r.len) {
    const [field, wireType] = r.tag();
    if (field === 1 && wireType === WireType.LengthDelimited) {
      return new BinaryWriter().uint32(BLOCK_HEADER).bytes(r.bytes()).finish();
    }
    r.skip(wireType, field);
  }
  return new Uint8Array(0);
}

/** Writes one GetBlockResponse (as its fields, no length) from stored bytes. */
function writeStored(w: BinaryWriter, s: StoredBlock, headersOnly: boolean): void {
  w.uint32(RESPONSE_BLOCK).bytes(headersOnly ? headerOnly(s.block) : s.block);
  if (s.hash.length > 0) w.uint32(RESPONSE_HASH).bytes(s.hash);
  if (s.qc) w.uint32(RESPONSE_QC).bytes(s.qc);
}

/**
 * A response already encoded. A handler returns it in place of the message (typed as the
 * message, through `encoded`); the serializer of withEncodedResponses writes its bytes as they are.
 */
class Encoded {
  readonly bytes: Buffer;
  constructor(bytes: Buffer) { this.bytes = bytes; }
}

/** The bytes of an already encoded response; undefined for a message. */
export function encodedLength(value: unknown): number | undefined {
  return value instanceof Encoded ? value.bytes.length : undefined;
}

const finish = (w: BinaryWriter): Buffer => {
  const bytes = w.finish();
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
};

/** A GetBlockResponse from a stored block, already encoded. */
export function encodedBlockResponse<T>(s: StoredBlock, headersOnly = false): T {
  const w = new BinaryWriter();
  writeStored(w, s, headersOnly);
  return new Encoded(finish(w)) as unknown as T;
}

/**
 * A message whose field 1 holds these blocks, already encoded: a ListBlocksResponse (repeated
 * GetBlockResponse) or, of one block, a StreamCommitsResponse. Each is a stored block or (a
 * pruned height's kept header) a message.
 */
export function encodedBlockList<T>(items: ReadonlyArray<StoredBlock | GetBlockResponse>, headersOnly: boolean): T {
  const w = new BinaryWriter();
  for (const item of items) {
    w.uint32(BLOCKS).fork();
    if ('block' in item && item.block instanceof Uint8Array) writeStored(w, item as StoredBlock, headersOnly);
    else GetBlockResponse.encode(item as GetBlockResponse, w);
    w.join();
  }
  return new Encoded(finish(w)) as unknown as T;
}

/**
 * `definition` with the response serializer of `methods` taking an already encoded response as
 * it is (and any other as before). Served in place of the generated definition wherever a
 * handler may answer with encodedBlockResponse / encodedBlockList.
 */
export function withEncodedResponses<D extends grpc.ServiceDefinition>(definition: D, methods: ReadonlyArray<keyof D & string>): D {
  const out: Record<string, grpc.MethodDefinition<unknown, unknown>> = { ...definition };
  for (const name of methods) {
    const method = definition[name]!;
    const serialize = method.responseSerialize;
    out[name] = { ...method, responseSerialize: (value: unknown) => (value instanceof Encoded ? value.bytes : serialize(value)) };
  }
  return out as unknown as D;
}
