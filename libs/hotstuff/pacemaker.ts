// The pacemaker's arithmetic: the per-view timeout with back-off, and the bookkeeping of
// NEW-VIEW claims that lets members meet in one view again after a partition.
//
// Views move forward only on certificates — a valid QC, or NEW-VIEWs from a quorum — never
// on one member's word, so a member that can send but not receive cannot keep the others
// changing views. NEW-VIEWs from f+1 members (at least one honest) for a higher view are
// "amplified": the receiver sends its own NEW-VIEW for that view too (Bracha-style), so once
// f+1 honest members have given up on a view every honest member does, and a quorum of
// NEW-VIEWs forms. Must never read a clock: the driver owns time.

import type { TimeoutConfig } from './events.ts';
import type { NewView } from './types.ts';

/** base × multiplier^(views since the last commit), capped. */
export function viewTimeoutMs(cfg: TimeoutConfig, view: number, lastCommitView: number): number {
  const behind = Math.max(0, view - lastCommitView - 1);
  return Math.min(cfg.capMs, cfg.baseMs * cfg.multiplier ** Math.min(behind, 64));
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
