// An observer's follower: it asks peers (validators, or the observers it is told to follow) for
// the committed log above its own tip, accepts only what libs/verify proves committed against
// the validator set of the epoch it is in (every block linked and valid, the last one's COMMIT QC a
// quorum of valid SLH-DSA signatures), and appends it to its block store. It never votes, proposes
// or signs. A peer that serves anything else is refused, counted, and not asked again for a while;
// a peer that does not answer in time is passed over. One request is in flight at a time.
// Across epochs: a server stops a run at an epoch's last block and adds the proof that the epoch
// ended there; the follower checks it against the ending epoch's keys and set (libs/verify
// followEpoch) before it commits that run, records it, and checks what follows against the next
// epoch's set. Without `epochs` it follows genesis's epoch only, and stops at its end saying so.

import type { Logger } from 'pino';
import { toHex } from '#libs/crypto/index.ts';
import { errorMessage, isFedError } from '#libs/errors/index.ts';
import type { Block, QuorumCert } from '#libs/hotstuff/index.ts';
import { trustRootOf, verifyServedRun, type EpochChangeProof, type TrustRoot } from '#libs/verify/index.ts';
import type { ReconfigRules, ValidatorSet, Verify } from '#libs/validators/index.ts';
import { encodeFrame, type CertifiedBlock, type EpochEnd } from '#libs/wire/index.ts';
import type { BlockStore } from './block-store.ts';
import type { Clock, TransportPort } from './ports.ts';
import { MAX_SYNC_BLOCKS } from './sync.ts';
import { CheckpointJoin, type JoinFigures } from './checkpoint.ts';

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
/**
 * After a join from a checkpoint finishes, another is not started for this long: a source that
 * says "pruned" of heights just above the checkpoint (a liar, or one far behind a fast chain) is
 * passed over instead, so it cannot keep this follower joining.
 */
export const JOIN_AGAIN_AFTER_MS = 60_000;
/** A write of the block store that failed (a full disk) is tried again after this. */
const STORE_RETRY_MS = 1000;

export interface FollowerOptions {
  chainId: string;
  store: BlockStore;
  genesis: Block;
  /** The genesis validator set: what every served block is checked against (without `epochs`). */
  root: TrustRoot;
  /**
   * The chain's epochs (services/consensus/epochs.ts): served blocks are checked against the
   * current epoch's set, and a proven epoch end moves it on.
   */
  epochs?: FollowedEpochs;
  /** An epoch ended and the next one began (recorded): `set` is its validators. */
  epochStarted?(epoch: number, set: ValidatorSet, root: Block): void;
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
  /**
   * consensus.bootstrap: `auto` joins from a checkpoint (checkpoint.ts) when a source says it pruned
   * the blocks this follower lacks; `checkpoint` also does so at once from an empty store; `replay`
   * never does (every block from genesis, from a source that kept them). Needs `epochs`.
   */
  bootstrap?: 'auto' | 'checkpoint' | 'replay';
  /** A member being added: its name (a join from a checkpoint starts it at the epoch seating it). */
  member?: string;
  /**
   * A validator behind its peers' retention: join from a checkpoint at once, from whatever its
   * store holds (a catch-up, main.ts), and say so when it is done.
   */
  catchUp?: boolean;
  /** A join from a checkpoint finished: the store is whole again, its tip the checkpoint. */
  joinedCheckpoint?(figures: JoinFigures): void;
}

/** What the follower needs of ConsensusEpochs. */
export interface FollowedEpochs {
  readonly current: { readonly number: number; readonly set: ValidatorSet; readonly root: Block; readonly reconfig: { rules: ReconfigRules; verify: Verify } };
  verify(proof: EpochChangeProof): ValidatorSet;
  walk(proofs: readonly EpochChangeProof[]): ValidatorSet[];
  end(proof: EpochChangeProof): Promise<{ readonly number: number; readonly set: ValidatorSet; readonly root: Block }>;
}

interface Pending { requestId: number; from: number; fromHeight: number; timer: { cancel(): void } }

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
  /** Asked from below the tip: the tip ends an epoch whose proof is not recorded yet. */
  #tipEndUnknown = false;
  /** Set when it stopped for good: the chain moved on to an epoch it does not follow. */
  failure: Error | undefined = undefined;
  readonly stats = { requests: 0, timeouts: 0, refused: 0, unsolicited: 0, committed: 0, pruned: 0 };
  /** A join from a checkpoint under way, and the figures of the last one that finished. */
  #join: CheckpointJoin | undefined;
  joined: JoinFigures | undefined;
  #joinedAt = -Infinity;

  constructor(o: FollowerOptions) {
    this.#o = o;
  }

  get genesis(): Block { return this.#o.genesis; }

  isCommitted = (hash: Uint8Array): boolean => this.#o.store.hasTx(hash);

  status() {
    const committed = this.#o.store.committedHeight();
    const sourceHeight = Math.max(this.sourceHeight, committed);
    return { view: 0, phase: 'observer', leader: 0, lockedQcView: 0, highQcView: 0, paused: false, halted: false,
      observer: true, sourceHeight, behind: sourceHeight - committed, epoch: this.#o.epochs?.current.number ?? 0,
      ...(this.#join ? { joining: this.#join.phase } : {}) };
  }

  /** What served blocks are checked against: the current epoch's keys. */
  #root(): TrustRoot {
    const e = this.#o.epochs;
    return e ? trustRootOf(this.#o.chainId, e.current.set, this.#o.root.dsa) : this.#o.root;
  }

  start(): void {
    const { store, bootstrap } = this.#o;
    if (store.bootstrapping()) return this.#startJoin('a join from a checkpoint did not finish before the last stop: starting it again');
    if (bootstrap === 'checkpoint' && store.committedHeight() === 0) return this.#startJoin('consensus.bootstrap is checkpoint');
    if (this.#o.catchUp) return this.#startJoin('this validator is behind its peers\' retention: catching up');
    this.#schedule(0);
  }

  stop(): void {
    this.#stopped = true;
    this.#timer?.cancel();
    this.#pending?.timer.cancel();
    this.#join?.stop();
  }

  /** Joining from a checkpoint: normal following waits until the store is whole again. */
  #startJoin(why: string): void {
    const epochs = this.#o.epochs;
    if (!epochs || this.#join || this.#stopped) return;
    this.#o.log.warn({ why, committed: this.#o.store.committedHeight() }, 'joining from a checkpoint instead of replaying every block');
    this.#pending?.timer.cancel();
    this.#pending = undefined;
    const join = new CheckpointJoin({
      chainId: this.#o.chainId, store: this.#o.store, genesis: this.#o.genesis, epochs, dsa: this.#o.root.dsa, ...(this.#o.member ? { member: this.#o.member } : {}),
      transport: this.#o.transport, clock: this.#o.clock, log: this.#o.log, sources: () => this.#o.sources(),
      refused: (from, reason, detail) => this.#o.refused?.(from, reason, detail),
      epochStarted: (epoch, set, root) => this.#o.epochStarted?.(epoch, set, root),
    });
    this.#join = join;
    join.start();
    void join.done.then((figures) => {
      this.#join = undefined;
      this.joined = figures;
      this.#joinedAt = this.#o.clock.now();
      this.#bad.clear();
      this.#o.joinedCheckpoint?.(figures);
      this.#schedule(0);
    });
  }

  /** A checkpoint response: for the join under way, else dropped. */
  onCheckpoint(from: number, requestId: number, epochs: Parameters<CheckpointJoin['onCheckpoint']>[2], tip: Parameters<CheckpointJoin['onCheckpoint']>[3]): void {
    if (!this.#join?.expects(from, requestId)) { this.stats.unsolicited++; return; }
    this.#join.onCheckpoint(from, requestId, epochs, tip);
  }

  /** A history response: for the join under way, else dropped. */
  async onHistory(from: number, requestId: number, summaries: Parameters<CheckpointJoin['onHistory']>[2]): Promise<void> {
    if (!this.#join?.expects(from, requestId)) { this.stats.unsolicited++; return; }
    await this.#join.onHistory(from, requestId, summaries);
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
    if (this.#stopped || this.#pending || this.#join) return;
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
    const fromHeight = Math.max(0, this.#o.store.committedHeight() - (this.#tipEndUnknown ? 1 : 0));
    this.#pending = { requestId, from, fromHeight, timer };
    this.stats.requests++;
    this.#o.transport.send(from, encodeFrame(this.#o.chainId, { type: 'block-request', requestId, hashes: [], fromHeight, maxBlocks: MAX_SYNC_BLOCKS }));
  }

  /** A block response: appended if it proves itself, else refused and its sender passed over. */
  async onResponse(from: number, requestId: number, served: readonly CertifiedBlock[], epochEnd?: EpochEnd, oldestHeight = 0): Promise<void> {
    const p = this.#pending;
    if (!p || p.requestId !== requestId || p.from !== from) {
      this.stats.unsolicited++;
      this.#o.log.debug({ from, requestId }, 'unsolicited block response dropped');
      return;
    }
    p.timer.cancel();
    if (oldestHeight > 0) {
      // A server says "pruned" only of a request below what it keeps whole, naming the height
      // above that: an oldest_height at or below the first height asked for contradicts itself.
      if (oldestHeight <= p.fromHeight + 1) return this.#refuse(from, requestId, 0, `oldest_height ${oldestHeight}: says it pruned heights it keeps (asked from ${p.fromHeight + 1})`);
      // The source pruned what we lack (consensus.keep_blocks): not an offence, but no use to ask
      // it again soon. Unless told to replay every block, join from a checkpoint instead (at most
      // one join every JOIN_AGAIN_AFTER_MS); else, with every source so, this observer waits,
      // saying why once a minute a source.
      this.#pending = undefined;
      this.stats.pruned++;
      const now = this.#o.clock.now();
      const joinable = this.#o.epochs && (this.#o.bootstrap ?? 'auto') !== 'replay';
      if (joinable && now - this.#joinedAt >= JOIN_AGAIN_AFTER_MS) return this.#startJoin(`source ${from} keeps blocks from height ${oldestHeight} only`);
      this.#bad.set(from, now + BAD_SOURCE_MS);
      this.#o.log.warn({ from, oldestHeight, committed: this.#o.store.committedHeight(), skippedForMs: BAD_SOURCE_MS },
        joinable ? 'the source keeps blocks from a height above ours only, and a join from a checkpoint finished less than a minute ago: asking another'
          : 'the source keeps blocks from a height above ours only (consensus.keep_blocks): asking another; follow a member that keeps every block');
      return this.#schedule(0);
    }
    const { store, log } = this.#o;
    const height = store.committedHeight();
    const tip = height === 0 ? this.#o.genesis : store.blockAtHeight(height);
    if (!tip) {
      this.#pending = undefined;
      log.error({ height }, 'committed height has no block in the store');
      return this.#schedule(STORE_RETRY_MS);
    }
    // Blocks we hold already (asked again from below our tip to learn how its epoch ended) are skipped.
    let skip = 0;
    while (skip < served.length && served[skip]!.block.header.height <= height) {
      const mine = store.blockAtHeight(served[skip]!.block.header.height);
      if (!mine || Buffer.compare(mine.hash, served[skip]!.block.hash) !== 0) break;
      skip++;
    }
    const fresh = served.slice(skip);
    const root = this.#root();
    const epoch = root.epoch ?? 0;
    // Blocks of a later epoch are not ours to check (another set signs them): the run stops before them.
    const cut = fresh.findIndex((c) => c.block.header.epoch !== epoch);
    if (cut === 0 && !epochEnd) {
      this.#pending = undefined;
      if (this.#o.epochs) {
        // Our tip ends the epoch but its proof is not recorded (a stop between the two writes): ask
        // for the tip again, which comes with the proof. Nobody is blamed.
        this.#tipEndUnknown = true;
        return this.#schedule(IDLE_POLL_MS);
      }
      this.failure = new Error(`the chain moved on to epoch ${fresh[0]!.block.header.epoch} at height ${fresh[0]!.block.header.height}; this follower follows epoch ${epoch} only`);
      this.#stopped = true;
      log.error({ from, epoch: fresh[0]!.block.header.epoch, height: fresh[0]!.block.header.height }, this.failure.message);
      return;
    }
    const run = cut < 0 ? fresh : fresh.slice(0, cut);
    const current = this.#o.epochs?.current;
    const verdict = verifyServedRun(root, tip, run, (id) => store.hasTx(id), current ? { set: current.set, ...current.reconfig } : undefined);
    if (!verdict.ok) return this.#refuse(from, requestId, served.length, verdict.reason);
    // The epoch's end, with its proof: every block of the run up to it is committed by the proof.
    let ended: EpochChangeProof | undefined;
    if (epochEnd && this.#o.epochs) {
      // The proof is of the last block served: the run's last, or our tip served again.
      const last = served[served.length - 1]!.block;
      if (cut >= 0 || (run.length === 0 && last.header.height !== height)) return this.#refuse(from, requestId, served.length, 'epoch_end: the run goes on past the block it says ends the epoch');
      ended = { last, suffix: epochEnd.suffix, qc: epochEnd.qc };
      try {
        this.#o.epochs.verify(ended);
      } catch (err) {
        return this.#refuse(from, requestId, served.length, `epoch end: ${errorMessage(err)}`);
      }
    }
    this.sourceHeight = Math.max(this.sourceHeight, verdict.servedTop);
    const blocks = ended ? run.map((r) => r.block) : verdict.blocks;
    if (blocks.length === 0 && !ended) {
      this.#pending = undefined;
      return this.#schedule(IDLE_POLL_MS);
    }
    const qc = ended ? ended.qc : verdict.qc!;
    try {
      if (blocks.length > 0) await store.commit(blocks, qc);
    } catch (err) {
      return this.#notStored(err, 'verified blocks not stored');
    }
    this.stats.committed += blocks.length;
    // Committed before the epoch moves on, as a validator's driver reports them: what is told of
    // these blocks and their QC (the metrics count its signers by index) is of the ending epoch's set.
    if (blocks.length > 0) {
      const last = blocks[blocks.length - 1]!;
      log.debug({ from, height: last.header.height, hash: toHex(last.hash), blocks: blocks.length }, 'followed');
      this.#o.committed?.(blocks, qc);
    }
    if (ended) {
      try {
        const next = await this.#o.epochs!.end(ended);
        log.warn({ epoch: next.number, validators: next.set.n, height: ended.last.header.height }, 'epoch ended: following the next epoch\'s set');
        // Sources are numbered by the set in force: after a removal a number names another member,
        // and a liar's mark would fall on whoever holds its number now.
        this.#bad.clear();
        this.#o.epochStarted?.(next.number, next.set, next.root);
      } catch (err) {
        // The tip now ends an epoch whose proof is not recorded: asked for again, with its proof.
        this.#tipEndUnknown = true;
        return this.#notStored(err, 'epoch end not recorded');
      }
    }
    // The tip moved, or its epoch's end is recorded: no reason left to ask from below the tip
    // (a source that served the next epoch's blocks early sent us there).
    this.#tipEndUnknown = false;
    this.storageError = undefined;
    this.#pending = undefined;
    if (this.#stopped) return;
    // More may be waiting: ask again at once.
    this.#schedule(0);
  }

  /** A write of the block store failed (a full disk): tried again after STORE_RETRY_MS. */
  #notStored(err: unknown, what: string): void {
    this.#pending = undefined;
    this.storageError = errorMessage(err);
    this.#o.log.error({ err: this.storageError, code: isFedError(err) ? err.code : undefined, retryInMs: STORE_RETRY_MS }, what);
    this.#schedule(STORE_RETRY_MS);
  }

  #refuse(from: number, requestId: number, blocks: number, reason: string): void {
    this.#pending = undefined;
    this.stats.refused++;
    this.#bad.set(from, this.#o.clock.now() + BAD_SOURCE_MS);
    this.#o.log.warn({ from, requestId, blocks, reason, skippedForMs: BAD_SOURCE_MS }, 'served blocks refused: they do not prove themselves');
    this.#o.refused?.(from, 'invalid_blocks', reason);
    this.#schedule(0);
  }
}
