// The Twins generator (Bano et al., 2021): N identities, some of which run twice with one
// key; per round (= view) a leader and a partition of the instances into at most `blocks`
// groups of which one holds a quorum of identities; R rounds, then the network heals.
// The space is enumerated exhaustively (mixed radix over the per-round choices) for small
// R, and sampled with a seeded Prng beyond. Must never produce a scenario it cannot
// reproduce from (family, index, seed).

import { quorumSize } from '../quorum.ts';
import type { TwinsRound } from './network.ts';
import { Prng } from './prng.ts';
import type { Scenario } from './scenario.ts';

export interface TwinsFamily {
  name: string;
  n: number;
  /** Identities that get a twin. */
  twins: number[];
  rounds: number;
  /** Most groups in one round's partition. */
  blocks: number;
  mode: 'exhaustive' | 'sampled';
}

/** Every partition of the instances into ≤ maxBlocks groups with one group holding a quorum. */
export function quorumPartitions(n: number, twins: number[], maxBlocks: number): number[][][] {
  const ids = [...Array.from({ length: n }, (_, i) => i), ...twins];
  const m = ids.length;
  const q = quorumSize(n);
  const out: number[][][] = [];
  // Restricted-growth strings enumerate set partitions without repeats.
  const assign = new Array<number>(m).fill(0);
  const walk = (i: number, used: number): void => {
    if (i === m) {
      const groups: number[][] = Array.from({ length: used }, () => []);
      assign.forEach((g, inst) => groups[g]!.push(inst));
      if (groups.some((g) => new Set(g.map((inst) => ids[inst]!)).size >= q)) out.push(groups);
      return;
    }
    for (let g = 0; g <= Math.min(used, maxBlocks - 1); g++) {
      assign[i] = g;
      walk(i + 1, Math.max(used, g + 1));
    }
  };
  assign[0] = 0;
  walk(1, 1);
  return out;
}

export class TwinsGenerator {
  readonly family: TwinsFamily;
  readonly partitions: number[][][];
  /** Choices per round: partition × leader. */
  readonly perRound: number;
  /** Size of the whole space (may exceed 2^53 for large R: then only sampling makes sense). */
  readonly size: number;

  constructor(family: TwinsFamily) {
    this.family = family;
    this.partitions = quorumPartitions(family.n, family.twins, family.blocks);
    this.perRound = this.partitions.length * family.n;
    this.size = this.perRound ** family.rounds;
  }

  /** The rounds of scenario `index`: exhaustive order for 'exhaustive', seeded otherwise. */
  rounds(index: number, seed: number): TwinsRound[] {
    const f = this.family;
    const out: TwinsRound[] = [];
    if (f.mode === 'exhaustive') {
      let x = index % this.size;
      for (let r = 0; r < f.rounds; r++) {
        const choice = x % this.perRound;
        x = Math.floor(x / this.perRound);
        out.push(this.#round(choice));
      }
      return out;
    }
    const rng = new Prng(seed);
    for (let r = 0; r < f.rounds; r++) out.push(this.#round(rng.int(this.perRound)));
    return out;
  }

  #round(choice: number): TwinsRound {
    const n = this.family.n;
    return { leader: choice % n, groups: this.partitions[Math.floor(choice / n)]! };
  }

  scenario(index: number, seed: number, extra: Partial<Scenario> = {}): Scenario {
    const f = this.family;
    return {
      n: f.n,
      seed,
      twins: f.twins,
      rounds: this.rounds(index, seed),
      network: { minDelayMs: 1, maxDelayMs: 10, tailRate: 0.05, tailMaxMs: 120 },
      timeouts: { baseMs: 60, multiplier: 1.5, capMs: 600 },
      liveness: { commits: 2, views: 6 * f.n + 10 },
      maxTimeMs: 60_000,
      ...extra,
    };
  }
}

/** The campaign CI runs: N = 4 with one twin (exhaustive R = 2, sampled R = 4), N = 7 with two. */
export const CAMPAIGN_FAMILIES: readonly TwinsFamily[] = [
  { name: 'n4-t1-r2-exhaustive', n: 4, twins: [0], rounds: 2, blocks: 2, mode: 'exhaustive' },
  { name: 'n4-t1-r4-sampled', n: 4, twins: [0], rounds: 4, blocks: 2, mode: 'sampled' },
  { name: 'n7-t2-r3-sampled', n: 7, twins: [0, 1], rounds: 3, blocks: 2, mode: 'sampled' },
];
