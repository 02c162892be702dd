// Where each committed transaction is: the block store's index of transaction ids (exactly-once
// needs every committed id, for ever), in two tiers.
//
// Written one commit at a time into an LMDB B-tree of random 32-byte keys, every transaction lands
// on a leaf page of its own once the tree has many more leaves than a block has transactions, and
// LMDB copies and writes back that whole page (4 KiB) for one 40-byte entry: the cost of a commit
// grew with the history (docs/performance.md, "The commit path").
//
// So the ids of recent commits live in memory (`recent`), and are merged to disk in large batches:
// each merge writes one sorted run, whole, in pages (tx-runs.ts), and runs are merged into larger
// ones in the background. `indexed_to` (in meta, written with a merge's run) is the height up to
// which every committed id is on disk; the ids above it are rebuilt from the committed blocks (or
// the summaries of pruned ones) when the store opens, so a crash loses nothing that was committed.
//
// "The tree" below is what is on disk: the runs, and the B-tree of stores written before the runs
// (merges and a join's history wrote it until 2026-11-29; a checkpoint's tip still does). A lookup
// reads the runs, then the B-tree.
//
// A transaction is asked about three times at each member: when it arrives (the mempool), when a
// proposal carries it (the block's exactly-once check), when its block commits. The first asks the
// tree; a miss is remembered (`absent`, the most recent ones, bounded), so the other two do not
// descend the tree again. The tree gains ids only by a merge, which forgets each id it writes from
// `absent`, and by a join's history (importWithin, or startAt's tip written into the B-tree), which
// forgets all of it.
//
// Most ids asked about are new, and the tree cannot say so without a descent (3–4 µs with the tree
// written at the same time, a tenth of a member's time on the path). So a filter of the ids the tree
// holds (id-filter.ts), built in the background from a scan of the tree once the store opens, says
// "certainly not in the tree" for almost all of them first; every id a merge writes is added to it
// as it is written. A join's history, written outside a merge, drops the filter and builds it again;
// one grown past its capacity is built again, larger; until a build ends, the tree answers.

import type { Database } from 'lmdb';
import { toHex } from '#libs/crypto/index.ts';
import { FedError } from '#libs/errors/index.ts';
import { IdFilter } from './id-filter.ts';
import { compareIds, TxRuns, type SortedEntries, type TxRunsStats } from './tx-runs.ts';
import { ID_BYTES, IdMap, randomIdSeed } from '#libs/blocks/index.ts';

/**
 * A committed transaction's place, as stored: height · 2^20 + index, one msgpack number; the object
 * form where that does not fit, and in stores written before schema version 3.
 */
export type StoredLocation = number | { height: number; index: number };
const PACK_INDEX = 2 ** 20;
const PACK_MAX_HEIGHT = 2 ** 33;
export function packLocation(height: number, index: number): StoredLocation {
  return index < PACK_INDEX && height < PACK_MAX_HEIGHT ? height * PACK_INDEX + index : { height, index };
}
export function unpackLocation(v: StoredLocation): { height: number; index: number } {
  return typeof v === 'number' ? { height: Math.floor(v / PACK_INDEX), index: v % PACK_INDEX } : v;
}

/** Ids per bucket of keyOrder's first pass past which a bucket is sorted by comparisons (n log n) instead of by insertion. */
const INSERTION_MAX = 16;

/**
 * The order of the `n` ids in `ids` (32 bytes each, one after another) by their bytes, as LMDB
 * orders its keys: indexes into `ids`. The ids are counted into 65,536 buckets by their first two
 * bytes, and each bucket, two ids on average at a merge's size, is put in order by insertion over
 * the remaining bytes where they lie: no comparator call, no view and no number allocated per
 * comparison (a comparator sort of a merge's 131,072 ids was 1–2 % of a loaded member's
 * consensus). Ids are hashes, but a client can grind transactions whose ids share their first two
 * bytes (65,536 tries each): a bucket of more than a few ids is sorted by comparisons, so no input
 * makes this quadratic.
 */
export function keyOrder(ids: Uint8Array, n: number): Uint32Array {
  const ends = new Uint32Array(65_536);
  for (let i = 0; i < n; i++) ends[(ids[i * ID_BYTES]! << 8) | ids[i * ID_BYTES + 1]!]!++;
  // Each bucket's end; filling walks them back to each bucket's start.
  for (let b = 1; b < 65_536; b++) ends[b]! += ends[b - 1]!;
  const order = new Uint32Array(n);
  for (let i = n - 1; i >= 0; i--) order[--ends[(ids[i * ID_BYTES]! << 8) | ids[i * ID_BYTES + 1]!]!] = i;
  /** Whether the id at index `a` sorts after the one at `b`, their first two bytes being equal. */
  const after = (a: number, b: number): boolean => {
    const x = a * ID_BYTES;
    const y = b * ID_BYTES;
    for (let k = 2; k < ID_BYTES; k++) {
      const d = ids[x + k]! - ids[y + k]!;
      if (d !== 0) return d > 0;
    }
    return false;
  };
  for (let b = 0; b < 65_536; b++) {
    const start = ends[b]!;
    const end = b === 65_535 ? n : ends[b + 1]!;
    if (end - start > INSERTION_MAX) {
      const bucket = Array.from(order.subarray(start, end)).sort((a, c) => (after(a, c) ? 1 : after(c, a) ? -1 : 0));
      order.set(bucket, start);
      continue;
    }
    for (let x = start + 1; x < end; x++) {
      const v = order[x]!;
      let y = x - 1;
      while (y >= start && after(order[y]!, v)) {
        order[y + 1] = order[y]!;
        y--;
      }
      order[y + 1] = v;
    }
  }
  return order;
}

/** Entries given in any order (`ids` n × 32 bytes, each with its height and index) in key order. */
function sortEntries(ids: Uint8Array, heights: Float64Array, indexes: Uint32Array, n: number): SortedEntries {
  const order = keyOrder(ids, n);
  const out: SortedEntries = { ids: new Uint8Array(n * ID_BYTES), heights: new Float64Array(n), indexes: new Uint32Array(n) };
  for (let i = 0; i < n; i++) {
    const j = order[i]!;
    out.ids.set(ids.subarray(j * ID_BYTES, (j + 1) * ID_BYTES), i * ID_BYTES);
    out.heights[i] = heights[j]!;
    out.indexes[i] = indexes[j]!;
  }
  return out;
}

export interface TxIndexOptions {
  /** Merge into the tree once this many committed ids wait in memory (libs/blocks id-map.ts: 41 bytes a slot, three eighths to three quarters of the slots used: 55–109 bytes an id). */
  mergeAt?: number;
  /** Entries per page of a run (tx-runs.ts RUN_PAGE_IDS; smaller in tests, to make runs of many pages from few ids). */
  pageIds?: number;
  /** The seed of the in-memory tables (libs/blocks id-map.ts); random unless a test fixes it. */
  seed?: readonly [number, number];
  /** Most bytes the filter of the tree's ids may take (id-filter.ts; 0: no filter). */
  filterMaxBytes?: number;
}
export const TX_INDEX_MERGE_AT = 131_072;
/** Misses of the tree remembered at most, in two generations of half (55–109 bytes each, as above). */
export const TX_INDEX_ABSENT_MAX = 131_072;
/** 256 MiB: 16 bits an id up to 67 million ids in the tree, then a rising share of lookups that reach it. */
export const TX_INDEX_FILTER_MAX_BYTES = 256 << 20;
/** Keys of the tree read per turn of the event loop while the filter is built: a turn of 1–2 ms, so a vote waits no longer behind it (pages of the runs: 4 a turn). */
const FILTER_SCAN_CHUNK = 4_096;
const FILTER_SCAN_PAGES = 4;

/** The store's side of the index: its write transactions and its meta database. */
export interface TxIndexStore {
  write(what: string, body: () => void): Promise<void>;
  meta: Database<string, string>;
}

/** Where a location does not fit one number (packLocation's object form): the table holds this and #wide the place. */
const WIDE = -1;

export interface TxIndexStats {
  /** Committed ids held in memory, not yet in the tree. */
  recent: number;
  /** Every committed id at this height or below is in the tree. */
  indexedTo: number;
  /** Merges finished since the store opened. */
  merges: number;
  /** Misses of the tree remembered. */
  absent: number;
  /** Bytes the in-memory tables and the filter take (libs/blocks id-map.ts, id-filter.ts: their arrays, outside V8's heap). */
  bytes: number;
  /** Whether the filter of the tree's ids answers (built), and how many of the tree's lookups it spared. */
  filtered: boolean;
  spared: number;
  /** The sorted runs on disk (tx-runs.ts). */
  runs: TxRunsStats;
}

export class TxIndex {
  readonly #db: Database<StoredLocation, Uint8Array>;
  readonly #runs: TxRuns;
  readonly #store: TxIndexStore;
  readonly #mergeAt: number;
  /** Committed ids not yet in the tree, with their packed places (libs/blocks id-map.ts: no string per id). */
  readonly #recent: IdMap;
  /** Places that do not pack into a number (a height of 2^33 or more, or a position of 2^20), by hex id. */
  readonly #wide = new Map<string, { height: number; index: number }>();
  /**
   * Ids the tree did not hold when asked: a bounded cache of misses in two generations. When the
   * newer holds half the bound it becomes the older, and the older is emptied to be the newer
   * (its arrays kept: libs/blocks id-map.ts). (Evicting the oldest entry of one JavaScript Set instead walks
   * the deleted slots at its front: 33 µs an insert once full, which a flood of new transactions
   * would make every member pay.)
   */
  #absent: IdMap;
  #absentOlder: IdMap;
  #indexedTo: number;
  #merging: Promise<void> | undefined;
  #merges = 0;
  readonly #seed: readonly [number, number];
  readonly #filterMaxBytes: number;
  /** The filter that answers (every id in the tree is in it), and one being built (every id a merge writes goes to both). */
  #filter: IdFilter | undefined;
  #building: IdFilter | undefined;
  /** Each build's number: a build that is not the latest stops. */
  #builds = 0;
  #stopped = false;
  #spared = 0;

  /** `db`: the B-tree of earlier stores; `runs`: the database of the sorted runs (tx-runs.ts). */
  constructor(db: Database<StoredLocation, Uint8Array>, runs: Database<Uint8Array, Uint8Array>, store: TxIndexStore, committed: number, opts: TxIndexOptions = {}) {
    this.#db = db;
    this.#store = store;
    const seed = opts.seed ?? randomIdSeed();
    this.#runs = new TxRuns(runs, store, seed, opts.pageIds);
    // A compaction rewrites ids the filter answering now holds; a filter being built may have read past them.
    this.#runs.onCompactedPage = (ids) => this.#building?.addAll(ids);
    this.#mergeAt = Math.max(1, opts.mergeAt ?? TX_INDEX_MERGE_AT);
    this.#seed = seed;
    this.#filterMaxBytes = opts.filterMaxBytes ?? TX_INDEX_FILTER_MAX_BYTES;
    this.#recent = new IdMap(seed);
    this.#absent = new IdMap(seed);
    this.#absentOlder = new IdMap(seed);
    const recorded = store.meta.get('indexed_to');
    // A store from before the two tiers (schema 3 and older) indexed every commit at once.
    if (recorded === undefined) store.meta.putSync('indexed_to', String(committed));
    this.#indexedTo = Number(recorded ?? committed);
    this.#build();
  }

  /** Builds the filter of the tree's ids anew, a chunk of keys per turn of the event loop. */
  #build(): void {
    if (this.#filterMaxBytes <= 0 || this.#stopped) return;
    const build = ++this.#builds;
    // LMDB's own count (mdb_stat), not getKeysCount: that one walks every key.
    const entries = ((this.#db.getStats() as { entryCount?: number }).entryCount ?? 0) + this.#runs.count;
    const filter = IdFilter.sizedFor(entries, this.#filterMaxBytes, this.#seed);
    this.#building = filter;
    let after: Uint8Array | undefined;
    // The runs' pages as they are now: a run a merge adds later gives its ids to the filter itself,
    // and a compaction's output is given page by page (onCompactedPage).
    const pages = this.#runs.pages();
    let nextPage = 0;
    let treeDone = false;
    const step = (): void => {
      if (this.#stopped || build !== this.#builds) return;
      try {
        if (!treeDone) {
          let read = 0;
          let last: Uint8Array | undefined;
          for (const key of this.#db.getKeys(after ? { start: after, limit: FILTER_SCAN_CHUNK + 1 } : { limit: FILTER_SCAN_CHUNK })) {
            if (after && read === 0 && Buffer.compare(key, after) === 0) continue; // the chunk starts at the last key read
            filter.add(key);
            last = key;
            read++;
          }
          // A copy: LMDB's binding may hand out one buffer for every key it reads.
          if (last) after = Uint8Array.from(last);
          treeDone = read < FILTER_SCAN_CHUNK;
          setImmediate(step);
          return;
        }
        for (const end = Math.min(pages.length, nextPage + FILTER_SCAN_PAGES); nextPage < end; nextPage++) {
          const ids = this.#runs.pageIds(pages[nextPage]![0], pages[nextPage]![1]);
          if (ids) filter.addAll(ids);
        }
      } catch {
        // The store closed under the scan (close() stops it first; this is a stop racing it).
        return;
      }
      if (nextPage < pages.length) { setImmediate(step); return; }
      this.#filter = filter;
      this.#building = undefined;
    };
    setImmediate(step);
  }

  /** Stops a build and a compaction under way (close). */
  stop(): void {
    this.#stopped = true;
    this.#runs.stop();
  }

  get indexedTo(): number {
    return this.#indexedTo;
  }

  /** The tree was written whole up to `height` by the store itself (a join from a checkpoint). */
  indexedThrough(height: number): void {
    this.#indexedTo = Math.max(this.#indexedTo, height);
  }

  /** At open: the ids committed at `height` (above indexed_to), back into memory. */
  restore(height: number, ids: readonly Uint8Array[]): void {
    ids.forEach((id, index) => this.#remember(id, height, index));
  }

  has(id: Uint8Array): boolean {
    return this.#recent.has(id) || this.#inTree(id);
  }

  get(id: Uint8Array): StoredLocation | undefined {
    const v = this.#recent.get(id);
    if (v !== undefined) return this.#placeOf(id, v);
    if (this.#missed(id)) return undefined;
    const inRun = this.#runs.get(id);
    return inRun ? packLocation(inRun.height, inRun.index) : this.#db.get(id);
  }

  #remember(id: Uint8Array, height: number, index: number): void {
    const packed = packLocation(height, index);
    if (typeof packed === 'number') {
      this.#recent.set(id, packed);
    } else {
      this.#recent.set(id, WIDE);
      this.#wide.set(toHex(id), packed);
    }
  }

  #placeOf(id: Uint8Array, v: number): StoredLocation {
    return v === WIDE ? this.#wide.get(toHex(id))! : v;
  }

  #drop(id: Uint8Array): void {
    if (this.#wide.size > 0 && this.#recent.get(id) === WIDE) this.#wide.delete(toHex(id));
    this.#recent.delete(id);
  }

  /** Whether the tree holds `id`: the filter or a miss remembered answers without a lookup, and a new miss is remembered. */
  #inTree(id: Uint8Array): boolean {
    if (this.#filter && !this.#filter.mayHave(id)) { this.#spared++; return false; }
    if (this.#missed(id)) return false;
    if (this.#runs.has(id) || this.#db.doesExist(id)) return true;
    this.#absent.set(id, 0);
    if (this.#absent.size >= TX_INDEX_ABSENT_MAX / 2) {
      const older = this.#absentOlder;
      older.clear();
      this.#absentOlder = this.#absent;
      this.#absent = older;
    }
    return false;
  }

  #missed(id: Uint8Array): boolean {
    return this.#absent.has(id) || this.#absentOlder.has(id);
  }

  /**
   * The tree was written outside a merge (a join's history): no miss remembered still holds. Called
   * once the write is visible, so a miss remembered while it committed goes too.
   */
  treeWritten(): void {
    this.#absent.clear();
    this.#absentOlder.clear();
    // Its ids are not in the filter: the tree answers until a new one is built.
    this.#filter = undefined;
    this.#building = undefined;
    this.#build();
  }

  /**
   * Inside a write transaction: the ids of verified history (a join's, written with its summaries)
   * as one sorted run (tx-runs.ts), refusing (STORE_DUPLICATE_TX) an id repeated among them. The
   * caller has left out the ids already indexed at their place. Returns what makes lookups read them,
   * to call once the transaction has committed (or importAbandoned() if it does not).
   */
  importWithin(entries: ReadonlyArray<{ id: Uint8Array; height: number; index: number }>): () => void {
    const n = entries.length;
    if (n === 0) return () => {};
    const ids = Buffer.allocUnsafe(n * ID_BYTES);
    const heights = new Float64Array(n);
    const indexes = new Uint32Array(n);
    entries.forEach(({ id, height, index }, k) => { ids.set(id, k * ID_BYTES); heights[k] = height; indexes[k] = index; });
    const sorted = sortEntries(ids, heights, indexes, n);
    for (let i = ID_BYTES; i < n * ID_BYTES; i += ID_BYTES) {
      if (compareIds(sorted.ids, i - ID_BYTES, sorted.ids, i) === 0) {
        const k = i / ID_BYTES;
        throw new FedError('STORE_DUPLICATE_TX', `transaction ${toHex(sorted.ids.subarray(i, i + ID_BYTES))} is at heights ${sorted.heights[k - 1]} and ${sorted.heights[k]} of the history`);
      }
    }
    const publish = this.#runs.writeWithin(sorted);
    return () => {
      // In the filters before the run answers; no miss remembered before the history still holds.
      this.#filter?.addAll(sorted.ids);
      this.#building?.addAll(sorted.ids);
      this.#absent.clear();
      this.#absentOlder.clear();
      publish();
      const f = this.#filter;
      if (f && !this.#building && f.count > f.capacity && f.bytes < this.#filterMaxBytes) this.#build();
    };
  }

  /** The write transaction that called importWithin did not commit. */
  importAbandoned(): void {
    this.#runs.abandoned();
  }

  /**
   * Inside the commit's write transaction: records the ids of newly committed blocks, refusing
   * (STORE_DUPLICATE_TX, nothing recorded) an id committed before or repeated among them. Returns
   * the ids recorded, for forget() if the transaction does not commit.
   */
  add(blocks: ReadonlyArray<{ height: number; ids: readonly Uint8Array[] }>): Uint8Array[] {
    const added: Uint8Array[] = [];
    try {
      for (const { height, ids } of blocks) {
        for (let index = 0; index < ids.length; index++) {
          const id = ids[index]!;
          // `recent` holds this commit's earlier ids already: a repeat among them is found there too.
          if (this.#recent.has(id) || this.#inTree(id)) {
            throw new FedError('STORE_DUPLICATE_TX', `transaction ${toHex(id)} at height ${height} is already committed`);
          }
          this.#remember(id, height, index);
          added.push(id);
          // A miss remembered for it stays until the merge writes it to the tree: until then
          // `recent` answers first (has, get), so the miss is never read.
        }
      }
    } catch (err) {
      this.forget(added);
      throw err;
    }
    return added;
  }

  /** Takes back what add() recorded for a commit that was not written. */
  forget(ids: readonly Uint8Array[]): void {
    for (const id of ids) this.#drop(id);
  }

  /** After a commit is durable at `committed`: merges in the background once enough ids wait. */
  committed(committed: number): void {
    // A merge that fails (a full disk) keeps its ids in memory and is tried again at a later commit.
    if (this.#recent.size >= this.#mergeAt && !this.#merging) this.merge(committed).catch(() => {});
  }

  /**
   * Writes every id held in memory for heights up to `committed` (a durable commit) to disk as one
   * sorted run (tx-runs.ts); the run's last write transaction also moves indexed_to to `committed`.
   * The ids stay readable in memory until then. A failed merge (a full disk) keeps them in memory
   * and is tried again at a later commit. One merge at a time: a second call waits for the first.
   */
  async merge(committed: number): Promise<void> {
    while (this.#merging) await this.#merging;
    const run = this.#merge(committed);
    this.#merging = run.catch(() => {}).finally(() => { this.#merging = undefined; });
    await run;
  }

  async #merge(committed: number): Promise<void> {
    if (committed <= this.#indexedTo) return;
    // A copy of the ids to write (commits go on while the merge awaits its writes), sorted by their bytes.
    const ids = Buffer.allocUnsafe(this.#recent.size * ID_BYTES);
    const values: StoredLocation[] = [];
    // The table's own bytes are read where they lie (forEachAt): no view made per id.
    this.#recent.forEachAt((keys, at, v) => {
      const value = v === WIDE ? this.#placeOf(keys.subarray(at, at + ID_BYTES), v) : v;
      if (unpackLocation(value).height > committed) return;
      const to = values.length * ID_BYTES;
      for (let k = 0; k < ID_BYTES; k++) ids[to + k] = keys[at + k]!;
      values.push(value);
    });
    const idAt = (i: number): Buffer => ids.subarray(i * ID_BYTES, (i + 1) * ID_BYTES);
    const n = values.length;
    const heights = new Float64Array(n);
    const indexes = new Uint32Array(n);
    for (let i = 0; i < n; i++) {
      const { height, index } = unpackLocation(values[i]!);
      heights[i] = height;
      indexes[i] = index;
    }
    const sorted = sortEntries(ids, heights, indexes, n);
    // In the filters before the run can answer (a "maybe" early is harmless; a "no" late is not).
    this.#filter?.addAll(sorted.ids);
    this.#building?.addAll(sorted.ids);
    await this.#runs.add(sorted, () => this.#store.meta.put('indexed_to', String(committed)));
    this.#indexedTo = committed;
    for (let i = 0; i < n; i++) {
      // The run answers for these ids now: a miss remembered before their commit must not.
      this.#absent.deleteAt(ids, i * ID_BYTES);
      this.#absentOlder.deleteAt(ids, i * ID_BYTES);
    }
    for (let i = 0; i < values.length; i++) {
      if (this.#wide.size > 0) this.#drop(idAt(i));
      else this.#recent.deleteAt(ids, i * ID_BYTES);
    }
    this.#merges++;
    // Past its capacity the filter answers "maybe" more often: a larger one is built beside it.
    const f = this.#filter;
    if (f && !this.#building && f.count > f.capacity && f.bytes < this.#filterMaxBytes) this.#build();
  }

  /** Waits for a merge under way and the compactions it started (close, flush). */
  async settled(): Promise<void> {
    while (this.#merging) await this.#merging;
    await this.#runs.settled();
  }

  stats(): TxIndexStats {
    const runs = this.#runs.stats();
    return { recent: this.#recent.size, indexedTo: this.#indexedTo, merges: this.#merges, absent: this.#absent.size + this.#absentOlder.size,
      bytes: this.#recent.bytes + this.#absent.bytes + this.#absentOlder.bytes + (this.#filter?.bytes ?? 0) + (this.#building?.bytes ?? 0) + runs.bytes,
      filtered: this.#filter !== undefined, spared: this.#spared, runs };
  }
}
