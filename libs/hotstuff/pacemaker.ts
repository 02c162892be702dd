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

/** Views committed before their timer fired that bring the timer level down by one (at first: see TimerLevel). */
export const TIMER_DECAY_VIEWS = 10;
/** The longest run of on-time commits a decay can come to need (TIMER_DECAY_VIEWS doubled each time a decay proved premature). */
export const MAX_TIMER_DECAY_VIEWS = 320;
/**
 * The timer level's ceiling. A raise needs slow views from f + 1 distinct leaders, so faulty
 * leaders alone cannot raise it; the ceiling still bounds what a dead leader's view costs when
 * honest views are slow: base × multiplier^MAX_TIMER_LEVEL, 3.4× the base at the default 1.5.
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
  /** The view's leader. */
  leader: number;
}

/**
 * Remembers, across commits, how long views need. With the back-off alone, every view after a
 * commit starts again at the base timeout: where a view needs longer than that (21 members
 * sharing two cores need several seconds), every commit first costs failed views and a round of
 * NEW-VIEWs that load the members further. The level is added to the back-off's exponent.
 *
 * A slow view is a live one that outlived the timer: we voted in it, and our timer fired or a
 * quorum of NEW-VIEWs ended it. A leader that proposes and then stalls makes exactly such views,
 * so one slow view proves nothing: the level rises by one only once slow views of f + 1
 * distinct leaders have been seen since the level last changed. At least one of those leaders
 * is honest, and an honest leader's view is slow only when the honest members are (their 2f + 1
 * votes make a quorum without anyone else). Up to f faulty leaders therefore never raise it.
 *
 * A run of on-time commits (committed before the timer fired; slow views by fewer than f + 1
 * leaders do not break it) lowers it by one. The run needed starts at TIMER_DECAY_VIEWS and
 * doubles, up to MAX_TIMER_DECAY_VIEWS, whenever a raise follows a decay: the decay was
 * premature, and each one costs f + 1 slow views to undo. Two decays in a row reset it.
 *
 * A view whose leader never proposed (crashed, silent, cut off) changes nothing: raising the
 * level for it would make each later dead leader cost more.
 */
export class TimerLevel {
  readonly #needed: number;
  #level = 0;
  #onTime = 0;
  #decayViews = TIMER_DECAY_VIEWS;
  #lastChange: 'raise' | 'decay' | null = null;
  readonly #slowLeaders = new Set<number>();

  /** `faults`: f, the faulty members the validator set tolerates. */
  constructor(faults: number) {
    this.#needed = faults + 1;
  }

  get level(): number { return this.#level; }
  /** On-time commits in a row that lower the level next. */
  get decayViews(): number { return this.#decayViews; }

  viewEnded(o: ViewOutcome): void {
    if (o.cause === 'commit' && !o.timedOut) {
      if (++this.#onTime < this.#decayViews) return;
      this.#onTime = 0;
      this.#slowLeaders.clear();
      if (this.#level === 0) return;
      this.#level--;
      if (this.#lastChange === 'decay') this.#decayViews = TIMER_DECAY_VIEWS;
      this.#lastChange = 'decay';
    } else if (o.voted && (o.timedOut || o.cause === 'new-view-quorum')) {
      this.#slowLeaders.add(o.leader);
      if (this.#slowLeaders.size < this.#needed) return;
      this.#slowLeaders.clear();
      this.#onTime = 0;
      if (this.#level === MAX_TIMER_LEVEL) return;
      this.#level++;
      if (this.#lastChange === 'decay') this.#decayViews = Math.min(this.#decayViews * 2, MAX_TIMER_DECAY_VIEWS);
      this.#lastChange = 'raise';
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
  /**
   * Others who gave up the views below `view` (a NEW-VIEW for it or later) with a highQC no higher
   * than `highView`: a leader whose own highQC is of `highView` covers their locks. A NEW-VIEW for a
   * later view than the leader's brings it only a reference to its sender's QC (synchronizer.ts): it
   * counts only when the leader already holds a QC at least that high.
   */
  countCovered(view: number, highView: number): number {
    let c = 0;
    for (const [sender, nv] of this.#latest) if (sender !== this.#self && nv.view >= view && nv.highQC.view <= highView) c++;
    return c;
  }

  countAtLeast(view: number): number {
    let c = 0;
    for (const [sender, nv] of this.#latest) if (sender !== this.#self && nv.view >= view) c++;
    return c;
  }
}
