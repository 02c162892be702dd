// The mempool journal's values on disk (mempool-journal.ts keeps them): keys are an 8-byte
// big-endian sequence number, one per group commit. A group's value holds every entry the commit
// wrote, in order:
//   2 | (length of tx, u32 BE | SHA-256 of the tx (32) | tx)*      the hash doubling as a checksum
// An older build wrote one key per transaction, `1 | SHA-256 (32) | tx`: decodeValue reads both.
// Must never throw on what it reads, nor return an entry whose transaction does not hash to its hash.

import { HASH_BYTES, bytesEqual, txHash } from '#libs/crypto/index.ts';

/** The first byte of a value an older build wrote: one transaction a key. */
export const VALUE_VERSION = 1;
/** The first byte of a group's value: the layout at the top. */
export const GROUP_VERSION = 2;
export const KEY_BYTES = 8;
/** A group entry's length field. */
export const LENGTH_BYTES = 4;

/** A group's key: its sequence number, 8 bytes big-endian (LMDB orders keys by their bytes: oldest first). */
export function seqKey(seq: number): Buffer {
  const k = Buffer.alloc(KEY_BYTES);
  k.writeBigUInt64BE(BigInt(seq));
  return k;
}

/** A group's value: its entries in order (the layout at the top). */
export function encodeGroup(entries: Iterable<{ hash: Uint8Array; tx: Uint8Array }>): Buffer {
  const list = [...entries];
  const out = Buffer.allocUnsafe(encodedBytes(list));
  out[0] = GROUP_VERSION;
  let at = 1;
  for (const e of list) {
    out.writeUInt32BE(e.tx.length, at);
    out.set(e.hash, at + LENGTH_BYTES);
    out.set(e.tx, at + LENGTH_BYTES + HASH_BYTES);
    at += LENGTH_BYTES + HASH_BYTES + e.tx.length;
  }
  return out;
}

export type Decoded = { hash: Uint8Array; tx: Uint8Array } | { why: string };

/** One transaction's hash and bytes, checked: the hash must be the transaction's. Copies (LMDB's buffers are only valid until the next read). */
function checked(hash: Uint8Array, tx: Uint8Array): Decoded {
  const h = new Uint8Array(hash);
  const t = new Uint8Array(tx);
  if (!bytesEqual(txHash(t), h)) return { why: 'the transaction does not hash to the stored hash' };
  return { hash: h, tx: t };
}

/**
 * What a stored key and value hold: the entries of a group, or the one of an older build's key,
 * each decoded or why not. An entry whose length runs past the value ends the group: what follows
 * is one entry that cannot be read.
 */
export function decodeValue(key: Uint8Array, value: Uint8Array): Decoded[] {
  if (key.length !== KEY_BYTES) return [{ why: `key is ${key.length} bytes, expected ${KEY_BYTES}` }];
  if (value[0] === VALUE_VERSION) {
    if (value.length < 1 + HASH_BYTES + 1) return [{ why: `value is ${value.length} bytes, shorter than a version, a hash and one byte of transaction` }];
    return [checked(value.subarray(1, 1 + HASH_BYTES), value.subarray(1 + HASH_BYTES))];
  }
  if (value.length === 0) return [{ why: 'value is empty' }];
  if (value[0] !== GROUP_VERSION) return [{ why: `value version ${value[0]}, this build reads ${VALUE_VERSION} and ${GROUP_VERSION}` }];
  const out: Decoded[] = [];
  const view = Buffer.from(value.buffer, value.byteOffset, value.length);
  let at = 1;
  while (at < value.length) {
    if (at + LENGTH_BYTES + HASH_BYTES > value.length) { out.push({ why: `entry at byte ${at}: ${value.length - at} bytes left, shorter than a length and a hash` }); break; }
    const len = view.readUInt32BE(at);
    const end = at + LENGTH_BYTES + HASH_BYTES + len;
    if (len === 0 || end > value.length) { out.push({ why: `entry at byte ${at}: a transaction of ${len} bytes, ${value.length - at - LENGTH_BYTES - HASH_BYTES} left` }); break; }
    out.push(checked(value.subarray(at + LENGTH_BYTES, at + LENGTH_BYTES + HASH_BYTES), value.subarray(at + LENGTH_BYTES + HASH_BYTES, end)));
    at = end;
  }
  return out;
}

/** The size of a group's value holding these entries. */
export function encodedBytes(entries: Iterable<{ tx: Uint8Array }>): number {
  let n = 1;
  for (const e of entries) n += LENGTH_BYTES + HASH_BYTES + e.tx.length;
  return n;
}
