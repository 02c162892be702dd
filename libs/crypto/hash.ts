// SHA-256, transaction hashes, the Merkle root of a block's transactions, and hex conversion.
//
// Merkle root (other implementations must reproduce it byte for byte):
//   leaf(h)     = SHA-256(0x00 ‖ h)            h = txHash(tx) = SHA-256(tx bytes), 32 bytes
//   node(l, r)  = SHA-256(0x01 ‖ l ‖ r)
//   Each level pairs neighbours left to right; an odd last node is promoted unchanged to the
//   next level (never duplicated, so [a, b, c] and [a, b, c, c] have different roots).
//   One transaction: root = leaf(h). No transaction: root = SHA-256(UTF-8 "btcfed/v1/merkle-empty").
// The 0x00/0x01 prefixes keep a leaf from ever being taken for an inner node.
// Must never accept a hash that is not 32 bytes, nor hex that does not round-trip.

import { createHash, hash } from 'node:crypto';
import { FedError } from '#libs/errors/index.ts';

export const HASH_BYTES = 32;

/** 32 zero bytes: the parent hash and parent state hash of the genesis block. */
export const ZERO_HASH: Uint8Array = new Uint8Array(HASH_BYTES);

export const MERKLE_EMPTY_TAG = 'btcfed/v1/merkle-empty';

const LEAF_PREFIX = 0x00;
const NODE_PREFIX = 0x01;

// Node's one-shot hash returns its digest as a Buffer about three times slower than as a string
// (about 700 ns a call against 240 here, 2026-11-28: a Buffer made in C++ costs more than the
// hashing of 65 bytes). So the hot paths take the digest as a latin1 string, one character a byte,
// and copy its character codes: 270 ns with the copy. Same bytes.
/** SHA-256 of `input`, written into `out` at `offset`. */
function digestInto(input: Uint8Array, out: Uint8Array, offset: number): void {
  const s = hash('sha256', input, 'binary'); // 'binary' is latin1
  for (let j = 0; j < HASH_BYTES; j++) out[offset + j] = s.charCodeAt(j);
}

function digest(input: Uint8Array): Uint8Array {
  const out = new Uint8Array(HASH_BYTES);
  digestInto(input, out, 0);
  return out;
}

/** SHA-256 of the concatenation of `parts`. */
export function sha256(...parts: Uint8Array[]): Uint8Array {
  // One part is the hot case (a transaction id): the one-shot hash skips a Hash object.
  if (parts.length === 1) return digest(parts[0]!);
  const h = createHash('sha256');
  for (const part of parts) h.update(part);
  // A plain Uint8Array, not a Buffer view into node's shared pool.
  return new Uint8Array(h.digest());
}

/** Throws CRYPTO_BAD_HASH unless `value` is a 32-byte array. */
export function assertHash(value: Uint8Array, what = 'hash'): void {
  if (!(value instanceof Uint8Array) || value.length !== HASH_BYTES) {
    throw new FedError('CRYPTO_BAD_HASH', `${what} must be ${HASH_BYTES} bytes`, {
      field: what,
      actual: value instanceof Uint8Array ? value.length : typeof value,
    });
  }
}

/** The id of a transaction: SHA-256 of its bytes exactly as submitted. */
export function txHash(tx: Uint8Array): Uint8Array {
  if (!(tx instanceof Uint8Array)) {
    throw new FedError('CRYPTO_BAD_TX', 'a transaction must be a Uint8Array', { actual: typeof tx });
  }
  return sha256(tx);
}

// A block of 10,000 transactions costs about 20,000 tree hashes at every member. One scratch
// buffer and the one-shot hash instead of a Hash object per node (createHash, update × 3, digest)
// took merkleRoot of 5,000 ids from 20.3 to 18.3 ms here: each call's fixed cost, whatever the
// input size, dominates (about 1.6 µs then; the digest taken as a string, above, cut it to 0.3).
// Same bytes hashed, same tree.
const scratch = new Uint8Array(1 + 2 * HASH_BYTES);
/** A leaf's input, 0x00 ‖ id: its own buffer, so a leaf is hashed without a view of `scratch`. */
const leafScratch = new Uint8Array(1 + HASH_BYTES);
leafScratch[0] = LEAF_PREFIX;

/** SHA-256(prefix ‖ a ‖ b?) through the one-shot hash and a reused buffer. */
function prefixedHash(prefix: number, a: Uint8Array, b?: Uint8Array): Uint8Array {
  if (b === undefined && prefix === LEAF_PREFIX) {
    leafScratch.set(a, 1);
    return digest(leafScratch);
  }
  scratch[0] = prefix;
  scratch.set(a, 1);
  if (b === undefined) return digest(scratch.subarray(0, 1 + HASH_BYTES));
  scratch.set(b, 1 + HASH_BYTES);
  return digest(scratch);
}

function merkleLeaves(hashes: readonly Uint8Array[]): Uint8Array[] {
  return hashes.map((h, i) => {
    assertHash(h, `txHashes[${i}]`);
    return prefixedHash(LEAF_PREFIX, h);
  });
}

/** The next level up: neighbours paired left to right, an odd last node promoted unchanged. */
function merkleParents(level: readonly Uint8Array[]): Uint8Array[] {
  const next: Uint8Array[] = [];
  for (let i = 0; i < level.length; i += 2) {
    const left = level[i]!;
    const right = level[i + 1];
    next.push(right === undefined ? left : prefixedHash(NODE_PREFIX, left, right));
  }
  return next;
}

/** The Merkle root over transaction hashes, in block order (see the layout at the top of this file). */
export function merkleRoot(hashes: readonly Uint8Array[]): Uint8Array {
  // The leaves in one buffer and the levels above them in another: no array of nodes per level.
  return merkleRootOfLeafBytes(merkleLeafBytes(hashes));
}

/**
 * The leaf level of the Merkle tree over `hashes`, as one buffer of 32-byte leaves in order: what
 * a batch keeps (one object, 32 bytes a transaction) so that a block naming it does not hash its
 * leaves again. Buffers of consecutive runs of ids, concatenated, are the leaves of the whole run.
 */
export function merkleLeafBytes(hashes: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(hashes.length * HASH_BYTES);
  for (let i = 0; i < hashes.length; i++) {
    assertHash(hashes[i]!, `txHashes[${i}]`);
    leafScratch.set(hashes[i]!, 1);
    digestInto(leafScratch, out, i * HASH_BYTES);
  }
  return out;
}

/**
 * merkleRoot of the ids whose leaves `leaves` holds (merkleLeafBytes, or a concatenation of them).
 * Each level is written over the one below it in one buffer, so a root of n leaves allocates that
 * buffer and nothing per node (a node of its own per hash was a sixth of what the consensus path
 * allocated, docs/performance.md).
 */
export function merkleRootOfLeafBytes(leaves: Uint8Array): Uint8Array {
  if (leaves.length % HASH_BYTES !== 0) throw new FedError('CRYPTO_BAD_HASH', `leaves must be a multiple of ${HASH_BYTES} bytes`, { actual: leaves.length });
  let n = leaves.length / HASH_BYTES;
  if (n === 0) return sha256(new TextEncoder().encode(MERKLE_EMPTY_TAG));
  if (n === 1) return leaves.slice(0, HASH_BYTES);
  // The first level from the leaves, into a buffer of its own; each level above it in place:
  // node j of a level is made from nodes 2j and 2j + 1 of the one below, read before it is written.
  const level = new Uint8Array(Math.ceil(n / 2) * HASH_BYTES);
  let from = leaves;
  scratch[0] = NODE_PREFIX;
  while (n > 1) {
    const pairs = n >>> 1;
    for (let j = 0; j < pairs; j++) {
      const at = 2 * j * HASH_BYTES;
      for (let k = 0; k < 2 * HASH_BYTES; k++) scratch[1 + k] = from[at + k]!;
      digestInto(scratch, level, j * HASH_BYTES);
    }
    // An odd last node is promoted unchanged.
    if (n % 2 === 1) {
      const at = (n - 1) * HASH_BYTES;
      for (let k = 0; k < HASH_BYTES; k++) level[pairs * HASH_BYTES + k] = from[at + k]!;
    }
    n = pairs + (n % 2);
    from = level;
  }
  return level.slice(0, HASH_BYTES);
}

/** Every level of the Merkle tree, leaves first, root last (for serving many proofs of one block). */
export function merkleLevels(hashes: readonly Uint8Array[]): Uint8Array[][] {
  let level = merkleLeaves(hashes);
  const levels = [level];
  while (level.length > 1) {
    level = merkleParents(level);
    levels.push(level);
  }
  return levels;
}

/**
 * The inclusion proof of the transaction at `index`: the sibling hashes from the leaf level up,
 * one per level where the path's node has a neighbour (a promoted odd node has none). With the
 * index and the number of transactions it rebuilds the root (verifyMerkleProof). `tree` is the
 * transaction hashes, or their merkleLevels.
 */
export function merkleProof(tree: readonly Uint8Array[] | readonly (readonly Uint8Array[])[], index: number): Uint8Array[] {
  const levels = tree.length > 0 && Array.isArray(tree[0]) ? tree as readonly (readonly Uint8Array[])[] : merkleLevels(tree as readonly Uint8Array[]);
  const count = levels[0]?.length ?? 0;
  if (!Number.isInteger(index) || index < 0 || index >= count) {
    throw new FedError('CRYPTO_BAD_INDEX', `no transaction at index ${index} of ${count}`, { index, count });
  }
  const siblings: Uint8Array[] = [];
  let i = index;
  for (const level of levels) {
    if (level.length <= 1) break;
    if (i % 2 === 1) siblings.push(level[i - 1]!);
    else if (i + 1 < level.length) siblings.push(level[i + 1]!);
    i = Math.floor(i / 2);
  }
  return siblings;
}

/**
 * Whether `txHash` is the transaction at `index` of `count` under `root`, by `siblings` (from
 * merkleProof). Every sibling must be used; the shape of the tree follows from `count` alone.
 * What it proves is membership: the header commits to the root, not to the number of
 * transactions, so the index is as good as the `count` the server gave.
 */
export function verifyMerkleProof(txHash: Uint8Array, index: number, count: number, siblings: readonly Uint8Array[], root: Uint8Array): boolean {
  if (!Number.isInteger(index) || !Number.isInteger(count) || index < 0 || index >= count || txHash.length !== HASH_BYTES) return false;
  if (siblings.length > 64 || siblings.some((s) => s.length !== HASH_BYTES)) return false;
  let h = prefixedHash(LEAF_PREFIX, txHash);
  let i = index;
  let n = count;
  let k = 0;
  while (n > 1) {
    if (i % 2 === 1) {
      const s = siblings[k++];
      if (s === undefined) return false;
      h = prefixedHash(NODE_PREFIX, s, h);
    } else if (i + 1 < n) {
      const s = siblings[k++];
      if (s === undefined) return false;
      h = prefixedHash(NODE_PREFIX, h, s);
    }
    i = Math.floor(i / 2);
    n = Math.ceil(n / 2);
  }
  return k === siblings.length && bytesEqual(h, root);
}

/** SHA-256 of a string (UTF-8) or bytes, as lower-case hex: checksums of files, journal lines. */
export function sha256Hex(data: string | Uint8Array): string {
  return hash('sha256', data, 'hex');
}

export function toHex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}

const HEX = /^[0-9a-fA-F]*$/;

/** Hex (either case, no 0x prefix) to bytes; throws CRYPTO_BAD_HEX on odd length or a non-hex digit. */
export function fromHex(hex: string): Uint8Array {
  if (typeof hex !== 'string' || hex.length % 2 !== 0 || !HEX.test(hex)) {
    // Buffer.from(hex) silently stops at the first bad digit; we refuse instead.
    throw new FedError('CRYPTO_BAD_HEX', 'expected an even number of hex digits', {
      length: typeof hex === 'string' ? hex.length : typeof hex,
    });
  }
  return new Uint8Array(Buffer.from(hex, 'hex'));
}

/** Byte-wise equality (not constant time: for public values only). */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
