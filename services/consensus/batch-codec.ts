// The batches on disk, as bytes (batch-disk.ts writes and reads them): a group of batches is one
// LMDB value, each batch in it with the digest it was written with, so that what is read back can
// be checked against it. Decoding never throws: a value that does not parse says why, and the
// caller deletes and counts it.
//
// A group's value: 2 | count u32 BE | (digest 32 | length u32 BE | batch)*
// A batch: 2 | holder u32 BE | author u32 BE | epoch u64 BE | atMs f64 BE | count u32 BE | (length u32 BE | tx)*
// (version 1, still read, lacks the epoch: written before batches kept the epoch their numbers are of).

export const BATCH_VALUE_VERSION = 2;
export const GROUP_VALUE_VERSION = 2;
/** Version 1's header: no epoch. */
const V1_HEADER_BYTES = 1 + 4 + 4 + 8 + 4;
const HEADER_BYTES = V1_HEADER_BYTES + 8;
const GROUP_HEADER_BYTES = 1 + 4;
const DIGEST_BYTES = 32;

/**
 * A batch as written: who holds it here and who made it, by their numbers in `epoch`'s set (undefined:
 * written by version 1, which did not say), since when, and its transactions.
 */
export interface DiskBatch {
  holder: number;
  author: number;
  epoch?: number | undefined;
  atMs: number;
  txs: readonly Uint8Array[];
}

/** A group's value: its batches, each with its digest (the layout at the top). */
export function encodeGroup(entries: ReadonlyArray<{ digest: Uint8Array; b: DiskBatch }>): Buffer {
  const inner = entries.map((e) => encodeBatch(e.b));
  let size = GROUP_HEADER_BYTES;
  for (const v of inner) size += DIGEST_BYTES + 4 + v.length;
  const out = Buffer.allocUnsafe(size);
  out[0] = GROUP_VALUE_VERSION;
  out.writeUInt32BE(entries.length, 1);
  let at = GROUP_HEADER_BYTES;
  for (const [i, v] of inner.entries()) {
    out.set(entries[i]!.digest, at);
    out.writeUInt32BE(v.length, at + DIGEST_BYTES);
    out.set(v, at + DIGEST_BYTES + 4);
    at += DIGEST_BYTES + 4 + v.length;
  }
  return out;
}

/**
 * A group's value read back: each batch with the digest it was written with (a batch that does
 * not parse, with why), or why the group does not parse at all. Never throws.
 */
export function decodeGroup(value: Uint8Array): Array<{ digest: Uint8Array; b: DiskBatch | { why: string } }> | { why: string } {
  if (value.length < GROUP_HEADER_BYTES) return { why: `${value.length} bytes, shorter than a group's header` };
  if (value[0] !== GROUP_VALUE_VERSION) return { why: `version ${value[0]}, not ${GROUP_VALUE_VERSION}` };
  const v = Buffer.from(value.buffer, value.byteOffset, value.length);
  const count = v.readUInt32BE(1);
  if (count === 0) return { why: 'no batches' };
  if (count > (v.length - GROUP_HEADER_BYTES) / (DIGEST_BYTES + 4 + V1_HEADER_BYTES)) return { why: `${count} batches cannot fit ${v.length} bytes` };
  const out: Array<{ digest: Uint8Array; b: DiskBatch | { why: string } }> = [];
  let at = GROUP_HEADER_BYTES;
  for (let i = 0; i < count; i++) {
    if (at + DIGEST_BYTES + 4 > v.length) return { why: `batch ${i}: its header runs past the value` };
    const len = v.readUInt32BE(at + DIGEST_BYTES);
    if (at + DIGEST_BYTES + 4 + len > v.length) return { why: `batch ${i}: ${len} bytes do not fit the value` };
    out.push({ digest: v.subarray(at, at + DIGEST_BYTES), b: decodeBatch(v.subarray(at + DIGEST_BYTES + 4, at + DIGEST_BYTES + 4 + len)) });
    at += DIGEST_BYTES + 4 + len;
  }
  if (at !== v.length) return { why: `${v.length - at} bytes after the last batch` };
  return out;
}

/** A batch's bytes inside a group (the layout at the top). */
export function encodeBatch(b: DiskBatch): Buffer {
  let size = HEADER_BYTES;
  for (const tx of b.txs) size += 4 + tx.length;
  const out = Buffer.allocUnsafe(size);
  out[0] = BATCH_VALUE_VERSION;
  out.writeUInt32BE(b.holder, 1);
  out.writeUInt32BE(b.author, 5);
  out.writeBigUInt64BE(BigInt(b.epoch ?? 0), 9);
  out.writeDoubleBE(b.atMs, 17);
  out.writeUInt32BE(b.txs.length, 25);
  let at = HEADER_BYTES;
  for (const tx of b.txs) {
    out.writeUInt32BE(tx.length, at);
    out.set(tx, at + 4);
    at += 4 + tx.length;
  }
  return out;
}

/** A value read back (its transactions are views into `value`), or why it is not one. Never throws. */
export function decodeBatch(value: Uint8Array): DiskBatch | { why: string } {
  if (value[0] !== BATCH_VALUE_VERSION && value[0] !== 1) return { why: `version ${value[0]}, not ${BATCH_VALUE_VERSION}` };
  const v1 = value[0] === 1;
  const header = v1 ? V1_HEADER_BYTES : HEADER_BYTES;
  if (value.length < header) return { why: `${value.length} bytes, shorter than the ${header}-byte header` };
  const v = Buffer.from(value.buffer, value.byteOffset, value.length);
  const holder = v.readUInt32BE(1);
  const author = v.readUInt32BE(5);
  const epoch = v1 ? undefined : v.readBigUInt64BE(9);
  const atMs = v.readDoubleBE(v1 ? 9 : 17);
  const count = v.readUInt32BE(header - 4);
  if (!Number.isFinite(atMs)) return { why: 'its time is not a number' };
  if (epoch !== undefined && epoch > BigInt(Number.MAX_SAFE_INTEGER)) return { why: `epoch ${epoch} is beyond any epoch` };
  if (count === 0) return { why: 'no transactions' };
  // Each transaction takes at least its length field and one byte: a count beyond that is a lie.
  if (count > (v.length - header) / 5) return { why: `${count} transactions cannot fit ${v.length} bytes` };
  const txs: Uint8Array[] = [];
  let at = header;
  for (let i = 0; i < count; i++) {
    if (at + 4 > v.length) return { why: `transaction ${i}: its length runs past the value` };
    const len = v.readUInt32BE(at);
    if (len === 0 || at + 4 + len > v.length) return { why: `transaction ${i}: ${len} bytes do not fit the value` };
    txs.push(v.subarray(at + 4, at + 4 + len));
    at += 4 + len;
  }
  if (at !== v.length) return { why: `${v.length - at} bytes after the last transaction` };
  return { holder, author, epoch: epoch === undefined ? undefined : Number(epoch), atMs, txs };
}
