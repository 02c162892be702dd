// A member a reconfiguration removed runs on as an observer (observer.ts), following the chain.
// The clients' transactions it acknowledged while it was a validator and had not seen committed are
// in its mempool journal (ACCEPTED is durable): their first hand-off may have been lost, and the
// member stopped offering them when the change removed it. This offers them to the validators again,
// each at most every REOFFER_AGE_MS (REOFFER_MAX_TXS at a time), until the chain it follows holds
// them — which a follower sees, unlike the retired validator, which saw no block after its last
// epoch and could not tell. What is still not committed GIVE_UP_MS after the member retired is
// dropped, counted and logged (its clients must resubmit): a transaction the validators will not
// take is not offered for ever. Never takes a new transaction: clients' new ones go on as from any
// observer.

import type { Logger } from 'pino';
import { txHashesOf } from '#libs/blocks/index.ts';
import type { Block } from '#libs/hotstuff/index.ts';
import { REOFFER_AGE_MS, REOFFER_MAX_TXS } from './batch-intake.ts';
import { Mempool, NO_IDS } from './mempool.ts';
import { MempoolJournal, type JournalObserver } from './mempool-journal.ts';

/** How long a retired member offers what it acknowledged before it gives the rest up. */
export const GIVE_UP_MS = 10 * 60_000;

export interface RetiredOptions {
  /** The member's mempool journal (consensus/mempool in its data dir). */
  path: string;
  log: Logger;
  maxTxs: number;
  maxBytes: number;
  maxTxBytes: number;
  /** Is this transaction in the chain this member holds? */
  isCommitted(hash: Uint8Array): boolean;
  /** Sends a transaction to the validators (the observer's hand-off). */
  handOff(tx: Uint8Array): void;
  observer?: JournalObserver;
}

export class RetiredHandOff {
  readonly #o: RetiredOptions;
  readonly #journal: MempoolJournal;
  readonly #pool: Mempool;
  readonly #since: number;
  #offered = 0;
  #given = false;

  private constructor(o: RetiredOptions, journal: MempoolJournal, pool: Mempool, nowMs: number) {
    this.#o = o;
    this.#journal = journal;
    this.#pool = pool;
    this.#since = nowMs;
  }

  /** Reads the journal; what is committed already is dropped from it. */
  static async open(o: RetiredOptions, nowMs: number): Promise<RetiredHandOff> {
    const journal = new MempoolJournal({ path: o.path, log: o.log, maxTxs: o.maxTxs, maxBytes: o.maxBytes, ...(o.observer ? { observer: o.observer } : {}) });
    const pool = new Mempool({ maxTxs: o.maxTxs, maxBytes: o.maxBytes, maxTxBytes: o.maxTxBytes, onRemoved: (keys) => journal.forget(keys) });
    // Offered at once the first time: they have waited since before the member retired.
    await journal.replay(pool, o.isCommitted, nowMs - REOFFER_AGE_MS);
    const r = new RetiredHandOff(o, journal, pool, nowMs);
    if (pool.size > 0) o.log.warn({ pending: pool.size }, 'removed by a reconfiguration: offering the transactions this member acknowledged and has not seen committed to the validators again');
    return r;
  }

  /** Acknowledged and not seen committed yet. */
  get pending(): number {
    return this.#pool.size;
  }

  /** Offered again so far (each time counts). */
  get offered(): number {
    return this.#offered;
  }

  /** Every second: offers what has waited, or gives the rest up once GIVE_UP_MS have passed. Returns how many it offered. */
  tick(nowMs: number): number {
    if (this.#pool.size === 0) return 0;
    if (nowMs - this.#since >= GIVE_UP_MS) {
      const left = this.#pool.batch(Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER, NO_IDS).map((p) => p.hash);
      this.#pool.removeCommitted(left);
      if (!this.#given) this.#o.log.warn({ dropped: left.length, afterMs: nowMs - this.#since }, 'removed by a reconfiguration: acknowledged transactions still not committed were given up (their clients must resubmit)');
      this.#given = true;
      return 0;
    }
    const stale = this.#pool.takeStaleLocal(nowMs, REOFFER_AGE_MS, REOFFER_MAX_TXS);
    for (const p of stale) this.#o.handOff(p.tx);
    this.#offered += stale.length;
    return stale.length;
  }

  /** Blocks the follower appended: what they carry is done. */
  committed(blocks: readonly Block[]): void {
    if (this.#pool.size === 0) return;
    this.#pool.removeCommitted(blocks.flatMap((b) => txHashesOf(b)));
    if (this.#pool.size === 0) this.#o.log.info({ offered: this.#offered }, 'every transaction this removed member acknowledged is committed');
  }

  close(): Promise<void> {
    return this.#journal.close();
  }
}
