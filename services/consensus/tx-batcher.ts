// Clients' transactions passed on in batches: one tx-batch frame per GOSSIP_MAX_TXS transactions,
// per half a block of bytes (so a frame always fits the gateway's limit), or per GOSSIP_DELAY_MS,
// whichever comes first. Used by a validator (to every other validator, batches.ts) and an
// observer (to validators); where a batch goes is the caller's `send`, which gets the batch's
// transactions and their ids (hashed once, at intake) beside its frame.

import { encodeFrame } from '#libs/wire/index.ts';
import type { Clock } from './ports.ts';

export const GOSSIP_MAX_TXS = 512;
export const GOSSIP_DELAY_MS = 5;

/**
 * How long a validator's batch collects before it goes, in a set of `n`: GOSSIP_DELAY_MS per three
 * peers it goes to. Each batch is a frame to each of the n − 1 others; a member whose clients send
 * little would otherwise send a batch of one transaction to every validator, and at N = 21 on one
 * machine those frames alone took the CPU the views needed.
 */
export function batchDelayMs(n: number): number {
  return GOSSIP_DELAY_MS * Math.max(1, Math.ceil((n - 1) / 3));
}

export interface TxBatcherOptions {
  chainId: string;
  /** consensus.max_block_bytes: a batch is flushed at half of it. */
  maxBlockBytes: number;
  clock: Clock;
  /** How long a batch collects before it goes (default GOSSIP_DELAY_MS); read at each batch's first transaction. */
  delayMs?: () => number;
  /** One batch: its frame, its transactions and their ids. */
  send(frame: Uint8Array, txs: Uint8Array[], ids: Uint8Array[]): void;
}

export class TxBatcher {
  readonly #o: TxBatcherOptions;
  #txs: Uint8Array[] = [];
  #ids: Uint8Array[] = [];
  #bytes = 0;
  #timer: { cancel(): void } | undefined;

  constructor(o: TxBatcherOptions) {
    this.#o = o;
  }

  add(tx: Uint8Array, id: Uint8Array): void {
    this.#txs.push(tx);
    this.#ids.push(id);
    this.#bytes += tx.length;
    if (this.#txs.length >= GOSSIP_MAX_TXS || this.#bytes >= this.#o.maxBlockBytes / 2) {
      this.flush();
      return;
    }
    this.#timer ??= this.#o.clock.setTimeout(() => this.flush(), this.#o.delayMs?.() ?? GOSSIP_DELAY_MS);
  }

  flush(): void {
    this.#timer?.cancel();
    this.#timer = undefined;
    if (this.#txs.length === 0) return;
    const txs = this.#txs;
    const ids = this.#ids;
    this.#txs = [];
    this.#ids = [];
    this.#bytes = 0;
    this.#o.send(encodeFrame(this.#o.chainId, { type: 'tx-batch', txs }), txs, ids);
  }
}
