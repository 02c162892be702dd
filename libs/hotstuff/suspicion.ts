// Leaders this member expects to fail, so that it gives up their views at once instead of after
// the view timer. Aardvark's lesson: a replica that keeps waiting on a leader that does not
// perform hands that leader the federation's throughput. A leader is suspected when a view it
// led failed here (it ended by a quorum of NEW-VIEWs and this member saw no QC of it; the engine
// reports no failure before its first commit, core.ts advance) or while
// this member has it muted for offences, or while its transport says it is absent (its gateway said
// its consensus detached, or every connection to it closed), or the proposal it sent for the
// current view broke a rule (libs/hotstuff replica.ts, or the driver's checks before the engine). A failure suspects
// it for its next suspicionWindow(level) views — 16, 32, 64, … up to 256 — the level rising with
// each failure outside a suspicion and falling after CLEAN_VIEWS certified views of its own; a
// mute suspects it for as long as the mute lasts. Why start at 16: each failure outside a
// suspicion costs a whole view timer (1 s by default, where a view here takes 0.2–0.25 s and a
// view given up at once about 0.1 s). Starting at 4, a leader that stalls every view it is let
// lead cost three timers in 20 s and held the honest rate to 71–77 % of the rate before
// (`npm run byzantine`, stall-own-views); an honest leader suspected wrongly loses its turns, not
// the federation's safety, and gets them back when the window ends or when it shows a QC. While suspected, its views are given up at once (a NEW-VIEW sent on
// entering them); a valid proposal still gets this member's vote, so a suspected leader that
// performs anyway shows it with a QC, and one suspicious member with a silent Byzantine one
// cannot deny an honest leader its quorum.
//
// A leader is also suspected when it is slow: its views certify, but each takes more than
// SLOW_FACTOR times the median of the last DURATIONS_KEPT certified views here (and at least
// SLOW_SLACK_MS more). SLOW_STRIKES such views among its last SLOW_WINDOW count as one failure.
// The median is of the last few views so that it follows the machine: when every view slows down
// at once (load elsewhere), each leader meets at most one slow view before the median catches up,
// and one is no suspicion.
// Without this, a Byzantine leader that proposes just before the view timer — or one that spends
// its own CPU on junk and leads late — holds every N-th view for up to a timer and is never
// suspected, since its views never fail (Aardvark's "expected throughput of the primary"). The
// median is over every leader's views, and the faulty lead fewer than a third of any DURATIONS_KEPT
// views in a row (at most 3 of 8), too few to move it;
// the durations come from the driver's clock (view-timed), the judgement stays here.
//
// Safe by construction: giving up a view only sends a NEW-VIEW, which a member may always do.
// Live by construction: at most f leaders are suspected at once (the worst records first), so
// every N views hold at least N − 2f ≥ f + 1 unsuspected leaders, one of them honest; and every
// suspicion ends. Local: each member judges from what it saw, so a Byzantine member cannot make
// the others suspect an honest leader whose view reaches them in time. Never suspects this member itself.
// Pure: views are the only clock.

/** The level's ceiling: a leader is suspected for at most suspicionWindow(MAX_SUSPICION_LEVEL) = 256 of its views at a time. */
export const MAX_SUSPICION_LEVEL = 5;
/** Views of its own a leader is suspected for after its first failure; each further one doubles it. */
export const FIRST_SUSPICION_WINDOW = 16;

/** How many of its own views a leader at `level` (≥ 1) is suspected for. */
export function suspicionWindow(level: number): number {
  return FIRST_SUSPICION_WINDOW * 2 ** (level - 1);
}
/** Certified views of its own that bring a leader's level down by one. */
export const CLEAN_VIEWS = 8;

/** Muted for offences; absent (its consensus gone); its views failed here; its views certified but far slower than the others'. */
export type SuspicionReason = 'muted' | 'absent' | 'failed_views' | 'slow_views';

/** Certified view durations kept for the median a slow view is judged against. */
export const DURATIONS_KEPT = 8;
/** Durations seen before any view is judged slow. */
export const MIN_DURATIONS = DURATIONS_KEPT;
/** A view slower than this many medians (and SLOW_SLACK_MS) is slow. */
export const SLOW_FACTOR = 1.5;
export const SLOW_SLACK_MS = 100;
/** Slow views among a leader's last SLOW_WINDOW timed views of its own that count as a failure. */
export const SLOW_STRIKES = 3;
export const SLOW_WINDOW = 4;

interface LeaderRecord {
  level: number;
  /** Suspected in views below this one (0: not suspected for failures). */
  until: number;
  /** Certified views since its last failure. */
  clean: number;
  /** Its last timed views, oldest first: true where slow. */
  recent: boolean[];
  /** What its last failure was. */
  reason: 'failed_views' | 'slow_views';
}

/** How a view ended, as far as its leader's record goes. */
export type LeaderOutcome = 'certified' | 'failed' | 'unknown';

export class LeaderSuspicion {
  readonly #n: number;
  readonly #f: number;
  readonly #self: number;
  readonly #records = new Map<number, LeaderRecord>();
  readonly #muted = new Set<number>();
  readonly #absent = new Set<number>();
  /** The last DURATIONS_KEPT certified views' durations, oldest first. */
  readonly #durations: number[] = [];

  constructor(n: number, f: number, self: number) {
    this.#n = n;
    this.#f = f;
    this.#self = self;
  }

  /** The driver muted (true) or let go (false) a validator. */
  setMuted(leader: number, muted: boolean): void {
    if (muted) this.#muted.add(leader);
    else this.#muted.delete(leader);
  }

  /**
   * The transport says a validator's consensus is gone (true) or back (false). A suspicion like a
   * mute: no record, no level — an absent member that comes back leads again at once.
   */
  setAbsent(leader: number, absent: boolean): void {
    if (absent) this.#absent.add(leader);
    else this.#absent.delete(leader);
  }

  /** An operator vouched for a validator: no suspicion, no record. */
  forgive(leader: number): void {
    this.#muted.delete(leader);
    this.#records.delete(leader);
  }

  /**
   * A view led by `leader` ended. 'failed': it ended by NEW-VIEWs without a QC this member saw,
   * and this member had not given it up itself; 'certified': a QC of it formed; 'unknown': this
   * member learned nothing of the leader (it was behind, or gave the view up itself).
   */
  viewEnded(view: number, leader: number, outcome: LeaderOutcome): void {
    if (leader === this.#self || outcome === 'unknown') return;
    const r = this.#records.get(leader);
    if (outcome === 'certified') {
      if (!r) return;
      r.until = 0; // it led a view to a QC: whatever we thought, it performs now
      if (++r.clean >= CLEAN_VIEWS) {
        r.clean = 0;
        if (--r.level <= 0) this.#records.delete(leader);
      }
      return;
    }
    this.#fail(view, r ?? this.#record(leader), 'failed_views');
  }

  /**
   * A view led by `leader` certified here (its block committed) and took `ms` from our entering
   * it to our leaving it. A slow view is not clean; SLOW_STRIKES of them among the leader's last
   * SLOW_WINDOW count as a failure. Returns whether this view was judged slow.
   */
  viewTimed(view: number, leader: number, ms: number): boolean {
    if (!Number.isFinite(ms) || ms < 0) return false;
    const median = this.#durations.length >= MIN_DURATIONS ? medianOf(this.#durations) : undefined;
    this.#durations.push(ms);
    if (this.#durations.length > DURATIONS_KEPT) this.#durations.shift();
    if (leader === this.#self || median === undefined) return false;
    const slow = ms > Math.max(SLOW_FACTOR * median, median + SLOW_SLACK_MS);
    let r = this.#records.get(leader);
    if (!r) {
      if (!slow) return false;
      r = this.#record(leader);
    }
    r.recent.push(slow);
    if (r.recent.length > SLOW_WINDOW) r.recent.shift();
    if (!slow) return false;
    r.clean = 0;
    if (r.recent.filter(Boolean).length >= SLOW_STRIKES && r.until <= view) {
      r.recent = [];
      this.#fail(view, r, 'slow_views');
    }
    return true;
  }

  #record(leader: number): LeaderRecord {
    const r: LeaderRecord = { level: 0, until: 0, clean: 0, recent: [], reason: 'failed_views' };
    this.#records.set(leader, r);
    return r;
  }

  #fail(view: number, r: LeaderRecord, reason: LeaderRecord['reason']): void {
    r.reason = reason;
    r.clean = 0;
    r.level = Math.min(r.level + 1, MAX_SUSPICION_LEVEL);
    // Its next suspicionWindow(level) views: one rotation of N views per view of its own.
    r.until = view + 1 + this.#n * suspicionWindow(r.level);
  }

  /** Why this member gives up `view` at once (its leader is among the f suspected), or null. */
  suspects(view: number, leader: number): SuspicionReason | null {
    if (leader === this.#self || this.#f === 0) return null;
    const ranked = this.#ranked(view);
    const k = ranked.indexOf(leader);
    if (k < 0 || k >= this.#f) return null;
    return this.#muted.has(leader) ? 'muted' : this.#absent.has(leader) ? 'absent' : this.#records.get(leader)?.reason ?? 'failed_views';
  }

  /** The leaders suspected in `view` (at most f), worst first: for metrics and status. */
  suspected(view: number): number[] {
    return this.#f === 0 ? [] : this.#ranked(view).slice(0, this.#f);
  }

  /** Every suspected leader, muted or absent ones first, then by level, then by how long, then by index. */
  #ranked(view: number): number[] {
    const out: Array<{ leader: number; muted: boolean; level: number; until: number }> = [];
    for (let leader = 0; leader < this.#n; leader++) {
      if (leader === this.#self) continue;
      const r = this.#records.get(leader);
      const muted = this.#muted.has(leader) || this.#absent.has(leader);
      const failing = r !== undefined && r.until > view;
      if (muted || failing) out.push({ leader, muted, level: r?.level ?? 0, until: r?.until ?? 0 });
    }
    out.sort((a, b) => Number(b.muted) - Number(a.muted) || b.level - a.level || b.until - a.until || a.leader - b.leader);
    return out.map((x) => x.leader);
  }
}

function medianOf(xs: readonly number[]): number {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}
