// Transaction hand-offs between validators, bounded in transactions a second per peer. A member
// takes at most `handoff_txs_per_second` transactions a second from each validator (in bursts of
// one second's worth), and sends each validator at most HANDOFF_SEND_SHARE of that, so an
// honest member never reaches another's limit while a flooder does at once: what it hands over
// beyond the limit is refused before it costs a hash, and each transaction refused is a useless
// token (penalties.ts), so the flood gets its sender muted within a batch or two. What an honest
// member does not hand over stays in its own mempool, and it proposes it when it leads.
// Pure: the clock is passed in. Bounded: one bucket per peer number (validators, and one for all
// peers outside the validator set). A bucket is its member's, not its number's: a set change moves
// it to the member's new number (renumber), so nobody inherits another's spent or fresh budget.

import { renumberPeers } from './epoch-switch.ts';

/** conf consensus.handoff_txs_per_second's default: some 1.8 × what one member hands another in the federation bench (docs/performance.md). */
export const HANDOFF_TXS_PER_SECOND = 5_000;
/** Share of the receivers' limit a member hands each peer at most, so timing jitter never takes it over. */
export const HANDOFF_SEND_SHARE = 0.8;

interface Bucket { tokens: number; at: number }

export class HandoffBudget {
  readonly #rate: number;
  readonly #burst: number;
  readonly #now: () => number;
  readonly #buckets = new Map<number, Bucket>();

  /** `rate` transactions a second, in bursts of `burst` (default: one second's worth). */
  constructor(o: { rate: number; burst?: number; now(): number }) {
    this.#rate = o.rate;
    this.#burst = o.burst ?? o.rate;
    this.#now = o.now;
  }

  /** How many of `n` transactions to or from `peer` fit now (taken from its budget). */
  take(peer: number, n: number): number {
    const b = this.#refill(peer);
    const k = Math.max(0, Math.min(n, Math.floor(b.tokens)));
    b.tokens -= k;
    return k;
  }

  /** Whether all `n` fit now; they are taken if so, nothing is otherwise. */
  takeAll(peer: number, n: number): boolean {
    const b = this.#refill(peer);
    if (b.tokens < n) return false;
    b.tokens -= n;
    return true;
  }

  /**
   * A set change renumbered the validators (epoch-switch.ts renumbering, `to`): each bucket follows
   * its member to its new number, tokens and all, and the bucket of a member seated no more is
   * dropped (what it sends from now on comes from outside the set). A member renumbered into a
   * removed one's number keeps its own bucket: it neither inherits the removed one's spent budget
   * nor gets a fresh one. Outside numbers stay.
   */
  renumber(to: (peer: number) => number | undefined): void {
    renumberPeers(this.#buckets, to);
  }

  #refill(peer: number): Bucket {
    const t = this.#now();
    let b = this.#buckets.get(peer);
    if (!b) this.#buckets.set(peer, (b = { tokens: this.#burst, at: t }));
    b.tokens = Math.min(this.#burst, b.tokens + (Math.max(0, t - b.at) / 1000) * this.#rate);
    b.at = t;
    return b;
  }
}

