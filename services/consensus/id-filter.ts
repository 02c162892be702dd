// A filter of transaction ids (a blocked Bloom filter): "certainly not among them" for almost every
// id that is not, in a few multiplications and one cache line, without allocation. The transaction
// index keeps one of the ids its LMDB tree holds (tx-index.ts), so a new transaction, the common
// case, is known new without descending the tree. It never says no of an id added; it says "maybe"
// of a few that were not (the tree answers those, as it answered every id before).
//
// Each id falls in one block of 512 bits picked by its first four bytes, and sets four bits of that
// block picked by its next four. The bytes are mixed with a seed the process draws, so a peer that
// grinds transactions cannot aim them at one block: it could at most make more lookups fall through
// to the tree, which is what each of them cost before.

import { ID_BYTES } from '#libs/blocks/index.ts';

const BLOCK_WORDS = 16; // 512 bits: one cache line
const HASHES = 4;
/** Bits a filter is sized for per id (about 0.5 % false "maybe" at that load; about 3 % at half of it). */
export const FILTER_BITS_PER_ID = 16;

/** The fmix32 finaliser: every input bit moves about half the output bits. */
function mix(x: number): number {
  x ^= x >>> 16;
  x = Math.imul(x, 0x85ebca6b);
  x ^= x >>> 13;
  x = Math.imul(x, 0xc2b2ae35);
  return (x ^ (x >>> 16)) >>> 0;
}

const word = (id: Uint8Array, at: number): number => (id[at]! | (id[at + 1]! << 8) | (id[at + 2]! << 16) | (id[at + 3]! << 24)) >>> 0;

export class IdFilter {
  readonly #words: Uint32Array;
  readonly #blockMask: number;
  readonly #seed: readonly [number, number];
  /** Ids added (repeats counted again). */
  count = 0;

  /** `bits`: rounded up to a power of two, at least one block. */
  constructor(bits: number, seed: readonly [number, number]) {
    const blocks = IdFilter.#blocksFor(bits);
    this.#words = new Uint32Array(blocks * BLOCK_WORDS);
    this.#blockMask = blocks - 1;
    this.#seed = seed;
  }

  /** A filter for `ids` and as many again to come, at FILTER_BITS_PER_ID, within `maxBytes` (at least 8 KiB). */
  static sizedFor(ids: number, maxBytes: number, seed: readonly [number, number]): IdFilter {
    return new IdFilter(Math.min(maxBytes * 8, Math.max(1 << 16, 2 * ids * FILTER_BITS_PER_ID)), seed);
  }

  static #blocksFor(bits: number): number {
    let blocks = 1;
    while (blocks * BLOCK_WORDS * 32 < bits) blocks *= 2;
    return blocks;
  }

  /** The bytes a filter of `bits` takes, before making it. */
  static bytesFor(bits: number): number {
    return IdFilter.#blocksFor(bits) * BLOCK_WORDS * 4;
  }

  get bytes(): number { return this.#words.byteLength; }

  /** Ids it holds at FILTER_BITS_PER_ID / 2: past that, its false "maybe" passes 3 %. */
  get capacity(): number { return (this.#words.length * 32) / (FILTER_BITS_PER_ID / 2); }

  add(id: Uint8Array): void {
    this.count++;
    if (id.length === ID_BYTES) this.#probe(id, 0, true);
  }

  /** Adds each id of `ids` (32 bytes each, one after another) where it lies: no view made per id. */
  addAll(ids: Uint8Array): void {
    for (let at = 0; at + ID_BYTES <= ids.length; at += ID_BYTES) {
      this.count++;
      this.#probe(ids, at, true);
    }
  }

  /** False: `id` was certainly never added. True: it may have been. */
  mayHave(id: Uint8Array): boolean {
    return id.length !== ID_BYTES || this.#probe(id, 0, false);
  }

  /** The id at `at` in `src`: its bits set, or whether they all are. */
  #probe(src: Uint8Array, at: number, set: boolean): boolean {
    const a = mix(word(src, at) ^ this.#seed[0]);
    const b = mix(word(src, at + 4) ^ this.#seed[1]);
    const c = mix(a ^ b);
    const base = (a & this.#blockMask) * BLOCK_WORDS;
    const words = this.#words;
    let all = true;
    for (let k = 0; k < HASHES; k++) {
      const bit = k < 3 ? (b >>> (9 * k)) & 511 : c & 511;
      const at = base + (bit >>> 5);
      const mask = 1 << (bit & 31);
      if (set) words[at]! |= mask;
      else if ((words[at]! & mask) === 0) { all = false; break; }
    }
    return all;
  }
}
