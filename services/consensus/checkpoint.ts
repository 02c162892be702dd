// Joining from a checkpoint: how a follower (an observer, or a member being added) that lacks
// blocks its peers have pruned starts its log from a recent committed block instead of from
// genesis, trusting nobody but genesis's validator set. Three steps:
//
// 1. Checkpoint, from one source: the proofs of the epochs that ended since ours (checked in order
//    against each ending epoch's keys and set, libs/verify followEpoch, nothing recorded yet) and a
//    committed block of the epoch they lead to with its COMMIT QC (checked against that epoch's
//    keys: a quorum of valid SLH-DSA signatures).
// 2. History, from any source, newest first: each height's summary (header and transaction ids),
//    checked to be the block its child names as parent (the header's hash) with the transactions
//    its header commits to (the ids' Merkle root), down to our own tip (genesis for an empty store),
//    whose hash the last one must name. Written as it is checked (BlockStore.importHistory): the
//    transaction index stays whole, so exactly-once refuses a transaction committed anywhere in the
//    history, as it does for a member that replayed every block. Some 200 bytes a height and 32 a
//    transaction, where replaying costs each block with its QC (~90 KiB with 128f at N = 4).
// 3. Start: the checkpoint becomes the committed tip (the heights below count as pruned), the
//    epoch proofs are recorded in order, and the mark saying the store is not whole is cleared.
//    A restart before that starts the join again (what was written is written again, identical).
//
// A source that serves anything that does not check out is refused, counted, and not asked again
// for a while; one that does not answer in time, or has nothing, is passed over.

import type { Logger } from 'pino';
import { blockHash, merkleRoot, toHex, type SlhDsa } from '#libs/crypto/index.ts';
import { errorMessage } from '#libs/errors/index.ts';
import { headerError, type Block, type Hash, type QuorumCert } from '#libs/hotstuff/index.ts';
import type { ValidatorSet } from '#libs/validators/index.ts';
import { trustRootOf, verifyCommitted, type EpochChangeProof } from '#libs/verify/index.ts';
import { MAX_HISTORY_SUMMARIES, encodeFrame, type BlockSummary, type CertifiedBlock, type WireEpochProof } from '#libs/wire/index.ts';
import type { BlockStore } from './block-store.ts';
import type { Clock, TransportPort } from './ports.ts';

/** A source that has not answered within this is passed over. */
export const JOIN_REQUEST_TIMEOUT_MS = 5000;
/** A source that served what does not check out is not asked again for this long. */
export const JOIN_BAD_SOURCE_MS = 60_000;
/** Between rounds when no source is usable. */
const JOIN_IDLE_MS = 500;
/** Most epoch proofs held in memory while they are walked (each carries its epoch's last block). */
export const MAX_JOIN_EPOCHS = 1024;

/** What the join needs of ConsensusEpochs. */
export interface JoinEpochs {
  readonly current: { readonly number: number; readonly set: ValidatorSet };
  walk(proofs: readonly EpochChangeProof[]): ValidatorSet[];
  end(proof: EpochChangeProof): Promise<{ readonly number: number; readonly set: ValidatorSet; readonly root: Block }>;
}

export interface JoinOptions {
  chainId: string;
  /**
   * This member's name when it is a member being added: an epoch the proofs show seating it is
   * where it starts (that epoch's first block, as a validator), not the source's tip.
   */
  member?: string;
  store: Pick<BlockStore, 'committedHeight' | 'hashAtHeight' | 'beginBootstrap' | 'importHistory' | 'startAt' | 'finishBootstrap'>;
  genesis: Block;
  epochs: JoinEpochs;
  dsa: Pick<SlhDsa, 'verifySync'>;
  transport: TransportPort;
  clock: Clock;
  log: Logger;
  /** The peers to ask, connected now. */
  sources(): number[];
  /** A source served what does not check out (counted, logged by the caller). */
  refused?(from: number, reason: string, detail: string): void;
  /** An epoch recorded at the end of the join (the follower's epochStarted). */
  epochStarted?(epoch: number, set: ValidatorSet, root: Block): void;
}

export interface JoinFigures { checkpointHeight: number; epochs: number; heights: number; transactions: number; ms: number }

interface Pending { requestId: number; from: number; kind: 'checkpoint' | 'history'; timer: { cancel(): void } }

export class CheckpointJoin {
  readonly #o: JoinOptions;
  readonly #bad = new Map<number, number>();
  #pending: Pending | undefined;
  #timer: { cancel(): void } | undefined;
  #nextId = 1;
  #turn = 0;
  #stopped = false;
  readonly #started: number;
  /** Step 1: proofs walked so far (from the current epoch on) and the sets they lead to; the source asked. */
  #proofs: EpochChangeProof[] = [];
  #sets: ValidatorSet[] = [];
  #source: number | undefined;
  /** Step 2: the checkpoint, and the next height (below it) whose summary is awaited, with the hash it must have. */
  #tip: { block: Block; qc: QuorumCert } | undefined;
  #expect: { height: number; hash: Hash } | undefined;
  #marked = false;
  #heights = 0;
  #txs = 0;
  #resolve!: (f: JoinFigures) => void;
  /** Resolves once the store is whole, with the join's figures. */
  readonly done: Promise<JoinFigures>;
  readonly stats = { requests: 0, timeouts: 0, refused: 0, empty: 0 };

  constructor(o: JoinOptions) {
    this.#o = o;
    this.#started = o.clock.now();
    this.done = new Promise((resolve) => { this.#resolve = resolve; });
  }

  /** What it is doing, for status and readiness. */
  get phase(): string {
    if (!this.#tip) return `checkpoint: ${this.#proofs.length} epoch proof(s) walked`;
    if (this.#expect) return `history: ${this.#heights} of ${this.#tip.block.header.height - 1 - this.#o.store.committedHeight()} heights below the checkpoint at ${this.#tip.block.header.height}`;
    return 'starting';
  }

  start(): void {
    this.#o.log.info({ committed: this.#o.store.committedHeight(), epoch: this.#o.epochs.current.number }, 'joining from a checkpoint');
    this.#schedule(0);
  }

  stop(): void {
    this.#stopped = true;
    this.#timer?.cancel();
    this.#pending?.timer.cancel();
  }

  /** Whether a response to `requestId` from `from` is awaited. */
  expects(from: number, requestId: number): boolean {
    return this.#pending?.from === from && this.#pending.requestId === requestId;
  }

  #schedule(ms: number): void {
    if (this.#stopped) return;
    this.#timer?.cancel();
    this.#timer = this.#o.clock.setTimeout(() => { this.#timer = undefined; this.#ask(); }, ms);
  }

  #usable(): number[] {
    const now = this.#o.clock.now();
    for (const [peer, until] of this.#bad) if (until <= now) this.#bad.delete(peer);
    return this.#o.sources().filter((s) => !this.#bad.has(s));
  }

  #ask(): void {
    if (this.#stopped || this.#pending) return;
    const usable = this.#usable();
    // Step 1 stays with one source (its proofs and its tip belong together); step 2 rotates.
    const from = !this.#tip && this.#source !== undefined && usable.includes(this.#source) ? this.#source : usable[this.#turn++ % Math.max(1, usable.length)];
    if (from === undefined) return this.#schedule(JOIN_IDLE_MS);
    const requestId = this.#nextId++;
    const kind = this.#tip ? 'history' : 'checkpoint';
    const timer = this.#o.clock.setTimeout(() => {
      if (this.#pending?.requestId !== requestId) return;
      this.#pending = undefined;
      this.stats.timeouts++;
      if (kind === 'checkpoint') this.#source = undefined;
      this.#o.log.debug({ from, requestId, kind }, 'no answer in time: asking another source');
      this.#ask();
    }, JOIN_REQUEST_TIMEOUT_MS);
    this.#pending = { requestId, from, kind, timer };
    this.stats.requests++;
    if (kind === 'checkpoint') {
      this.#source = from;
      this.#o.transport.send(from, encodeFrame(this.#o.chainId, { type: 'checkpoint-request', requestId, fromEpoch: this.#o.epochs.current.number + this.#proofs.length }));
    } else {
      this.#o.transport.send(from, encodeFrame(this.#o.chainId, { type: 'history-request', requestId, belowHeight: this.#expect!.height + 1, max: MAX_HISTORY_SUMMARIES }));
    }
  }

  /** Takes the response to the awaited request, or undefined (unsolicited: dropped). */
  #take(from: number, requestId: number, kind: Pending['kind']): boolean {
    const p = this.#pending;
    if (!p || p.from !== from || p.requestId !== requestId || p.kind !== kind) return false;
    p.timer.cancel();
    this.#pending = undefined;
    return true;
  }

  #refuse(from: number, reason: string, detail: string): void {
    this.stats.refused++;
    this.#bad.set(from, this.#o.clock.now() + JOIN_BAD_SOURCE_MS);
    // Proofs already walked stay (each is checked by its own epoch's quorum); the source does not.
    if (from === this.#source) this.#source = undefined;
    this.#o.log.warn({ from, reason, detail, skippedForMs: JOIN_BAD_SOURCE_MS }, 'joining from a checkpoint: what the source served does not check out');
    this.#o.refused?.(from, reason, detail);
    this.#schedule(0);
  }

  /** Step 1: epoch proofs from the epoch asked for on, and perhaps the checkpoint. */
  onCheckpoint(from: number, requestId: number, epochs: readonly WireEpochProof[], tip: CertifiedBlock | undefined): void {
    if (!this.#take(from, requestId, 'checkpoint')) return;
    if (this.#proofs.length + epochs.length > MAX_JOIN_EPOCHS) return this.#refuse(from, 'invalid_checkpoint', `more than ${MAX_JOIN_EPOCHS} ended epochs`);
    try {
      this.#sets = this.#o.epochs.walk([...this.#proofs, ...epochs]);
    } catch (err) {
      return this.#refuse(from, 'invalid_checkpoint', errorMessage(err));
    }
    this.#proofs.push(...epochs);
    // A member being added whose seating change committed already: it must start where its first
    // epoch starts (a validator's engine begins at its epoch's root), so the checkpoint is the
    // block that ended the epoch before, and later epochs are left for its engine to end.
    const seatedAt = this.#o.member === undefined ? -1 : this.#sets.findIndex((set) => set.indexOfName(this.#o.member!) !== undefined);
    if (seatedAt >= 0 && this.#proofs[seatedAt]!.last.header.height > this.#o.store.committedHeight()) {
      const proof = this.#proofs[seatedAt]!;
      this.#proofs = this.#proofs.slice(0, seatedAt + 1);
      this.#sets = this.#sets.slice(0, seatedAt + 1);
      this.#o.log.info({ from, epoch: this.#o.epochs.current.number + seatedAt + 1, height: proof.last.header.height }, 'joining from a checkpoint: the proofs seat this member; starting at its first epoch\'s root');
      return this.#take_tip({ block: proof.last, qc: proof.qc });
    }
    if (!tip) {
      if (epochs.length === 0) {
        // Nothing new and no tip: it has no committed block to offer; another source may.
        this.stats.empty++;
        this.#source = undefined;
        return this.#schedule(JOIN_IDLE_MS);
      }
      return this.#schedule(0);
    }
    const why = this.#tipError(tip);
    if (why) return this.#refuse(from, 'invalid_checkpoint', `tip: ${why}`);
    this.#take_tip(tip as { block: Block; qc: QuorumCert });
  }

  /** The checkpoint is decided (checked already): fetch the history below it. */
  #take_tip({ block, qc }: { block: Block; qc: QuorumCert }): void {
    this.#tip = { block, qc };
    this.#expect = { height: block.header.height - 1, hash: block.header.parentHash };
    this.#o.log.info({ height: block.header.height, epoch: block.header.epoch, epochs: this.#proofs.length }, 'joining from a checkpoint: checkpoint verified; fetching the history below it');
    void this.#continue();
  }

  /** Why the checkpoint block is not a committed block of the epochs walked, or null. */
  #tipError(tip: CertifiedBlock): string | null {
    const { block, qc } = tip;
    if (!qc) return 'no QC';
    const first = this.#o.epochs.current.number;
    const epoch = block.header.epoch;
    const reached = first + this.#proofs.length;
    if (epoch < first || epoch > reached) return `of epoch ${epoch}, the proofs reach epochs ${first} to ${reached}`;
    const last = this.#proofs.at(-1)?.last;
    if (last && block.header.height < last.header.height) return `height ${block.header.height} is below epoch ${reached - 1}'s last block (${last.header.height})`;
    // A block of an ended epoch can only be that epoch's last: the proofs say where it ended.
    if (epoch < reached && (epoch !== reached - 1 || toHex(block.hash) !== toHex(last!.hash))) return `of ended epoch ${epoch}, but not the block it ended with`;
    if (block.header.height <= this.#o.store.committedHeight()) return `height ${block.header.height} is not above this store's tip (${this.#o.store.committedHeight()})`;
    const set = epoch === first ? this.#o.epochs.current.set : this.#sets[epoch - first - 1]!;
    const v = verifyCommitted(trustRootOf(this.#o.chainId, set, this.#o.dsa), block, { qc });
    return v.ok ? null : v.reason;
  }

  /** Step 2: summaries of the heights below the expected one's child, newest first. */
  async onHistory(from: number, requestId: number, summaries: readonly BlockSummary[]): Promise<void> {
    if (!this.#take(from, requestId, 'history')) return;
    if (summaries.length === 0) {
      // It does not have them (or will not say): the next request goes to the next source.
      this.stats.empty++;
      return this.#schedule(JOIN_IDLE_MS);
    }
    const floor = this.#o.store.committedHeight();
    const verified: { summary: BlockSummary; hash: Hash }[] = [];
    let expect = this.#expect!;
    let why: string | undefined;
    for (const s of summaries) {
      if (expect.height <= floor) break;
      const h = s.header;
      if (h.height !== expect.height) { why = `height ${h.height} where ${expect.height} was asked`; break; }
      const bad = headerError(h, expect.hash, { chainId: this.#o.chainId, hashBlock: blockHash });
      if (bad) { why = `height ${h.height}: ${bad.field === 'hash' ? `not the block its child names as parent (${bad.why})` : bad.why}`; break; }
      if (toHex(merkleRoot(s.txIds)) !== toHex(h.txRoot)) { why = `height ${h.height}: its ${s.txIds.length} transaction ids do not match the header's tx_root`; break; }
      verified.push({ summary: s, hash: expect.hash });
      expect = { height: h.height - 1, hash: h.parentHash };
    }
    try {
      if (verified.length > 0) {
        if (!this.#marked) { await this.#o.store.beginBootstrap(this.#tip!.block); this.#marked = true; }
        await this.#o.store.importHistory(verified);
        this.#expect = expect;
        this.#heights += verified.length;
        this.#txs += verified.reduce((n, v) => n + v.summary.txIds.length, 0);
      }
    } catch (err) {
      this.#o.log.error({ err: errorMessage(err) }, 'joining from a checkpoint: the history could not be written; trying again');
      return this.#schedule(1000);
    }
    if (why) return this.#refuse(from, 'invalid_history', why);
    void this.#continue();
  }

  async #continue(): Promise<void> {
    const floor = this.#o.store.committedHeight();
    if (this.#expect!.height > floor) return this.#schedule(0);
    // The history reached our tip: it must name our tip (genesis for an empty store) as parent.
    const ours = floor === 0 ? this.#o.genesis.hash : this.#o.store.hashAtHeight(floor);
    if (!ours || toHex(ours) !== toHex(this.#expect!.hash)) {
      // The certified chain does not extend what this store holds: nothing here can fix that.
      this.#o.log.fatal({ height: floor, ours: ours && toHex(ours), certified: toHex(this.#expect!.hash) }, 'joining from a checkpoint: the certified chain does not extend this store\'s committed tip');
      this.stop();
      return;
    }
    try {
      await this.#finish();
    } catch (err) {
      this.#o.log.error({ err: errorMessage(err) }, 'joining from a checkpoint: starting from the checkpoint failed; trying again');
      this.#o.clock.setTimeout(() => { void this.#continue(); }, 1000);
    }
  }

  async #finish(): Promise<void> {
    const { store, epochs } = this.#o;
    const { block, qc } = this.#tip!;
    if (!this.#marked) { await store.beginBootstrap(block); this.#marked = true; }
    // Each epoch's last block is the one the history holds at its height (both are certified).
    for (const p of this.#proofs) {
      const at = store.hashAtHeight(p.last.header.height);
      if (p.last.header.height < block.header.height && (!at || toHex(at) !== toHex(p.last.hash))) {
        throw new Error(`epoch ${p.last.header.epoch}'s last block is not the block the history holds at height ${p.last.header.height}`);
      }
    }
    await store.startAt(block, qc);
    const first = epochs.current.number;
    const started: Array<{ number: number; set: ValidatorSet; root: Block }> = [];
    for (const proof of this.#proofs) {
      if (proof.last.header.epoch < epochs.current.number) continue; // recorded before a restart
      started.push(await epochs.end(proof));
    }
    await store.finishBootstrap();
    // Told only once the store is whole: an epoch that seats this member starts it as a validator.
    for (const e of started) this.#o.epochStarted?.(e.number, e.set, e.root);
    this.#stopped = true;
    const figures = { checkpointHeight: block.header.height, epochs: epochs.current.number - first, heights: this.#heights, transactions: this.#txs, ms: this.#o.clock.now() - this.#started };
    this.#o.log.warn(figures, 'joined from a checkpoint: following from it');
    this.#resolve(figures);
  }
}
