// The consumer's mutes: peers whose inbound consensus frames the gateway drops at the edge, right
// after framing, because the consensus service's penalties muted them (MutePeer on Attach). A
// mute ends by itself after its time, or when the consumer lifts it (ms = 0: an operator's
// `btcfed admin unmute`), or when the consumer detaches (a new consumer — perhaps a restarted
// consensus with no record of the offence — sends again the mutes it means).
// Pure: the clock is passed in. Bounded: validators' mutes by the validator set (a mute names a
// current validator, and leaving the set ends it); other peers' by MAX_OUTSIDE_MUTES, the
// soonest to end evicted first.
// Must never decide who is muted: it only keeps what the consumer said.

/** The longest mute taken: penalties mute for at most 5 minutes; a consumer bug must not silence a peer for good. */
export const MAX_MUTE_MS = 60 * 60_000;
/** Mutes of peers that are not validators (the consensus side numbers at most 1024 of them). */
export const MAX_OUTSIDE_MUTES = 1024;

export interface Mute {
  untilMs: number;
  reason: string;
  /** Frames dropped under this mute (for the 1, 2, 4, 8, … log). */
  dropped: number;
}

export interface MuteTableDeps {
  now(): number;
}

export class MuteTable {
  readonly #deps: MuteTableDeps;
  readonly #validators = new Map<string, Mute>();
  readonly #outside = new Map<string, Mute>();

  constructor(deps: MuteTableDeps) {
    this.#deps = deps;
  }

  /**
   * Mutes `peerId` for `ms` (capped at MAX_MUTE_MS), or lifts its mute when ms ≤ 0. Returns the
   * mute in force afterwards, if any. `validator` says which map bounds it.
   */
  set(peerId: string, validator: boolean, ms: number, reason: string): Mute | undefined {
    const map = validator ? this.#validators : this.#outside;
    if (!(ms > 0)) {
      map.delete(peerId);
      return undefined;
    }
    const mute: Mute = { untilMs: this.#deps.now() + Math.min(ms, MAX_MUTE_MS), reason, dropped: 0 };
    map.delete(peerId);
    if (!validator) this.#makeRoom();
    map.set(peerId, mute);
    return mute;
  }

  /** The mute in force for `peerId` now, if any (an expired one is forgotten here). */
  get(peerId: string): Mute | undefined {
    const m = this.#validators.get(peerId) ?? this.#outside.get(peerId);
    if (!m) return undefined;
    if (this.#deps.now() < m.untilMs) return m;
    this.#validators.delete(peerId);
    this.#outside.delete(peerId);
    return undefined;
  }

  muted(peerId: string): boolean { return this.get(peerId) !== undefined; }

  /** Unix ms until which `peerId` is muted, 0 when it is not. */
  untilMs(peerId: string): number { return this.get(peerId)?.untilMs ?? 0; }

  /** The validator set changed: a peer that left it is no longer muted as a validator. */
  retainValidators(isValidator: (peerId: string) => boolean): void {
    for (const id of this.#validators.keys()) if (!isValidator(id)) this.#validators.delete(id);
  }

  /** The consumer detached: its mutes go with it. */
  clear(): void {
    this.#validators.clear();
    this.#outside.clear();
  }

  /** Mutes in force now (expired ones are forgotten). */
  get size(): number {
    const now = this.#deps.now();
    for (const map of [this.#validators, this.#outside]) {
      for (const [id, m] of map) if (now >= m.untilMs) map.delete(id);
    }
    return this.#validators.size + this.#outside.size;
  }

  #makeRoom(): void {
    if (this.#outside.size < MAX_OUTSIDE_MUTES) return;
    const now = this.#deps.now();
    for (const [id, m] of this.#outside) if (now >= m.untilMs) this.#outside.delete(id);
    while (this.#outside.size >= MAX_OUTSIDE_MUTES) {
      let soonest: [string, number] | undefined;
      for (const [id, m] of this.#outside) if (!soonest || m.untilMs < soonest[1]) soonest = [id, m.untilMs];
      this.#outside.delete(soonest![0]);
    }
  }
}
