// Quorum arithmetic and the default leader rotation. Counted over the WHOLE validator set:
// shrinking the denominator to "active" peers would break safety under a partition.
// Must never depend on anything but N and the view.

/** f = ⌊(N−1)/3⌋: the number of Byzantine members tolerated. */
export function faultBound(n: number): number {
  return Math.floor((n - 1) / 3);
}

/**
 * ⌈(N+f+1)/2⌉: any two quorums share at least f+1 members, hence one honest member.
 * Equals 2f+1 only when N = 3f+1; N = 1 gives 1 (a single member commits alone).
 */
export function quorumSize(n: number): number {
  return Math.ceil((n + faultBound(n) + 1) / 2);
}

/** Leader of a view under the default round-robin rotation. */
export function roundRobinLeader(view: number, n: number): number {
  return view % n;
}
