// The engine's in-memory block tree above the last committed block: ancestry questions for
// the lock rule and the parents-first chain to commit. Blocks below what the safety rules
// still need are pruned. Must never decide anything itself: it only answers questions.

import { bytesEqual, toHex } from './bytes.ts';
import type { Block, Hash } from './types.ts';

export type Ancestry = { result: 'yes' | 'no' } | { result: 'unknown'; missing: Hash };

export type CommitPath =
  | { kind: 'chain'; blocks: Block[] } // parents first, starting right above the committed tip
  | { kind: 'done' } // already committed (or older than the tip)
  | { kind: 'missing'; hash: Hash }
  | { kind: 'conflict'; height: number; conflicting: Hash };

export class BlockTree {
  readonly #blocks = new Map<string, Block>();
  #committed: Block;

  constructor(committed: Block) {
    this.#committed = committed;
    this.#blocks.set(toHex(committed.hash), committed);
  }

  get committed(): Block {
    return this.#committed;
  }

  get size(): number {
    return this.#blocks.size;
  }

  get(hex: string): Block | undefined {
    return this.#blocks.get(hex);
  }

  /** Adds a block (its hash already checked); false when it was known. */
  add(block: Block, hex: string = toHex(block.hash)): boolean {
    if (this.#blocks.has(hex)) return false;
    this.#blocks.set(hex, block);
    return true;
  }

  /** Does `block` extend (or equal) the block `ancestorHash`? */
  extendsBlock(block: Block, ancestorHash: Hash): Ancestry {
    const ancestor = this.#blocks.get(toHex(ancestorHash));
    if (!ancestor) return { result: 'unknown', missing: ancestorHash };
    let cur = block;
    while (cur.header.height > ancestor.header.height) {
      const parent = this.#blocks.get(toHex(cur.header.parentHash));
      if (!parent) return { result: 'unknown', missing: cur.header.parentHash };
      cur = parent;
    }
    return { result: bytesEqual(cur.hash, ancestor.hash) ? 'yes' : 'no' };
  }

  /** The uncommitted ancestors of `targetHex` (inclusive), parents first. */
  commitPath(target: Hash): CommitPath {
    const tip = this.#committed;
    let cur = this.#blocks.get(toHex(target));
    if (!cur) return { kind: 'missing', hash: target };
    if (cur.header.height < tip.header.height) return { kind: 'done' };
    if (cur.header.height === tip.header.height) {
      return bytesEqual(cur.hash, tip.hash) ? { kind: 'done' } : { kind: 'conflict', height: tip.header.height, conflicting: cur.hash };
    }
    const chain: Block[] = [];
    for (;;) {
      chain.push(cur);
      if (cur.header.height === tip.header.height + 1) {
        if (!bytesEqual(cur.header.parentHash, tip.hash)) {
          return { kind: 'conflict', height: tip.header.height, conflicting: cur.header.parentHash };
        }
        return { kind: 'chain', blocks: chain.reverse() };
      }
      const parent = this.#blocks.get(toHex(cur.header.parentHash));
      if (!parent) return { kind: 'missing', hash: cur.header.parentHash };
      cur = parent;
    }
  }

  /** Forget a block found invalid after it was added (its parent came later). */
  remove(hex: string): void {
    if (hex !== toHex(this.#committed.hash)) this.#blocks.delete(hex);
  }

  markCommitted(tip: Block): void {
    this.#committed = tip;
  }

  /** Forget every block below `height` (the committed tip and what the locks need stay). */
  prune(height: number): void {
    for (const [hex, b] of this.#blocks) if (b.header.height < height) this.#blocks.delete(hex);
  }
}
