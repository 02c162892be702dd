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

  /**
   * Forget every block below `height` (the committed tip and what the locks need stay), and keep
   * blocks below the committed tip as headers only: ancestry questions need nothing else, and
   * their transactions are in the committed log. Without this, a member whose lock is old (one
   * catching up thousands of blocks) would hold every block it commits in memory.
   */
  prune(height: number): void {
    const tip = this.#committed.header.height;
    for (const [hex, b] of this.#blocks) {
      if (b.header.height < height) this.#blocks.delete(hex);
      else if (b.header.height < tip && b.txs.length > 0) this.#blocks.set(hex, { ...b, txs: [] });
    }
  }

  /** A block with its transactions, or undefined (unknown, or below the committed tip: read the log). */
  full(hex: string): Block | undefined {
    const b = this.#blocks.get(hex);
    return b && (b.header.height >= this.#committed.header.height || b.txs.length > 0) ? b : undefined;
  }
}
