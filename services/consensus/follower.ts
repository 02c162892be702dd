// An observer's follower: it asks peers (validators, or the observers it is told to follow) for
// the committed log above its own tip, accepts only what libs/verify proves committed against
// the genesis validator set (every block linked and valid, the last one's COMMIT QC a quorum of
// valid SLH-DSA signatures), and appends it to its block store. It never votes, proposes or
// signs. A peer that serves anything else is refused, counted, and not asked again for a while;
// a peer that does not answer in time is passed over. One request is in flight at a time.
// It follows its trust root's epoch only: once the chain's committed log moves on to a later epoch
// it stops there, saying so (following across epochs is not built: docs/reconfiguration.md), and
// blames no source for blocks of another epoch.

import type { Logger } from 'pino';
import { toHex } from '#libs/crypto/index.ts';
import { errorMessage, isFedError } from '#libs/errors/index.ts';
import type { Block, QuorumCert } from '#libs/hotstuff/index.ts';
import { verifyServedRun, type TrustRoot } from '#libs/verify/index.ts';
import { encodeFrame, type CertifiedBlock } from '#libs/wire/index.ts';
import type { BlockStore } from './block-store.ts';
import type { Clock, TransportPort } from './ports.ts';
import { MAX_SYNC_BLOCKS } from './sync.ts';

/**
 * While following other observers, every ANCHOR_EVERY-th request goes to a validator instead: a
 * followed observer that falls behind (or withholds) holds its followers back by at most this
 * many requests, and the validators see 1 in ANCHOR_EVERY of their requests.
 */
export const ANCHOR_EVERY = 16;
/** Between polls of a source that had nothing new: above the server's repeat window (250 ms). */
export const IDLE_POLL_MS = 300;
/** A source that has not answered within this is passed over. */
export const REQUEST_TIMEOUT_MS = 3000;
/** A source that served an invalid run is not asked again for this long. */
export const BAD_SOURCE_MS = 60_000;
/** A write of the block store that failed (a full disk) is tried again after this. */
const STORE_RETRY_MS = 1000;

export interface FollowerOptions {
  chainId: string;
  store: BlockStore;
  genesis: Block;
  /** The genesis validator set: what every served block is checked against. */
  root: TrustRoot;
  transport: TransportPort;
  clock: Clock;
  log: Logger;
  /** The peers to ask, connected now, in preference order (validator indices or outside ids). */
  sources(): number[];
  /**
   * The validators connected now, when `sources` are other observers: asked every ANCHOR_EVERY-th
   * request, so a stale followed observer cannot hold this one back for long.
   */
  anchors?(): number[];
  committed?(blocks: readonly Block[], qc: QuorumCert): void;
  /** A response refused: `from` served something that does not prove itself (counted, logged). */
  refused?(from: number, reason: string, detail: string): void;
}

interface Pending { requestId: number; from: number; timer: { cancel(): void } }

export class Follower {
  readonly #o: FollowerOptions;
  #pending: Pending | undefined;
  #timer: { cancel(): void } | undefined;
  #nextId = 1;
  #turn = 0;
  #asked = 0;
  #stopped = false;
  /** Sources refused until the given time (they served an invalid run). */
  readonly #bad = new Map<number, number>();
  /** The highest committed height any source has shown (served blocks of its log). */
  sourceHeight = 0;
  /** Set while a write of the block store fails (retried). */
  storageError: string | undefined;
  /** Set when it stopped for good: the chain moved on to an epoch it does not follow. */
  failure: Error | undefined = undefined;
  readonly stats = { requests: 0, timeouts: 0, refused: 0, unsolicited: 0, committed: 0 };

  constructor(o: FollowerOptions) {
    this.#o = o;
  }

  get genesis(): Block { return this.#o.genesis; }

  isCommitted = (hash: Uint8Array): boolean => this.#o.store.hasTx(hash);

  status() {
    const committed = this.#o.store.committedHeight();
    const sourceHeight = Math.max(this.sourceHeight, committed);
    return { view: 0, phase: 'observer', leader: 0, lockedQcView: 0, highQcView: 0, paused: false, halted: false,
      observer: true, sourceHeight, behind: sourceHeight - committed, epoch: 0 };
  }

  start(): void { this.#schedule(0); }

  stop(): void {
    this.#stopped = true;
    this.#timer?.cancel();
    this.#pending?.timer.cancel();
  }

  #schedule(ms: number): void {
    if (this.#stopped) return;
    this.#timer?.cancel();
    this.#timer = this.#o.clock.setTimeout(() => { this.#timer = undefined; this.#poll(); }, ms);
  }

  /** The next source to ask: round robin over those connected and not refused lately (now and then an anchor). */
  #source(): number | undefined {
    const now = this.#o.clock.now();
    for (const [peer, until] of this.#bad) if (until <= now) this.#bad.delete(peer);
    const usable = (peers: number[]) => peers.filter((s) => !this.#bad.has(s));
    const ok = usable(this.#o.sources());
    const anchors = usable(this.#o.anchors?.() ?? []).filter((a) => !ok.includes(a));
    if (anchors.length > 0 && (ok.length === 0 || ++this.#asked % ANCHOR_EVERY === 0)) return anchors[this.#turn++ % anchors.length];
    if (ok.length === 0) return undefined;
    return ok[this.#turn++ % ok.length];
  }

  #poll(): void {
    if (this.#stopped || this.#pending) return;
    const from = this.#source();
    if (from === undefined) return this.#schedule(IDLE_POLL_MS);
    const requestId = this.#nextId++;
    const timer = this.#o.clock.setTimeout(() => {
      if (this.#pending?.requestId !== requestId) return;
      this.#pending = undefined;
      this.stats.timeouts++;
      this.#o.log.debug({ from, requestId }, 'no answer in time: asking another source');
      this.#poll();
    }, REQUEST_TIMEOUT_MS);
    this.#pending = { requestId, from, timer };
    this.stats.requests++;
    this.#o.transport.send(from, encodeFrame(this.#o.chainId, {
      type: 'block-request', requestId, hashes: [], fromHeight: this.#o.store.committedHeight(), maxBlocks: MAX_SYNC_BLOCKS,
    }));
  }

  /** A block response: appended if it proves itself, else refused and its sender passed over. */
  async onResponse(from: number, requestId: number, served: readonly CertifiedBlock[]): Promise<void> {
    const p = this.#pending;
    if (!p || p.requestId !== requestId || p.from !== from) {
      this.stats.unsolicited++;
      this.#o.log.debug({ from, requestId }, 'unsolicited block response dropped');
      return;
    }
    p.timer.cancel();
    const { store, log } = this.#o;
    const height = store.committedHeight();
    const tip = height === 0 ? this.#o.genesis : store.blockAtHeight(height);
    if (!tip) {
      this.#pending = undefined;
      log.error({ height }, 'committed height has no block in the store');
      return this.#schedule(STORE_RETRY_MS);
    }
    // Blocks of a later epoch are not ours to check (another set signs them): the run stops before them.
    const epoch = this.#o.root.epoch ?? 0;
    const cut = served.findIndex((c) => c.block.header.epoch !== epoch);
    if (cut === 0) {
      this.#pending = undefined;
      this.failure = new Error(`the chain moved on to epoch ${served[0]!.block.header.epoch} at height ${served[0]!.block.header.height}; this observer follows epoch ${epoch} only (observers across epochs are not built yet)`);
      this.#stopped = true;
      log.error({ from, epoch: served[0]!.block.header.epoch, height: served[0]!.block.header.height }, this.failure.message);
      return;
    }
    const run = cut < 0 ? served : served.slice(0, cut);
    const verdict = verifyServedRun(this.#o.root, tip, run, (id) => store.hasTx(id));
    if (!verdict.ok) {
      this.#pending = undefined;
      this.stats.refused++;
      this.#bad.set(from, this.#o.clock.now() + BAD_SOURCE_MS);
      log.warn({ from, requestId, blocks: served.length, reason: verdict.reason, skippedForMs: BAD_SOURCE_MS }, 'served blocks refused: they do not prove themselves');
      this.#o.refused?.(from, 'invalid_blocks', verdict.reason);
      return this.#schedule(0);
    }
    this.sourceHeight = Math.max(this.sourceHeight, verdict.servedTop);
    if (verdict.blocks.length === 0) {
      this.#pending = undefined;
      return this.#schedule(IDLE_POLL_MS);
    }
    try {
      await store.commit(verdict.blocks, verdict.qc!);
      this.storageError = undefined;
    } catch (err) {
      this.#pending = undefined;
      this.storageError = errorMessage(err);
      log.error({ err: this.storageError, code: isFedError(err) ? err.code : undefined, retryInMs: STORE_RETRY_MS }, 'verified blocks not stored');
      return this.#schedule(STORE_RETRY_MS);
    }
    this.#pending = undefined;
    this.stats.committed += verdict.blocks.length;
    const last = verdict.blocks[verdict.blocks.length - 1]!;
    log.debug({ from, height: last.header.height, hash: toHex(last.hash), blocks: verdict.blocks.length }, 'followed');
    this.#o.committed?.(verdict.blocks, verdict.qc!);
    // More may be waiting: ask again at once.
    this.#schedule(0);
  }
}
