// The batches this member holds, on disk (docs/consensus.md, "Batches"): each batch the BatchStore
// keeps (batches.ts) that the caller hands over — main.ts: those of other validators, received or
// fetched for a proposal; this member's own transactions are in its mempool journal already — is
// written once, and deleted when the store forgets it (its block committed, its holder's room made,
// its TTL past). At start the batches are read back: a member that restarts votes on a proposal
// naming batches it held before without asking anyone for them, and proposes the other validators'
// transactions it held when it leads.
//
// A cache, not a promise: nothing depends on a batch being here after a crash (a proposal's batches
// are fetched from the proposer and the author when missing, and a committed block holds its
// transactions in the block store). So the environment is opened with `noSync`: its commits are
// not fsynced. A process that ends without closing it (a kill -9) loses nothing — the kernel keeps
// the pages it wrote — but a machine that stops with it open may leave it torn, and LMDB trusts its
// file (a torn one can crash the process that opens it). So a record beside it (`shutdown.json`,
// written durably) says whether it was closed, and during which boot of the machine it was opened:
// an environment neither closed nor opened since this boot (/proc/sys/kernel/random/boot_id) is
// removed before it is opened, logged, and so is one that cannot be opened. Every batch read back is
// checked: its layout, and its transactions against the digest it was written with (hashed again);
// what fails is deleted and counted.
//
// Written late and in groups: every WRITE_WINDOW_MS, one write transaction puts the batches held
// for WRITE_AFTER_MS as **one value** (a group, under a key that only grows) and deletes the groups
// none of whose batches is held any more. Most batches are committed, so forgotten, before they are
// due and are never written; what a restart needs most (a backlog, a proposal stuck without a
// quorum) is older. One LMDB value a batch cost 11–15 CPU-µs a batch in LMDB alone (a page copied
// on write for each put and each delete), some 3 µs a transaction in batches of ten, the federation
// bench's size. close() writes everything. A group less than a quarter of whose bytes are still held
// is written again: its batches go into the next group and it is deleted, so what is on disk stays
// within four times what is held (and GROUP_SLACK_BYTES a group). A write that fails (a full disk)
// is logged and counted, its batches held in memory only; what it should have deleted stays on disk
// until sweep() deletes the keys no group held has. Nothing on disk outlives BATCH_TTL_MS past a start.
//
// Bounded: on disk is at most what the store holds (its bounds per holder) within the slack above,
// and what one holder can make this member write is bounded in bytes a second
// (bytesPerSecondPerHolder; beyond, its batches are held in memory only, and counted). That budget
// is the holder's, not its number's: a set change moves it with the member (renumber).
//
// Keys: a sequence number, u64 BE; values: groups of batches (batch-codec.ts).

import fs from 'node:fs';
import path from 'node:path';
import { open, type RootDatabase } from 'lmdb';
import type { Logger } from 'pino';
import { batchTree } from '#libs/blocks/index.ts';
import { bytesEqual, fromHex, toHex, txHash } from '#libs/crypto/index.ts';
import { FedError, errorMessage } from '#libs/errors/index.ts';
import { readIfExists, writeFileAtomic } from '#libs/files/durable.ts';
import type { Hash } from '#libs/hotstuff/index.ts';
import { decodeGroup, encodeGroup, type DiskBatch } from './batch-codec.ts';
import { HandoffBudget } from './handoff.ts';
import { seqKey } from './journal-codec.ts';
import { writeError } from './mempool-journal.ts';

/** A key: a group's sequence number, 8 bytes big-endian (keys only grow: a put appends). */
const KEY_BYTES = 8;
/** How often the batches due are written, as one group, with the deletes. */
export const WRITE_WINDOW_MS = 250;
/** A group holds at most this many bytes of transactions (a window with more due writes several). */
export const MAX_GROUP_BYTES = 16 << 20;
/** A group this small is not written again however little of it is held (what that would save is not worth a write). */
export const GROUP_SLACK_BYTES = 64 << 10;
/**
 * How long a batch is held before it is written: most are committed (and forgotten) sooner, and are
 * never written; what a restart needs most — a backlog — is older.
 */
export const WRITE_AFTER_MS = 2_000;
/** The record of how the environment was left (the top of this file), in its directory. */
export const SHUTDOWN_RECORD = 'shutdown.json';
/** How long load() checks batches before it lets other work run. */
const LOAD_SLICE_MS = 10;
/** Corrupt values logged one by one at load; the rest only in the summary. */
const LOGGED_CORRUPT = 10;

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

/** A batch held that is on disk, being written, or waiting to be due (`group` 0). */
interface Kept { b: DiskBatch; bytes: number; group: number; at: number }
/** A group on disk or being written: the batches of it still held, and its value's size. */
interface Group { members: Set<string>; valueBytes: number; liveBytes: number }

export class BatchDisk {
  readonly #o: BatchDiskOptions;
  #db: RootDatabase<Buffer, Buffer>;
  readonly #now: () => number;
  /** Digest (hex) → the batch, for every batch handed over and still held. */
  readonly #kept = new Map<string, Kept>();
  /** Digests (hex) of the batches waiting to be due. */
  readonly #pending = new Set<string>();
  /** Groups on disk or being written, by sequence number. */
  readonly #groups = new Map<number, Group>();
  /** Keys to delete at the next write (groups none of whose batches is held, or written again). */
  #deletes: Buffer[] = [];
  #nextSeq = 1;
  /** The kept batches' transactions' bytes. */
  #bytes = 0;
  #timer: NodeJS.Timeout | undefined;
  #writing: Promise<void> | undefined;
  /** A write failed since the last sweep: the disk may hold keys no group held has. */
  #dirty = false;
  #closed = false;
  /** A load() is under way. */
  #loading = false;
  /** Per holder: bytes a second written (bytesPerSecondPerHolder). */
  readonly #budget: HandoffBudget | undefined;
  /** Counts for tests and the log: writes done and failed, batches over their holder's budget, groups written again. */
  readonly counts = { writes: 0, failed: 0, skipped: 0, rewritten: 0 };

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

  /** Batches handed over and still held (on disk, or to be). */
  get size(): number { return this.#kept.size; }
  /** Their transactions' bytes. */
  get bytes(): number { return this.#bytes; }
  /** What the groups' values take, their batches no longer held included. */
  get diskBytes(): number {
    let n = 0;
    for (const g of this.#groups.values()) n += g.valueBytes;
    return n;
  }

  /**
   * Reads every batch back, a group at a time in the order they were written (oldest first),
   * handing each to `each` as it is checked (the checks — each transaction hashed again — yield to
   * other work every few milliseconds: a full store is tens of megabytes; one group's value is in
   * memory at a time). Deleted and counted: batches older than `ttlMs` at `nowMs` and batches that
   * are corrupt (a layout that does not parse, or transactions that do not hash to the digest they
   * were written with). Returns the batches handed over. Never throws for a value.
   */
  async load(nowMs: number, ttlMs: number, each?: (b: LoadedBatch) => void): Promise<LoadedBatch[]> {
    const counts: Record<'loaded' | 'expired' | 'corrupt', number> = { loaded: 0, expired: 0, corrupt: 0 };
    const out: LoadedBatch[] = [];
    const corrupt = (key: Buffer, why: string): void => {
      counts.corrupt++;
      if (counts.corrupt <= LOGGED_CORRUPT) this.#o.log.warn({ path: this.#o.path, key: key.toString('hex'), why }, 'batches on disk: corrupt batch deleted');
    };
    /** Every group read: those no batch read back is in are deleted. */
    const keys = new Map<number, Buffer>();
    /** Groups some of whose batches were not read back (expired, corrupt, twice): written again without them. */
    const shrunk = new Set<number>();
    this.#loading = true;
    try {
      const list: Buffer[] = [];
      try {
        for (const k of this.#db.getKeys()) list.push(Buffer.from(k));
      } catch (err) {
        await this.#wipe(err);
        list.length = 0;
      }
      // Before the first yield: a group written meanwhile (new batches come due) takes a key after every one read here.
      for (const key of list) if (key.length === KEY_BYTES) this.#nextSeq = Math.max(this.#nextSeq, Number(key.readBigUInt64BE(0)) + 1);
      let slice = performance.now();
      for (const key of list) {
        if (this.#closed) break;
        if (key.length !== KEY_BYTES) { corrupt(key, `a key of ${key.length} bytes, not ${KEY_BYTES}`); this.#deletes.push(key); continue; }
        const seq = Number(key.readBigUInt64BE(0));
        let value: Buffer | undefined;
        try {
          // A copy (getBinary): the batches' transactions are views into it, kept.
          value = this.#db.getBinary(key);
        } catch (err) {
          await this.#wipe(err);
          keys.clear();
          break;
        }
        if (!value) continue;
        keys.set(seq, key);
        const g = decodeGroup(value);
        if ('why' in g) { corrupt(key, g.why); continue; }
        for (const { digest, b: d } of g) {
          if ('why' in d) { corrupt(key, d.why); shrunk.add(seq); continue; }
          if (d.atMs <= nowMs - ttlMs) { counts.expired++; shrunk.add(seq); continue; }
          const ids = d.txs.map(txHash);
          const tree = batchTree(ids);
          if (!bytesEqual(tree.digest, digest)) { corrupt(key, 'its transactions do not hash to the digest it was written with'); shrunk.add(seq); continue; }
          const hex = toHex(tree.digest);
          // The same batch twice (written again while its first group was still held), or held already: once is enough.
          if (this.#kept.has(hex)) { shrunk.add(seq); continue; }
          const b: LoadedBatch = { ...d, ids, tree };
          let bytes = 0;
          for (const tx of d.txs) bytes += tx.length;
          this.#kept.set(hex, { b, bytes, group: seq, at: d.atMs });
          let group = this.#groups.get(seq);
          if (!group) this.#groups.set(seq, (group = { members: new Set(), valueBytes: value.length, liveBytes: 0 }));
          group.members.add(hex);
          group.liveBytes += bytes;
          this.#bytes += bytes;
          counts.loaded++;
          out.push(b);
          each?.(b);
          if (performance.now() - slice > LOAD_SLICE_MS) {
            await new Promise((r) => setImmediate(r));
            slice = performance.now();
          }
        }
      }
    } finally {
      this.#loading = false;
    }
    for (const [seq, key] of keys) if (!this.#groups.has(seq)) this.#deletes.push(key);
    // Groups with batches expired, corrupt or twice, or mostly forgotten meanwhile, are written again.
    for (const seq of [...this.#groups.keys()]) this.#rewriteIfSparse(seq, shrunk.has(seq));
    if (this.#deletes.length > 0 || this.#pending.size > 0) this.#schedule();
    this.#report();
    for (const [outcome, n] of Object.entries(counts) as Array<[keyof typeof counts, number]>) this.#o.observer?.loaded?.(outcome, n);
    this.#o.log[counts.corrupt > 0 ? 'warn' : 'info']({ path: this.#o.path, ...counts, groups: this.#groups.size }, 'batches on disk read back');
    return out;
  }

  /**
   * The environment cannot be read: it is removed and made again, and the batches read back so far
   * go into the next group (the rest are lost to it: a proposal naming them fetches them).
   */
  async #wipe(err: unknown): Promise<void> {
    this.#o.log.error({ path: this.#o.path, err: errorMessage(err), read: this.#kept.size }, 'batches on disk cannot be read to the end: removed and made again');
    await this.#db.close();
    fs.rmSync(this.#o.path, { recursive: true, force: true });
    this.#db = this.#open();
    await this.#recordOpen();
    for (const g of this.#groups.values()) {
      for (const hex of g.members) {
        const k = this.#kept.get(hex)!;
        k.group = 0;
        k.at = 0;
        this.#pending.add(hex);
      }
    }
    this.#groups.clear();
    this.#deletes = [];
  }

  /** Writes the batch under its digest (hex) once it is due, if its holder's bytes a second allow. */
  put(hex: string, b: DiskBatch): void {
    if (this.#closed || this.#kept.has(hex)) return;
    let bytes = 0;
    for (const tx of b.txs) bytes += tx.length;
    if (this.#budget && !this.#budget.takeAll(b.holder, bytes)) {
      this.counts.skipped++;
      this.#o.observer?.skipped?.(b.holder);
      return;
    }
    this.#kept.set(hex, { b, bytes, group: 0, at: this.#now() });
    this.#pending.add(hex);
    this.#bytes += bytes;
    this.#report();
    this.#schedule();
  }

  /**
   * A set change renumbered the holders (BatchStore.renumber's `to`, in the step that swaps the
   * engine): each holder's bytes a second follow it to its new number, and a holder seated no more
   * loses its own. Else a member renumbered into a removed one's number inherited its spent budget
   * (or a fresh one). The batches kept say the epoch their numbers are of, and are not touched.
   */
  renumber(to: (index: number) => number | undefined): void {
    this.#budget?.renumber(to);
  }

  /** The batch is not held any more: not written if it is not yet; its group deleted once none of its batches is held. */
  forget(hex: string): void {
    const k = this.#kept.get(hex);
    if (!k) return;
    this.#kept.delete(hex);
    this.#bytes -= k.bytes;
    this.#report();
    if (k.group === 0) {
      this.#pending.delete(hex);
      return;
    }
    const g = this.#groups.get(k.group);
    if (!g) return;
    g.members.delete(hex);
    g.liveBytes -= k.bytes;
    if (g.members.size === 0) {
      this.#groups.delete(k.group);
      this.#deletes.push(seqKey(k.group));
      this.#schedule();
    } else this.#rewriteIfSparse(k.group);
  }

  /** A group less than a quarter of whose bytes is held (and over the slack), or `always`: its batches go into the next group, and it is deleted. */
  #rewriteIfSparse(seq: number, always = false): void {
    const g = this.#groups.get(seq);
    if (!g || (!always && (g.valueBytes <= GROUP_SLACK_BYTES || g.liveBytes * 4 >= g.valueBytes))) return;
    this.#groups.delete(seq);
    for (const hex of g.members) {
      const k = this.#kept.get(hex)!;
      k.group = 0;
      k.at = 0;
      this.#pending.add(hex);
    }
    this.#deletes.push(seqKey(seq));
    this.counts.rewritten++;
    this.#schedule();
  }

  /**
   * After a failed write: deletes every key on disk no group held has (what the failed write should
   * have deleted). Keys only are read. Does nothing when no write failed since the last sweep.
   */
  sweep(): void {
    // Not while loading: the groups not read back yet are not known yet.
    if (!this.#dirty || this.#closed || this.#writing || this.#loading) return;
    this.#dirty = false;
    let n = 0;
    for (const k of this.#db.getKeys()) {
      const key = Buffer.from(k);
      if (key.length === KEY_BYTES && this.#groups.has(Number(key.readBigUInt64BE(0)))) continue;
      this.#deletes.push(key);
      n++;
    }
    if (n > 0) {
      this.#o.log.info({ path: this.#o.path, groups: n }, 'batches on disk: deleting what a failed write left behind');
      this.#schedule();
    }
  }

  /** Writes every batch waiting, due or not, and the deletes; resolves once it is written (or failed). */
  async flush(): Promise<void> {
    await this.#flush(true);
  }

  /** Writes the batches held for writeAfterMs as one group, with the deletes; the rest wait for a later window. */
  async #flush(all: boolean): Promise<void> {
    while (this.#writing) await this.#writing;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const due = this.#now() - (this.#o.writeAfterMs ?? WRITE_AFTER_MS);
    // The batches due, in groups of at most MAX_GROUP_BYTES of transactions (one LMDB value each).
    const groups: string[][] = [];
    let bytes = MAX_GROUP_BYTES;
    for (const hex of this.#pending) {
      const k = this.#kept.get(hex)!;
      if (!all && k.at > due) continue;
      if (bytes + k.bytes > MAX_GROUP_BYTES && bytes > 0) { groups.push([]); bytes = 0; }
      groups.at(-1)!.push(hex);
      bytes += k.bytes;
    }
    const deletes = this.#deletes;
    this.#deletes = [];
    if (groups.length > 0 || deletes.length > 0) {
      const puts: Array<{ seq: number; value: Buffer; batches: number }> = [];
      for (const members of groups) {
        const seq = this.#nextSeq++;
        const g: Group = { members: new Set(members), valueBytes: 0, liveBytes: 0 };
        for (const hex of members) {
          const k = this.#kept.get(hex)!;
          this.#pending.delete(hex);
          k.group = seq;
          g.liveBytes += k.bytes;
        }
        const value = encodeGroup(members.map((hex) => ({ digest: fromHex(hex), b: this.#kept.get(hex)!.b })));
        g.valueBytes = value.length;
        this.#groups.set(seq, g);
        puts.push({ seq, value, batches: members.length });
      }
      this.#writing = this.#write(puts, deletes).finally(() => { this.#writing = undefined; });
      await this.#writing;
    }
    if (this.#pending.size > 0 || this.#deletes.length > 0) this.#schedule();
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

  async #write(puts: ReadonlyArray<{ seq: number; value: Buffer; batches: number }>, deletes: readonly Buffer[]): Promise<void> {
    const batches = puts.reduce((n, p) => n + p.batches, 0);
    try {
      await this.#db.transaction(() => {
        for (const { seq, value } of puts) this.#db.putSync(seqKey(seq), value);
        for (const key of deletes) this.#db.removeSync(key);
      });
      this.counts.writes++;
      this.#o.observer?.written?.(batches, deletes.length, puts.reduce((n, p) => n + p.value.length, 0));
    } catch (err) {
      this.counts.failed++;
      this.#dirty = true;
      this.#o.observer?.failed?.();
      // The groups' batches stay held in memory only (a restart would fetch them again).
      for (const { seq } of puts) {
        const g = this.#groups.get(seq);
        if (!g) continue;
        this.#groups.delete(seq);
        for (const hex of g.members) {
          this.#bytes -= this.#kept.get(hex)!.bytes;
          this.#kept.delete(hex);
        }
      }
      this.#report();
      const every = this.counts.failed;
      if ((every & (every - 1)) === 0) this.#o.log.error({ path: this.#o.path, failed: every, batches, deletes: deletes.length, err: await writeError(err) }, 'batches on disk: a write failed (they stay held in memory; a restart would fetch them again)');
    }
  }

  #report(): void {
    this.#o.observer?.size?.(this.#kept.size, this.#bytes);
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
