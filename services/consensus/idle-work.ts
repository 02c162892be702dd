// Idle views, the driver's half (libs/hotstuff idle.ts is the engine's): whether this member has
// work — transactions in its pool, a change to propose, or a heartbeat due (heartbeatMs after the
// last commit here) — told to the engine as a level, only when the answer changes. A commit clears
// the engine's level, so the answer is given again after each; while there is no work the
// heartbeat's timer is armed, and it asks again when it fires. Also says since when a view has had
// work, which is where the driver starts timing it for leader suspicion (a leader cannot be blamed
// for waiting while there was nothing to do).

import type { Clock } from './ports.ts';

export interface IdleWorkDeps {
  clock: Clock;
  /** Transactions in the pool, or a change waiting to be proposed. */
  pending(): boolean;
  /** Tells the engine (a `work` event). */
  tell(available: boolean): void;
}

export class IdleWork {
  readonly heartbeatMs: number;
  readonly #d: IdleWorkDeps;
  #lastCommitAt: number;
  /** The level last told to the engine (undefined: nothing told to this engine yet). */
  #told: boolean | undefined;
  /** Since when there has been work (told true), and its value when the last block committed. */
  #since: number | undefined;
  #sinceAtCommit: number | undefined;
  #timer: { cancel(): void } | undefined;
  #timerAt = 0;
  #stopped = false;

  constructor(heartbeatMs: number, d: IdleWorkDeps) {
    this.heartbeatMs = heartbeatMs;
    this.#d = d;
    this.#lastCommitAt = d.clock.now();
  }

  /** Says whether there is work when that changed; without work, arms the heartbeat's timer. */
  check(): void {
    if (this.#stopped) return;
    const now = this.#d.clock.now();
    const dueAt = this.#lastCommitAt + this.heartbeatMs;
    const available = this.#d.pending() || now >= dueAt;
    if (!available && this.#timerAt !== dueAt) {
      this.#timer?.cancel();
      this.#timerAt = dueAt;
      this.#timer = this.#d.clock.setTimeout(() => { this.#timerAt = 0; this.check(); }, dueAt - now);
    }
    if (available === this.#told) return;
    this.#told = available;
    this.#since = available ? now : undefined;
    this.#d.tell(available);
  }

  /** Something was added (the pool calls it for every transaction): cheap unless the engine was told there is none. */
  changed(): void {
    if (this.#told !== true) this.check();
  }

  /** A block committed: the engine cleared its level, and the heartbeat counts from now. */
  committed(): void {
    this.#lastCommitAt = this.#d.clock.now();
    this.#sinceAtCommit = this.#since;
    this.#told = false;
    this.#since = undefined;
    this.check();
  }

  /** A new engine (an epoch started) knows nothing of work yet. */
  reset(): void {
    this.#told = undefined;
    this.check();
  }

  /**
   * Where the timing of a view that just committed starts: when this member entered it
   * (`enteredAt`) or, later, when it had work; undefined when it had none (not timed).
   */
  timedFrom(enteredAt: number | undefined): number | undefined {
    return this.#sinceAtCommit === undefined || enteredAt === undefined ? undefined : Math.max(enteredAt, this.#sinceAtCommit);
  }

  stop(): void {
    this.#stopped = true;
    this.#timer?.cancel();
  }
}
