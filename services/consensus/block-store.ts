// The consensus service's durable store (LMDB): the engine's safety state, every block it was
// told to keep with the QCs that certify it, the committed log by height, and where each
// committed transaction is. Every write resolves only once LMDB has committed and flushed it,
// so the driver can await it before the sends that depend on it (the persistence contract of
// libs/hotstuff/events.ts). Never rewrites a committed height.
//
// Durability: LMDB is opened with `overlappingSync: false`. The library's default on Linux
// (overlapping sync) resolves a write once it is committed and visible but flushes it to disk
// later, so a power loss could roll back a lock or a last vote that messages already sent
// depend on. With it off, every transaction is fsynced before its promise resolves
// (test/durability.test.ts traces the system calls of a real process to show the order).
//
// Retention (consensus.keep_blocks, retention.ts): the bodies and QCs of old committed blocks can
// be pruned. What stays for ever is small: each pruned height's summary (`summaries`: its header
// and its transactions' ids), the hash committed at every height, the transaction index
// (exactly-once needs every committed id) and the epoch-change proofs. Heights 1..prunedTo() then
// have no block here; readers ask isPruned(height) to tell a pruned height (BLOCK_PRUNED, naming
// the oldest height kept) from a damaged store.
//
// Joining from a checkpoint (follower.ts) builds the same shape from the other end: the history
// below the checkpoint as summaries (importHistory), then the checkpoint block as the committed tip
// (startAt). While that runs, `bootstrap` in meta says the store is not whole yet.

import { open, type Database, type RootDatabase } from 'lmdb';
import { txHashesOf } from './tx-hashes.ts';
import { FedError, errorMessage } from '#libs/errors/index.ts';
import { fromHex, toHex } from '#libs/crypto/index.ts';
import { Block as BlockMsg, BlockSummary as BlockSummaryMsg, EpochChangeProof as EpochChangeProofMsg, QuorumCert as QuorumCertMsg } from '#libs/gen/btcfed/v1/wire.pb.ts';
import type { Block, BlockHeader, CommittedView, Hash, PersistedRecord, QuorumCert, SafetyState } from '#libs/hotstuff/index.ts';
import { WIRE_MAX_VALIDATORS, blockFromWire, blockToWire, encodeBlockBytes, headerFromWire, headerToWire, qcFromWire, qcToWire, summaryFromWire, summaryToWire, type BlockSummary, type WireLimits } from '#libs/wire/index.ts';
import type { EpochChangeProof } from '#libs/verify/index.ts';
import { SafetyRecord } from './safety-record.ts';
import { checkStoreIdentity } from './store-schema.ts';
import { TxIndex, packLocation, unpackLocation, type StoredLocation, type TxIndexOptions, type TxIndexStats } from './tx-index.ts';
import type { StoredBlock } from './stored-reads.ts';

/** A proof that an epoch ended, as stored (and served): its exact bytes, by which two proofs are one. */
export function epochProofBytes(proof: EpochChangeProof): Uint8Array {
  return EpochChangeProofMsg.encode({ last: blockToWire(proof.last), suffix: proof.suffix.map(headerToWire), qc: qcToWire(proof.qc) }).finish();
}

export { packLocation, unpackLocation } from './tx-index.ts';
export { STORE_SCHEMA_VERSION } from './store-schema.ts';

export interface BlockStoreOptions {
  path: string;
  limits: WireLimits;
  hashBlock(h: BlockHeader): Hash;
  /** The chain this store belongs to: recorded on first open, and a store of another chain is refused. */
  chainId?: string;
  /** When the transaction index merges the ids of recent commits to disk (tx-index.ts, tx-runs.ts). */
  txIndex?: TxIndexOptions;
}


export interface TxLocation { height: number; blockHash: Hash; index: number }

/** LMDB hands back Buffers; the engine compares plain Uint8Arrays. Same memory, plain view. */
const plain = (b: Uint8Array): Uint8Array => new Uint8Array(b.buffer, b.byteOffset, b.byteLength);

export class BlockStore {
  readonly #root: RootDatabase;
  readonly #blocks: Database<Uint8Array, Uint8Array>;
  readonly #qcs: Database<Uint8Array, Uint8Array>;
  readonly #heights: Database<Uint8Array, number>;
  readonly #txs: Database<StoredLocation, Uint8Array>;
  /** The index's sorted runs (tx-runs.ts). */
  readonly #txRuns: Database<Uint8Array, Uint8Array>;
  /** The transaction index over #txRuns and #txs: recent commits in memory, merged to disk as sorted runs. */
  readonly #index: TxIndex;
  /** Blocks stored but not (yet) committed, by hash → height: what a restart needs back. */
  readonly #pending: Database<number, Uint8Array>;
  readonly #meta: Database<string, string>;
  /** Equivocation evidence, by arrival sequence (encoded Evidence messages). */
  readonly #evidence: Database<Uint8Array, number>;
  /** The proof each ended epoch ended with, by epoch (encoded EpochChangeProof messages). */
  readonly #epochs: Database<Uint8Array, number>;
  /** The summaries (header and transaction ids) of pruned heights, by height (encoded BlockSummary messages). */
  readonly #summaries: Database<Uint8Array, number>;
  readonly #opts: BlockStoreOptions;
  /** The engine's safety state under `safety` in meta. */
  readonly #safety: SafetyRecord;
  /** close() was called: no merge starts any more. */
  #closing = false;
  /** The height of each ended epoch's last block, once read (epochEndAt). */
  #endHeights: number[] | undefined;

  constructor(opts: BlockStoreOptions) {
    // Blocks and QCs of every epoch are kept: decoded at any set's width, checked per epoch by their users.
    this.#opts = { ...opts, limits: { ...opts.limits, validatorCount: Math.max(opts.limits.validatorCount, WIRE_MAX_VALIDATORS) } };
    // eventTurnBatching off: every write below is its own awaited transaction. With lmdb's
    // per-turn batching, a failed commit (a full disk) also rejects a promise nobody awaits,
    // which crashed the process instead of failing the write.
    this.#root = open({ path: opts.path, compression: false, overlappingSync: false, eventTurnBatching: false });
    this.#blocks = this.#root.openDB({ name: 'blocks', encoding: 'binary', keyEncoding: 'binary' });
    this.#qcs = this.#root.openDB({ name: 'qcs', encoding: 'binary', keyEncoding: 'binary' });
    this.#heights = this.#root.openDB({ name: 'heights', encoding: 'binary', keyEncoding: 'uint32' });
    this.#txs = this.#root.openDB({ name: 'txs', encoding: 'msgpack', keyEncoding: 'binary' });
    this.#txRuns = this.#root.openDB({ name: 'txruns', encoding: 'binary', keyEncoding: 'binary' });
    this.#pending = this.#root.openDB({ name: 'pending', encoding: 'msgpack', keyEncoding: 'binary' });
    this.#meta = this.#root.openDB({ name: 'meta', encoding: 'string', keyEncoding: 'ordered-binary' });
    this.#safety = new SafetyRecord(this.#meta, opts.path, this.#opts.limits);
    this.#evidence = this.#root.openDB({ name: 'evidence', encoding: 'binary', keyEncoding: 'uint32' });
    this.#epochs = this.#root.openDB({ name: 'epochs', encoding: 'binary', keyEncoding: 'uint32' });
    this.#summaries = this.#root.openDB({ name: 'summaries', encoding: 'binary', keyEncoding: 'uint32' });
    try {
      checkStoreIdentity(this.#meta, this.#heights.getKeysCount() > 0, opts);
      const committed = this.committedHeight();
      this.#index = new TxIndex(this.#txs, this.#txRuns, { write: (what, body) => this.#write(what, body), meta: this.#meta }, committed, opts.txIndex);
      // What a crash left only in memory: the ids of the commits above indexed_to, from their blocks.
      for (let h = this.#index.indexedTo + 1; h <= committed; h++) this.#index.restore(h, this.#txIdsAt(h));
    } catch (err) {
      void this.#root.close();
      throw err;
    }
  }

  /** The ids committed at `height`, from its summary or, where it is not pruned, its block (summaryAt). */
  #txIdsAt(height: number): readonly Uint8Array[] {
    const summary = this.summaryAt(height);
    if (!summary) throw new FedError('STORE_CORRUPT', `block store ${this.#opts.path}: committed height ${height} has neither a block nor a summary`);
    return summary.txIds;
  }

  get hashBlock(): (h: BlockHeader) => Hash { return this.#opts.hashBlock; }

  /** The record to restore the engine from, or undefined for a member that never ran. */
  load(genesis: Block): PersistedRecord | undefined {
    const safety = this.#meta.get('safety');
    if (safety === undefined) return undefined;
    const tip = this.committedHeight();
    const committed = tip === 0 ? genesis : this.blockAtHeight(tip);
    if (!committed) throw new FedError('STORE_CORRUPT', `committed height ${tip} has no block`);
    const blocks: Block[] = [];
    for (const { key } of this.#pending.getRange()) {
      const b = this.blockByHash(key);
      if (b && b.header.height > tip) blocks.push(b);
    }
    return { safety: this.#safety.decode(safety), committed, blocks };
  }

  /**
   * Durably stores the safety state and the given blocks and QCs, and forgets `dropped` blocks
   * (stored earlier, found invalid since) unless they are committed, in one transaction.
   */
  async persist(safety: SafetyState, blocks: readonly Block[], qcs: readonly QuorumCert[], dropped: readonly Hash[] = []): Promise<void> {
    try {
      await this.#write('persist', () => {
        this.#safety.put(safety);
        for (const b of blocks) {
          this.#blocks.put(b.hash, encodeBlockBytes(b));
          this.#pending.put(b.hash, b.header.height);
        }
        for (const qc of qcs) this.#putQc(qc);
        // After the puts: a block stored and found invalid within one step is not kept.
        for (const hash of dropped) {
          const height = this.#pending.get(hash);
          if (height === undefined) continue;
          this.#pending.remove(hash);
          const winner = this.#heights.get(height);
          if (!winner || Buffer.compare(winner, hash) !== 0) this.#blocks.remove(hash);
        }
      });
    } catch (err) {
      // Not written: the next persist writes both QCs again.
      this.#safety.unwritten();
      throw err;
    }
  }

  /** Appends newly final blocks (parents first) to the committed log, durably. */
  async commit(blocks: readonly Block[], qc: QuorumCert): Promise<void> {
    let added: Uint8Array[] = [];
    let top = 0;
    try {
      await this.#write('commit', () => {
        const first = this.committedHeight() + 1;
        blocks.forEach((b, k) => {
          if (b.header.height !== first + k) throw new FedError('STORE_COMMIT_GAP', `commit of height ${b.header.height} but the log ends at ${first + k - 1}`);
        });
        // Exactly-once: libs/blocks refuses such a block before any vote; the log never overwrites
        // the index either. The ids are checked first (memory, then the disk) and recorded in memory
        // only if none repeats; the disk gets them at the next merge (tx-index.ts).
        added = this.#index.add(blocks.map((b) => ({ height: b.header.height, ids: txHashesOf(b) })));
        let expected = first;
        for (const b of blocks) {
          // Normally stored already (persisted when it was proposed); megabytes are not written twice.
          if (!this.#blocks.doesExist(b.hash)) this.#blocks.put(b.hash, encodeBlockBytes(b));
          this.#heights.put(b.header.height, b.hash);
          expected++;
        }
        this.#putQc(qc);
        this.#meta.put('committed', String(expected - 1));
        top = expected - 1;
        // Blocks at or below the new tip that were not committed lost their fork: forget them.
        for (const { key, value } of this.#pending.getRange()) {
          if (value > expected - 1) continue;
          this.#pending.remove(key);
          const winner = this.#heights.get(value);
          if (!winner || Buffer.compare(winner, key) !== 0) this.#blocks.remove(key);
        }
      });
    } catch (err) {
      // Not written: the ids it recorded in memory go too.
      this.#index.forget(added);
      throw err;
    }
    // Not read back from the store: it may be closing by now (a read of a closed LMDB store leaves
    // lmdb-js a timer that throws).
    if (!this.#closing) this.#index.committed(top);
  }

  /**
   * The highest height the publisher saw stored in JetStream (publish.ts): where it goes on when
   * the stream's retention has dropped every block of this member. Written without waiting (a
   * crash may lose the last few: they are published again and de-duplicated).
   */
  publishedMark(): number {
    return Number(this.#meta.get('published') ?? 0);
  }
  setPublishedMark(height: number): void {
    // Best effort: a lost mark costs a re-publish that JetStream de-duplicates (or a closing store).
    try {
      this.#meta.put('published', String(height)).catch(() => {});
    } catch { /* the store is closed: the mark stays where it was */ }
  }

  committedHeight(): number {
    return Number(this.#meta.get('committed') ?? 0);
  }

  /** Is the block with this hash the one committed at `height`? One key read, nothing decoded. */
  isCommittedBlock(hash: Hash, height: number): boolean {
    const at = this.#heights.get(height);
    return at !== undefined && Buffer.compare(at, hash) === 0;
  }

  blockAtHeight(height: number): Block | undefined {
    const hash = this.#heights.get(height);
    return hash ? this.blockByHash(plain(hash)) : undefined;
  }

  blockByHash(hash: Hash): Block | undefined {
    const bytes = this.#blocks.get(hash);
    return bytes ? this.#decodeBlock(bytes) : undefined;
  }

  /** A committed height's block and QC as stored (encoded Block and QuorumCert), nothing decoded: for reads that answer them as they are. */
  storedAtHeight(height: number): StoredBlock | undefined {
    const hash = this.#heights.get(height);
    const block = hash && this.#blocks.get(hash);
    return block ? { hash: plain(hash), block, qc: this.#qcs.get(hash) } : undefined;
  }

  /** The best QC stored for a block (the one that decided it, for committed blocks). */
  qcFor(hash: Hash): QuorumCert | undefined {
    const bytes = this.#qcs.get(hash);
    return bytes ? qcFromWire('qc', QuorumCertMsg.decode(plain(bytes)), this.#opts.limits) : undefined;
  }

  hashAtHeight(height: number): Hash | undefined {
    const hash = this.#heights.get(height);
    return hash ? plain(hash) : undefined;
  }

  txLocation(txHashBytes: Hash): TxLocation | undefined {
    const stored = this.#index.get(txHashBytes);
    if (stored === undefined) return undefined;
    const loc = unpackLocation(stored);
    const blockHash = this.hashAtHeight(loc.height);
    return blockHash ? { ...loc, blockHash } : undefined;
  }

  hasTx(txHashBytes: Hash): boolean {
    return this.#index.has(txHashBytes);
  }

  /**
   * Durably records that `epoch` ended with `proof` and clears what only that epoch's engine used —
   * its safety state, and the blocks stored above its last block except the proof's suffix (a
   * member left behind in the epoch fetches them, with their QCs, to commit its end) — in one
   * transaction: the next epoch's engine starts afresh from `proof.last`, and a restart finds
   * either the old epoch whole or the new one. The epoch's last block must be committed here, and
   * epochs end in order; recording the same proof again changes nothing.
   */
  async endEpoch(epoch: number, proof: EpochChangeProof): Promise<void> {
    const bytes = epochProofBytes(proof);
    await this.#write('epoch', () => {
      const known = this.#epochs.get(epoch);
      if (known) {
        if (Buffer.compare(known, bytes) !== 0) throw new FedError('STORE_CORRUPT', `block store ${this.#opts.path}: epoch ${epoch} already ended with another proof`);
        return;
      }
      const ended = this.#epochs.getKeysCount();
      if (epoch !== ended) throw new FedError('STORE_CORRUPT', `block store ${this.#opts.path}: epoch ${epoch} cannot end after ${ended} ended epochs`);
      const { height } = proof.last.header;
      if (!this.isCommittedBlock(proof.last.hash, height)) {
        throw new FedError('STORE_CORRUPT', `block store ${this.#opts.path}: epoch ${epoch}'s last block (height ${height}) is not the block committed at that height`);
      }
      this.#epochs.put(epoch, bytes);
      this.#endHeights = undefined;
      for (const key of ['safety', 'safety.lockedQC', 'safety.prepareQC']) this.#meta.remove(key);
      const suffix = new Set(proof.suffix.map((h) => Buffer.from(this.#opts.hashBlock(h)).toString('hex')));
      for (const { key, value } of this.#pending.getRange()) {
        this.#pending.remove(key);
        if (value > height && !suffix.has(Buffer.from(key).toString('hex'))) this.#blocks.remove(key);
      }
    });
    this.#safety.unwritten();
  }

  /**
   * The proof of the epoch whose last block is at `height`, when one ended there (block sync hands
   * it to followers with that block). The heights are kept in memory once read (one per epoch).
   */
  epochEndAt(height: number): EpochChangeProof | undefined {
    this.#endHeights ??= this.endedEpochs().map((p) => p.last.header.height);
    const epoch = this.#endHeights.indexOf(height);
    return epoch < 0 ? undefined : this.#proofOf(epoch, this.epochProofMessage(epoch)!);
  }

  /** The proof that `epoch` ended, decoded, or undefined for an epoch that has not ended. */
  epochProof(epoch: number): EpochChangeProof | undefined {
    const m = this.epochProofMessage(epoch);
    return m && this.#proofOf(epoch, m);
  }

  /** How many epochs have ended (the chain is in epoch endedEpochCount()). */
  endedEpochCount(): number {
    return this.#epochs.getKeysCount();
  }

  /** The proof that `epoch` ended, as stored (the wire message, unchecked: GetEpochs serves it as is), or undefined. */
  epochProofMessage(epoch: number): EpochChangeProofMsg | undefined {
    const bytes = this.#epochs.get(epoch);
    return bytes ? EpochChangeProofMsg.decode(plain(bytes)) : undefined;
  }

  /** The proofs of the ended epochs, in order (epoch 0's first); empty while the chain is in epoch 0. */
  endedEpochs(): EpochChangeProof[] {
    const out: EpochChangeProof[] = [];
    for (const { key, value } of this.#epochs.getRange()) {
      if (key !== out.length) throw new FedError('STORE_CORRUPT', `block store ${this.#opts.path}: the proof of epoch ${out.length} is missing (found epoch ${key})`);
      out.push(this.#proofOf(key, EpochChangeProofMsg.decode(plain(value))));
    }
    return out;
  }

  #proofOf(epoch: number, m: EpochChangeProofMsg): EpochChangeProof {
    const limits = this.#opts.limits;
    return {
      last: blockFromWire(`epochs[${epoch}].last`, m.last, limits, this.#opts.hashBlock),
      suffix: m.suffix.map((h, i) => headerFromWire(`epochs[${epoch}].suffix[${i}]`, h)),
      qc: qcFromWire(`epochs[${epoch}].qc`, m.qc, limits),
    };
  }

  /** Heights 1..prunedTo() have had their bodies and QCs pruned (0: nothing pruned). */
  prunedTo(): number {
    return Number(this.#meta.get('pruned') ?? 0);
  }

  /** Is the committed block at `height` pruned here (its header kept, body and QC gone)? */
  isPruned(height: number): boolean {
    return height >= 1 && height <= this.prunedTo();
  }

  /** The header of the block committed at `height`, pruned or not. */
  headerAtHeight(height: number): BlockHeader | undefined {
    const kept = this.#summaries.get(height);
    if (kept) return summaryFromWire(`summaries[${height}]`, BlockSummaryMsg.decode(plain(kept)), {}).header;
    const hash = this.#heights.get(height);
    const bytes = hash && this.#blocks.get(hash);
    return bytes ? this.#decodeBlock(bytes).header : undefined;
  }

  /**
   * The view and proposer of the committed blocks of `epoch` whose view is within `views` of the
   * committed tip's, oldest first: the record the leader schedule reads (libs/hotstuff
   * schedule.ts) when an engine starts. Empty when the tip is not a block of `epoch`.
   */
  committedViews(epoch: number, views: number): CommittedView[] {
    const out: CommittedView[] = [];
    let tipView: number | undefined;
    for (let h = this.committedHeight(); h >= 1; h--) {
      const header = this.headerAtHeight(h);
      if (!header || header.epoch !== epoch) break;
      tipView ??= header.view;
      if (header.view <= tipView - views) break;
      out.push({ view: header.view, proposer: header.proposer });
    }
    return out.reverse();
  }

  /** The summary (header and transaction ids) of the block committed at `height`, pruned or not. */
  summaryAt(height: number): BlockSummary | undefined {
    return this.readSummary(height)?.summary;
  }

  /** summaryAt, with the bytes read from the store for it (a whole block where it is not pruned). */
  readSummary(height: number): { summary: BlockSummary; readBytes: number } | undefined {
    const kept = this.#summaries.get(height);
    if (kept) return { summary: summaryFromWire(`summaries[${height}]`, BlockSummaryMsg.decode(plain(kept)), {}), readBytes: kept.length };
    const hash = this.#heights.get(height);
    const bytes = hash && this.#blocks.get(hash);
    if (!bytes) return undefined;
    const b = this.#decodeBlock(bytes);
    return { summary: { header: b.header, txIds: txHashesOf(b) }, readBytes: bytes.length };
  }

  /**
   * Prunes the bodies and QCs of committed heights above prunedTo() up to `to`, at most `max`
   * heights in one write transaction, keeping each one's summary; never the committed tip (the
   * next block's parent). Returns the new prunedTo(). Durable like every write here: a crash
   * leaves either the old floor with its blocks or the new one.
   */
  async prune(to: number, max = 256): Promise<number> {
    const from = this.prunedTo();
    const last = Math.min(to, from + max, this.committedHeight() - 1);
    if (last <= from) return from;
    await this.#write('prune', () => {
      for (let h = from + 1; h <= last; h++) {
        const hash = this.#heights.get(h);
        if (!hash) throw new FedError('STORE_CORRUPT', `block store ${this.#opts.path}: committed height ${h} has no hash`);
        const bytes = this.#blocks.get(hash);
        if (!bytes) throw new FedError('STORE_CORRUPT', `block store ${this.#opts.path}: committed height ${h} has no block to prune`);
        const block = this.#decodeBlock(bytes);
        this.#summaries.put(h, BlockSummaryMsg.encode(summaryToWire({ header: block.header, txIds: txHashesOf(block) })).finish());
        this.#blocks.remove(hash);
        this.#qcs.remove(hash);
      }
      this.#meta.put('pruned', String(last));
    });
    return last;
  }

  /** The checkpoint a join from a checkpoint is building this store towards, while it is not whole. */
  bootstrapping(): { height: number; hash: string } | undefined {
    const m = this.#meta.get('bootstrap');
    return m === undefined ? undefined : JSON.parse(m) as { height: number; hash: string };
  }

  /** Marks the store as being built towards the checkpoint `tip` (durable before any history is written). */
  async beginBootstrap(tip: Block): Promise<void> {
    await this.#write('bootstrap', () => { this.#meta.put('bootstrap', JSON.stringify({ height: tip.header.height, hash: Buffer.from(tip.hash).toString('hex') })); });
  }

  /**
   * Writes verified history (summaries of committed heights, with the hash each is committed under)
   * in one transaction: its summary, the hash at its height, and its transactions in the index (one
   * sorted run: tx-runs.ts). The same entry written again (a join started over) changes nothing; a
   * transaction already indexed at another place, or twice among them, is refused
   * (STORE_DUPLICATE_TX), nothing written.
   */
  async importHistory(entries: readonly { summary: BlockSummary; hash: Hash }[]): Promise<void> {
    let publish: (() => void) | undefined;
    try {
      await this.#write('history', () => {
        // The ids not yet indexed: those at their place already (a join started over) are left as they are.
        const fresh: { id: Uint8Array; height: number; index: number }[] = [];
        for (const { summary } of entries) {
          const height = summary.header.height;
          summary.txIds.forEach((id, index) => {
            const stored = this.#index.get(id);
            const at = stored === undefined ? undefined : unpackLocation(stored);
            if (at && (at.height !== height || at.index !== index)) {
              throw new FedError('STORE_DUPLICATE_TX', `transaction ${Buffer.from(id).toString('hex')} at height ${height} is already committed at height ${at.height}`);
            }
            if (!at) fresh.push({ id, height, index });
          });
        }
        // Every refusal (an id twice among them) before anything is written: a body that throws
        // does not take back what it put.
        publish = this.#index.importWithin(fresh);
        for (const { summary, hash } of entries) {
          const height = summary.header.height;
          this.#summaries.put(height, BlockSummaryMsg.encode(summaryToWire(summary)).finish());
          this.#heights.put(height, hash);
        }
      });
    } catch (err) {
      this.#index.importAbandoned();
      throw err;
    }
    // Once the write is visible: the run answers, and no miss remembered before it still holds.
    publish?.();
  }

  /**
   * Makes `tip` (with the COMMIT QC that decided it) the committed tip, with every height below it
   * counted as pruned: the end of a join from a checkpoint, once importHistory has written the
   * history below it. The bootstrap mark stays until finishBootstrap (the epochs are recorded in
   * between, each its own write).
   */
  async startAt(tip: Block, qc: QuorumCert): Promise<void> {
    const height = tip.header.height;
    let whole = false;
    await this.#write('checkpoint', () => {
      if (height > 1 && !this.#heights.get(height - 1)) throw new FedError('STORE_CORRUPT', `block store ${this.#opts.path}: a checkpoint at height ${height} without the history below it`);
      const committed = this.committedHeight();
      if (committed >= height) return;
      this.#blocks.put(tip.hash, encodeBlockBytes(tip));
      this.#heights.put(height, tip.hash);
      txHashesOf(tip).forEach((id, index) => this.#txs.put(id, packLocation(height, index)));
      // The history below came in whole (importHistory): the disk holds everything up to the tip,
      // unless commits before the join still wait in memory (they are rebuilt from their blocks).
      whole = this.#index.stats().recent === 0;
      if (whole) this.#meta.put('indexed_to', String(height));
      this.#putQc(qc);
      this.#meta.put('committed', String(height));
      this.#meta.put('pruned', String(Math.max(this.prunedTo(), height - 1)));
    });
    this.#index.treeWritten();
    if (whole) this.#index.indexedThrough(height);
  }

  /** Ends a join from a checkpoint: the store is whole; a catch-up asked for (requestCatchUp) is done. */
  async finishBootstrap(): Promise<void> {
    await this.#write('bootstrap', () => { this.#meta.remove('bootstrap'); this.#meta.remove('catch_up'); });
  }

  /**
   * Why this validator is to join from a checkpoint at its next start (its peers pruned the blocks
   * it lacks, main.ts), until a join finishes; undefined otherwise.
   */
  catchUpRequested(): string | undefined {
    return this.#meta.get('catch_up');
  }

  /** Asks the next start to join from a checkpoint before taking part again (durable). */
  async requestCatchUp(why: string): Promise<void> {
    await this.#write('catch_up', () => { this.#meta.put('catch_up', why); });
  }

  /** The reconfiguration transaction submitted to this member and not yet seen to end its epoch (SubmitReconfiguration), or undefined. */
  pendingChange(): Uint8Array | undefined {
    const hex = this.#meta.get('pending_change');
    return hex === undefined ? undefined : fromHex(hex);
  }

  /** Keeps the submitted change on disk (a restart proposes it again), or forgets it. */
  async setPendingChange(tx: Uint8Array | undefined): Promise<void> {
    await this.#write('pending_change', () => {
      if (tx) this.#meta.put('pending_change', toHex(tx));
      else this.#meta.remove('pending_change');
    });
  }

  /** Keeps equivocation evidence durably under its sequence number (it outlives restarts; GetEvidence serves it). */
  async addEvidence(seq: number, encoded: Uint8Array): Promise<void> {
    await this.#write('evidence', () => { this.#evidence.put(seq, encoded); });
  }

  /**
   * One write transaction. A transaction LMDB could not commit (a full disk, an I/O error) wrote
   * nothing; it is reported as STORE_WRITE_FAILED with the operating system's reason, and the
   * same write can be tried again. Errors of our own checks (a gap, a repeated transaction) pass
   * through as they are.
   */
  async #write(what: string, body: () => void): Promise<void> {
    try {
      await this.#root.transaction(body);
    } catch (err) {
      if (err instanceof FedError) throw err;
      const pending = (err as { commitError?: Promise<unknown> } | undefined)?.commitError;
      const cause = pending ? await pending.then(() => err, (e: unknown) => e) : err;
      const code = (cause as { code?: unknown } | undefined)?.code;
      throw new FedError('STORE_WRITE_FAILED', `block store ${this.#opts.path}: ${what} not written: ${errorMessage(cause)}`,
        { path: this.#opts.path, what, ...(typeof code === 'number' || typeof code === 'string' ? { code } : {}) }, { cause });
    }
  }

  /** Stored evidence after `afterSeq`, in sequence order (read lazily: callers page through it). */
  *evidence(afterSeq = 0): Iterable<{ seq: number; bytes: Uint8Array }> {
    for (const { key, value } of this.#evidence.getRange({ start: afterSeq + 1 })) yield { seq: key, bytes: plain(value) };
  }

  /** The transaction index's two tiers: ids waiting in memory, the height the disk is whole to, its runs. */
  txIndexStats(): TxIndexStats {
    return this.#index.stats();
  }

  /** Merges every committed id waiting in memory to disk now, and waits for the compactions that starts. */
  async flushTxIndex(): Promise<void> {
    await this.#index.merge(this.committedHeight());
    await this.#index.settled();
  }

  /**
   * Closes the store after a merge under way has ended. The ids still in memory are not merged
   * here: the next open rebuilds them from their blocks, as after a crash (a stop is not slowed by
   * a merge's writes, and the rebuild is the path a crash takes anyway).
   */
  async close(): Promise<void> {
    this.#closing = true;
    this.#index.stop();
    await this.#index.settled().catch(() => {});
    await this.#root.close();
  }

  #putQc(qc: QuorumCert): void {
    // Keep the highest-phase QC per block: a commitQC beats a prepareQC as proof of finality.
    const prev = this.#qcs.get(qc.blockHash);
    if (prev && QuorumCertMsg.decode(prev).phase > qc.phase) return;
    this.#qcs.put(qc.blockHash, QuorumCertMsg.encode(qcToWire(qc)).finish());
  }

  #decodeBlock(bytes: Uint8Array): Block {
    return blockFromWire('stored block', BlockMsg.decode(plain(bytes)), this.#opts.limits, this.#opts.hashBlock);
  }

}

