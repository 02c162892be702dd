// Per-validator penalties on the inbound path: every refused frame is a strike; a validator
// with STRIKES_TO_MUTE strikes inside WINDOW_MS is muted — its frames are dropped before they
// are decoded — for a while that doubles with each mute, up to MAX_MUTE_MS. Honest members
// never earn strikes (their frames decode and their signatures verify), so this only makes a
// faulty validator's traffic cheap to refuse; quorums never depend on a muted member's
// messages, since quorums count the whole validator set and at most f members are faulty.
// Refusals that are not offences on their own (a block request over the serving budget) count
// as one strike per REFUSALS_PER_STRIKE: an honest member catching up is refused a few times a
// second at most, a flood thousands of times. Logs of refusals are throttled per (peer, reason).
// Bounded: one small record per validator index, one counter per (validator, reason).

export const STRIKES_TO_MUTE = 16;
export const WINDOW_MS = 10_000;
export const FIRST_MUTE_MS = 5_000;
export const MAX_MUTE_MS = 5 * 60_000;
export const REFUSALS_PER_STRIKE = 32;

interface Record { strikes: number; windowStart: number; mutedUntil: number; muteMs: number; mutes: number }

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

  constructor(o: PeerPenaltiesOptions) {
    this.#now = o.now;
    this.#onMute = o.onMute;
  }

  /** Whether frames from `peer` are to be dropped unread right now. */
  muted(peer: number): boolean {
    const r = this.#peers.get(peer);
    return r !== undefined && this.#now() < r.mutedUntil;
  }

  /** One offence; returns the mute length in ms when this strike mutes the peer, else 0. */
  strike(peer: number): number {
    const t = this.#now();
    let r = this.#peers.get(peer);
    if (!r) {
      r = { strikes: 0, windowStart: t, mutedUntil: 0, muteMs: FIRST_MUTE_MS / 2, mutes: 0 };
      this.#peers.set(peer, r);
    }
    if (t - r.windowStart > WINDOW_MS) {
      r.windowStart = t;
      r.strikes = 0;
    }
    if (++r.strikes < STRIKES_TO_MUTE) return 0;
    r.strikes = 0;
    r.windowStart = t;
    r.muteMs = Math.min(r.muteMs * 2, MAX_MUTE_MS);
    r.mutedUntil = t + r.muteMs;
    r.mutes++;
    this.#onMute?.(peer, r.muteMs);
    return r.muteMs;
  }

  /** A refusal that is not an offence by itself: every REFUSALS_PER_STRIKE-th is a strike. Returns as strike(). */
  refusal(peer: number): number {
    const k = (this.#refusals.get(peer) ?? 0) + 1;
    this.#refusals.set(peer, k % REFUSALS_PER_STRIKE);
    return k % REFUSALS_PER_STRIKE === 0 ? this.strike(peer) : 0;
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
