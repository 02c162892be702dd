// The leader of a view, chosen by the record in the committed chain (Carousel's and Aptos's
// LeaderReputation's idea, in the simplest form that every member computes identically).
//
// The rotation is round robin (view mod N), except that a member whose last views produced no
// committed block of its own is skipped: its views go to the next member in the ring that is not
// skipped. So a crashed member stops costing the federation a view every rotation (a full view
// timer the first time, a NEW-VIEW round each rotation after, with suspicion.ts): its views are
// led by a live member and commit like any other.
//
// The record is the committed chain of this epoch — block headers, each naming its view and its
// proposer (the block's hash covers both; a replica votes only for a block whose proposer is the
// view's leader). For view v the anchor is view a = v − ANCHOR_LAG: only committed blocks of
// views ≤ a count, so a member that has not yet committed the block of the view before still
// computes the same leader. A member is skipped in view v when its last MIN_SLOTS views in the
// rotation (view ≡ its index mod N) among those of the window (a − windowViews(N), a] that lie
// between two committed blocks (after the epoch's first commit, before the last one up to a: the
// federation was live in them) hold no committed block of its own — it led them and its block
// never made it into the chain, or it was skipped in them already. At most f members are
// skipped: those whose last committed block is oldest (never before any), ties by index. So
// every rotation keeps at least N − f ≥ 2f + 1 leaders, of whom f + 1 are honest.
//
// Re-admission: every PROBE_EVERY-th rotation (views n·r … n·r + n − 1 with r a multiple of
// PROBE_EVERY) is plain round robin, so a skipped member leads its own view again; one that is
// back proposes a block, and its last own view holds it: it is in the rotation again. A member
// that is still down costs that one view, which suspicion.ts gives up at once when it has failed
// before.
//
// Agreement. Members that hold the same committed blocks up to view a compute the same leader:
// the chain below a is final (safety), and a member in view v has in the steady state committed
// everything up to v − 1 (ANCHOR_LAG leaves two views of slack, so a proposal that arrives a view
// early is still judged on the same record). A member behind the others (its committed tip's view
// below a) may compute another leader until it catches up; that costs its vote, not safety — the
// replica only refuses a proposal, the leader only waits for NEW-VIEWs. If no block commits for
// STALE_ROTATIONS rotations before the anchor, every member falls back to plain round robin, so
// members whose committed tips differ agree again without any commit, and the next commit brings
// the record back.
//
// What a Byzantine member can do with it: it can skip itself (lead nothing), and as a leader it
// can orphan the block of a view before its own only when that block had not committed (basic
// HotStuff commits a view's block within the view), so it cannot take an honest, performing
// leader out of the rotation. It cannot name another proposer in a block (the replica checks the
// proposer), and skipping is capped at f.
//
// Pure: views and committed headers are the only inputs.

import { faultBound, roundRobinLeader } from './quorum.ts';

/** Views between the anchor whose committed record chooses a view's leader and that view. */
export const ANCHOR_LAG = 3;
/** A rotation out of this many is plain round robin: a skipped member gets its own view back. */
export const PROBE_EVERY = 8;
/** A member's last own views in the rotation that must all lack a committed block of its own for it to be skipped. */
export const MIN_SLOTS = 3;
/** Rotations without a committed block before the anchor after which the rotation is plain round robin. */
export const STALE_ROTATIONS = 2;

/** The window of views whose committed blocks say who performs: one probe cycle and a rotation. */
export function windowViews(n: number): number {
  return (PROBE_EVERY + 1) * n;
}

/** What the schedule reads of a committed block: its view and who proposed it. */
export interface CommittedView {
  view: number;
  proposer: number;
}

/** How many views back from its committed tip a member's record must reach to compute the leaders after it (for a restart). */
export function historyViews(n: number): number {
  return windowViews(n) + STALE_ROTATIONS * n + ANCHOR_LAG;
}

/** Is `view` in a probe rotation (plain round robin)? */
export function isProbeView(view: number, n: number): boolean {
  return Math.floor(view / n) % PROBE_EVERY === 0;
}

/**
 * Could `who` lead `view` under some record? The ring positions rr(view) … rr(view) + f; in a
 * probe rotation only rr(view). A check that needs no record: the signer's, and the gateway-side
 * glance before a message's signature is verified.
 */
export function mayLead(view: number, who: number, n: number): boolean {
  if (!Number.isInteger(who) || who < 0 || who >= n) return false;
  const k = (who - roundRobinLeader(view, n) + n) % n;
  return k === 0 || (k <= faultBound(n) && !isProbeView(view, n));
}

export class LeaderSchedule {
  readonly #n: number;
  readonly #f: number;
  /** Committed blocks of this epoch, by increasing view: the last historyViews(n) views' worth. */
  readonly #record: CommittedView[] = [];
  /** Skipped members by anchor view, for the record as it is (cleared by every commit). */
  readonly #skipped = new Map<number, readonly number[]>();

  constructor(n: number, history: Iterable<CommittedView> = []) {
    this.#n = n;
    this.#f = faultBound(n);
    for (const c of history) this.committed(c);
  }

  /** A block of this epoch committed (in the order of the chain). Older or repeated views are ignored. */
  committed(c: CommittedView): void {
    const last = this.#record[this.#record.length - 1];
    if (last && c.view <= last.view) return;
    this.#record.push({ view: c.view, proposer: c.proposer });
    const keepFrom = c.view - historyViews(this.#n);
    let drop = 0;
    while (drop < this.#record.length && this.#record[drop]!.view <= keepFrom) drop++;
    if (drop > 0) this.#record.splice(0, drop);
    this.#skipped.clear();
  }

  /** The view of the last committed block recorded (0: none in this epoch). */
  get tipView(): number {
    return this.#record[this.#record.length - 1]?.view ?? 0;
  }

  /** The leader of `view`. */
  leaderOf(view: number): number {
    const rr = roundRobinLeader(view, this.#n);
    const skipped = this.skippedIn(view);
    if (skipped.length === 0) return rr;
    for (let k = 0; k < this.#n; k++) {
      const candidate = (rr + k) % this.#n;
      if (!skipped.includes(candidate)) return candidate;
    }
    return rr; // unreachable: at most f < n are skipped
  }

  /**
   * Does every member with this record's blocks up to the anchor of `view` compute the same leader
   * for it — the record below the anchor is final here (the committed tip is at or above it), or
   * no record is read (the first views, a probe rotation, f = 0)? When not, a member further ahead
   * may rightly name another leader.
   */
  settles(view: number): boolean {
    const anchor = view - ANCHOR_LAG;
    return this.#f === 0 || isProbeView(view, this.#n) || anchor < 1 || this.tipView >= anchor;
  }

  /** The members skipped in `view` (at most f), most stale first. Empty in probe rotations. */
  skippedIn(view: number): readonly number[] {
    if (this.#f === 0 || isProbeView(view, this.#n)) return [];
    const anchor = view - ANCHOR_LAG;
    if (anchor < 1 || this.tipView < anchor - STALE_ROTATIONS * this.#n) return [];
    let out = this.#skipped.get(anchor);
    if (!out) {
      out = this.#compute(anchor);
      if (this.#skipped.size >= 16) this.#skipped.clear();
      this.#skipped.set(anchor, out);
    }
    return out;
  }

  #compute(anchor: number): readonly number[] {
    const n = this.#n;
    const from = anchor - windowViews(n); // the window is (from, anchor]
    const lastOwn = new Array<number>(n).fill(-1);
    const proposerAt = new Map<number, number>();
    let firstCommit: number | undefined;
    let lastCommit = 0;
    for (const c of this.#record) {
      if (c.view > anchor) break;
      firstCommit ??= c.view;
      lastCommit = c.view;
      if (c.proposer < 0 || c.proposer >= n) continue;
      lastOwn[c.proposer] = c.view;
      if (c.view > from) proposerAt.set(c.view, c.proposer);
    }
    if (firstCommit === undefined) return [];
    // Only views between two commits count against their leader: the federation was live then.
    // Views before the epoch's first commit (start-up) and after the last (an outage, or views
    // not yet over) say nothing of one leader.
    const first = Math.max(from, firstCommit) + 1;
    const last = lastCommit - 1;
    const candidates: number[] = [];
    for (let m = 0; m < n; m++) {
      // Its last MIN_SLOTS own views in the rotation: skipped when none of them holds a committed block of its own.
      let slots = 0;
      let performed = false;
      for (let w = last - ((last - m) % n + n) % n; w >= first && slots < MIN_SLOTS; w -= n) {
        slots++;
        if (proposerAt.get(w) === m) performed = true;
      }
      if (slots === MIN_SLOTS && !performed) candidates.push(m);
    }
    candidates.sort((a, b) => lastOwn[a]! - lastOwn[b]! || a - b);
    return Object.freeze(candidates.slice(0, this.#f));
  }
}
