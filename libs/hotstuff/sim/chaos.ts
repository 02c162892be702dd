// Seeded random scenarios beyond Twins: crashes and restarts, symmetric and one-way
// partitions, Byzantine members (never more than f), and a rough network until the heal.
// Scenario i of seed S is fully determined by (S, i). Must never exceed f faulty identities.

import { faultBound } from '../quorum.ts';
import { Prng, deriveSeed } from './prng.ts';
import type { ByzantineKind, CrashSpec, Scenario } from './scenario.ts';
import type { OneWayCut, TimedPartition } from './network.ts';

const SIZES = [4, 5, 7, 10] as const;
const KINDS: readonly ByzantineKind[] = ['silent', 'equivocator', 'double-voter', 'forking-leader'];

export function chaosScenario(seed: number, index: number): Scenario {
  const runSeed = deriveSeed(seed ^ 0xc4a05, index);
  const rng = new Prng(runSeed);
  const n = rng.pick(SIZES);
  const f = faultBound(n);
  const members = rng.int(f + 1); // Byzantine identities, ≤ f
  const byzantine: Record<number, ByzantineKind> = {};
  const ids = Array.from({ length: n }, (_, i) => i);
  for (let i = 0; i < members; i++) byzantine[ids.splice(rng.int(ids.length), 1)[0]!] = rng.pick(KINDS);
  const heal = 1000 + rng.int(4000);
  const partitions: TimedPartition[] = [];
  const cuts: OneWayCut[] = [];
  const crashes: CrashSpec[] = [];
  for (let i = rng.int(3); i > 0; i--) {
    const from = rng.int(heal);
    const split = 1 + rng.int(n - 1);
    const shuffled = shuffle(rng, Array.from({ length: n }, (_, x) => x));
    partitions.push({ fromMs: from, toMs: from + rng.int(heal - from), groups: [shuffled.slice(0, split), shuffled.slice(split)] });
  }
  for (let i = rng.int(3); i > 0; i--) {
    const from = rng.int(heal);
    const victim = rng.int(n);
    cuts.push({ fromMs: from, toMs: from + rng.int(heal - from), from: ids.filter((x) => x !== victim), to: [victim] });
  }
  for (let i = rng.int(3); i > 0; i--) {
    const at = rng.int(heal);
    crashes.push({ instance: rng.int(n), atMs: at, restartAtMs: at + rng.int(heal - at) });
  }
  return {
    n,
    seed: runSeed,
    byzantine,
    partitions,
    cuts,
    crashes,
    network: { minDelayMs: 1, maxDelayMs: 5 + rng.int(30), tailRate: rng.next() * 0.2, tailMaxMs: 300, dropRate: rng.next() * 0.2, duplicateRate: rng.next() * 0.2 },
    healAtMs: heal,
    liveness: { commits: 3, views: 10 * n + 20 },
    maxTimeMs: 120_000,
  };
}

function shuffle<T>(rng: Prng, xs: T[]): T[] {
  for (let i = xs.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [xs[i], xs[j]] = [xs[j]!, xs[i]!];
  }
  return xs;
}
