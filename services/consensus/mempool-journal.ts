// The mempool journal: what makes ACCEPTED survive a crash of this member. Every transaction a
// client of this member submitted and was told ACCEPTED is on disk first: the API appends it
// here and answers only once the group commit that carries it is durable. At start the journal
// is replayed into the (empty) mempool, skipping what the block store already committed, and the
// service sends the restored transactions to the validators again and proposes them itself
// when it leads. An entry is deleted when its transaction leaves the mempool (committed); the
// mempool tells us (Mempool onRemoved), so the journal never holds more than the pool may.
//
// Storage: an LMDB environment of its own in `<data-dir>/consensus/mempool/` (inside the block
// store's directory, the only one the consensus service writes), opened like the block store
// with `overlappingSync: false`, so a transaction is fdatasynced before its promise resolves,
// and with `eventTurnBatching: false`: this journal batches by itself, and lmdb's own per-turn
// batch leaves a promise nobody awaits that rejects when a write fails (a full disk), which
// would crash the process instead of failing the submit.
// Keys are an 8-byte big-endian sequence number, one per group commit (acceptance order, which is
// proposal order). A group's value holds every entry the commit wrote, in order, with each
// transaction's hash as its checksum (journal-codec.ts); the replay also reads an older build's
// layout, one key per transaction.
// One value a group, not one key a transaction: a B-tree delete per committed transaction was 6 %
// of a loaded consensus process (docs/performance.md); now a group's key is deleted when the last
// of its transactions leaves the mempool. Until then its committed entries stay on disk, where they
// cost nothing but room (a replay drops them); a group holding more dead bytes than live ones is
// written again with its live entries only, under the same key, while the file holds more than
// twice the live bytes (COMPACT_SLACK_BYTES above that). The replay writes again every group it
// dropped entries of.
//
// Group commit: appends within a short window (`windowMs`), or until a batch is full, go into one
// LMDB transaction with one fsync; while it is written the next batch collects, and is written as
// soon as the first is durable. A SubmitTransactions call of 10,000 transactions is one batch.
// Deletions (commits) ride along with the next batch; a deletion lost in a crash costs nothing:
// the replay finds the transaction committed and drops it then.
//
// Only this member's clients' transactions are journaled: ACCEPTED is a promise to them.
// Transactions handed over by other validators (tx-batch frames) are not, unless a client of
// this member submits the same transaction here too.

import { open, type RootDatabase } from 'lmdb';
import type { Logger } from 'pino';
import { IdTable, randomIdSeed } from '#libs/blocks/index.ts';
import { HASH_BYTES } from '#libs/crypto/index.ts';
import { FedError, errorMessage } from '#libs/errors/index.ts';
import { GROUP_VERSION, KEY_BYTES, LENGTH_BYTES, decodeValue, encodeGroup, encodedBytes, seqKey } from './journal-codec.ts';
import type { Mempool } from './mempool.ts';

/** Per-entry overhead on top of the transaction bytes (its share of the key, its length and hash), for the bytes gauge. */
const ENTRY_OVERHEAD = KEY_BYTES + LENGTH_BYTES + HASH_BYTES;
/** Corrupt entries logged one by one at replay; the rest only in the summary. */
const LOGGED_CORRUPT = 10;
/** Groups are written again without their dead entries only while the file holds more than twice the live bytes and this much more. */
export const COMPACT_SLACK_BYTES = 8 << 20;

export type ReplayOutcome = 'restored' | 'committed' | 'duplicate' | 'refused' | 'corrupt';

/** What the journal reports, for metrics. Every method must not throw. */
export interface JournalObserver {
  /** One group commit made durable: its new entries, their bytes, groups deleted, and how long the write and fsync took. */
  groupCommitted?(txs: number, bytes: number, removed: number, seconds: number): void;
  /** A group commit that failed (its callers were answered with MEMPOOL_JOURNAL_FAILED). */
  groupFailed?(txs: number): void;
  /** Entries and bytes in the journal now. */
  size?(txs: number, bytes: number): void;
  /** Entries read at start, by what became of them. */
  replayed?(outcome: ReplayOutcome, n: number): void;
}

export interface MempoolJournalOptions {
  /** The LMDB environment's directory (created if missing). */
  path: string;
  log: Logger;
  observer?: JournalObserver;
  /**
   * The mempool's limits (consensus.mempool_max_txs and its bytes). The journal holds only
   * transactions that are in the mempool, so it stays within them anyway; an append past them is
   * refused (MEMPOOL_FULL) rather than let a bug grow the file.
   */
  maxTxs: number;
  maxBytes: number;
  /** How long a batch collects appends before it is written (default 1 ms). */
  windowMs?: number;
  /** A batch this full is written at once (default 10,000 transactions or 8 MiB). */
  maxBatchTxs?: number;
  maxBatchBytes?: number;
  /** See COMPACT_SLACK_BYTES (a test sets it low). */
  compactSlackBytes?: number;
}

export interface ReplayResult {
  /** Transactions put back in the mempool, in acceptance order: hand them to the leaders again. */
  restored: Uint8Array[];
  counts: Record<ReplayOutcome, number>;
}

/** An entry a batch writes. */
interface Put { hash: Uint8Array; tx: Uint8Array; bytes: number }

interface Batch {
  /** The group's key. */
  seq: number;
  /** New entries; a commit before the write takes one out again. */
  puts: Set<Put>;
  /** Keys of groups to delete (the last of their transactions left the mempool). */
  removes: number[];
  bytes: number;
  done: Promise<void>;
  resolve(): void;
  reject(err: Error): void;
}

interface Entry { group: number; bytes: number; /** The batch writing it, and what it writes there; undefined once durable. */ batch: Batch | undefined; put?: Put | undefined }

/** A group on disk (or being written): its entries still in the journal, and the size of its value. */
interface Group { live: number; liveBytes: number; diskBytes: number; durable: boolean }

function newBatch(seq: number): Batch {
  let resolve!: () => void;
  let reject!: (err: Error) => void;
  const done = new Promise<void>((res, rej) => { resolve = res; reject = rej; });
  // A batch nobody waits for (only deletions, or every caller gone) must not be an unhandled rejection.
  done.catch(() => undefined);
  return { seq, puts: new Set(), removes: [], bytes: 0, done, resolve, reject };
}

/**
 * What went wrong in a failed LMDB commit. lmdb says "Commit failed (see commitError for details)"
 * and rejects `commitError` with the cause (e.g. an I/O error on a full disk); read (and so
 * handle) it here, or its rejection would go unhandled and end the process.
 */
export async function writeError(err: unknown): Promise<string> {
  const cause = (err as { commitError?: Promise<unknown> } | undefined)?.commitError;
  if (!cause || typeof cause.then !== 'function') return errorMessage(err);
  return cause.then(() => errorMessage(err), (e: unknown) => `${errorMessage(err)}: ${errorMessage(e)}`);
}

export class MempoolJournal {
  readonly #o: MempoolJournalOptions;
  readonly #db: RootDatabase<Buffer, Buffer>;
  readonly #windowMs: number;
  readonly #maxBatchTxs: number;
  readonly #maxBatchBytes: number;
  readonly #compactSlack: number;
  /** Every journaled (or being journaled) transaction, by its id (libs/blocks IdTable: no hex string per transaction). */
  readonly #entries: IdTable<Entry> = new IdTable(randomIdSeed());
  /** Every group on disk or being written, by key, oldest first (keys only grow). */
  readonly #groups = new Map<number, Group>();
  #bytes = 0;
  /** The transactions' own bytes (what the mempool's byte limit counts). */
  #txBytes = 0;
  /** What the groups' values take on disk, dead entries included. */
  #diskBytes = 0;
  #nextSeq = 1;
  /** The batch collecting appends; written when its window ends or it is full. */
  #collecting: Batch | undefined;
  #timer: NodeJS.Timeout | undefined;
  #writing: Promise<void> | undefined;
  #closed = false;

  constructor(o: MempoolJournalOptions) {
    this.#o = o;
    this.#windowMs = o.windowMs ?? 1;
    this.#maxBatchTxs = o.maxBatchTxs ?? 10_000;
    this.#maxBatchBytes = o.maxBatchBytes ?? 8 << 20;
    this.#compactSlack = o.compactSlackBytes ?? COMPACT_SLACK_BYTES;
    try {
      this.#db = open<Buffer, Buffer>({ path: o.path, compression: false, overlappingSync: false, eventTurnBatching: false, encoding: 'binary', keyEncoding: 'binary' });
    } catch (err) {
      throw new FedError('MEMPOOL_JOURNAL_UNREADABLE', `mempool journal ${o.path} cannot be opened: ${errorMessage(err)}. `
        + 'Move it aside to start without it: the transactions it holds that are not committed yet are then lost to this member (clients resubmit).', { path: o.path }, { cause: err });
    }
  }

  /** Entries in the journal (durable or being written). */
  get size(): number { return this.#entries.size; }
  /** Their bytes on disk, roughly: transactions plus key share, length and hash. */
  get bytes(): number { return this.#bytes; }
  /** What the groups' values take on disk, their committed entries not deleted yet included. */
  get diskBytes(): number { return this.#diskBytes; }
  /** Groups on disk or being written. */
  get groups(): number { return this.#groups.size; }

  /**
   * Reads every entry in acceptance order and offers it to `pool` (empty at start) as a client's
   * transaction. Dropped from the journal, each counted and the lot logged: entries already
   * committed, seen twice, refused by the pool (a smaller mempool_max_txs or max_tx_bytes than
   * when they were accepted) or corrupt (undecodable, or not hashing to their hash). A group left
   * with none of its entries is deleted, one left with some is written again with those only.
   * Never throws for an entry; a journal that cannot be read at all throws MEMPOOL_JOURNAL_UNREADABLE.
   */
  async replay(pool: Mempool, isCommitted: (hash: Uint8Array) => boolean, nowMs: number): Promise<ReplayResult> {
    const counts: Record<ReplayOutcome, number> = { restored: 0, committed: 0, duplicate: 0, refused: 0, corrupt: 0 };
    const restored: Uint8Array[] = [];
    const drop: Buffer[] = [];
    /** Groups some of whose entries were dropped: written again with the rest. */
    const rewrite = new Map<number, Array<{ hash: Uint8Array; tx: Uint8Array }>>();
    const refusedBy = new Map<string, number>();
    let lastSeq = 0;
    try {
      for (const { key, value } of this.#db.getRange()) {
        const k = Buffer.from(key);
        const seq = k.length === KEY_BYTES ? Number(k.readBigUInt64BE()) : 0;
        lastSeq = Math.max(lastSeq, seq);
        const kept: Array<{ hash: Uint8Array; tx: Uint8Array }> = [];
        let dropped = 0;
        for (const e of decodeValue(k, value)) {
          dropped++;
          if ('why' in e) {
            counts.corrupt++;
            if (counts.corrupt <= LOGGED_CORRUPT) this.#o.log.warn({ path: this.#o.path, key: k.toString('hex'), why: e.why }, 'mempool journal: corrupt entry skipped and deleted');
            continue;
          }
          if (isCommitted(e.hash)) { counts.committed++; continue; }
          if (this.#entries.has(e.hash)) { counts.duplicate++; continue; }
          const r = pool.offer(e.tx, nowMs, isCommitted);
          if (r.status === 'refused') {
            counts.refused++;
            refusedBy.set(r.code, (refusedBy.get(r.code) ?? 0) + 1);
          } else if (r.status === 'added') {
            dropped--;
            kept.push(e);
            this.#entries.set(e.hash, { group: seq, bytes: e.tx.length + ENTRY_OVERHEAD, batch: undefined });
            this.#bytes += e.tx.length + ENTRY_OVERHEAD;
            this.#txBytes += e.tx.length;
            restored.push(e.tx);
            counts.restored++;
          } else {
            counts.duplicate++;
          }
        }
        if (kept.length === 0) { drop.push(k); continue; }
        const liveBytes = kept.reduce((n, e) => n + e.tx.length + ENTRY_OVERHEAD, 0);
        let diskBytes = value.length;
        if (dropped > 0 || value[0] !== GROUP_VERSION) {
          rewrite.set(seq, kept);
          diskBytes = encodedBytes(kept);
        }
        this.#groups.set(seq, { live: kept.length, liveBytes, diskBytes, durable: true });
        this.#diskBytes += diskBytes;
      }
    } catch (err) {
      throw new FedError('MEMPOOL_JOURNAL_UNREADABLE', `mempool journal ${this.#o.path} cannot be read: ${errorMessage(err)}. `
        + 'Move it aside to start without it: the transactions it holds that are not committed yet are then lost to this member (clients resubmit).', { path: this.#o.path }, { cause: err });
    }
    this.#nextSeq = lastSeq + 1;
    if (drop.length > 0 || rewrite.size > 0) {
      try {
        await this.#db.transaction(() => {
          for (const k of drop) this.#db.removeSync(k);
          for (const [seq, kept] of rewrite) this.#db.putSync(seqKey(seq), encodeGroup(kept));
        });
      } catch (err) {
        // Harmless: they are not in the mempool, and the next replay drops them again.
        this.#o.log.warn({ path: this.#o.path, groups: drop.length + rewrite.size, err: await writeError(err) }, 'mempool journal: dropped entries not deleted yet');
      }
    }
    for (const [outcome, n] of Object.entries(counts) as [ReplayOutcome, number][]) this.#o.observer?.replayed?.(outcome, n);
    this.#o.observer?.size?.(this.#entries.size, this.#bytes);
    const summary = { path: this.#o.path, ...counts, ...(refusedBy.size > 0 ? { refusedBy: Object.fromEntries(refusedBy) } : {}) };
    if (counts.refused > 0) this.#o.log.warn(summary, 'mempool journal replayed: some accepted transactions no longer fit this mempool and were dropped (their clients must resubmit)');
    else if (counts.corrupt > 0) this.#o.log.warn(summary, 'mempool journal replayed: corrupt entries skipped');
    else this.#o.log.info(summary, 'mempool journal replayed');
    return { restored, counts };
  }

  /**
   * Makes a transaction that is in the mempool durable: resolves once it is on disk (at once if it
   * is already), rejects with MEMPOOL_JOURNAL_FAILED if its group commit failed (the transaction
   * stays in the mempool; appending it again retries). Call it in the same tick as the mempool
   * took it, so a commit cannot come between (a commit before the write only cancels the write).
   */
  append(hash: Uint8Array, tx: Uint8Array): Promise<void> {
    if (this.#closed) return Promise.reject(new FedError('MEMPOOL_JOURNAL_FAILED', 'the mempool journal is closed (the service is stopping): not durable; resubmit to a running member'));
    const known = this.#entries.get(hash);
    if (known) return known.batch ? known.batch.done : Promise.resolve();
    if (this.#entries.size >= this.#o.maxTxs || this.#txBytes + tx.length > this.#o.maxBytes) {
      return Promise.reject(new FedError('MEMPOOL_FULL', `the mempool journal holds ${this.#entries.size} transactions (${this.#txBytes} bytes), the mempool's limit; retry later`));
    }
    const batch = this.#collectingBatch();
    const bytes = tx.length + ENTRY_OVERHEAD;
    const put: Put = { hash, tx, bytes };
    batch.puts.add(put);
    batch.bytes += bytes;
    this.#entries.set(hash, { group: batch.seq, bytes, batch, put });
    this.#bytes += bytes;
    this.#txBytes += tx.length;
    this.#schedule(batch);
    return batch.done;
  }

  /** Transactions (their ids) that left the mempool: a group none of whose entries is left is deleted with the next batch. */
  forget(ids: readonly Uint8Array[]): void {
    // Stopping: a deletion not written is harmless (the replay finds the transaction committed).
    if (this.#closed) return;
    let queued = false;
    for (const id of ids) {
      const e = this.#drop(id);
      if (!e) continue;
      if (e.batch && e.batch === this.#collecting) {
        // Not written yet: it need not be. Its callers are answered with the batch.
        e.batch.puts.delete(e.put!);
        e.batch.bytes -= e.bytes;
        continue;
      }
      // Durable, or in the batch being written (deleted after it, batches are written in order).
      const g = this.#groups.get(e.group);
      if (!g) continue;
      g.live--;
      g.liveBytes -= e.bytes;
      if (g.live > 0) continue;
      this.#groups.delete(e.group);
      this.#diskBytes -= g.diskBytes;
      this.#collectingBatch().removes.push(e.group);
      queued = true;
    }
    if (queued && this.#collecting) this.#schedule(this.#collecting);
  }

  /** Writes what is collected, then closes the environment. Appends after this are refused. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#writing;
    if (this.#collecting) await this.#flush();
    await this.#writing;
    await this.#db.close();
  }

  #collectingBatch(): Batch {
    return (this.#collecting ??= newBatch(this.#nextSeq++));
  }

  /** Takes `id`'s entry out of the table and the totals: the entry, or undefined when there is none. */
  #drop(id: Uint8Array): Entry | undefined {
    const e = this.#entries.take(id);
    if (!e) return undefined;
    this.#bytes -= e.bytes;
    this.#txBytes -= e.bytes - ENTRY_OVERHEAD;
    return e;
  }

  #schedule(batch: Batch): void {
    if (this.#writing || this.#closed) return; // written as soon as the one in flight is durable
    if (batch.puts.size >= this.#maxBatchTxs || batch.bytes >= this.#maxBatchBytes) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
      void this.#flush();
      return;
    }
    this.#timer ??= setTimeout(() => { this.#timer = undefined; void this.#flush(); }, this.#windowMs);
  }

  #flush(): Promise<void> {
    const batch = this.#collecting;
    if (!batch || this.#writing) return this.#writing ?? Promise.resolve();
    this.#collecting = undefined;
    // Its group is known from now on: a commit during the write counts against it.
    const written = batch.puts.size > 0 ? { live: batch.puts.size, liveBytes: batch.bytes, diskBytes: encodedBytes(batch.puts), durable: false } : undefined;
    if (written) {
      this.#groups.set(batch.seq, written);
      this.#diskBytes += written.diskBytes;
    }
    const writing = this.#write(batch, written).finally(() => {
      this.#writing = undefined;
      // What collected meanwhile goes at once: its callers have waited a whole write already.
      if (this.#collecting && !this.#closed) void this.#flush();
    });
    this.#writing = writing;
    return writing;
  }

  /**
   * The oldest durable group holding more dead bytes than live ones, while the file holds more
   * than twice the live bytes (and the slack): written again with its live entries only.
   */
  #toCompact(): number | undefined {
    if (this.#diskBytes <= 2 * this.#bytes + this.#compactSlack) return undefined;
    for (const [seq, g] of this.#groups) {
      if (g.durable && 2 * g.liveBytes < g.diskBytes) return seq;
    }
    return undefined;
  }

  /** The live entries of group `seq`, read from its value (inside the write transaction). */
  #liveOf(seq: number): Array<{ hash: Uint8Array; tx: Uint8Array }> {
    const value = this.#db.getBinary(seqKey(seq));
    if (!value) return [];
    const out: Array<{ hash: Uint8Array; tx: Uint8Array }> = [];
    for (const e of decodeValue(seqKey(seq), value)) {
      if (!('why' in e) && this.#entries.get(e.hash)?.group === seq) out.push(e);
    }
    return out;
  }

  async #write(batch: Batch, written: Group | undefined): Promise<void> {
    const puts = [...batch.puts.values()];
    const compact = this.#toCompact();
    let compacted: { seq: number; bytes: number } | undefined;
    const t0 = performance.now();
    try {
      if (puts.length > 0 || batch.removes.length > 0 || compact !== undefined) {
        await this.#db.transaction(() => {
          if (puts.length > 0) this.#db.putSync(seqKey(batch.seq), encodeGroup(puts));
          for (const seq of batch.removes) this.#db.removeSync(seqKey(seq));
          if (compact !== undefined) {
            const live = this.#liveOf(compact);
            const value = encodeGroup(live);
            if (live.length > 0) this.#db.putSync(seqKey(compact), value);
            else this.#db.removeSync(seqKey(compact));
            compacted = { seq: compact, bytes: live.length > 0 ? value.length : 0 };
          }
        });
      }
    } catch (failure) {
      const err = await writeError(failure);
      // Not durable: forget them (they stay in the mempool, not promised), so an append retries.
      for (const p of batch.puts) {
        if (this.#entries.get(p.hash)?.batch === batch) this.#drop(p.hash);
      }
      if (written && this.#groups.get(batch.seq) === written) {
        this.#groups.delete(batch.seq);
        this.#diskBytes -= written.diskBytes;
      }
      // Deletions are retried with the next batch.
      if (batch.removes.length > 0) this.#collectingBatch().removes.push(...batch.removes);
      this.#o.observer?.groupFailed?.(puts.length);
      this.#o.observer?.size?.(this.#entries.size, this.#bytes);
      this.#o.log.error({ path: this.#o.path, txs: puts.length, err }, 'mempool journal write failed: those transactions were not acknowledged');
      batch.reject(new FedError('MEMPOOL_JOURNAL_FAILED', `not durable: the mempool journal write failed (${err}); `
        + 'the transaction may still be committed (it was kept in memory and handed to leaders); resubmit it (idempotent by hash)'));
      return;
    }
    for (const p of batch.puts) {
      const e = this.#entries.get(p.hash);
      if (e?.batch === batch) {
        e.batch = undefined;
        e.put = undefined;
      }
    }
    if (written) written.durable = true;
    if (compacted) {
      const g = this.#groups.get(compacted.seq);
      if (g) {
        this.#diskBytes += compacted.bytes - g.diskBytes;
        g.diskBytes = compacted.bytes;
      }
    }
    this.#o.observer?.groupCommitted?.(puts.length, batch.bytes, batch.removes.length, (performance.now() - t0) / 1000);
    this.#o.observer?.size?.(this.#entries.size, this.#bytes);
    batch.resolve();
  }
}
