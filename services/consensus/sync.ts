// Block sync over the consensus protocol: asking a peer for blocks the engine lacks (the
// engine's `fetch` action) and serving such requests. Responses are matched to requests and
// their QCs verified before the engine sees them (which checks every block's content, see
// libs/blocks); unsolicited or late responses are dropped.
//
// Serving is bounded before any block is read: at most MAX_SYNC_BLOCKS per request, reading
// stops at the byte budget (the gateway's reported frame limit less headroom, each block sized
// by the real encoding with its QC), a per-peer token bucket in bytes, identical repeats refused, and
// nothing served while halted. A response always connects to what the requester has: below our
// committed tip it is the committed log upward from the requester's height (with QCs, so the
// requester commits a partial answer and asks again); above it, the requested block and as many
// of its ancestors as fit, newest kept. Peers outside the validator set (observers) also share
// one budget among them all, the size of one validator's. A peer joining from a checkpoint
// (checkpoint.ts) asks for the epoch proofs and the committed tip, then the summaries of the
// history below it: served within the same bounds.

import type { Logger } from 'pino';
import { toHex } from '#libs/crypto/index.ts';
import { Phase, type Block, type EngineEvent, type Hash, type HotStuffEngine, type QuorumCert } from '#libs/hotstuff/index.ts';
import { BlockSummary as BlockSummaryMsg } from '#libs/gen/btcfed/v1/wire.pb.ts';
import { MAX_CHECKPOINT_EPOCHS, MAX_HISTORY_SUMMARIES, encodeFrame, summaryToWire, type BlockSummary, type CertifiedBlock, type EpochEnd, type WireEpochProof } from '#libs/wire/index.ts';
import type { BlockStore } from './block-store.ts';
import { isOutside, type TransportPort } from './ports.ts';
import type { SignatureVerifier } from './verifier.ts';

export const MAX_SYNC_BLOCKS = 64;
const MAX_PENDING = 256;
/** Below the frame limit: the frame envelope, the chain id and the response's varints. */
export const FRAME_HEADROOM_BYTES = 4096;
const DEFAULT_FRAME_BYTES = 4 << 20;
/**
 * Per-peer serving budget, a token bucket in bytes: each response costs its size, at least
 * MIN_CHARGE_BYTES (so empty answers still pay for the reads), refilled at SERVE_BYTES_PER_SECOND.
 * A peer in debt is refused until it is refilled. Small-block catch-up runs at full speed; one
 * peer cannot make us read and send more than this per second.
 */
export const SERVE_BYTES_PER_SECOND = 8 << 20;
export const MIN_CHARGE_BYTES = 64 << 10;
/** Requests a fresh (or rested) peer may make at once, at the minimum charge. */
export const REQUEST_BURST = 32;
/** The same request from the same peer again within this window is refused. */
const REPEAT_WINDOW_MS = 250;
const MAX_HASHES_SERVED = 4;

export type SyncRefusal = 'halted' | 'rate_limited' | 'repeated';

export interface SyncOptions {
  chainId: string;
  store: BlockStore;
  /** An observer, which has no engine, serves its committed log only. */
  engine: Pick<HotStuffEngine, 'halted' | 'block'> & { readonly epoch?: number };
  verifier: Pick<SignatureVerifier, 'verifyQc'>;
  transport: TransportPort;
  log: Logger;
  deliver(event: EngineEvent): void;
  /** Byte budget of one response when the transport has not reported its frame limit. */
  maxResponseBytes?: number;
  now?: () => number;
  /** Counts a refused request (metrics, penalties). */
  onRefused?(from: number, reason: SyncRefusal): void;
  /** A peer said it pruned the blocks we asked for (metrics: a member behind every peer's retention is stuck). */
  onPruned?(from: number, oldestHeight: number): void;
  /** A response that proves its sender faulty (a QC whose signatures do not verify). */
  onOffence?(from: number, reason: string, detail: string): void;
}

interface Pending { from: number; hash: string; aboveHeight: number }
interface Bucket { tokens: number; at: number; lastKey: string; lastAt: number }

export class SyncClient {
  #o: SyncOptions;
  readonly #pending = new Map<number, Pending>();
  readonly #buckets = new Map<number, Bucket>();
  /** One more budget shared by every peer outside the validator set: Sybil peer ids do not multiply it. */
  readonly #outside = { tokens: REQUEST_BURST * MIN_CHARGE_BYTES, at: 0 };
  #nextId = 1;

  /** A new epoch's engine and verifier (the driver's at an epoch boundary): requests in flight are forgotten. */
  setEngine(engine: SyncOptions['engine'], verifier: SyncOptions['verifier']): void {
    this.#o = { ...this.#o, engine, verifier };
    this.#pending.clear();
  }

  served = 0;
  dropped = 0;
  /** Requests answered "below what I keep" (oldest_height), and responses saying so to us, by peer. */
  prunedAnswers = 0;
  readonly prunedBy = new Map<number, number>();
  /** Refused requests by `${peer}:${reason}`. */
  readonly refusals = new Map<string, number>();

  constructor(o: SyncOptions) {
    this.#o = o;
  }

  /** The byte budget of one response: the transport's frame limit less headroom. */
  get budget(): number {
    const limit = this.#o.transport.maxFrameBytes ?? this.#o.maxResponseBytes ?? DEFAULT_FRAME_BYTES;
    return Math.max(1, limit - FRAME_HEADROOM_BYTES);
  }

  fetch(hash: Hash, from: number, aboveHeight: number): void {
    if (this.#pending.size >= MAX_PENDING) {
      const oldest = this.#pending.keys().next().value!;
      this.#pending.delete(oldest);
    }
    const requestId = this.#nextId++;
    this.#pending.set(requestId, { from, hash: toHex(hash), aboveHeight });
    this.#o.log.debug({ requestId, from, hash: toHex(hash), aboveHeight }, 'fetching blocks');
    this.#o.transport.send(from, encodeFrame(this.#o.chainId, {
      type: 'block-request', requestId, hashes: [hash], fromHeight: aboveHeight, maxBlocks: MAX_SYNC_BLOCKS,
    }));
  }

  /** Whether a response to `requestId` from `from` is awaited (anything else is dropped unread). */
  expects(from: number, requestId: number): boolean {
    return this.#pending.get(requestId)?.from === from;
  }

  /** A response from `from`: checked against what we asked, QCs verified, then handed to the engine. */
  async onResponse(from: number, requestId: number, blocks: readonly CertifiedBlock[], oldestHeight = 0): Promise<void> {
    const p = this.#pending.get(requestId);
    if (!p || p.from !== from) {
      this.dropped++;
      this.#o.log.debug({ from, requestId }, 'unsolicited block response dropped');
      return;
    }
    this.#pending.delete(requestId);
    if (oldestHeight > 0) {
      // A peer that keeps the first height asked for has nothing to say "pruned" about: an honest
      // one's floor only rises, so the answer is a lie, and one that could make us start a catch-up.
      if (oldestHeight <= p.aboveHeight + 1) {
        this.dropped++;
        this.#o.log.warn({ from, requestId, oldestHeight, askedFrom: p.aboveHeight + 1 }, 'block response saying it pruned heights it keeps dropped');
        this.#o.onOffence?.(from, 'invalid_pruned', `block response ${requestId}: oldest_height ${oldestHeight} is at or below the first height asked for (${p.aboveHeight + 1})`);
        return;
      }
      // The peer pruned the blocks we lack. The engine asks again (of the next block's sender);
      // a member behind every peer's retention cannot catch up by sync: said, at 1, 2, 4, … answers.
      const count = (this.prunedBy.get(from) ?? 0) + 1;
      this.prunedBy.set(from, count);
      this.#o.onPruned?.(from, oldestHeight);
      if ((count & (count - 1)) === 0) {
        this.#o.log.warn({ from, oldestHeight, committed: this.#o.store.committedHeight(), count },
          'the peer keeps blocks from a height above ours only (consensus.keep_blocks): this member catches up only from a peer that keeps the blocks it lacks');
      }
      return;
    }
    // Blocks of another epoch (a catch-up served across a boundary) are no use to this engine, and
    // their QCs are another set's: left out, no offence. Ours are verified as votes of our epoch.
    const { engine, verifier } = this.#o;
    const epoch = engine.epoch ?? 0;
    const ours = blocks.filter((b) => b.block.header.epoch === epoch);
    const qcs: QuorumCert[] = [];
    for (const b of ours) {
      if (!b.qc) continue;
      // The epoch's own verifier throughout: its set may end while the QCs are checked, and the
      // next set's keys (and numbers) would make an honest server's QCs look forged.
      const r = await verifier.verifyQc(b.qc, epoch);
      if (this.#o.engine !== engine) return; // the epoch ended meanwhile: of no use to the next engine
      if (!r.ok) {
        this.#o.log.warn({ from, requestId, signer: r.sender }, 'block response with an invalid QC dropped');
        this.dropped++;
        this.#o.onOffence?.(from, 'invalid_qc', `block response ${requestId}: QC of view ${b.qc.view} has an invalid signature of validator ${r.sender}`);
        return;
      }
      qcs.push(b.qc);
    }
    this.#o.deliver({ type: 'blocks-fetched', blocks: ours.map((b) => b.block), qcs, from });
  }

  /** Serves a request within the per-request bounds (see the header of this file). */
  onRequest(from: number, requestId: number, hashes: readonly Hash[], fromHeight: number, maxBlocks: number): void {
    const refusal = this.#admit(from, `${fromHeight}:${hashes.map(toHex).join(',')}`);
    if (refusal) return this.#refuse(from, requestId, refusal);
    const limit = Math.max(1, Math.min(maxBlocks, MAX_SYNC_BLOCKS));
    const budget = this.budget;
    const out: CertifiedBlock[] = [];
    let bytes = 0;
    const fits = (cb: CertifiedBlock): boolean => {
      const size = encodeFrame(this.#o.chainId, { type: 'block-response', requestId, blocks: [cb] }).length;
      // A single block always goes out: the gateway's limit is computed to fit the largest valid block and its QCs.
      if (out.length > 0 && bytes + size > budget) return false;
      bytes += size;
      return true;
    };
    const committed = this.#o.store.committedHeight();
    let epochEnd: EpochEnd | undefined;
    const floor = this.#o.store.prunedTo();
    if (fromHeight < floor && fromHeight < committed) {
      // Below what we keep whole (consensus.keep_blocks): nothing connects; say where we start.
      this.prunedAnswers++;
      this.#charge(from, 0);
      this.#o.transport.send(from, encodeFrame(this.#o.chainId, { type: 'block-response', requestId, blocks: [], oldestHeight: floor + 1 }));
      return;
    }
    if (fromHeight < committed) {
      // Catch-up: our committed log upward from the requester's height, so every block connects.
      // A run stops at an epoch's last block, with the proof the epoch ended there: the next
      // epoch's blocks are signed by another set, which the requester learns from that proof.
      for (let h = fromHeight + 1; h <= committed && out.length < limit; h++) {
        const block = this.#o.store.blockAtHeight(h);
        if (!block) break;
        const cb = { block, qc: this.#o.store.qcFor(block.hash) };
        if (!fits(cb)) break;
        out.push(cb);
        const end = this.#o.store.epochEndAt(h);
        if (end) {
          const proof = { suffix: [...end.suffix], qc: end.qc };
          const extra = encodeFrame(this.#o.chainId, { type: 'block-response', requestId, blocks: [], epochEnd: proof }).length;
          // The proof goes with its block or the block waits for the next request (where it leads).
          if (out.length > 1 && bytes + extra > budget) { out.pop(); break; }
          bytes += extra;
          epochEnd = proof;
          break;
        }
      }
    } else {
      // Above our committed tip: each requested block and the ancestors that fit, newest kept.
      for (const hash of hashes.slice(0, MAX_HASHES_SERVED)) {
        const chain: CertifiedBlock[] = [];
        let b = this.#block(hash);
        while (b && b.header.height > fromHeight && out.length + chain.length < limit) {
          const cb = { block: b, qc: this.#o.store.qcFor(b.hash) };
          if (!fits(cb)) break;
          chain.push(cb);
          b = this.#block(b.header.parentHash);
        }
        out.push(...chain.reverse());
      }
    }
    this.served++;
    this.#charge(from, bytes);
    this.#o.transport.send(from, encodeFrame(this.#o.chainId, { type: 'block-response', requestId, blocks: out, epochEnd }));
  }

  /**
   * A joining peer asks for the ended epochs' proofs from `fromEpoch` (as many as fit the budget, at
   * most MAX_CHECKPOINT_EPOCHS) and, once they reach the current epoch, the committed tip with its
   * COMMIT QC: the checkpoint it starts from (checkpoint.ts). Same bounds as block requests.
   */
  onCheckpointRequest(from: number, requestId: number, fromEpoch: number): void {
    const refusal = this.#admit(from, `checkpoint:${fromEpoch}`);
    if (refusal) return this.#refuse(from, requestId, refusal);
    const { store } = this.#o;
    const budget = this.budget;
    const epochs: WireEpochProof[] = [];
    let bytes = 0;
    const ended = store.endedEpochCount();
    for (let e = fromEpoch; e < ended && epochs.length < MAX_CHECKPOINT_EPOCHS; e++) {
      const proof = store.epochProof(e);
      if (!proof) break;
      const p = { last: proof.last, suffix: [...proof.suffix], qc: proof.qc };
      const size = encodeFrame(this.#o.chainId, { type: 'checkpoint-response', requestId, epochs: [p] }).length;
      if (epochs.length > 0 && bytes + size > budget) break;
      bytes += size;
      epochs.push(p);
    }
    let tip: CertifiedBlock | undefined;
    const height = store.committedHeight();
    if (fromEpoch + epochs.length >= ended && height > 0) {
      const block = store.blockAtHeight(height);
      const qc = block && store.qcFor(block.hash);
      if (block && qc?.phase === Phase.COMMIT) {
        const size = encodeFrame(this.#o.chainId, { type: 'checkpoint-response', requestId, epochs: [], tip: { block, qc } }).length;
        if (epochs.length === 0 || bytes + size <= budget) { tip = { block, qc }; bytes += size; }
      }
    }
    this.served++;
    this.#charge(from, bytes);
    this.#o.transport.send(from, encodeFrame(this.#o.chainId, { type: 'checkpoint-response', requestId, epochs, tip }));
  }

  /**
   * A joining peer asks for the summaries (header and transaction ids) of the committed heights
   * below `belowHeight`, newest first: as many as fit the budget, at most `max`, and no more than the
   * budget's worth of stored bytes read (an unpruned height is read as its whole block).
   */
  onHistoryRequest(from: number, requestId: number, belowHeight: number, max: number): void {
    const refusal = this.#admit(from, `history:${belowHeight}`);
    if (refusal) return this.#refuse(from, requestId, refusal);
    const { store } = this.#o;
    const budget = this.budget;
    const summaries: BlockSummary[] = [];
    let bytes = 0;
    let read = 0;
    const limit = Math.max(1, Math.min(max, MAX_HISTORY_SUMMARIES));
    for (let h = Math.min(belowHeight - 1, store.committedHeight()); h >= 1 && summaries.length < limit && read < budget; h--) {
      const r = store.readSummary(h);
      if (!r) break;
      read += r.readBytes;
      const size = BlockSummaryMsg.encode(summaryToWire(r.summary)).finish().length + 8;
      if (summaries.length > 0 && bytes + size > budget) break;
      bytes += size;
      summaries.push(r.summary);
    }
    this.served++;
    this.#charge(from, Math.max(bytes, read));
    this.#o.transport.send(from, encodeFrame(this.#o.chainId, { type: 'history-response', requestId, summaries }));
  }

  #charge(from: number, bytes: number): void {
    const bucket = this.#buckets.get(from);
    if (bucket) bucket.tokens -= Math.max(MIN_CHARGE_BYTES, bytes);
    if (isOutside(from)) this.#outside.tokens -= Math.max(MIN_CHARGE_BYTES, bytes);
  }

  /** Why a request is refused before any block is read, or null. */
  #admit(from: number, key: string): SyncRefusal | null {
    if (this.#o.engine.halted) return 'halted';
    const now = (this.#o.now ?? Date.now)();
    let bucket = this.#buckets.get(from);
    const burst = Math.max(REQUEST_BURST * MIN_CHARGE_BYTES, 2 * this.budget);
    if (!bucket) this.#buckets.set(from, (bucket = { tokens: burst, at: now, lastKey: '', lastAt: -Infinity }));
    bucket.tokens = Math.min(burst, bucket.tokens + ((now - bucket.at) / 1000) * SERVE_BYTES_PER_SECOND);
    bucket.at = now;
    if (key === bucket.lastKey && now - bucket.lastAt < REPEAT_WINDOW_MS) return 'repeated';
    if (bucket.tokens <= 0) return 'rate_limited';
    if (isOutside(from)) {
      const o = this.#outside;
      o.tokens = Math.min(burst, o.tokens + ((now - o.at) / 1000) * SERVE_BYTES_PER_SECOND);
      o.at = now;
      if (o.tokens <= 0) return 'rate_limited';
    }
    bucket.lastKey = key;
    bucket.lastAt = now;
    return null;
  }

  #refuse(from: number, requestId: number, reason: SyncRefusal): void {
    const k = `${from}:${reason}`;
    const count = (this.refusals.get(k) ?? 0) + 1;
    this.refusals.set(k, count);
    this.#o.onRefused?.(from, reason);
    // Logged at 1, 2, 4, 8, … so a flood cannot flood the log.
    if ((count & (count - 1)) === 0) this.#o.log.warn({ from, requestId, reason, count }, 'block request refused');
  }

  #block(hash: Hash): Block | undefined {
    return this.#o.engine.block(toHex(hash)) ?? this.#o.store.blockByHash(hash);
  }
}
