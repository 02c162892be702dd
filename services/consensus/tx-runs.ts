// The transaction index's tier on disk: sorted runs of committed ids, each written whole (tx-index.ts
// holds the tier in memory and decides when to merge).
//
// The index on disk was one LMDB B-tree of random 32-byte keys, one key per transaction. A merge
// wrote its ids in key order, but once the tree has more leaf pages than a merge has ids, each id
// lands on a page of its own, and LMDB copies and writes back that whole page (4 KiB) for one entry
// of 40 bytes: a federation that runs for years paid more per transaction as its history grew.
//
// So a merge now writes a run: its ids in key order, cut into pages of RUN_PAGE_IDS entries, each
// page one LMDB value (written once, in a few write transactions of RUN_PAGES_PER_WRITE pages).
// Each run's first id of every page (its fence) is kept in memory; a lookup in a run is a binary
// search of the fence, one read of a page and a binary search in it. Runs of one level are merged
// into one of the next level once RUN_FANOUT of them wait (tiered compaction), so a history of n ids
// has about log4(n / merge) levels and fewer than RUN_FANOUT runs in each, and each id is written
// once per level, sequentially, instead of once with a page of its own.
//
// The runs a lookup reads are listed in meta (`tx_runs`), written in the same write transaction as a
// run's last pages (and, for a merge, indexed_to), so a crash leaves either the run whole and listed
// or pages no list names, which the next open removes. A compaction lists its output and unlists its
// inputs in one transaction, and removes the inputs' pages only after lookups have moved to the
// output. Stores written before the runs keep their tree: it is read after the runs (tx-index.ts).
//
// A committed id asked about (a resubmitted transaction, GetTransaction, a filter's "maybe") would
// read a page of every run until one holds it. So each run has a filter of its own ids (id-filter.ts,
// RUN_FILTER_BITS_PER_ID): a lookup reads a page only of the runs whose filter says "maybe" — about
// one for an id that is there, almost none for one that is not. A merge's and a compaction's
// filter is made from the ids as they are written; the runs found at open are scanned for theirs in
// the background, and are read without a filter until theirs is built.
//
// A page's value: RUN_PAGE_IDS ids (32 bytes each) at most, then each entry's height (float64), then
// its position in the block (uint32), all little-endian. Its key: the run's number and the page's,
// big-endian (uint32 each); the page number FENCE_PAGE holds the run's fence.

import type { Database } from 'lmdb';
import { FedError } from '#libs/errors/index.ts';
import { ID_BYTES } from '#libs/blocks/index.ts';
import { IdFilter } from './id-filter.ts';

/**
 * Entries per page: a page of 11 KiB, which a lookup that reaches it copies whole out of LMDB (about
 * a microsecond; pages of 1,024 took four or five), and a fence of 32 bytes per 256 ids in memory
 * (12.5 MB for 100 million ids: a tenth to a twentieth of what a run's filter takes for them).
 */
export const RUN_PAGE_IDS = 256;
/** Pages per write transaction of a run: how long one holds LMDB's single writer (about 700 KiB). */
export const RUN_PAGES_PER_WRITE = 64;
/** Runs of one level merged into one of the next. */
export const RUN_FANOUT = 4;
/** Bits of a run's filter per id, at least (its size is rounded up to a power of two: 10–20, under about 2 % "maybe" for an id not in it). */
export const RUN_FILTER_BITS_PER_ID = 10;
/**
 * Most bytes the runs' filters take together (128 MiB: some 100 million ids at 10 bits). A run whose
 * filter would pass it has none, and is read on every lookup that reaches the runs: the oldest,
 * largest ones first, which hold most committed ids, so an id that is there still costs a page or
 * two. The filter of all the ids on disk (tx-index.ts) has its own bound.
 */
export const RUN_FILTERS_MAX_BYTES = 128 << 20;
/** Pages read per turn of the event loop while the filters of the runs found at open are built. */
const FILTER_SCAN_PAGES = 4;
const ENTRY_BYTES = ID_BYTES + 8 + 4;
const FENCE_PAGE = 0xffff_ffff;
const REGISTRY = 'tx_runs';

export interface RunInfo {
  run: number;
  level: number;
  count: number;
  pages: number;
}
interface Run extends RunInfo {
  /** The first id of each page, one after another. */
  fence: Uint8Array;
  /** Its ids' filter, once built (a run found at open has none until its scan ends). */
  filter: IdFilter | undefined;
}

/** The sorted entries a merge writes: `ids` (n × 32 bytes, in key order) with each one's place. */
export interface SortedEntries {
  ids: Uint8Array;
  heights: Float64Array;
  indexes: Uint32Array;
}

export interface TxRunsStore {
  write(what: string, body: () => void): Promise<void>;
  meta: Database<string, string>;
}

/** -1, 0 or 1: the id at `a[ai..]` against the one at `b[bi..]`, byte by byte (LMDB's key order). */
export function compareIds(a: Uint8Array, ai: number, b: Uint8Array, bi: number): number {
  for (let k = 0; k < ID_BYTES; k++) {
    const d = a[ai + k]! - b[bi + k]!;
    if (d !== 0) return d < 0 ? -1 : 1;
  }
  return 0;
}

export function pageKey(run: number, page: number, key: Buffer = Buffer.allocUnsafe(8)): Buffer {
  key.writeUInt32BE(run, 0);
  key.writeUInt32BE(page, 4);
  return key;
}
/** The key a read (synchronous: LMDB's binding copies it before returning) is made in. */
const readKey = Buffer.alloc(8);

/** Where a page of `n` entries keeps entry `i`'s height and index (after the n ids). */
const heightAt = (n: number, i: number): number => n * ID_BYTES + i * 8;
const indexAt = (n: number, i: number): number => n * (ID_BYTES + 8) + i * 4;

/** A page's value made from `n` entries of `src` starting at `from`. */
function encodePage(src: SortedEntries, from: number, n: number): Buffer {
  const page = Buffer.allocUnsafe(n * ENTRY_BYTES);
  page.set(src.ids.subarray(from * ID_BYTES, (from + n) * ID_BYTES), 0);
  for (let i = 0; i < n; i++) {
    page.writeDoubleLE(src.heights[from + i]!, heightAt(n, i));
    page.writeUInt32LE(src.indexes[from + i]!, indexAt(n, i));
  }
  return page;
}

/** A page's entries as arrays (a compaction reads every entry of its inputs' pages). */
function decodePage(page: Uint8Array): SortedEntries {
  const n = entriesOf(page);
  const view = Buffer.from(page.buffer, page.byteOffset, page.length);
  const heights = new Float64Array(n);
  const indexes = new Uint32Array(n);
  for (let i = 0; i < n; i++) {
    heights[i] = view.readDoubleLE(heightAt(n, i));
    indexes[i] = view.readUInt32LE(indexAt(n, i));
  }
  return { ids: page.subarray(0, n * ID_BYTES), heights, indexes };
}

/** The entry `i` of a page of `n` entries: its place. */
function placeAt(page: Uint8Array, n: number, i: number): { height: number; index: number } {
  const view = Buffer.from(page.buffer, page.byteOffset, page.byteLength);
  return { height: view.readDoubleLE(heightAt(n, i)), index: view.readUInt32LE(indexAt(n, i)) };
}

/** A page's entries. Its `length`, not `byteLength`: LMDB's binding reads a value into a larger buffer it reuses (getBinaryFast) and sets `length`. */
const entriesOf = (page: Uint8Array): number => {
  if (page.length === 0 || page.length % ENTRY_BYTES !== 0) throw new FedError('STORE_CORRUPT', `transaction index: a page of ${page.length} bytes (not a multiple of ${ENTRY_BYTES})`);
  return page.length / ENTRY_BYTES;
};

export interface TxRunsStats {
  runs: number;
  /** Ids in the runs. */
  count: number;
  levels: number;
  compactions: number;
  /** Compactions that failed (each left its inputs listed and answering), and why the last did. */
  failed: number;
  lastFailure?: string;
  /** Runs whose filter is built. */
  filtered: number;
  /** Bytes the fences and the filters take in memory. */
  bytes: number;
  /** Pages read by lookups since the store opened (a page read is what a lookup in a run costs). */
  reads: number;
}

export class TxRuns {
  readonly #db: Database<Uint8Array, Uint8Array>;
  readonly #store: TxRunsStore;
  readonly #pageIds: number;
  readonly #seed: readonly [number, number];
  readonly #filtersMaxBytes: number;
  #reads = 0;
  /** What lookups read, largest first (a committed id asked about is most likely there): a run joins once its listing is written, and leaves once a compaction's output has replaced it here. */
  #runs: Run[] = [];
  /** The list as the last write transaction to change it left it (it can be ahead of #runs). */
  #registry: RunInfo[];
  #next: number;
  #compacting: Promise<void> | undefined;
  #compactions = 0;
  #failures = 0;
  /** Why the last compaction failed (stats: the log reads it). */
  #lastFailure: unknown;
  #closed = false;
  /** Called with each page of ids a compaction writes, before lookups can reach them (the filter built meanwhile takes them). */
  onCompactedPage: ((ids: Uint8Array) => void) | undefined;

  constructor(db: Database<Uint8Array, Uint8Array>, store: TxRunsStore, seed: readonly [number, number], pageIds = RUN_PAGE_IDS, filtersMaxBytes = RUN_FILTERS_MAX_BYTES) {
    this.#db = db;
    this.#store = store;
    this.#seed = seed;
    this.#filtersMaxBytes = filtersMaxBytes;
    this.#pageIds = Math.max(1, pageIds);
    this.#registry = this.#load();
    const listed = new Set(this.#registry.map((r) => r.run));
    // Pages no list names: a run cut short by a crash, or a compaction's inputs not yet removed.
    const orphans: Uint8Array[] = [];
    let highest = 0;
    for (const key of db.getKeys()) {
      const run = Buffer.from(key.buffer, key.byteOffset, key.byteLength).readUInt32BE(0);
      highest = Math.max(highest, run);
      if (!listed.has(run)) orphans.push(Uint8Array.from(key));
    }
    if (orphans.length > 0) db.transactionSync(() => { for (const key of orphans) db.remove(key); });
    this.#next = Math.max(highest, ...this.#registry.map((r) => r.run)) + 1;
    for (const info of this.#registry) {
      const fence = db.getBinary(pageKey(info.run, FENCE_PAGE));
      if (!fence || fence.byteLength !== info.pages * ID_BYTES) throw new FedError('STORE_CORRUPT', `transaction index: run ${info.run} has no fence of ${info.pages} pages`);
      this.#runs.push({ ...info, fence: Uint8Array.from(fence), filter: undefined });
    }
    this.#runs = TxRuns.#ordered(this.#runs);
    // The smallest first: under the bound, the newest runs keep a filter and the oldest go without.
    this.#buildFilters([...this.#runs].sort((a, b) => a.count - b.count));
  }

  /** A filter for a run of `count` ids, unless it would take the runs' filters past their bound (`replaced`: runs whose filters it frees). */
  #newFilter(count: number, replaced: readonly Run[] = []): IdFilter | undefined {
    const bits = count * RUN_FILTER_BITS_PER_ID;
    const held = this.#runs.reduce((n, r) => n + (replaced.includes(r) ? 0 : r.filter?.bytes ?? 0), 0);
    return held + IdFilter.bytesFor(bits) > this.#filtersMaxBytes ? undefined : new IdFilter(bits, this.#seed);
  }

  /** Builds the filters of `runs` from their pages, a few pages per turn of the event loop, one run after another. */
  #buildFilters(runs: Run[]): void {
    const run = runs.shift();
    if (!run || this.#closed) return;
    const filter = this.#newFilter(run.count);
    if (!filter) { this.#buildFilters(runs); return; }
    let page = 0;
    const step = (): void => {
      // A run a compaction replaced meanwhile is not finished: its pages may be gone.
      if (this.#closed) return;
      if (!this.#runs.includes(run)) { this.#buildFilters(runs); return; }
      try {
        for (const end = Math.min(run.pages, page + FILTER_SCAN_PAGES); page < end; page++) {
          const ids = this.pageIds(run.run, page);
          if (!ids) { this.#buildFilters(runs); return; }
          filter.addAll(ids);
        }
      } catch {
        return; // the store closed under the scan
      }
      if (page < run.pages) { setImmediate(step); return; }
      run.filter = filter;
      this.#buildFilters(runs);
    };
    setImmediate(step);
  }

  static #ordered(runs: Run[]): Run[] {
    return runs.sort((a, b) => b.count - a.count || b.run - a.run);
  }

  #load(): RunInfo[] {
    const text = this.#store.meta.get(REGISTRY);
    if (text === undefined) return [];
    let listed: unknown;
    try { listed = JSON.parse(text); } catch { listed = undefined; }
    const whole = (x: unknown): x is number => Number.isSafeInteger(x) && (x as number) >= 0;
    if (!Array.isArray(listed) || !listed.every((r) => Array.isArray(r) && r.length === 4 && r.every(whole))) {
      throw new FedError('STORE_CORRUPT', `transaction index: the listing of its runs (meta ${REGISTRY}) is not a list of [run, level, count, pages]: ${text.slice(0, 80)}`);
    }
    return (listed as number[][]).map(([run, level, count, pages]) => ({ run: run!, level: level!, count: count!, pages: pages! }));
  }

  #listing(runs: readonly RunInfo[]): string {
    return JSON.stringify(runs.map((r) => [r.run, r.level, r.count, r.pages]));
  }

  /** Where `id` was committed, if a run holds it. */
  get(id: Uint8Array): { height: number; index: number } | undefined {
    for (const run of this.#runs) {
      if (run.filter && !run.filter.mayHave(id)) continue;
      const found = this.#find(run, id);
      if (found) return found;
    }
    return undefined;
  }

  has(id: Uint8Array): boolean {
    return this.get(id) !== undefined;
  }

  #find(run: Run, id: Uint8Array): { height: number; index: number } | undefined {
    // The last page whose first id is not after `id`.
    let lo = 0;
    let hi = run.pages - 1;
    if (compareIds(run.fence, 0, id, 0) > 0) return undefined;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if (compareIds(run.fence, mid * ID_BYTES, id, 0) <= 0) lo = mid;
      else hi = mid - 1;
    }
    this.#reads++;
    const page = this.#db.getBinaryFast(pageKey(run.run, lo, readKey));
    if (!page) throw new FedError('STORE_CORRUPT', `transaction index: run ${run.run} has no page ${lo}`);
    const n = entriesOf(page);
    let a = 0;
    let b = n - 1;
    while (a <= b) {
      const mid = (a + b) >>> 1;
      const c = compareIds(page, mid * ID_BYTES, id, 0);
      if (c === 0) return placeAt(page, n, mid);
      if (c < 0) a = mid + 1;
      else b = mid - 1;
    }
    return undefined;
  }

  /** The pages of ids of every run lookups read now, for a scan (the filter's build): [run, page] pairs. */
  pages(): Array<readonly [number, number]> {
    const out: Array<readonly [number, number]> = [];
    for (const run of this.#runs) for (let p = 0; p < run.pages; p++) out.push([run.run, p]);
    return out;
  }

  /** The ids of one page (a copy), or undefined where the run is gone (a compaction replaced it). */
  pageIds(run: number, page: number): Uint8Array | undefined {
    const value = this.#db.getBinaryFast(pageKey(run, page));
    if (!value) return undefined;
    return Uint8Array.from(value.subarray(0, entriesOf(value) * ID_BYTES));
  }

  get count(): number {
    return this.#runs.reduce((n, r) => n + r.count, 0);
  }

  /**
   * Writes `entries` (sorted, none in any run) as a new run of level 0. `last` runs inside the
   * transaction that lists it (the caller's own records, e.g. indexed_to). Lookups read it once this
   * resolves. With no entries, only `last` is written.
   */
  async add(entries: SortedEntries, last: () => void): Promise<void> {
    const n = entries.heights.length;
    if (n === 0) { await this.#store.write('tx index merge', last); return; }
    const info = { run: this.#next++, level: 0, count: n, pages: Math.ceil(n / this.#pageIds) };
    const filter = this.#newFilter(n);
    filter?.addAll(entries.ids);
    const fence = await this.#writeRun(info, (page) => {
      const from = page * this.#pageIds;
      return encodePage(entries, from, Math.min(this.#pageIds, n - from));
    }, [], last);
    this.#runs = TxRuns.#ordered([...this.#runs, { ...info, fence, filter }]);
    this.#schedule();
  }

  /**
   * Writes a run's pages, `page(k)` making the k-th, RUN_PAGES_PER_WRITE per transaction; the last
   * transaction writes the fence and the listing (with `replaced` unlisted) and runs `last`. Returns
   * the fence.
   */
  async #writeRun(info: RunInfo, page: (k: number) => Buffer, replaced: readonly number[], last: () => void): Promise<Uint8Array> {
    const fence = new Uint8Array(info.pages * ID_BYTES);
    try {
      for (let start = 0; start < info.pages; start += RUN_PAGES_PER_WRITE) {
        // A compaction gives way to a close; its pages written so far go at the next open.
        if (this.#closed && replaced.length > 0) throw new Error('the store is closing');
        const end = Math.min(info.pages, start + RUN_PAGES_PER_WRITE);
        const values: Buffer[] = [];
        for (let k = start; k < end; k++) {
          const v = page(k);
          fence.set(v.subarray(0, ID_BYTES), k * ID_BYTES);
          values.push(v);
        }
        await this.#store.write(replaced.length > 0 ? 'tx index compaction' : 'tx index merge', () => {
          values.forEach((v, i) => this.#db.put(pageKey(info.run, start + i), v));
          if (end < info.pages) return;
          this.#list(info, fence, replaced);
          last();
        });
      }
    } catch (err) {
      // The list on disk is what the last committed transaction left; pages no list names go at the next open.
      this.#registry = this.#load();
      throw err;
    }
    return fence;
  }

  /** Inside a write transaction: a run's fence, and the listing with it (and without `replaced`). */
  #list(info: RunInfo, fence: Uint8Array, replaced: readonly number[]): void {
    this.#db.put(pageKey(info.run, FENCE_PAGE), Buffer.from(fence));
    const gone = new Set(replaced);
    const listed = [...this.#registry.filter((r) => !gone.has(r.run)), info];
    this.#store.meta.put(REGISTRY, this.#listing(listed));
    // Set inside the transaction: the next one to change the list starts from this one's.
    this.#registry = listed;
  }

  /**
   * Inside the caller's write transaction: `entries` (sorted, none in any run) written whole as a
   * run of level 0, pages, fence and listing (a join's history, written with its summaries). Returns
   * what makes lookups read it, to call once the transaction has committed; if it does not,
   * `abandoned()` must be called.
   */
  writeWithin(entries: SortedEntries): () => void {
    const n = entries.heights.length;
    if (n === 0) return () => {};
    const info = { run: this.#next++, level: 0, count: n, pages: Math.ceil(n / this.#pageIds) };
    const fence = new Uint8Array(info.pages * ID_BYTES);
    for (let k = 0; k < info.pages; k++) {
      const from = k * this.#pageIds;
      const v = encodePage(entries, from, Math.min(this.#pageIds, n - from));
      fence.set(v.subarray(0, ID_BYTES), k * ID_BYTES);
      this.#db.put(pageKey(info.run, k), v);
    }
    this.#list(info, fence, []);
    const filter = this.#newFilter(n);
    filter?.addAll(entries.ids);
    return () => {
      this.#runs = TxRuns.#ordered([...this.#runs, { ...info, fence, filter }]);
      this.#schedule();
    };
  }

  /** A write transaction that called writeWithin did not commit: the listing is what the disk holds. */
  abandoned(): void {
    this.#registry = this.#load();
  }

  /** Starts a compaction where a level holds RUN_FANOUT runs (one at a time, in the background). */
  #schedule(): void {
    if (this.#compacting || this.#closed) return;
    const due = this.#due();
    if (!due) return;
    // A compaction that fails (a full disk, inputs unlike their listing) is tried again after the
    // next merge, not at once: the same inputs would fail the same way in a loop.
    this.#compacting = this.#compact(due).then(() => {
      this.#compacting = undefined;
      this.#schedule();
    }, (err: unknown) => {
      this.#compacting = undefined;
      this.#failures++;
      this.#lastFailure = err;
    });
  }

  /** The oldest RUN_FANOUT runs of the lowest level holding that many. */
  #due(): Run[] | undefined {
    const byLevel = new Map<number, Run[]>();
    for (const r of this.#runs) byLevel.set(r.level, [...(byLevel.get(r.level) ?? []), r]);
    for (const level of [...byLevel.keys()].sort((a, b) => a - b)) {
      const runs = byLevel.get(level)!;
      if (runs.length >= RUN_FANOUT) return runs.sort((a, b) => a.run - b.run).slice(0, RUN_FANOUT);
    }
    return undefined;
  }

  /** Merges `inputs` into one run of the next level, page by page. */
  async #compact(inputs: Run[]): Promise<void> {
    const count = inputs.reduce((n, r) => n + r.count, 0);
    const info = { run: this.#next++, level: Math.max(...inputs.map((r) => r.level)) + 1, count, pages: Math.ceil(count / this.#pageIds) };
    // A cursor per input: its page (a copy: several are held at once), that page's entries, the position.
    const cursors = inputs.map((run) => ({ run, page: -1, value: { ids: new Uint8Array(0), heights: new Float64Array(0), indexes: new Uint32Array(0) } as SortedEntries, n: 0, at: 0 }));
    const advance = (c: (typeof cursors)[number]): boolean => {
      if (c.at < c.n) return true;
      if (c.page + 1 >= c.run.pages) return false;
      c.page++;
      const v = this.#db.getBinary(pageKey(c.run.run, c.page));
      if (!v) throw new FedError('STORE_CORRUPT', `transaction index: run ${c.run.run} has no page ${c.page}`);
      c.value = decodePage(v);
      c.n = c.value.heights.length;
      c.at = 0;
      return true;
    };
    /** The inputs with entries left, each at its next. */
    const live = cursors.filter(advance);
    let written = 0;
    const filter = this.#newFilter(count, inputs);
    const fence = await this.#writeRun(info, (k) => {
      const n = Math.min(this.#pageIds, count - k * this.#pageIds);
      const out: SortedEntries = { ids: new Uint8Array(n * ID_BYTES), heights: new Float64Array(n), indexes: new Uint32Array(n) };
      for (let i = 0; i < n; i++) {
        if (live.length === 0) throw new FedError('STORE_CORRUPT', `transaction index: runs ${inputs.map((r) => r.run).join(', ')} hold fewer ids than listed`);
        let bi = 0;
        for (let j = 1; j < live.length; j++) {
          const order = compareIds(live[j]!.value.ids, live[j]!.at * ID_BYTES, live[bi]!.value.ids, live[bi]!.at * ID_BYTES);
          if (order === 0) throw new FedError('STORE_CORRUPT', `transaction index: one id in runs ${live[j]!.run.run} and ${live[bi]!.run.run}`);
          if (order < 0) bi = j;
        }
        const best = live[bi]!;
        const from = best.value.ids;
        const at = best.at * ID_BYTES;
        for (let b = 0; b < ID_BYTES; b++) out.ids[i * ID_BYTES + b] = from[at + b]!;
        out.heights[i] = best.value.heights[best.at]!;
        out.indexes[i] = best.value.indexes[best.at]!;
        best.at++;
        if (!advance(best)) live.splice(bi, 1);
      }
      written += n;
      // Every input read to its end: a run holding more ids than listed would lose them here.
      if (k === info.pages - 1 && live.length > 0) throw new FedError('STORE_CORRUPT', `transaction index: runs ${inputs.map((r) => r.run).join(', ')} hold more ids than listed`);
      filter?.addAll(out.ids);
      this.onCompactedPage?.(out.ids);
      return encodePage(out, 0, n);
    }, inputs.map((r) => r.run), () => {
      if (written !== count) throw new FedError('STORE_CORRUPT', `transaction index: compaction wrote ${written} of ${count} ids`);
    });
    const gone = new Set(inputs.map((r) => r.run));
    this.#runs = TxRuns.#ordered([{ ...info, fence, filter }, ...this.#runs.filter((r) => !gone.has(r.run))]);
    this.#compactions++;
    // Lookups read the output now: the inputs' pages can go (a crash first leaves them to the next open).
    if (this.#closed) return;
    await this.#store.write('tx index compaction', () => {
      for (const r of inputs) {
        for (let p = 0; p < r.pages; p++) this.#db.remove(pageKey(r.run, p));
        this.#db.remove(pageKey(r.run, FENCE_PAGE));
      }
    });
  }

  /** Waits for a compaction under way, and any it leads to. */
  async settled(): Promise<void> {
    while (this.#compacting) await this.#compacting;
  }

  /** No compaction starts after this (close); one under way stops after its current write. */
  stop(): void {
    this.#closed = true;
  }

  stats(): TxRunsStats {
    return { runs: this.#runs.length, count: this.count, levels: new Set(this.#runs.map((r) => r.level)).size, compactions: this.#compactions, failed: this.#failures,
      filtered: this.#runs.filter((r) => r.filter).length, bytes: this.#runs.reduce((n, r) => n + r.fence.byteLength + (r.filter?.bytes ?? 0), 0), reads: this.#reads,
      ...(this.#lastFailure === undefined ? {} : { lastFailure: String((this.#lastFailure as Error).message ?? this.#lastFailure) }) };
  }
}
