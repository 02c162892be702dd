// Retention of the block store (consensus.keep_blocks): after commits, the bodies and QCs of
// committed blocks older than the last keep_blocks are pruned (BlockStore.prune keeps their
// summaries, hashes, the transaction index and the epoch proofs). Pruning runs off the commit path,
// a bounded number of heights per write transaction with the event loop let in between, and only
// once PRUNE_STEP heights (or half of keep_blocks) are due, so a busy chain does not pay one more
// write per block.
// Nothing the publisher has not stored in JetStream yet is pruned (it reads blocks back from
// the store). A failed prune is logged and counted, and tried again at a later commit.

import type { Logger } from 'pino';
import { errorMessage } from '#libs/errors/index.ts';
import type { Metrics } from '#libs/metrics/index.ts';
import type { BlockStore } from './block-store.ts';

/** Heights due before a pruning run starts (half of keep_blocks when that is smaller). */
export const PRUNE_STEP = 64;
const stepFor = (keep: number): number => Math.max(1, Math.min(PRUNE_STEP, Math.floor(keep / 2)));
/** Heights pruned in one write transaction. */
const PRUNE_BATCH = 256;

export interface RetentionOptions {
  store: Pick<BlockStore, 'prune' | 'prunedTo' | 'committedHeight'>;
  /** consensus.keep_blocks: 0 keeps every block. */
  keep: number;
  log: Logger;
  metrics?: Metrics;
  /** The highest height already in JetStream, when a publisher reads blocks back from the store. */
  published?: () => number;
}

export class Retention {
  readonly #o: RetentionOptions;
  #keep: number;
  #running: Promise<void> | undefined;
  readonly #pruned: ReturnType<Metrics['counter']> | undefined;
  readonly #floor: ReturnType<Metrics['gauge']> | undefined;
  readonly #failures: ReturnType<Metrics['counter']> | undefined;

  constructor(o: RetentionOptions) {
    this.#o = o;
    this.#keep = o.keep;
    this.#pruned = o.metrics?.counter('consensus_blocks_pruned_total', 'Committed blocks whose body and QC this member pruned (consensus.keep_blocks)');
    this.#floor = o.metrics?.gauge('consensus_oldest_kept_height', 'The oldest committed height this member still keeps whole (1 while nothing is pruned)');
    this.#failures = o.metrics?.counter('consensus_prune_failures_total', 'Pruning writes the block store refused (tried again later)');
    this.#floor?.set(o.store.prunedTo() + 1);
  }

  get keep(): number { return this.#keep; }

  /** A new keep_blocks (hot reload): applies from the next commit. */
  setKeep(keep: number): void {
    if (keep === this.#keep) return;
    this.#o.log.info({ keepBlocks: keep, before: this.#keep }, 'block retention changed');
    this.#keep = keep;
    this.committed();
  }

  /** After a commit (and at start): prunes what has fallen out of the window, in the background. */
  committed(): void {
    const target = this.#target();
    if (target === undefined || this.#running || target - this.#o.store.prunedTo() < stepFor(this.#keep)) return;
    this.#running = this.#run(target).finally(() => { this.#running = undefined; });
  }

  /** Resolves once no pruning run is going on (tests, shutdown). */
  async idle(): Promise<void> {
    await this.#running;
  }

  #target(): number | undefined {
    if (this.#keep <= 0) return undefined;
    const target = this.#o.store.committedHeight() - this.#keep;
    return this.#o.published ? Math.min(target, this.#o.published()) : target;
  }

  async #run(target: number): Promise<void> {
    const { store, log } = this.#o;
    const from = store.prunedTo();
    try {
      let floor = from;
      while (floor < target) {
        const next = await store.prune(target, PRUNE_BATCH);
        if (next === floor) break;
        this.#pruned?.inc({}, next - floor);
        floor = next;
        this.#floor?.set(floor + 1);
        await new Promise((resolve) => setImmediate(resolve));
      }
      log.debug({ from: from + 1, to: floor, keepBlocks: this.#keep }, 'pruned committed blocks');
    } catch (err) {
      this.#failures?.inc();
      log.warn({ err: errorMessage(err), prunedTo: store.prunedTo(), target }, 'pruning the block store failed; tried again after a later commit');
    }
  }
}
