// The batches this member holds, on disk (docs/consensus.md, "Batches"): each batch the BatchStore
// keeps (batches.ts) that the caller hands over — main.ts: those of other validators, received or
// fetched for a proposal; this member's own transactions are in its mempool journal already — is
// written once, as one LMDB value under its digest, and deleted when the store forgets it (its block
// committed, its holder's room made, its TTL past). At start the values are read back: a member that
// restarts votes on a proposal naming batches it held before without asking anyone for them, and
// proposes the other validators' transactions it held when it leads.
//
// A cache, not a promise: nothing depends on a batch being here after a crash (a proposal's batches
// are fetched from the proposer and the author when missing, and a committed block holds its
// transactions in the block store). So the environment is opened with `noSync`: its commits are
// not fsynced. A process that ends without closing it (a kill -9) loses nothing — the kernel keeps
// the pages it wrote — but a machine that stops with it open may leave it torn, and LMDB trusts its
// file (a torn one can crash the process that opens it). So a record beside it (`shutdown.json`,
// written durably) says whether it was closed, and during which boot of the machine it was opened:
// an environment neither closed nor opened since this boot (/proc/sys/kernel/random/boot_id) is
// removed before it is opened, logged, and so is one that cannot be opened. Every value read back is
// checked: its layout, and its transactions against the digest it is stored under (hashed again);
// what fails is deleted and counted.
//
// Bounded: on disk is at most what the store holds (its bounds per holder), and what one holder can
// make this member write is bounded in bytes a second (bytesPerSecondPerHolder; beyond, its batches
// are held in memory only, and counted).
//
// Writes are batched and late: every WRITE_WINDOW_MS, one write transaction deletes what was
// forgotten and puts the batches held for WRITE_AFTER_MS. Most batches are committed, so forgotten,
// sooner, and are never written; what a restart needs most (a backlog, a proposal stuck without a
// quorum) is older. close() writes everything. A write that fails (a full disk) is logged and
// counted; what it would have deleted may stay on disk, so the next sweep() deletes the keys no
// batch held has. Nothing on disk outlives BATCH_TTL_MS past a start.
//
// Keys: a sequence number (u64 BE) then the batch's digest (32 bytes): puts go to the B-tree's last
// page and deletes come mostly from its first, not one random page each (keys that were digests
// alone cost 8 CPU-µs and 780 bytes written per transaction in batches of ten, bench/batch-disk.ts).
// Value layout: 1 | holder u32 BE | author u32 BE | atMs f64 BE | count u32 BE | (length u32 BE | tx)*

import fs from 'node:fs';
import path from 'node:path';
import { open, type RootDatabase } from 'lmdb';
import type { Logger } from 'pino';
import { batchTree } from '#libs/blocks/index.ts';
import { fromHex, toHex, txHash } from '#libs/crypto/index.ts';
import { FedError, errorMessage } from '#libs/errors/index.ts';
import { readIfExists, writeFileAtomic } from '#libs/files/durable.ts';
import type { Hash } from '#libs/hotstuff/index.ts';
import { HandoffBudget } from './handoff.ts';
import { writeError } from './mempool-journal.ts';

export const BATCH_VALUE_VERSION = 1;
/** A key: a sequence number (8 bytes big-endian: keys only grow, so puts append) and the batch's digest. */
const SEQ_BYTES = 8;
const KEY_BYTES = SEQ_BYTES + 32;
const HEADER_BYTES = 1 + 4 + 4 + 8 + 4;
/** How long puts and deletes collect before they are written together. */
export const WRITE_WINDOW_MS = 250;
/**
 * How long a batch is held before it is written: most are committed (and forgotten) sooner, and are
 * never written. Written every batch cost 3 CPU-µs a transaction per member in batches of ten (the
 * federation bench's size; bench/batch-disk.ts); what a restart needs most — a backlog — is older.
 */
export const WRITE_AFTER_MS = 2_000;
/** The record of how the environment was left (the top of this file), in its directory. */
export const SHUTDOWN_RECORD = 'shutdown.json';
/** How long load() checks batches before it lets other work run. */
const LOAD_SLICE_MS = 10;
/** Corrupt values logged one by one at load; the rest only in the summary. */
const LOGGED_CORRUPT = 10;

/** A batch as written: who holds it here and who made it, since when, and its transactions. */
export interface DiskBatch {
  holder: number;
  author: number;
  atMs: number;
  txs: readonly Uint8Array[];
}

/** A batch read back and checked: its ids and Merkle tree computed again from its transactions. */
export interface LoadedBatch extends DiskBatch {
  ids: Hash[];
  tree: { digest: Hash; leaves: Uint8Array };
}

/** What became of a value read back: read (`loaded`; the caller reports `held` again or forgotten as `committed`), or deleted. */
export type LoadOutcome = 'loaded' | 'held' | 'committed' | 'expired' | 'corrupt';

/** What the disk copy reports, for metrics. Every method must not throw. */
export interface BatchDiskObserver {
  /** A write transaction committed (`puts` values written, `removes` deleted). */
  written?(puts: number, removes: number, bytes: number): void;
  /** A write transaction that failed. */
  failed?(): void;
  /** A batch held in memory only: its holder was over its bytes a second on disk. */
  skipped?(holder: number): void;
  /** Values read at start, by what became of them. */
  loaded?(outcome: LoadOutcome, n: number): void;
  /** Batches and their transactions' bytes on disk now (as written or being written). */
  size?(batches: number, bytes: number): void;
}

export interface BatchDiskOptions {
  /** The LMDB environment's directory (created if missing). */
  path: string;
  log: Logger;
  observer?: BatchDiskObserver;
  /** How often what is due is written (default WRITE_WINDOW_MS). */
  windowMs?: number;
  /** How long a batch is held before it is written (default WRITE_AFTER_MS). */
  writeAfterMs?: number;
  /**
   * Bytes of transactions written a second per holder, in bursts of twice that: beyond, a batch is
   * held in memory only. What a flooding validator can make this member write to disk is bounded
   * by this, not by what it sends. Default: unbounded (main.ts gives max_block_bytes).
   */
  bytesPerSecondPerHolder?: number;
  now?: () => number;
}

/** A batch's value (the layout at the top). */
export function encodeBatch(b: DiskBatch): Buffer {
  let size = HEADER_BYTES;
  for (const tx of b.txs) size += 4 + tx.length;
  const out = Buffer.allocUnsafe(size);
  out[0] = BATCH_VALUE_VERSION;
  out.writeUInt32BE(b.holder, 1);
  out.writeUInt32BE(b.author, 5);
  out.writeDoubleBE(b.atMs, 9);
  out.writeUInt32BE(b.txs.length, 17);
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
  if (value.length < HEADER_BYTES) return { why: `${value.length} bytes, shorter than the ${HEADER_BYTES}-byte header` };
  if (value[0] !== BATCH_VALUE_VERSION) return { why: `version ${value[0]}, not ${BATCH_VALUE_VERSION}` };
  const v = Buffer.from(value.buffer, value.byteOffset, value.length);
  const holder = v.readUInt32BE(1);
  const author = v.readUInt32BE(5);
  const atMs = v.readDoubleBE(9);
  const count = v.readUInt32BE(17);
  if (!Number.isFinite(atMs)) return { why: 'its time is not a number' };
  if (count === 0) return { why: 'no transactions' };
  // Each transaction takes at least its length field and one byte: a count beyond that is a lie.
  if (count > (v.length - HEADER_BYTES) / 5) return { why: `${count} transactions cannot fit ${v.length} bytes` };
  const txs: Uint8Array[] = [];
  let at = HEADER_BYTES;
  for (let i = 0; i < count; i++) {
    if (at + 4 > v.length) return { why: `transaction ${i}: its length runs past the value` };
    const len = v.readUInt32BE(at);
    if (len === 0 || at + 4 + len > v.length) return { why: `transaction ${i}: ${len} bytes do not fit the value` };
    txs.push(v.subarray(at + 4, at + 4 + len));
    at += 4 + len;
  }
  if (at !== v.length) return { why: `${v.length - at} bytes after the last transaction` };
  return { holder, author, atMs, txs };
}

/** This boot of the machine, or undefined where the kernel does not say. */
function bootId(): string | undefined {
  try {
    return fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

/** Why the environment at `dir` may be torn (then it is removed), or undefined when it is sound or absent. */
async function tornReason(dir: string, record: string): Promise<string | undefined> {
  if (!fs.existsSync(path.join(dir, 'data.mdb'))) return undefined;
  const text = await readIfExists(record);
  if (text === undefined) return `no ${SHUTDOWN_RECORD}: how it was left is unknown`;
  let r: { boot?: unknown; closed?: unknown };
  try {
    r = JSON.parse(text) as typeof r;
  } catch {
    return `${SHUTDOWN_RECORD} does not parse`;
  }
  if (r.closed === true) return undefined;
  const boot = bootId();
  if (boot !== undefined && r.boot === boot) return undefined;
  return 'it was open when the machine stopped (its writes are not fsynced, so it may be torn)';
}

/** A write queued: a batch to put under `key` (held here since `at`), or null to delete the key. */
interface QueuedWrite { key: Buffer; b: DiskBatch | null; at: number }

export class BatchDisk {
  readonly #o: BatchDiskOptions;
  #db: RootDatabase<Buffer, Buffer>;
  /** Key (hex) → the key and the batch to write under it, or null to delete it: what the next write does. */
  #queue = new Map<string, QueuedWrite>();
  /** Digest (hex) → its key and its transactions' bytes, for every batch on disk or being written. */
  readonly #onDisk = new Map<string, { key: Buffer; bytes: number }>();
  #bytes = 0;
  /** The next key's sequence number (keys only grow: a put appends to the B-tree's last page). */
  #nextSeq = 1;
  #timer: NodeJS.Timeout | undefined;
  #writing: Promise<void> | undefined;
  /** A write failed since the last sweep: the disk may hold keys the store forgot. */
  #dirty = false;
  #closed = false;
  /** A load() is under way. */
  #loading = false;
  /** Per holder: bytes a second written (bytesPerSecondPerHolder). */
  readonly #budget: HandoffBudget | undefined;
  /** Counts for tests and the log: writes done and failed, batches over their holder's budget. */
  readonly counts = { writes: 0, failed: 0, skipped: 0 };

  readonly #now: () => number;

  private constructor(o: BatchDiskOptions) {
    this.#o = o;
    this.#now = o.now ?? Date.now;
    const rate = o.bytesPerSecondPerHolder;
    this.#budget = rate ? new HandoffBudget({ rate, burst: 2 * rate, now: this.#now }) : undefined;
    this.#db = this.#open();
  }

  /**
   * Opens the environment at `o.path` (made if missing), after removing one a machine stop may have
   * torn (the record at the top), and records that it is open during this boot.
   */
  static async open(o: BatchDiskOptions): Promise<BatchDisk> {
    const record = path.join(o.path, SHUTDOWN_RECORD);
    const torn = await tornReason(o.path, record);
    if (torn) {
      o.log.warn({ path: o.path, why: torn }, 'batches on disk removed before opening (batches a proposal names are fetched from the proposer and the author)');
      fs.rmSync(o.path, { recursive: true, force: true });
    }
    const disk = new BatchDisk(o);
    await disk.#recordOpen();
    return disk;
  }

  /** Durably, before anything is written: the environment is open during this boot. */
  async #recordOpen(): Promise<void> {
    await writeFileAtomic(path.join(this.#o.path, SHUTDOWN_RECORD), JSON.stringify({ boot: bootId(), closed: false }));
  }

  #open(): RootDatabase<Buffer, Buffer> {
    const opts = { path: this.#o.path, compression: false, noSync: true, eventTurnBatching: false, encoding: 'binary', keyEncoding: 'binary' } as const;
    try {
      return open<Buffer, Buffer>(opts);
    } catch (err) {
      // A cache: every batch in it can be fetched again. Made again rather than refuse to start.
      this.#o.log.error({ path: this.#o.path, err: errorMessage(err) }, 'batches on disk cannot be opened: removed and made again (batches a proposal names are fetched from the proposer and the author)');
      fs.rmSync(this.#o.path, { recursive: true, force: true });
      try {
        return open<Buffer, Buffer>(opts);
      } catch (again) {
        throw new FedError('BATCH_DISK_UNREADABLE', `batches on disk at ${this.#o.path} cannot be made: ${errorMessage(again)}`, { path: this.#o.path }, { cause: again });
      }
    }
  }

  /** Batches on disk (or being written). */
  get size(): number { return this.#onDisk.size; }
  /** Their transactions' bytes. */
  get bytes(): number { return this.#bytes; }

  /**
   * Reads every batch back, oldest first, handing each to `each` as it is checked (the checks —
   * each transaction hashed again — yield to other work every few milliseconds: a full store is
   * tens of megabytes). Deleted and counted: values older than `ttlMs` at `nowMs` and values that
   * are corrupt (a layout that does not parse, or transactions that do not hash to the digest they
   * are stored under). Returns the batches handed over. Never throws for a value.
   */
  async load(nowMs: number, ttlMs: number, each?: (b: LoadedBatch) => void): Promise<LoadedBatch[]> {
    const counts: Record<'loaded' | 'expired' | 'corrupt', number> = { loaded: 0, expired: 0, corrupt: 0 };
    const out: LoadedBatch[] = [];
    const drop: Buffer[] = [];
    const corrupt = (key: Buffer, why: string): void => {
      drop.push(key);
      counts.corrupt++;
      if (counts.corrupt <= LOGGED_CORRUPT) this.#o.log.warn({ path: this.#o.path, key: key.toString('hex').slice(0, 32), why }, 'batches on disk: corrupt value deleted');
    };
    this.#loading = true;
    try {
      // Read and parsed at once (a copy each: the range's buffers are not ours to keep), checked after.
      const read: Array<{ key: Buffer; d: DiskBatch }> = [];
      let rewrite = false;
      try {
        for (const { key: k, value } of this.#db.getRange()) {
          const key = Buffer.from(k);
          if (key.length !== KEY_BYTES) { corrupt(key, `a key of ${key.length} bytes, not ${KEY_BYTES}`); continue; }
          this.#nextSeq = Math.max(this.#nextSeq, Number(key.readBigUInt64BE(0)) + 1);
          const d = decodeBatch(Uint8Array.prototype.slice.call(value));
          if ('why' in d) { corrupt(key, d.why); continue; }
          if (d.atMs <= nowMs - ttlMs) { drop.push(key); counts.expired++; continue; }
          read.push({ key, d });
        }
      } catch (err) {
        // The environment itself cannot be read: what was read stands (written again), the rest is dropped with it.
        this.#o.log.error({ path: this.#o.path, err: errorMessage(err), read: read.length }, 'batches on disk cannot be read to the end: removed and made again');
        await this.#db.close();
        fs.rmSync(this.#o.path, { recursive: true, force: true });
        this.#db = this.#open();
        await this.#recordOpen();
        drop.length = 0;
        rewrite = true;
      }
      // Oldest first: the store makes room in its holders' order of arrival.
      read.sort((a, b) => a.d.atMs - b.d.atMs);
      let slice = performance.now();
      for (const { key, d } of read) {
        if (this.#closed) break;
        const ids = d.txs.map(txHash);
        const tree = batchTree(ids);
        if (!tree.digest.every((x, i) => x === key[SEQ_BYTES + i])) { corrupt(key, 'its transactions do not hash to the digest it is stored under'); continue; }
        const hex = toHex(tree.digest);
        // The same batch twice (a put whose delete was lost): the later key goes.
        if (this.#onDisk.has(hex)) { drop.push(key); continue; }
        const b: LoadedBatch = { ...d, ids, tree };
        this.#track(hex, key, b);
        if (rewrite) this.#queue.set(key.toString('hex'), { key, b, at: 0 });
        counts.loaded++;
        out.push(b);
        each?.(b);
        if (performance.now() - slice > LOAD_SLICE_MS) {
          await new Promise((r) => setImmediate(r));
          slice = performance.now();
        }
      }
    } finally {
      this.#loading = false;
    }
    for (const key of drop) this.#queue.set(key.toString('hex'), { key, b: null, at: 0 });
    if (this.#queue.size > 0) this.#schedule();
    this.#report();
    for (const [outcome, n] of Object.entries(counts) as Array<[keyof typeof counts, number]>) this.#o.observer?.loaded?.(outcome, n);
    this.#o.log[counts.corrupt > 0 ? 'warn' : 'info']({ path: this.#o.path, ...counts }, 'batches on disk read back');
    return out;
  }

  /** Writes the batch under its digest (hex) soon, if its holder's bytes a second allow. */
  put(hex: string, b: DiskBatch): void {
    if (this.#closed || this.#onDisk.has(hex)) return;
    if (this.#budget) {
      let bytes = 0;
      for (const tx of b.txs) bytes += tx.length;
      if (!this.#budget.takeAll(b.holder, bytes)) {
        this.counts.skipped++;
        this.#o.observer?.skipped?.(b.holder);
        return;
      }
    }
    const key = Buffer.allocUnsafe(KEY_BYTES);
    key.writeBigUInt64BE(BigInt(this.#nextSeq++), 0);
    key.set(fromHex(hex), SEQ_BYTES);
    this.#queue.set(key.toString('hex'), { key, b, at: this.#now() });
    this.#track(hex, key, b);
    this.#schedule();
  }

  /** Deletes the batch soon (or does not write it, if it is not written yet). */
  forget(hex: string): void {
    if (this.#closed) return;
    const at = this.#onDisk.get(hex);
    if (at === undefined) return;
    this.#onDisk.delete(hex);
    this.#bytes -= at.bytes;
    this.#report();
    const k = at.key.toString('hex');
    // Not written yet: never written.
    if (this.#queue.get(k)?.b) { this.#queue.delete(k); return; }
    this.#queue.set(k, { key: at.key, b: null, at: 0 });
    this.#schedule();
  }

  /**
   * After a failed write: deletes every key on disk that no batch held has (what the failed write
   * should have deleted). Keys only are read. Does nothing when no write failed since the last sweep.
   */
  sweep(): void {
    // Not while loading: the keys not read back yet are not held yet.
    if (!this.#dirty || this.#closed || this.#writing || this.#loading) return;
    this.#dirty = false;
    let n = 0;
    for (const k of this.#db.getKeys()) {
      const key = Buffer.from(k);
      const hex = key.toString('hex');
      if (this.#queue.has(hex) || this.#owns(key)) continue;
      this.#queue.set(hex, { key, b: null, at: 0 });
      n++;
    }
    if (n > 0) {
      this.#o.log.info({ path: this.#o.path, batches: n }, 'batches on disk: deleting those a failed write left behind');
      this.#schedule();
    }
  }

  /** Whether `key` is the one a batch held is kept under. */
  #owns(key: Buffer): boolean {
    return key.length === KEY_BYTES && this.#onDisk.get(key.toString('hex', SEQ_BYTES))?.key.equals(key) === true;
  }

  /** Writes everything queued now, batches held for less than writeAfterMs too; resolves once it is written (or failed). */
  async flush(): Promise<void> {
    await this.#flush(true);
  }

  /** Writes the deletes queued and the batches held for writeAfterMs; the rest wait for the next window. */
  async #flush(all: boolean): Promise<void> {
    while (this.#writing) await this.#writing;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const due = this.#now() - (this.#o.writeAfterMs ?? WRITE_AFTER_MS);
    let q = this.#queue;
    if (all) this.#queue = new Map();
    else {
      // Deletes go now, puts once due.
      q = new Map();
      for (const [k, e] of this.#queue) {
        if (e.b !== null && e.at > due) continue;
        q.set(k, e);
        this.#queue.delete(k);
      }
    }
    if (q.size > 0) {
      this.#writing = this.#write(q).finally(() => { this.#writing = undefined; });
      await this.#writing;
    }
    if (this.#queue.size > 0) this.#schedule();
  }

  /** Writes what is queued, makes the file durable, closes the environment and records that it was closed. */
  async close(): Promise<void> {
    await this.flush();
    this.#closed = true;
    clearTimeout(this.#timer);
    let synced = false;
    try {
      const fd = fs.openSync(path.join(this.#o.path, 'data.mdb'), 'r');
      try { fs.fsyncSync(fd); synced = true; } finally { fs.closeSync(fd); }
    } catch (err) {
      this.#o.log.warn({ path: this.#o.path, err: errorMessage(err) }, 'batches on disk: not made durable at close (removed at the next start if the machine stops first)');
    }
    await this.#db.close();
    if (synced) await writeFileAtomic(path.join(this.#o.path, SHUTDOWN_RECORD), JSON.stringify({ boot: bootId(), closed: true }));
  }

  async #write(q: Map<string, QueuedWrite>): Promise<void> {
    let puts = 0;
    let bytes = 0;
    try {
      await this.#db.transaction(() => {
        for (const { key, b } of q.values()) {
          if (b === null) { this.#db.removeSync(key); continue; }
          const value = encodeBatch(b);
          this.#db.putSync(key, value);
          puts++;
          bytes += value.length;
        }
      });
      this.counts.writes++;
      this.#o.observer?.written?.(puts, q.size - puts, bytes);
    } catch (err) {
      this.counts.failed++;
      this.#dirty = true;
      this.#o.observer?.failed?.();
      // The batches stay held in memory: only a restart loses them (and fetches them again).
      for (const { key, b } of q.values()) {
        if (b === null || !this.#owns(key)) continue;
        const hex = key.toString('hex', SEQ_BYTES);
        this.#bytes -= this.#onDisk.get(hex)!.bytes;
        this.#onDisk.delete(hex);
      }
      this.#report();
      const every = this.counts.failed;
      if ((every & (every - 1)) === 0) this.#o.log.error({ path: this.#o.path, failed: every, batches: q.size, err: await writeError(err) }, 'batches on disk: a write failed (they stay held in memory; a restart would fetch them again)');
    }
  }

  #track(hex: string, key: Buffer, b: DiskBatch): void {
    let n = 0;
    for (const tx of b.txs) n += tx.length;
    this.#onDisk.set(hex, { key, bytes: n });
    this.#bytes += n;
    this.#report();
  }

  #report(): void {
    this.#o.observer?.size?.(this.#onDisk.size, this.#bytes);
  }

  #schedule(): void {
    if (this.#timer || this.#closed) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.#flush(false);
    }, this.#o.windowMs ?? WRITE_WINDOW_MS);
    this.#timer.unref();
  }
}
