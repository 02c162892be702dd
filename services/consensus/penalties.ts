// Per-validator penalties on the inbound path: every refused frame is a strike; a validator
// with STRIKES_TO_MUTE strikes inside WINDOW_MS is muted — its frames are dropped before they
// are decoded, by the gateway too — for a while that doubles with each mute, up to MAX_MUTE_MS.
// Honest members never earn strikes (their frames decode and their signatures verify), so this
// only makes a faulty validator's traffic cheap to refuse; quorums never depend on a muted
// member's messages, since quorums count the whole validator set and at most f members are faulty.
// Refusals that are not offences on their own count too, at rates an honest member never reaches:
// - a block request over the serving budget is one strike per REFUSALS_PER_STRIKE (an honest
//   member catching up is refused a few times a second at most, a flood thousands of times); one
//   that repeats the peer's last request at once counts REPEATED_REFUSAL_WEIGHT times;
// - a valid but useless message (stale, duplicate, too far ahead, unasked for) spends a token of
//   its sender's budget, refilled at USELESS_PER_SECOND and by USELESS_PER_VIEW each view this
//   member enters (honest members send a few such messages a view: late votes, a QC that arrives
//   after we moved on, a NEW-VIEW sent again); one without a token is a strike. A useless message
//   costs as many tokens as its size calls for (the caller says: the inbound path charges one per
//   unit of the largest message an honest member sends besides proposals, a NEW-VIEW with a full
//   QC, at least 64 KiB), so a flood of 4 MiB proposals for views far ahead spends the budget — and,
//   beyond it, earns strikes — as fast as a flood of small messages 47 times as numerous; a late
//   vote or QC is one token.
// An operator can forgive a validator (AdminService Unmute): its record is cleared.
// Logs of refusals are throttled per (peer, reason).
// Bounded: one small record per peer (validators, and the gateway link's bounded outside slots),
// one counter per (peer, reason).

import { renumberPeers } from './epoch-switch.ts';

export const STRIKES_TO_MUTE = 16;
/**
 * Strikes one equivocation counts for: a mute at once. Two conflicting messages signed for one
 * (view, phase) are proof of a fault that an honest member's signer never gives (its safety marks
 * are on disk before it answers), so no honest member is ever muted for one. At a quarter of a mute
 * each, a member signing conflicting votes every view it did not lead was muted or not by chance:
 * its votes reach the leader late on a loaded machine, so only some views yield evidence (three in
 * ten seconds on m1 in a CI run, one short of a mute; the CI set failed).
 */
export const EQUIVOCATION_STRIKES = STRIKES_TO_MUTE;
export const WINDOW_MS = 10_000;
export const FIRST_MUTE_MS = 5_000;
export const MAX_MUTE_MS = 5 * 60_000;
export const REFUSALS_PER_STRIKE = 32;
/**
 * How many refusals one block request counts for when it repeats the same peer's last request
 * within the serving side's repeat window (sync.ts): a strike per four, a mute after 64. Honest
 * members never send one: an engine asks each block once per peer until its timer retries (a
 * second or more), a follower polls every 300 ms at the fastest — 33 in a window, half a mute. At
 * one refusal each, a flood of one request repeated 500 times a second reached a member's
 * consensus ~500 times after each mute before the next (`block-request-flood`).
 */
export const REPEATED_REFUSAL_WEIGHT = 8;
/** Useless messages a peer may send for free: refilled per second and per view we enter, up to the burst. */
export const USELESS_PER_SECOND = 16;
export const USELESS_PER_VIEW = 8;
export const USELESS_BURST = 256;

interface Record { strikes: number; windowStart: number; mutedUntil: number; muteMs: number; mutes: number }
interface Budget { tokens: number; at: number }

export interface PeerPenaltiesOptions {
  now(): number;
  /** Called whenever a strike mutes `peer`, with the mute's length (for metrics). */
  onMute?(peer: number, ms: number): void;
}

export class PeerPenalties {
  readonly #now: () => number;
  readonly #onMute: ((peer: number, ms: number) => void) | undefined;
  readonly #peers = new Map<number, Record>();
  readonly #counts = new Map<string, number>();
  readonly #refusals = new Map<number, number>();
  readonly #useless = new Map<number, Budget>();

  constructor(o: PeerPenaltiesOptions) {
    this.#now = o.now;
    this.#onMute = o.onMute;
  }

  /** Whether frames from `peer` are to be dropped unread right now. */
  muted(peer: number): boolean {
    const r = this.#peers.get(peer);
    return r !== undefined && this.#now() < r.mutedUntil;
  }

  /** How long `peer`'s mute has to run, in ms (0: not muted). */
  mutedFor(peer: number): number {
    const r = this.#peers.get(peer);
    return r === undefined ? 0 : Math.max(0, r.mutedUntil - this.#now());
  }

  /**
   * One offence (or `n` at once); returns the mute length in ms when this strike mutes the peer, else 0.
   * A strike while the peer is muted counts for nothing: it comes from work begun before the mute
   * (a signature being checked, a message already queued), which the mute already answers. Counted,
   * four forged proposals in verification at once would each mute again, doubling the mute each time.
   */
  strike(peer: number, n = 1): number {
    const t = this.#now();
    let r = this.#peers.get(peer);
    if (!r) {
      r = { strikes: 0, windowStart: t, mutedUntil: 0, muteMs: FIRST_MUTE_MS / 2, mutes: 0 };
      this.#peers.set(peer, r);
    }
    if (t < r.mutedUntil) return 0;
    if (t - r.windowStart > WINDOW_MS) {
      r.windowStart = t;
      r.strikes = 0;
    }
    r.strikes += Math.max(1, n);
    if (r.strikes < STRIKES_TO_MUTE) return 0;
    r.strikes = 0;
    r.windowStart = t;
    r.muteMs = Math.min(r.muteMs * 2, MAX_MUTE_MS);
    r.mutedUntil = t + r.muteMs;
    r.mutes++;
    this.#onMute?.(peer, r.muteMs);
    return r.muteMs;
  }

  /** A refusal that is not an offence by itself: every REFUSALS_PER_STRIKE-th is a strike. Returns as strike(). */
  refusal(peer: number, weight = 1): number {
    const k = (this.#refusals.get(peer) ?? 0) + Math.min(weight, REFUSALS_PER_STRIKE);
    this.#refusals.set(peer, k % REFUSALS_PER_STRIKE);
    return k >= REFUSALS_PER_STRIKE ? this.strike(peer) : 0;
  }

  /**
   * A valid but useless message from `peer` (stale, duplicate, too far ahead, unasked for) that
   * costs `cost` tokens (≥ 1: its size in units, see the file's header): free within its budget,
   * strikes beyond — the budget is spent (down to 0) and the message is as many strikes as it
   * costs tokens, so sixteen tokens' worth of big useless frames beyond the budget mute like
   * sixteen small ones. Returns as strike().
   */
  useless(peer: number, cost = 1): number {
    const t = this.#now();
    let b = this.#useless.get(peer);
    if (!b) this.#useless.set(peer, (b = { tokens: USELESS_BURST, at: t }));
    b.tokens = Math.min(USELESS_BURST, b.tokens + ((t - b.at) / 1000) * USELESS_PER_SECOND);
    b.at = t;
    const c = Math.max(1, cost);
    if (b.tokens >= c) {
      b.tokens -= c;
      return 0;
    }
    b.tokens = 0;
    return this.strike(peer, c);
  }

  /** This member entered a new view: every peer's useless-message budget grows by USELESS_PER_VIEW. */
  viewEntered(): void {
    for (const b of this.#useless.values()) b.tokens = Math.min(USELESS_BURST, b.tokens + USELESS_PER_VIEW);
  }

  /** When the current mute of `peer` ends (Unix ms), or 0 when it is not muted. */
  mutedUntil(peer: number): number {
    const r = this.#peers.get(peer);
    return r !== undefined && this.#now() < r.mutedUntil ? r.mutedUntil : 0;
  }

  /** An operator vouched for `peer`: no mute, no strikes, no history (the next mute is a first one). */
  forgive(peer: number): boolean {
    const was = this.muted(peer);
    this.#peers.delete(peer);
    this.#refusals.delete(peer);
    this.#useless.delete(peer);
    return was;
  }

  /**
   * A new epoch numbered the validators afresh: each record moves to the peer's new number
   * (`to` gives it; undefined drops the record, e.g. a member the change removed, which is an
   * outside peer from now on and starts clean there). Log counts start again.
   */
  renumber(to: (peer: number) => number | undefined): void {
    for (const map of [this.#peers, this.#refusals, this.#useless] as Array<Map<number, unknown>>) renumberPeers(map, to);
    this.#counts.clear();
  }

  /**
   * Counts one refusal of `reason` from `peer`; returns the count when it is to be logged (the
   * 1st, 2nd, 4th, 8th, … of each kind), else 0, so a flood cannot flood the log.
   */
  logCount(peer: number, reason: string): number {
    const key = `${peer}:${reason}`;
    const n = (this.#counts.get(key) ?? 0) + 1;
    this.#counts.set(key, n);
    return (n & (n - 1)) === 0 ? n : 0;
  }

  /** For metrics and status: how often each validator was muted, and whether it is now. */
  summary(): Array<{ peer: number; mutes: number; muted: boolean }> {
    return [...this.#peers].map(([peer, r]) => ({ peer, mutes: r.mutes, muted: this.#now() < r.mutedUntil }));
  }
}
