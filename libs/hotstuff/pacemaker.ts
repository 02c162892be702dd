// The pacemaker's arithmetic: the per-view timeout with back-off, and the bookkeeping of
// NEW-VIEW claims that lets members meet in one view again after a partition.
//
// Views move forward only on certificates — a valid QC, or NEW-VIEWs from a quorum — never
// on one member's word, so a member that can send but not receive cannot keep the others
// changing views. NEW-VIEWs from f+1 members (at least one honest) for a higher view are
// "amplified": the receiver sends its own NEW-VIEW for that view too (Bracha-style), so once
// f+1 honest members have given up on a view every honest member does, and a quorum of
// NEW-VIEWs forms. Must never read a clock: the driver owns time.

import type { TimeoutConfig, ViewChangeCause } from './events.ts';
import type { NewView } from './types.ts';

/** base × multiplier^(timer level + views since the last commit), capped. */
export function viewTimeoutMs(cfg: TimeoutConfig, view: number, lastCommitView: number, level = 0): number {
  const behind = Math.max(0, view - lastCommitView - 1);
  return Math.min(cfg.capMs, cfg.baseMs * cfg.multiplier ** Math.min(level + behind, 64));
}

/** Views committed before their timer fired, in a row, that bring the timer level down by one. */
export const TIMER_DECAY_VIEWS = 10;
/**
 * The timer level's ceiling, kept low on purpose: a Byzantine leader can propose and then stall
 * every view it leads, and each such view raises the level and breaks the run that would lower
 * it, so one faulty member drives every honest member's level to this ceiling. Its views (and a
 * crashed leader's) then cost base × multiplier^MAX_TIMER_LEVEL — 3.4× the base at the default
 * multiplier of 1.5 — instead of the base: bounded, where a ceiling of 16 let them cost max_timeout.
 */
export const MAX_TIMER_LEVEL = 3;

/** How a view ended, for the timer level. */
export interface ViewOutcome {
  /** What moved us on: a commit, a quorum of NEW-VIEWs, or a QC of a higher view (we were behind: says nothing of the timer). */
  cause: ViewChangeCause;
  /** Our timer fired in it. */
  timedOut: boolean;
  /** We voted in it: its leader's proposal reached us and was valid, so the view was alive. */
  voted: boolean;
}

/**
 * Remembers, across commits, how long views need. With the back-off alone, every view after a
 * commit starts again at the base timeout: where a view needs longer than that (21 members
 * sharing two cores need several seconds), every commit first costs failed views and a round of
 * NEW-VIEWs that load the members further. The level is added to the back-off's exponent:
 * - a live view that outlived the timer (we voted in it, and our timer fired or a quorum of
 *   NEW-VIEWs ended it) raises it by one;
 * - TIMER_DECAY_VIEWS views in a row committed before their timer fired lower it by one.
 * A view whose leader never proposed (crashed, silent, cut off) changes nothing: raising the
 * level for it would make each later dead leader cost more. A leader that proposes and then
 * stalls cannot be told from a slow one, so it can hold the level at MAX_TIMER_LEVEL (see there).
 */
export class TimerLevel {
  #level = 0;
  #onTime = 0;

  get level(): number { return this.#level; }

  viewEnded(o: ViewOutcome): void {
    if (o.cause === 'commit' && !o.timedOut) {
      if (++this.#onTime >= TIMER_DECAY_VIEWS) {
        this.#level = Math.max(0, this.#level - 1);
        this.#onTime = 0;
      }
    } else if (o.voted && (o.timedOut || o.cause === 'new-view-quorum')) {
      this.#level = Math.min(MAX_TIMER_LEVEL, this.#level + 1);
      this.#onTime = 0;
    }
  }
}

export type ClaimResult = 'new' | 'duplicate' | 'stale';

/** The highest NEW-VIEW of each member, plus this member's own claim. */
export class NewViewClaims {
  readonly #self: number;
  readonly #latest = new Map<number, NewView>();
  #own = 0;

  constructor(self: number) {
    this.#self = self;
  }

  record(nv: NewView): ClaimResult {
    const prev = this.#latest.get(nv.sender);
    if (prev && prev.view > nv.view) return 'stale';
    if (prev && prev.view === nv.view) return 'duplicate';
    this.#latest.set(nv.sender, nv);
    return 'new';
  }

  setOwn(view: number): void {
    if (view > this.#own) this.#own = view;
  }

  /** Largest view w such that at least k members (self included) claimed ≥ w; 0 if none. */
  kthHighest(k: number): number {
    const targets: number[] = [this.#own];
    for (const [sender, nv] of this.#latest) if (sender !== this.#self) targets.push(nv.view);
    if (targets.length < k) return 0;
    targets.sort((a, b) => b - a);
    return targets[k - 1]!;
  }

  /** Members other than self whose latest claim is ≥ view. */
  countAtLeast(view: number): number {
    let c = 0;
    for (const [sender, nv] of this.#latest) if (sender !== this.#self && nv.view >= view) c++;
    return c;
  }
}
