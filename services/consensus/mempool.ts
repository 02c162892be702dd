// The mempool: transactions waiting for a block, deduplicated by hash, bounded in count and
// bytes. A full pool refuses (MEMPOOL_FULL → RESOURCE_EXHAUSTED); it never drops silently.
// Insertion order is proposal order, so a transaction is not starved by later ones.

import { FedError } from '#libs/errors/index.ts';
import { toHex, txHash } from '#libs/crypto/index.ts';

export interface MempoolOptions {
  maxTxs: number;
  maxBytes: number;
  maxTxBytes: number;
}

export interface PendingTx { tx: Uint8Array; hash: Uint8Array; addedAtMs: number }

export type AddResult = { status: 'added' | 'duplicate'; hash: Uint8Array };

export class Mempool {
  readonly #opts: MempoolOptions;
  readonly #pending = new Map<string, PendingTx>();
  #bytes = 0;

  constructor(opts: MempoolOptions) {
    this.#opts = opts;
  }

  get size(): number { return this.#pending.size; }
  get bytes(): number { return this.#bytes; }

  /** Checks a transaction a client or a peer sent; throws FedError naming what is wrong. */
  validate(tx: Uint8Array): void {
    if (tx.length === 0) throw new FedError('TX_EMPTY', 'transaction is empty');
    if (tx.length > this.#opts.maxTxBytes) {
      throw new FedError('TX_TOO_LARGE', `transaction is ${tx.length} bytes; the limit is ${this.#opts.maxTxBytes} (consensus.max_tx_bytes)`, { bytes: tx.length });
    }
  }

  has(hashHex: string): boolean { return this.#pending.has(hashHex); }

  /**
   * Adds a transaction unless it is pending or `isCommitted` says it is in the log already.
   * Throws TX_EMPTY / TX_TOO_LARGE / MEMPOOL_FULL.
   */
  add(tx: Uint8Array, nowMs: number, isCommitted: (hash: Uint8Array) => boolean): AddResult {
    this.validate(tx);
    const hash = txHash(tx);
    const key = toHex(hash);
    if (this.#pending.has(key) || isCommitted(hash)) return { status: 'duplicate', hash };
    if (this.#pending.size >= this.#opts.maxTxs || this.#bytes + tx.length > this.#opts.maxBytes) {
      throw new FedError('MEMPOOL_FULL', `mempool is full (${this.#pending.size} transactions, ${this.#bytes} bytes); retry later`,
        { size: this.#pending.size, bytes: this.#bytes });
    }
    this.#pending.set(key, { tx, hash, addedAtMs: nowMs });
    this.#bytes += tx.length;
    return { status: 'added', hash };
  }

  /**
   * The next block's transactions: oldest first, up to the count and byte limits, skipping
   * those already in an uncommitted ancestor (`inFlight`, hex hashes).
   */
  batch(maxTxs: number, maxBytes: number, inFlight: ReadonlySet<string>): PendingTx[] {
    const out: PendingTx[] = [];
    let bytes = 0;
    for (const [key, p] of this.#pending) {
      if (out.length >= maxTxs) break;
      if (inFlight.has(key)) continue;
      if (bytes + p.tx.length > maxBytes) {
        if (bytes === 0) continue; // a single oversized tx can never fit: leave it to the size check
        break;
      }
      out.push(p);
      bytes += p.tx.length;
    }
    return out;
  }

  /** Drops transactions that a committed block carried. */
  removeCommitted(hashesHex: Iterable<string>): number {
    let n = 0;
    for (const key of hashesHex) {
      const p = this.#pending.get(key);
      if (!p) continue;
      this.#pending.delete(key);
      this.#bytes -= p.tx.length;
      n++;
    }
    return n;
  }
}
