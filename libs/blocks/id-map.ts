// A hash table keyed by 32-byte ids (transaction ids: SHA-256 outputs) with a number for each,
// kept in typed arrays: open addressing, linear probing, at most three quarters full.
//
// Why not a Map keyed by the id as a string: every lookup then makes a new 32-character string
// and hashes it, and the garbage collector pays for each. In a CPU profile of a member's consensus
// under load, the index of committed ids (tx-index.ts) spent about a fifth of its busy time in
// such keys (docs/performance.md, "What a transaction allocates"). Here a lookup reads the id's
// bytes where they lie and allocates nothing. IdTable (below) maps ids to objects the same way:
// the mempool's transactions, the journal's entries.
//
// Each slot has a byte of state: empty, or a tag of 2–255 taken from the id's hash, so a probe
// compares an id's 32 bytes only where the tags agree (one slot in 254 by chance).
// The slot of an id comes from its first eight bytes mixed with a seed this process chose at
// random: ids are hashes, so a peer cannot choose them freely, but it can grind transactions
// until many ids share their low bits, and without the seed it cannot know which bits those are.
// A deletion leaves no marker behind: the ids after it in its run of full slots that may move
// back toward their own slot are shifted into the gap (backward-shift deletion), so a probe stops
// at the first empty slot and the table never fills with deleted slots. (It used to mark them;
// tables that churn — the mempool, the index's recent ids emptied by each merge — then swept their
// markers into new arrays each time markers and ids reached three quarters of the slots: the
// whole table's size in garbage outside V8's heap each time, 10 MiB for the index's recent ids,
// and 2–3 % of a loaded member's consensus in the sweeps, docs/performance.md.)
// The table grows at three quarters full (41 bytes a slot: 55–109 bytes an id) and never
// shrinks: deleting, or clear(), allocates nothing. Its arrays live outside V8's heap, which a
// quiet process collects late, so a table that rebuilt itself smaller each time it emptied would
// leave garbage of its full size at each rebuild. Its users bound it: the index's tiers by their merge
// and their generations (services/consensus/tx-index.ts), the mempool and its journal by
// consensus.mempool_max_txs, a block's duplicate check (validity.ts) by the block's size.
// Must never answer for an id that is not in it, nor lose one that is.

import { FedError } from '#libs/errors/index.ts';

export const ID_BYTES = 32;
const EMPTY = 0;
/** Tags are 2–255: a slot whose state is at least this holds an id. */
const HELD = 2;
const MIN_CAPACITY = 16;
/** Bytes a slot takes: the id, its value (a float64), its state. */
const SLOT_BYTES = ID_BYTES + 8 + 1;

export class IdMap {
  readonly #s0: number;
  readonly #s1: number;
  #mask = 0;
  #keys = new Uint8Array(0);
  #values = new Float64Array(0);
  /** EMPTY, or the tag of the id held (2–255). */
  #state = new Uint8Array(0);
  #size = 0;
  /** Set by #slot: the tag of the id it placed. */
  #tag = 0;

  /** `seed`: two 32-bit numbers the process chose at random (randomIdSeed), fixed in tests. */
  constructor(seed: readonly [number, number], capacity = MIN_CAPACITY) {
    this.#s0 = seed[0] | 0;
    this.#s1 = seed[1] | 0;
    let cap = MIN_CAPACITY;
    while (cap < capacity) cap *= 2;
    this.#allocate(cap);
  }

  get size(): number {
    return this.#size;
  }

  /** Slots allocated (for tests and stats). */
  get capacity(): number {
    return this.#mask + 1;
  }

  /** Bytes its arrays take. */
  get bytes(): number {
    return (this.#mask + 1) * SLOT_BYTES;
  }

  has(id: Uint8Array): boolean {
    return this.#probe(id) >= 0;
  }

  get(id: Uint8Array): number | undefined {
    const i = this.#probe(id);
    return i < 0 ? undefined : this.#values[i];
  }

  set(id: Uint8Array, value: number): this {
    this.#put(id, value, true);
    return this;
  }

  /** Adds `id` with `value` unless it is in the table already (then nothing changes): whether it was added. */
  add(id: Uint8Array, value: number): boolean {
    return this.#put(id, value, false);
  }

  delete(id: Uint8Array): boolean {
    return this.take(id) !== undefined;
  }

  /** Deletes `id`: the value it had, or undefined when it was not in the table. */
  take(id: Uint8Array): number | undefined {
    const i = this.#probe(id);
    if (i < 0) return undefined;
    const value = this.#values[i];
    this.#vacate(i);
    return value;
  }

  /**
   * Deletes the id in slot `hole`, then walks the run of full slots after it: an id whose own slot
   * (where its probe starts) is not between the hole and where it sits would be cut off from its
   * probe by the hole, so it moves into the hole, and its old slot is the hole from there. The run
   * ends at an empty slot; so does every probe. An id's own slot is computed again from its bytes
   * and the seed, so a peer can no more make the walk long than it can make a probe long.
   */
  #vacate(hole: number): void {
    this.#size--;
    const keys = this.#keys;
    const state = this.#state;
    const mask = this.#mask;
    for (let j = (hole + 1) & mask; state[j] !== EMPTY; j = (j + 1) & mask) {
      const home = this.#slot(keys, j * ID_BYTES);
      // Distances along the probe, wrapping: the id at j may fill the hole when the hole lies on
      // its way from home to j.
      if (((j - home) & mask) < ((j - hole) & mask)) continue;
      const to = hole * ID_BYTES;
      const from = j * ID_BYTES;
      for (let k = 0; k < ID_BYTES; k++) keys[to + k] = keys[from + k]!;
      this.#values[hole] = this.#values[j]!;
      state[hole] = state[j]!;
      hole = j;
    }
    state[hole] = EMPTY;
  }

  /** delete() for the id at `src[at..at+32)`, making no view of it. */
  deleteAt(src: Uint8Array, at: number): boolean {
    const i = this.#probeAt(src, at);
    if (i < 0) return false;
    this.#vacate(i);
    return true;
  }

  /** Empties it, keeping its arrays (the next use fills them again without allocating). */
  clear(): void {
    this.#state.fill(EMPTY);
    this.#size = 0;
  }

  /** Calls `fn` with each id (a view into the table: copy it to keep it) and its value; the table must not change meanwhile. */
  forEach(fn: (id: Uint8Array, value: number) => void): void {
    this.forEachAt((keys, at, value) => fn(keys.subarray(at, at + ID_BYTES), value));
  }

  /**
   * Calls `fn` with the array holding the ids, the offset of each id in it (32 bytes from there)
   * and its value, making no view per id; the table must not change meanwhile.
   */
  forEachAt(fn: (keys: Uint8Array, at: number, value: number) => void): void {
    const keys = this.#keys;
    for (let i = 0; i <= this.#mask; i++) {
      if (this.#state[i]! >= HELD) fn(keys, i * ID_BYTES, this.#values[i]!);
    }
  }

  /** The first slot to probe for the id at `src[at..at+32)`; its tag is left in #tag. */
  #slot(src: Uint8Array, at: number): number {
    const a = (src[at]! | (src[at + 1]! << 8) | (src[at + 2]! << 16) | (src[at + 3]! << 24)) ^ this.#s0;
    const b = (src[at + 4]! | (src[at + 5]! << 8) | (src[at + 6]! << 16) | (src[at + 7]! << 24)) ^ this.#s1;
    // murmur3's finalizer over both words, keyed by the seed.
    let h = Math.imul(a, 0xcc9e2d51) ^ Math.imul((b << 15) | (b >>> 17), 0x1b873593);
    h ^= h >>> 16;
    h = Math.imul(h, 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    h ^= h >>> 16;
    // The top byte for the tag, the low bits for the slot (tables stay far below 2^24 slots).
    this.#tag = 2 + ((h >>> 24) % 254);
    return h & this.#mask;
  }

  /** #probeAt for an id given alone, which must be 32 bytes. */
  #probe(id: Uint8Array): number {
    if (id.length !== ID_BYTES) throw new FedError('CRYPTO_BAD_HASH', `an id must be ${ID_BYTES} bytes`, { actual: id.length });
    return this.#probeAt(id, 0);
  }

  /**
   * The slot holding the id at `src[at..at+32)`, or, when it is not in the table, -1 - the empty
   * slot its probe ended at, where a new id goes: one walk for both, so an insert hashes and
   * probes once.
   */
  #probeAt(src: Uint8Array, at: number): number {
    const keys = this.#keys;
    const state = this.#state;
    let i = this.#slot(src, at);
    const tag = this.#tag;
    for (;;) {
      const s = state[i];
      if (s === EMPTY) return -1 - i;
      if (s === tag) {
        const base = i * ID_BYTES;
        let j = 0;
        while (j < ID_BYTES && keys[base + j] === src[at + j]) j++;
        if (j === ID_BYTES) return i;
      }
      i = (i + 1) & this.#mask;
    }
  }

  #put(id: Uint8Array, value: number, replace: boolean): boolean {
    let i = this.#probe(id);
    if (i >= 0) {
      if (replace) this.#values[i] = value;
      return false;
    }
    if ((this.#size + 1) * 4 > (this.#mask + 1) * 3) {
      this.#grow();
      i = this.#probeAt(id, 0);
    }
    this.#fill(-1 - i, id, 0, value);
    return true;
  }

  /** Puts the id at `src[at..at+32)` with `value` in the empty slot `i` (#probeAt's answer), its tag from that probe. */
  #fill(i: number, src: Uint8Array, at: number, value: number): void {
    this.#state[i] = this.#tag;
    const base = i * ID_BYTES;
    for (let k = 0; k < ID_BYTES; k++) this.#keys[base + k] = src[at + k]!;
    this.#values[i] = value;
    this.#size++;
  }

  #allocate(cap: number): void {
    this.#mask = cap - 1;
    this.#keys = new Uint8Array(cap * ID_BYTES);
    this.#values = new Float64Array(cap);
    this.#state = new Uint8Array(cap);
    this.#size = 0;
  }

  /** The table again in arrays twice as large. */
  #grow(): void {
    const keys = this.#keys;
    const values = this.#values;
    const state = this.#state;
    this.#allocate((this.#mask + 1) * 2);
    // Each id read where it lies in the old arrays; the new table holds none of them yet, so each
    // probe ends at a free slot.
    for (let i = 0; i < state.length; i++) {
      if (state[i]! >= HELD) this.#fill(-1 - this.#probeAt(keys, i * ID_BYTES), keys, i * ID_BYTES, values[i]!);
    }
  }
}

/**
 * Ids to objects: an IdMap from each id to a slot of an array of the objects, slots reused, so it
 * keeps no string per id either. Bounded as IdMap is, by its users.
 */
export class IdTable<T> {
  readonly #index: IdMap;
  readonly #items: (T | undefined)[] = [];
  /** Slots of #items freed by deletions, reused first. */
  readonly #free: number[] = [];

  constructor(seed: readonly [number, number]) {
    this.#index = new IdMap(seed);
  }

  get size(): number {
    return this.#index.size;
  }

  /** Bytes its typed arrays take (the objects themselves are the caller's). */
  get bytes(): number {
    return this.#index.bytes + 8 * this.#items.length;
  }

  has(id: Uint8Array): boolean {
    return this.#index.has(id);
  }

  get(id: Uint8Array): T | undefined {
    const i = this.#index.get(id);
    return i === undefined ? undefined : this.#items[i];
  }

  set(id: Uint8Array, item: T): this {
    const slot = this.#free.length > 0 ? this.#free.pop()! : this.#items.length;
    if (this.#index.add(id, slot)) this.#items[slot] = item;
    else {
      if (slot < this.#items.length) this.#free.push(slot);
      this.#items[this.#index.get(id)!] = item;
    }
    return this;
  }

  /** Deletes `id`: the object it had, or undefined when it was not in the table. */
  take(id: Uint8Array): T | undefined {
    const i = this.#index.take(id);
    if (i === undefined) return undefined;
    const item = this.#items[i];
    this.#items[i] = undefined;
    this.#free.push(i);
    return item;
  }
}

/** Two random 32-bit numbers for an IdMap's seed. */
export function randomIdSeed(): [number, number] {
  const words = new Uint32Array(2);
  crypto.getRandomValues(words);
  return [words[0]!, words[1]!];
}
