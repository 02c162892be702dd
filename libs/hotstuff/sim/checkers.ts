// Safety checkers, run on every commit and every signature request of every step:
//  - agreement: no two honest members commit different blocks at the same height;
//  - order: each honest member's commits extend its previous one by exactly one height
//    (monotone, exactly once, parents first) — across crashes and restarts too;
//  - one vote: an honest member asks for at most one vote signature per (view, phase).
// Byzantine identities (silent, equivocating, double voters, twins) are excluded; honest
// members must stay safe regardless. Liveness is checked by the simulator loop.
// Must never excuse a violation: every one is recorded with the step that caused it.

import { toHex } from '../bytes.ts';
import type { Block } from '../types.ts';

export type ViolationKind = 'agreement' | 'order' | 'double-vote' | 'liveness' | 'halted';

export interface Violation {
  kind: ViolationKind;
  step: number;
  atMs: number;
  instance: number;
  detail: string;
}

export class Checkers {
  readonly violations: Violation[] = [];
  readonly #honest: (identity: number) => boolean;
  readonly #byHeight = new Map<number, string>();
  readonly #tips = new Map<number, { height: number; hex: string }>();
  readonly #votes = new Set<string>();
  step = 0;
  now = 0;

  constructor(honest: (identity: number) => boolean, genesis: Block) {
    this.#honest = honest;
    this.#byHeight.set(0, toHex(genesis.hash));
  }

  #add(kind: ViolationKind, instance: number, detail: string): void {
    this.violations.push({ kind, step: this.step, atMs: this.now, instance, detail });
  }

  onCommit(instance: number, identity: number, blocks: Block[]): void {
    if (!this.#honest(identity)) return;
    let tip = this.#tips.get(instance) ?? { height: 0, hex: this.#byHeight.get(0)! };
    for (const b of blocks) {
      const hex = toHex(b.hash);
      const h = b.header.height;
      if (h !== tip.height + 1 || toHex(b.header.parentHash) !== tip.hex) {
        this.#add('order', instance, `committed height ${h} after ${tip.height} (parent link ${toHex(b.header.parentHash) === tip.hex})`);
      }
      const other = this.#byHeight.get(h);
      if (other === undefined) this.#byHeight.set(h, hex);
      else if (other !== hex) this.#add('agreement', instance, `height ${h}: ${hex.slice(0, 12)} vs ${other.slice(0, 12)}`);
      tip = { height: h, hex };
    }
    this.#tips.set(instance, tip);
  }

  onVoteRequest(instance: number, identity: number, view: number, phase: number): void {
    if (!this.#honest(identity)) return;
    const key = `${identity}:${view}:${phase}`;
    if (this.#votes.has(key)) this.#add('double-vote', instance, `second vote signature for view ${view} phase ${phase}`);
    this.#votes.add(key);
  }

  onHalt(instance: number, identity: number, detail: string): void {
    if (this.#honest(identity)) this.#add('halted', instance, detail);
  }

  onLiveness(detail: string): void {
    this.#add('liveness', -1, detail);
  }

  committedHeight(instance: number): number {
    return this.#tips.get(instance)?.height ?? 0;
  }

  /** The highest height any honest member committed. */
  get agreedHeight(): number {
    return this.#byHeight.size - 1;
  }
}
