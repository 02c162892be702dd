// When a validator is behind every peer's retention (consensus.keep_blocks): its block requests
// are answered "pruned", and waiting for a peer that keeps the blocks may never end. Once f + 1
// distinct validators of its epoch have said so since it last committed, at least one of them is
// honest, and the member starts again to join from a checkpoint (main.ts). Fewer — f Byzantine
// members lying in concert — never trigger it; a commit (which every epoch boundary is) starts the
// count again, so indices of an older epoch never mix with the new one's.

export class BehindRetention {
  readonly #f: () => number;
  readonly #peers = new Set<number>();
  #tripped = false;

  /** `f`: the current epoch's fault bound. */
  constructor(f: () => number) {
    this.#f = f;
  }

  /**
   * A "pruned" answer from validator `from` that passed the sync client's checks. Returns the peers
   * that said so, sorted, the first time they are f + 1; undefined otherwise.
   */
  answered(from: number): number[] | undefined {
    if (this.#tripped) return undefined;
    this.#peers.add(from);
    if (this.#peers.size <= this.#f()) return undefined;
    this.#tripped = true;
    return [...this.#peers].sort((a, b) => a - b);
  }

  /** The member committed: the blocks it lacked reached it after all. */
  committed(): void {
    this.#peers.clear();
  }

  /** The catch-up could not be asked for: count again from nothing. */
  failed(): void {
    this.#tripped = false;
    this.#peers.clear();
  }
}
