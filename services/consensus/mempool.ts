// The mempool: transactions waiting for a block, deduplicated by hash, bounded in count and
// bytes. A full pool refuses (MEMPOOL_FULL → RESOURCE_EXHAUSTED); it never drops silently.
// Blocks are built fairly by source — this member's clients, each other validator, all peers
// outside the validator set together — taking a transaction from each source in turn, oldest
// first within a source, so one source cannot take a whole block while others have transactions
// waiting; within a source, insertion order is proposal order, so none is starved by later ones.
// A transaction that came in a batch every validator holds (batches.ts) is taken with its whole
// batch, in the batch's order, as one turn of its source: the proposal then names the batch
// instead of carrying it. A batch partly committed or in flight goes transaction by transaction.
// Transactions handed over by another validator are charged to that validator: each may hold
// at most REMOTE_SHARE of the pool (count and bytes), so one faulty validator cannot fill it.
// The pool lives in memory; what a client was promised survives a crash through the mempool
// journal (mempool-journal.ts), which is told here when a transaction leaves the pool.

import { FedError } from '#libs/errors/index.ts';
import { IdTable, randomIdSeed } from '#libs/blocks/index.ts';
import { bytesEqual, txHash } from '#libs/crypto/index.ts';
import { RECONFIG_TX_TAG, isReconfigTx } from '#libs/validators/index.ts';
import { OUTSIDE_BASE, isOutside } from './ports.ts';

export interface MempoolOptions {
  maxTxs: number;
  maxBytes: number;
  maxTxBytes: number;
  /**
   * Told which transactions (their ids) left the pool: the journal forgets them, so it never holds
   * more than the pool may. Must not throw.
   */
  onRemoved?(ids: readonly Uint8Array[]): void;
  /** Told after a transaction entered the pool (the driver's idle views: there is work). Must not throw. */
  onAdded?(): void;
}

/** Share of the pool one other validator's hand-offs may hold. */
export const REMOTE_SHARE = 0.25;
/** The source of a client's own transaction (other sources are validator indices, and OUTSIDE_BASE for all non-validators together). */
export const LOCAL = -1;

/** A batch as the pool knows it (batches.ts StoredBatch): its transactions' ids, in order. */
export interface PoolBatch { readonly ids: readonly Uint8Array[] }

/** Ids a block must not carry again (payload.ts inFlightTxs: those in its uncommitted ancestors). */
export interface IdSet { has(id: Uint8Array): boolean }
/** No ids. */
export const NO_IDS: IdSet = { has: () => false };

/** `batch`: the batch this transaction was sent to every validator in, when its whole batch may be proposed by reference. */
export interface PendingTx { tx: Uint8Array; hash: Uint8Array; addedAtMs: number; source: number; offeredAtMs?: number; batch?: PoolBatch | undefined }

/** What the caller already knows of a transaction it offers: its id (hashed once, where it arrived) and its batch. */
export interface Known { hash: Uint8Array; batch?: PoolBatch | undefined }

export type AddResult = { status: 'added' | 'duplicate'; hash: Uint8Array };
export type OfferResult = AddResult | { status: 'refused'; hash?: Uint8Array; code: 'TX_EMPTY' | 'TX_TOO_LARGE' | 'TX_RESERVED' | 'MEMPOOL_FULL' | 'MEMPOOL_QUOTA'; message: string };

/** Why a transaction cannot be taken at all (empty, too large), or null: the one rule, for validators and observers. */
export function txSizeError(tx: Uint8Array, maxTxBytes: number): { code: 'TX_EMPTY' | 'TX_TOO_LARGE' | 'TX_RESERVED'; message: string } | null {
  if (tx.length === 0) return { code: 'TX_EMPTY', message: 'transaction is empty' };
  if (tx.length > maxTxBytes) {
    return { code: 'TX_TOO_LARGE', message: `transaction is ${tx.length} bytes; the limit is ${maxTxBytes} (consensus.max_tx_bytes)` };
  }
  // A leader would propose it and every member refuse the block (libs/blocks): never let one in.
  if (isReconfigTx(tx)) {
    return { code: 'TX_RESERVED', message: `transaction begins with the reconfiguration tag (${RECONFIG_TX_TAG}); reconfigurations are not accepted as client transactions` };
  }
  return null;
}

/**
 * A pending transaction in its source's queue: a list through the entries themselves, so a
 * transaction costs one table entry, not two. `round`: the last call of batch() that took it.
 */
interface Queued extends PendingTx { prev: Queued | undefined; next: Queued | undefined; round: number }
interface SourceQueue { head: Queued | undefined; tail: Queued | undefined; size: number }

export class Mempool {
  readonly #opts: MempoolOptions;
  /** Keyed by the ids' bytes (libs/blocks IdTable): no hex string per transaction. */
  readonly #pending: IdTable<Queued>;
  /** The same transactions by source, each in insertion order (for fair block building). */
  readonly #bySource = new Map<number, SourceQueue>();
  /** Per remote source: how many transactions and bytes it holds in the pool. */
  readonly #held = new Map<number, { txs: number; bytes: number }>();
  #bytes = 0;
  /** Calls of batch(), to mark what each took (Queued.round). */
  #round = 0;

  constructor(opts: MempoolOptions) {
    this.#opts = opts;
    this.#pending = new IdTable(randomIdSeed());
  }

  get size(): number { return this.#pending.size; }
  get maxTxBytes(): number { return this.#opts.maxTxBytes; }
  get bytes(): number { return this.#bytes; }

  /** Why a transaction cannot be taken at all (empty, too large), or null. */
  invalid(tx: Uint8Array): { code: 'TX_EMPTY' | 'TX_TOO_LARGE' | 'TX_RESERVED'; message: string } | null {
    return txSizeError(tx, this.#opts.maxTxBytes);
  }

  has(id: Uint8Array): boolean { return this.#pending.has(id); }

  /**
   * Adds a transaction unless it is pending or `isCommitted` says it is in the log already.
   * Never throws for a refusal: the hot batch path would pay for a stack trace per transaction.
   */
  offer(tx: Uint8Array, nowMs: number, isCommitted: (hash: Uint8Array) => boolean, source: number = LOCAL, known?: Known): OfferResult {
    const bad = this.invalid(tx);
    if (bad) return { status: 'refused', ...bad };
    // Full: refuse before hashing, so an overloaded member spends nothing on what it cannot take.
    if (this.#pending.size >= this.#opts.maxTxs || this.#bytes + tx.length > this.#opts.maxBytes) {
      return { status: 'refused', code: 'MEMPOOL_FULL', message: `mempool is full (${this.#pending.size} transactions, ${this.#bytes} bytes); retry later` };
    }
    const held = source === LOCAL ? undefined : this.#held.get(source);
    if (held && (held.txs >= this.#opts.maxTxs * REMOTE_SHARE || held.bytes + tx.length > this.#opts.maxBytes * REMOTE_SHARE)) {
      return { status: 'refused', code: 'MEMPOOL_QUOTA', message: `${isOutside(source) ? 'peers outside the validator set' : `validator ${source}`} already hold ${held.txs} transactions (${held.bytes} bytes) of this mempool` };
    }
    const hash = known?.hash ?? txHash(tx);
    if (this.#pending.has(hash) || isCommitted(hash)) return { status: 'duplicate', hash };
    let own = this.#bySource.get(source);
    if (!own) this.#bySource.set(source, (own = { head: undefined, tail: undefined, size: 0 }));
    const p: Queued = { tx, hash, addedAtMs: nowMs, source, batch: known?.batch, prev: own.tail, next: undefined, round: 0 };
    this.#pending.set(hash, p);
    if (own.tail) own.tail.next = p;
    else own.head = p;
    own.tail = p;
    own.size++;
    this.#bytes += tx.length;
    if (source !== LOCAL) {
      const h = this.#held.get(source) ?? { txs: 0, bytes: 0 };
      h.txs++;
      h.bytes += tx.length;
      this.#held.set(source, h);
    }
    this.#opts.onAdded?.();
    return { status: 'added', hash };
  }

  /** `offer`, with a refusal as FedError (TX_EMPTY / TX_TOO_LARGE / MEMPOOL_FULL). */
  add(tx: Uint8Array, nowMs: number, isCommitted: (hash: Uint8Array) => boolean): AddResult {
    const r = this.offer(tx, nowMs, isCommitted);
    if (r.status === 'refused') throw new FedError(r.code, r.message, { size: this.#pending.size, bytes: this.#bytes });
    return r;
  }

  /**
   * The next block's transactions, up to the count and byte limits, skipping those already in an
   * uncommitted ancestor (`inFlight`): one from each source in turn (this member's
   * clients first), oldest first within a source. A source whose next transaction does not fit
   * the bytes left is done for this block; the others go on.
   */
  batch(maxTxs: number, maxBytes: number, inFlight: IdSet): PendingTx[] {
    const out: PendingTx[] = [];
    // What this call takes is marked with its round, so one taken with a whole batch ahead of where
    // its source's turn has reached is skipped when the turn gets there.
    const round = ++this.#round;
    let bytes = 0;
    const sources = [...this.#bySource.keys()].sort((a, b) => (a === LOCAL ? -1 : b === LOCAL ? 1 : a - b));
    /** Each source's next transaction not yet looked at. */
    let open = sources.map((s) => ({ at: this.#bySource.get(s)!.head }));
    while (open.length > 0 && out.length < maxTxs) {
      const next: typeof open = [];
      for (const cursor of open) {
        if (out.length >= maxTxs) break;
        let p = cursor.at;
        while (p && (p.round === round || inFlight.has(p.hash))) p = p.next;
        if (!p) continue;
        cursor.at = p.next;
        // A whole batch is one turn, taken in its order: proposed by reference, not carried.
        const first = p.batch?.ids[0];
        const whole = first !== undefined && bytesEqual(first, p.hash) ? this.#whole(p.batch!, inFlight) : undefined;
        if (whole && whole.length <= maxTxs && whole.bytes <= maxBytes) {
          // One that does not fit what is left waits whole for the next block: its source is done here.
          if (out.length + whole.length > maxTxs || bytes + whole.bytes > maxBytes) continue;
          for (const q of whole.txs) {
            q.round = round;
            out.push(q);
          }
          bytes += whole.bytes;
          next.push(cursor);
          continue;
        }
        if (bytes + p.tx.length > maxBytes) {
          // A single oversized tx can never fit: leave it to the size check, try the source's next.
          if (bytes === 0 && p.tx.length > maxBytes) next.push(cursor);
          continue;
        }
        p.round = round;
        out.push(p);
        bytes += p.tx.length;
        next.push(cursor);
      }
      open = next;
    }
    return out;
  }

  /** A batch's transactions when every one of them waits here under that batch and none is in flight; else undefined. */
  #whole(b: PoolBatch, inFlight: IdSet): { txs: Queued[]; length: number; bytes: number } | undefined {
    const txs: Queued[] = [];
    let bytes = 0;
    for (const id of b.ids) {
      const q = this.#pending.get(id);
      if (q?.batch !== b || q.round === this.#round || inFlight.has(id)) return undefined;
      txs.push(q);
      bytes += q.tx.length;
    }
    return { txs, length: txs.length, bytes };
  }

  /** Marks this member's own waiting transactions as sent to every validator in `b` (the batcher, after it sent it). */
  assign(b: PoolBatch): void {
    for (const id of b.ids) {
      const p = this.#pending.get(id);
      if (p) p.batch = b;
    }
  }

  /**
   * This member's clients' transactions (source LOCAL) that have waited at least `ageMs` since they
   * were added or last taken here, oldest first, at most `max`; each is marked taken at `nowMs`.
   * What a member offers its leaders again when they have not committed it (a hand-off that went to
   * a leader it cannot reach, views of its own that fail).
   */
  takeStaleLocal(nowMs: number, ageMs: number, max: number): PendingTx[] {
    const out: PendingTx[] = [];
    for (let p = this.#bySource.get(LOCAL)?.head; p; p = p.next) {
      // In the order they were added: from the first too young, all the rest are (no scan of a full pool).
      if (out.length >= max || p.addedAtMs > nowMs - ageMs) break;
      if ((p.offeredAtMs ?? p.addedAtMs) > nowMs - ageMs) continue;
      p.offeredAtMs = nowMs;
      out.push(p);
    }
    return out;
  }

  /**
   * The validator set changed (an epoch ended): each validator's transactions move with it to its
   * number in the next set (`to`), and its share of the pool with them — else a member renumbered
   * into a removed one's number held that member's share and queue until they committed. Those of
   * a member no longer seated (`to` says undefined) join the outside peers' (OUTSIDE_BASE): still
   * valid, they stay pending. Queues joined keep each one's order, the oldest head first between them.
   */
  renumber(to: (source: number) => number | undefined): void {
    const moved = new Map<number, SourceQueue[]>();
    for (const [s, q] of this.#bySource) {
      const n = s === LOCAL || isOutside(s) ? s : to(s) ?? OUTSIDE_BASE;
      moved.set(n, [...(moved.get(n) ?? []), q]);
    }
    this.#bySource.clear();
    this.#held.clear();
    for (const [source, queues] of moved) {
      const q = queues.length === 1 ? queues[0]! : joinByAge(queues);
      let bytes = 0;
      for (let p = q.head; p; p = p.next) {
        p.source = source;
        bytes += p.tx.length;
      }
      this.#bySource.set(source, q);
      if (source !== LOCAL) this.#held.set(source, { txs: q.size, bytes });
    }
  }

  /** Drops transactions that a committed block carried. */
  removeCommitted(ids: Iterable<Uint8Array>): number {
    const removed: Uint8Array[] = [];
    for (const id of ids) {
      const p = this.#pending.take(id);
      if (!p) continue;
      const own = this.#bySource.get(p.source)!;
      if (p.prev) p.prev.next = p.next;
      else own.head = p.next;
      if (p.next) p.next.prev = p.prev;
      else own.tail = p.prev;
      p.prev = p.next = undefined;
      if (--own.size === 0) this.#bySource.delete(p.source);
      this.#bytes -= p.tx.length;
      const h = this.#held.get(p.source);
      if (h) {
        h.txs--;
        h.bytes -= p.tx.length;
      }
      removed.push(p.hash);
    }
    if (removed.length > 0) this.#opts.onRemoved?.(removed);
    return removed.length;
  }
}

/** One queue of `queues`' entries: each one's order kept, the oldest head taken first between them. */
function joinByAge(queues: readonly SourceQueue[]): SourceQueue {
  const out: SourceQueue = { head: undefined, tail: undefined, size: 0 };
  const heads = queues.map((q) => q.head);
  for (;;) {
    let k = -1;
    for (let i = 0; i < heads.length; i++) if (heads[i] && (k < 0 || heads[i]!.addedAtMs < heads[k]!.addedAtMs)) k = i;
    if (k < 0) return out;
    const p = heads[k]!;
    heads[k] = p.next;
    p.prev = out.tail;
    p.next = undefined;
    if (out.tail) out.tail.next = p;
    else out.head = p;
    out.tail = p;
    out.size++;
  }
}
