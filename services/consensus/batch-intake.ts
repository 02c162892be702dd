// The transaction hand-off between validators, in batches (docs/consensus.md, "Batches"): a
// client's transaction, hashed once at intake, goes into this member's next batch, and each batch
// goes once to every other validator; a batch received is hashed once (its ids serve the pool, the
// batch's digest and, later, the block it is proposed in) and kept by its digest (batches.ts), so
// that a leader can name it instead of carrying it. The member that took a transaction keeps it
// too and proposes it itself when it leads, so none is stranded by a faulty peer.
// Hand-offs are bounded in transactions a second per peer both ways (handoff.ts): beyond a
// validator's limit they are refused before they are hashed, one useless token each. Peers outside
// the validator set hand over transactions too (all of them together hold one validator's share of
// the mempool), but their batches are not kept: no proposal names them.

import type { Logger } from 'pino';
import { txHash } from '#libs/crypto/index.ts';
import type { ConsensusDriver } from './driver.ts';
import { txSizeError, type Mempool } from './mempool.ts';
import { OUTSIDE_BASE, isOutside, type Clock, type TransportPort } from './ports.ts';
import { TxBatcher, batchDelayMs } from './tx-batcher.ts';
import { HANDOFF_SEND_SHARE, HANDOFF_TXS_PER_SECOND, HandoffBudget } from './handoff.ts';

/** A client's transaction uncommitted this long here is offered to the upcoming leaders again. */
export const REOFFER_AGE_MS = 5_000;
/** How many upcoming leaders (other than us) a stale transaction is offered to again. */
const REOFFER_LEADERS = 2;
/** At most this many are offered again per call (once a second). */
export const REOFFER_MAX_TXS = 512;

export interface BatchIntakeDeps {
  chainId: string;
  maxBlockBytes: number;
  maxTxBytes: number;
  driver: Pick<ConsensusDriver, 'self' | 'validatorCount' | 'isCommitted' | 'batches' | 'engine' | 'indexNow'>;
  pool: Mempool;
  transport: Pick<TransportPort, 'send' | 'broadcast'>;
  clock: Clock;
  log: Logger;
  /** conf consensus.handoff_txs_per_second: transactions taken from each validator a second (handoff.ts). */
  handoffTxsPerSecond?: number;
  /** A valid but useless frame from `from`, of `cost` tokens (the inbound path's accounting). */
  useless(from: number, reason: string, detail: Record<string, unknown>, cost: number): void;
  /** A refusal that blames nobody (outsiders share one limit), only counted. */
  counted(from: number, reason: string): void;
}

export class BatchIntake {
  readonly #d: BatchIntakeDeps;
  readonly #gossip: TxBatcher;
  /** Stale transactions offered again: to the upcoming leaders only, never named (batches already went to everyone). */
  readonly #reoffer: TxBatcher;
  /** Transactions taken from each validator (and from all outsiders together), and handed to each. */
  readonly #in: HandoffBudget;
  readonly #out: HandoffBudget;
  /** Hand-offs not sent because a peer's share was spent (they stay in our pool), and transactions refused beyond a sender's limit. */
  withheld = 0;
  refused = 0;

  constructor(d: BatchIntakeDeps) {
    this.#d = d;
    const rate = d.handoffTxsPerSecond ?? HANDOFF_TXS_PER_SECOND;
    const now = () => d.clock.now();
    this.#in = new HandoffBudget({ rate, now });
    this.#out = new HandoffBudget({ rate: rate * HANDOFF_SEND_SHARE, now });
    // Each budget is its member's: a set change moves it to the member's new number (a member
    // renumbered into a removed one's number neither inherits that one's spent budget nor gets a
    // fresh one), in the step that swaps the engine, with the held batches' holders.
    d.driver.batches.onRenumber((to) => { this.#in.renumber(to); this.#out.renumber(to); });
    this.#gossip = new TxBatcher({ chainId: d.chainId, maxBlockBytes: d.maxBlockBytes, clock: d.clock, delayMs: () => batchDelayMs(d.driver.validatorCount),
      send: (frame, txs, ids) => this.#send(frame, txs, ids) });
    this.#reoffer = new TxBatcher({ chainId: d.chainId, maxBlockBytes: d.maxBlockBytes, clock: d.clock, send: (frame, txs) => {
      for (const to of this.#upcomingLeaders()) {
        if (this.#out.takeAll(to, txs.length)) d.transport.send(to, frame);
        else this.withheld += txs.length;
      }
    } });
  }

  /** A transaction a client gave us (its id from intake): queued locally by the caller, then sent in this member's next batch. */
  gossip(tx: Uint8Array, id: Uint8Array = txHash(tx)): void {
    this.#gossip.add(tx, id);
  }

  /**
   * Offers the upcoming leaders again this member's clients' transactions that have waited
   * REOFFER_AGE_MS uncommitted (at most REOFFER_MAX_TXS a call; the caller calls it every second):
   * a leader that restarted has lost what it held, and this member's own views may be failing.
   * Only to the next leaders, not to everyone: every validator was sent the batch once, and under
   * a load that commits slower than REOFFER_AGE_MS, sending each again to all N − 1 fed a loop
   * that took the federation down at N = 21. Receivers take each once (the mempool and block
   * validity keep exactly-once); the hand-off budget bounds what goes out.
   */
  reofferStale(nowMs: number): number {
    const stale = this.#d.pool.takeStaleLocal(nowMs, REOFFER_AGE_MS, REOFFER_MAX_TXS);
    for (const p of stale) this.#reoffer.add(p.tx, p.hash);
    return stale.length;
  }

  /** The leaders of the current and following views, other than us, in order (at most REOFFER_LEADERS). */
  #upcomingLeaders(): number[] {
    const { driver } = this.#d;
    const out: number[] = [];
    for (let v = driver.engine.view; out.length < Math.min(REOFFER_LEADERS, driver.validatorCount - 1); v++) {
      const leader = driver.engine.leaderOf(v);
      if (leader !== driver.self && !out.includes(leader)) out.push(leader);
    }
    return out;
  }

  /**
   * One of our batches: to every other validator within its share — in one broadcast, one copy on
   * the way to the gateway, when each has room — then kept and marked in the pool (proposable by
   * reference when it reached all).
   */
  #send(frame: Uint8Array, txs: Uint8Array[], ids: Uint8Array[]): void {
    const { driver, transport, pool, clock } = this.#d;
    const to: number[] = [];
    for (let v = 0; v < driver.validatorCount; v++) {
      // Beyond a peer's share the batch stays with us only: we propose it when we lead.
      if (v === driver.self) continue;
      if (this.#out.takeAll(v, txs.length)) to.push(v);
      else this.withheld += txs.length;
    }
    const everyone = to.length === driver.validatorCount - 1;
    if (everyone) transport.broadcast(frame);
    else for (const v of to) transport.send(v, frame);
    const b = driver.batches.add(driver.self, txs, ids, clock.now());
    b.everyone &&= everyone;
    pool.assign(b);
  }

  /**
   * A batch read back from disk at start (batch-disk.ts, in the order they were written): held again by its digest,
   * within the store's bounds per holder, and another validator's transactions offered to the pool
   * again as its batch had them (this member's own are in the mempool journal). A batch all of whose
   * transactions are committed is forgotten: false.
   */
  restore(b: { holder: number; author: number; epoch?: number | undefined; atMs: number; txs: readonly Uint8Array[]; ids: Uint8Array[]; tree: { digest: Uint8Array; leaves: Uint8Array } }): boolean {
    const { driver, pool, clock } = this.#d;
    const now = clock.now();
    // Numbered by the set of the epoch it was written in: renumbered to this epoch's. A holder
    // seated no more, or of an epoch not said (written before batches kept theirs), is charged as an
    // outsider; such an author is named by the holder, else by this member, which holds the batch.
    const holder = b.epoch === undefined ? undefined : driver.indexNow(b.epoch, b.holder);
    const author = (b.epoch === undefined ? undefined : driver.indexNow(b.epoch, b.author)) ?? (holder === undefined || isOutside(holder) ? driver.self : holder);
    const source = holder ?? OUTSIDE_BASE;
    const batch = driver.batches.add(source, b.txs, b.ids, b.atMs, { author, tree: b.tree, kept: true });
    let committed = 0;
    for (const [k, tx] of b.txs.entries()) {
      if (driver.isCommitted(b.ids[k]!)) { committed++; continue; }
      if (source !== driver.self && txSizeError(tx, this.#d.maxTxBytes) === null) pool.offer(tx, now, driver.isCommitted, source, { hash: b.ids[k]!, batch });
    }
    if (committed < b.txs.length) return true;
    driver.batches.forget(batch.hex);
    return false;
  }

  /** A batch from `from`: each validator's bounded in transactions a second, and in its share of the pool (Mempool.offer with a source). */
  onBatch(from: number, txs: Uint8Array[]): void {
    const { driver, pool, clock } = this.#d;
    const source = isOutside(from) ? OUTSIDE_BASE : from;
    const taken = this.#in.take(source, txs.length);
    const over = txs.length - taken;
    if (over > 0) {
      this.refused += over;
      // An honest validator hands over at most HANDOFF_SEND_SHARE of the limit: each one beyond
      // it is a useless token. Outsiders share one limit, so none of them is blamed for it.
      if (isOutside(from)) this.#d.counted(from, 'handoff_rate');
      else this.#d.useless(from, 'handoff_rate', { of: txs.length, refused: over }, over);
    }
    const now = clock.now();
    const ids = new Array<Uint8Array>(taken);
    for (let k = 0; k < taken; k++) ids[k] = txHash(txs[k]!);
    // A whole batch from a validator, of transactions a block may carry, is kept by its digest.
    const keep = !isOutside(from) && over === 0 && taken > 0 && txs.every((tx) => txSizeError(tx, this.#d.maxTxBytes) === null);
    const batch = keep ? driver.batches.add(from, txs, ids, now) : undefined;
    let refused = 0;
    let added = 0;
    let committed = 0;
    let code = '';
    for (let k = 0; k < taken; k++) {
      const r = pool.offer(txs[k]!, now, (h) => driver.isCommitted(h) && ++committed > 0, source, { hash: ids[k]!, batch });
      if (r.status === 'refused') { refused++; code = r.code; } else if (r.status === 'added') added++;
    }
    if (refused > 0) this.#d.log.debug({ from, refused, of: txs.length, code }, 'gossiped transactions not taken');
    // A batch all of whose transactions are in the log already is no use to any proposal.
    if (batch && committed === taken) driver.batches.forget(batch.hex);
    // A batch that brought nothing (all known, or over the sender's share) was useless.
    if (over === 0 && added === 0 && txs.length > 0) this.#d.useless(from, 'txs_not_taken', { of: txs.length, code: code || 'duplicate' }, 1);
  }
}
