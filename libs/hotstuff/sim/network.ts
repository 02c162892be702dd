// The simulated network: per-message delay (with a long tail, which reorders), drops and
// duplicates until the network heals, symmetric partitions and one-way cuts by virtual
// time, and Twins partitions by the view a message belongs to. Must never deliver across a
// partition, and must draw every random number from the run's Prng.

import type { ConsensusMessage } from '../types.ts';
import type { Prng } from './prng.ts';

export interface NetworkSpec {
  minDelayMs: number;
  maxDelayMs: number;
  /** Share of messages that take a long path (uniform up to tailMaxMs): reordering. */
  tailRate: number;
  tailMaxMs: number;
  dropRate: number;
  duplicateRate: number;
}

export const DEFAULT_NETWORK: NetworkSpec = {
  minDelayMs: 1,
  maxDelayMs: 10,
  tailRate: 0,
  tailMaxMs: 100,
  dropRate: 0,
  duplicateRate: 0,
};

/** Instances in different groups cannot talk between fromMs and toMs. */
export interface TimedPartition {
  fromMs: number;
  toMs: number;
  groups: number[][];
}

/** Messages from `from` instances to `to` instances are lost between fromMs and toMs. */
export interface OneWayCut {
  fromMs: number;
  toMs: number;
  from: number[];
  to: number[];
}

/** Twins: messages of view r+1 pass only inside a group of rounds[r]. */
export interface TwinsRound {
  leader: number;
  groups: number[][];
}

/** The view a message belongs to, for Twins partitions (a NEW-VIEW belongs to the view it leaves). */
export function messageView(m: ConsensusMessage): number {
  switch (m.type) {
    case 'proposal':
    case 'vote':
      return m.view;
    case 'qc':
      return m.qc.view;
    case 'new-view':
      return m.view - 1;
  }
}

export class Network {
  readonly spec: NetworkSpec;
  readonly #rng: Prng;
  readonly #partitions: TimedPartition[];
  readonly #cuts: OneWayCut[];
  readonly #rounds: { group: Map<number, number> }[];

  constructor(spec: NetworkSpec, rng: Prng, partitions: TimedPartition[], cuts: OneWayCut[], rounds: TwinsRound[]) {
    this.spec = spec;
    this.#rng = rng;
    this.#partitions = partitions;
    this.#cuts = cuts;
    this.#rounds = rounds.map((r) => ({ group: groupIndex(r.groups) }));
  }

  /** Can a message of `view` go from instance a to instance b at time now? */
  connected(a: number, b: number, now: number, view: number): boolean {
    for (const p of this.#partitions) {
      if (now >= p.fromMs && now < p.toMs && groupOf(p.groups, a) !== groupOf(p.groups, b)) return false;
    }
    for (const c of this.#cuts) {
      if (now >= c.fromMs && now < c.toMs && c.from.includes(a) && c.to.includes(b)) return false;
    }
    const round = view >= 1 ? this.#rounds[view - 1] : undefined;
    if (round && round.group.get(a) !== round.group.get(b)) return false;
    return true;
  }

  /** Delivery delays for one transmission: [] if dropped, two if duplicated. Drops,
   *  duplicates and the long tail only happen while the network is `rough` (before the heal). */
  delays(rough: boolean): number[] {
    const s = this.spec;
    const rng = this.#rng;
    if (rough && rng.chance(s.dropRate)) return [];
    const one = (): number =>
      rough && rng.chance(s.tailRate) ? rng.range(s.maxDelayMs, s.tailMaxMs) : rng.range(s.minDelayMs, s.maxDelayMs);
    const first = one();
    return rough && rng.chance(s.duplicateRate) ? [first, one()] : [first];
  }
}

function groupIndex(groups: number[][]): Map<number, number> {
  const m = new Map<number, number>();
  groups.forEach((g, i) => g.forEach((x) => m.set(x, i)));
  return m;
}

function groupOf(groups: number[][], x: number): number {
  for (let i = 0; i < groups.length; i++) if (groups[i]!.includes(x)) return i;
  return -1 - x; // not listed: alone
}
