// The public gRPC API of a member (ConsensusService; the operator's AdminService is admin.ts). Requests
// are validated here; FedError codes map to gRPC status in STATUS, the one place this service
// does that. Every call is first admitted against its client's limits and the total (api-guard.ts:
// open streams, reads in flight, read CPU, read units, submitted transactions), before it costs
// anything; a read's synchronous work is then timed and charged to its read CPU (read-cpu.ts). StreamCommits reads
// the committed log by height and takes the next block only when the client has taken what was sent
// (commit-stream.ts): a slow reader lags, holding a bounded number of bytes; one that stops reading
// is cancelled after the stall time and its slot freed.
//
// ACCEPTED (a SubmitTransaction(s) answer without an error) is sent only once the transaction is
// durable on this member's disk (the mempool journal, one group commit per call at most), or
// committed already: see docs/consensus.md, "What ACCEPTED promises".

import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { FedError } from '#libs/errors/index.ts';
import { fromHex, merkleLevels, merkleProof, toHex } from '#libs/crypto/index.ts';
import { txHashesOf } from './tx-hashes.ts';
import { type Block } from '#libs/hotstuff/index.ts';
import type { ConsensusParams, ValidatorSet } from '#libs/validators/index.ts';
import { rpcHandlers, statusTable, type RpcHandlers, type UnaryHandler } from '#libs/rpc/index.ts';
import { ConsensusServiceService, TxStatus, type ConsensusServiceServer, type GetBlockResponse, type GetEpochsResponse, type GetStatusResponse, type PeerSummary, type StreamCommitsResponse } from '#libs/gen/btcfed/v1/consensus.pb.ts';
import { blockToWire, headerToWire, qcToWire } from '#libs/wire/index.ts';
import type { BlockStore } from './block-store.ts';
import type { EvidenceLog } from './evidence.ts';
import type { Mempool, OfferResult } from './mempool.ts';
import type { MempoolJournal } from './mempool-journal.ts';
import { consensusLimits } from '#libs/config/schema.ts';
import { clientIdentity, limitsFromConf, REFUSAL_CODES, type ApiGuard } from './api-guard.ts';
import { boundedStream, commitWireSize, type FlowOptions } from './commit-stream.ts';
import { encodedBlockList, encodedBlockResponse, withEncodedResponses, type StoredBlock } from './stored-reads.ts';
import { billed, meteredSend, UNMETERED, type ReadCpu } from './read-cpu.ts';

const MAX_BATCH_TXS = 10_000;
/** ListBlocks answers at most this many blocks, and this many when asked for none. */
const MAX_LIST = 100;
const DEFAULT_LIST = 20;
/** Blocks whose Merkle tree is kept for inclusion proofs (a 10,000-transaction block's is ~2 MiB). */
const PROOF_TREES = 8;

/** What an inclusion proof is made from: the block's header, its transaction count, its Merkle tree. */
interface ProofSource { header: Block['header']; txCount: number; tree: Uint8Array[][] }
/**
 * Read units, each about 0.3 CPU-ms of serving on this machine (measured over mutual TLS from a real
 * LMDB store): a call costs 1 (GetStatus ~0.24 ms) and every block it may return 1 more (a block with
 * its 128f QC ~0.3 ms, whether alone or in a page: GetBlock ~0.9 ms, a page of 100 ~30 ms), so
 * ListBlocks is weighed by its limit. A proof may build a block's Merkle tree (two hashes per
 * transaction, ~10 ms for 10,000): ten. A block StreamCommits sends is one.
 */
const BLOCK_WEIGHT = 1;
/** GetEpochs: proofs per page, and the bytes a page stops before (an epoch's last block carries transactions). */
const EPOCH_PAGE = 16;
const EPOCH_PAGE_BYTES = 32 << 20;
const epochPage = (limit: number): number => Math.min(limit || EPOCH_PAGE, EPOCH_PAGE);
const PROOF_WEIGHT = 10;
const listWeight = (limit: number): number => 1 + limit * BLOCK_WEIGHT;
/** ListBlocks yields to the event loop after this many blocks. */
const LIST_SLICE = 8;
/** Without configured limits (tests of other methods): what services.consensus.limits defaults to. */
const DEFAULT_FLOW: FlowOptions = limitsFromConf(consensusLimits.parse({})).flow;

const STATUS = statusTable({
  TX_EMPTY: grpc.status.INVALID_ARGUMENT,
  TX_TOO_LARGE: grpc.status.INVALID_ARGUMENT,
  TX_RESERVED: grpc.status.INVALID_ARGUMENT,
  MEMPOOL_FULL: grpc.status.RESOURCE_EXHAUSTED,
  MEMPOOL_QUOTA: grpc.status.RESOURCE_EXHAUSTED,
  MEMPOOL_JOURNAL_FAILED: grpc.status.UNAVAILABLE,
  REQUEST_INVALID: grpc.status.INVALID_ARGUMENT,
  NOT_FOUND: grpc.status.NOT_FOUND,
  BLOCK_PRUNED: grpc.status.OUT_OF_RANGE,
  HALTED: grpc.status.UNAVAILABLE,
  STORE_CORRUPT: grpc.status.DATA_LOSS,
  RPC_PEER_UNAUTHENTICATED: grpc.status.UNAUTHENTICATED,
  RPC_PEER_NOT_ALLOWED: grpc.status.PERMISSION_DENIED,
  [REFUSAL_CODES.streams]: grpc.status.RESOURCE_EXHAUSTED,
  [REFUSAL_CODES.stalled]: grpc.status.RESOURCE_EXHAUSTED,
  [REFUSAL_CODES.rate]: grpc.status.RESOURCE_EXHAUSTED,
  [REFUSAL_CODES.clients]: grpc.status.RESOURCE_EXHAUSTED,
});

/** What the API reads of the node it serves: a validator's driver, or an observer's follower. */
export interface ServedNode {
  readonly genesis: Block;
  /** Set when the node stopped for good (a halt, a failed write it cannot retry). */
  readonly failure: Error | undefined;
  isCommitted(hash: Uint8Array): boolean;
  /** The consensus fields of GetStatus. */
  status(): Pick<GetStatusResponse, 'view' | 'phase' | 'leader' | 'lockedQcView' | 'highQcView' | 'paused' | 'halted' | 'observer' | 'sourceHeight' | 'behind' | 'epoch'>;
}

/** Where a client's transactions go: a validator's mempool (and its batches to every validator), or an observer's hand-off to validators. */
export interface Intake {
  offer(tx: Uint8Array, nowMs: number): OfferResult;
  /** Whether the transaction (its id) waits here for a block. */
  has(id: Uint8Array): boolean;
  readonly size: number;
  /** A transaction this call took (with its id): passed on (to every validator in a batch, or an observer's to validators). */
  handOff(tx: Uint8Array, hash: Uint8Array): void;
}

/** A validator's intake: its mempool, and the hand-off of its batches to every validator. */
export function mempoolIntake(pool: Mempool, isCommitted: (hash: Uint8Array) => boolean, handOff: (tx: Uint8Array, hash: Uint8Array) => void): Intake {
  return { offer: (tx, now) => pool.offer(tx, now, isCommitted), has: (k) => pool.has(k), get size() { return pool.size; }, handOff };
}

export interface ApiDeps {
  member: string;
  chainId: string;
  self: number;
  /** The set GetValidators answers with (its quorum and fault bound included). */
  validators: ValidatorSet;
  /** The consensus parameters of that set's epoch (epochs.ts paramsInForce); absent: not reported (0). */
  params?: () => ConsensusParams & { committed: boolean };
  node: ServedNode;
  store: BlockStore;
  pool: Intake;
  /**
   * Where accepted transactions are made durable before the answer. Without one (unit tests of
   * other methods) ACCEPTED promises only the memory of this process.
   */
  journal?: Pick<MempoolJournal, 'append'>;
  evidence: EvidenceLog;
  log: Logger;
  /** Current peers as the gateway sees them (empty when unknown). */
  peers?: () => PeerSummary[];
  /** Resolves after the next commit (or when `signal` aborts). */
  nextCommit(signal: AbortSignal): Promise<void>;
  rejected?: (method: string, code: string) => void;
  /** Per-client and total limits; without them (tests of other methods) every call is admitted. */
  guard?: ApiGuard;
  /** StreamCommits' flow control, read when a stream opens (so a reload applies to new streams). */
  flow?: () => FlowOptions;
  now?: () => number;
}


function hash32(field: string, b: Uint8Array): Uint8Array {
  if (b.length !== 32) throw new FedError('REQUEST_INVALID', `${field}: must be 32 bytes, got ${b.length}`);
  return b;
}

/**
 * The ConsensusService definition to serve consensusService() with: GetBlock, ListBlocks and StreamCommits may
 * answer with stored bytes, already encoded (stored-reads.ts).
 */
export const CONSENSUS_SERVICE = withEncodedResponses(ConsensusServiceService, ['getBlock', 'listBlocks', 'streamCommits']);

export function consensusService(d: ApiDeps): ConsensusServiceServer {
  const rpc = rpcHandlers({ statusOf: STATUS, log: d.log });
  // Every unary handler: a read's answer is sent on its read CPU (read-cpu.ts), any other as before.
  const h: RpcHandlers = { ...rpc, unary: <Req, Res>(fn: UnaryHandler<Req, Res>) => meteredSend(rpc.unary(fn)) };
  const countedAsync = async <T>(method: string, fn: () => Promise<T>): Promise<T> => {
    try { return await fn(); } catch (err) { d.rejected?.(method, err instanceof FedError ? err.code : 'INTERNAL'); throw err; }
  };
  /**
   * The durability of what this call accepts: one journal append per transaction that is in the
   * mempool now (taken by this call, or pending already — perhaps handed over by another
   * validator and not journaled), all in the same tick, so they share a group commit. Committed
   * duplicates need nothing: the block store holds them.
   */
  const durable = (accepted: readonly { hash: Uint8Array; tx: Uint8Array; added: boolean }[]): Promise<unknown> | undefined => {
    if (!d.journal || accepted.length === 0) return undefined;
    const waits = new Set<Promise<void>>();
    for (const a of accepted) if (a.added || d.pool.has(a.hash)) waits.add(d.journal.append(a.hash, a.tx));
    return waits.size === 0 ? undefined : Promise.all(waits);
  };
  /** A block with its QC, as GetBlock answers one it does not read by height (genesis, or by hash). */
  const certified = (b: Block): GetBlockResponse => {
    const qc = d.store.qcFor(b.hash);
    return { block: blockToWire(b), blockHash: b.hash, qc: qc ? qcToWire(qc) : undefined };
  };
  /** A committed height whose body this member pruned (retention.ts): said with the oldest height it keeps. */
  const pruned = (height: number, what = `block ${height}`): FedError => {
    const oldest = d.store.prunedTo() + 1;
    return new FedError('BLOCK_PRUNED', `${what} is pruned on this member (consensus.keep_blocks): it keeps blocks whole from height ${oldest}; ask a member that keeps every block`,
      { height, oldestHeight: oldest });
  };
  /**
   * A committed block by height. A pruned height is said as such (BLOCK_PRUNED); any other
   * height at or below the committed tip without a block is a damaged store: said loudly
   * (DATA_LOSS, logged) instead of skipped, so a reader never mistakes a gap for the log.
   */
  const committedAt = (height: number, what?: string): Block => d.store.blockAtHeight(height) ?? missing(height, what);
  /** A committed height's block as stored (stored-reads.ts), to answer without decoding it. */
  const storedAt = (height: number, what?: string): StoredBlock => d.store.storedAtHeight(height) ?? missing(height, what);
  const missing = (height: number, what?: string): never => {
    // Read after the block: a prune that ran in between is seen here.
    if (d.store.isPruned(height)) throw pruned(height, what);
    d.log.error({ height, committed: d.store.committedHeight() }, 'committed height has no block in the store');
    throw new FedError('STORE_CORRUPT', `committed height ${height} has no block in this member's store`);
  };
  /** A pruned height's kept header (without its QC), as a headers-only read answers it; undefined if not pruned. */
  const prunedHeader = (height: number): GetBlockResponse | undefined => {
    if (!d.store.isPruned(height)) return undefined;
    const header = d.store.headerAtHeight(height);
    const hash = d.store.hashAtHeight(height);
    return header && hash ? { block: blockToWire({ header, hash, txs: [] }), blockHash: hash, qc: undefined } : undefined;
  };
  // Merkle trees of the last few blocks proofs were asked for, with their headers: a block's tree
  // costs about two hashes per transaction to build, and reading the block decodes all of it; a
  // proof from a kept tree is a few array reads. Found by the block hash the index gives, so a
  // proof from a kept block reads nothing from the store. Bounded by count.
  const trees = new Map<string, ProofSource>();
  const proofSourceOf = (blockHash: Uint8Array, read: () => Block): ProofSource => {
    const key = toHex(blockHash);
    let kept = trees.get(key);
    if (kept) { trees.delete(key); trees.set(key, kept); return kept; }
    const b = read();
    kept = { header: b.header, txCount: b.txs.length, tree: merkleLevels(txHashesOf(b)) };
    trees.set(key, kept);
    if (trees.size > PROOF_TREES) trees.delete(trees.keys().next().value!);
    return kept;
  };
  // Admission first, so a refused call costs a bucket lookup and nothing else. The refusal is
  // answered after the guard's hold (services.consensus.limits.refusal_delay): a client that asks
  // again at once is slowed to a few calls a second per call it keeps open, instead of spinning
  // this member on refusals (each still costs a gRPC call: ~0.3 CPU-ms).
  type Call = Parameters<ApiGuard['read']>[0];
  const admitted = async (signal: AbortSignal, admit: () => void): Promise<void> => {
    try {
      admit();
    } catch (err) {
      await d.guard?.hold(signal);
      throw err;
    }
  };
  /**
   * A read call: admitted, then answered by `serve`, which runs its synchronous work on `cpu.time`
   * (awaits are not timed: the engine runs then). `cheap`: GetStatus and the like, a few keys read
   * (api-guard.ts read).
   */
  const served = async <T>(call: Call, signal: AbortSignal, method: string, weight: number, serve: (cpu: ReadCpu) => T | Promise<T>, cheap = false): Promise<T> => {
    let cpu = UNMETERED;
    await admitted(signal, () => { cpu = d.guard?.read(call, method, weight, cheap) ?? UNMETERED; });
    return billed(await serve(cpu), cpu);
  };
  const submit = (call: Call, signal: AbortSignal, method: string, txs: number): Promise<void> =>
    admitted(signal, () => d.guard?.admit(call, method, 'submit', txs));
  return {
    submitTransaction: h.unary((req, call, signal) => countedAsync('SubmitTransaction', async () => {
      await submit(call, signal, 'SubmitTransaction', 1);
      if (d.node.failure) throw new FedError('HALTED', `consensus is halted: ${d.node.failure.message}`);
      const r = d.pool.offer(req.tx, (d.now ?? Date.now)());
      if (r.status === 'refused') throw new FedError(r.code, r.message, { size: d.pool.size });
      if (r.status === 'added') d.pool.handOff(req.tx, r.hash);
      await durable([{ hash: r.hash, tx: req.tx, added: r.status === 'added' }]);
      return { txHash: r.hash, duplicate: r.status === 'duplicate' };
    })),
    submitTransactions: h.unary((req, call, signal) => countedAsync('SubmitTransactions', async () => {
      await submit(call, signal, 'SubmitTransactions', Math.min(req.txs.length, MAX_BATCH_TXS));
      if (d.node.failure) throw new FedError('HALTED', `consensus is halted: ${d.node.failure.message}`);
      if (req.txs.length > MAX_BATCH_TXS) throw new FedError('REQUEST_INVALID', `txs: at most ${MAX_BATCH_TXS} per call, got ${req.txs.length}`);
      const now = (d.now ?? Date.now)();
      let accepted = 0;
      const taken: { hash: Uint8Array; tx: Uint8Array; added: boolean }[] = [];
      const results = req.txs.map((tx) => {
        const r = d.pool.offer(tx, now);
        if (r.status === 'refused') {
          d.rejected?.('SubmitTransactions', r.code);
          return { txHash: r.hash ?? new Uint8Array(), duplicate: false, errorCode: r.code, error: r.message };
        }
        if (r.status === 'added') { d.pool.handOff(tx, r.hash); accepted++; }
        taken.push({ hash: r.hash, tx, added: r.status === 'added' });
        return { txHash: r.hash, duplicate: r.status === 'duplicate', errorCode: '', error: '' };
      });
      // One group commit for the whole call; if it fails, the call fails (UNAVAILABLE): its
      // transactions are then indeterminate to the client, which resubmits them.
      await durable(taken);
      return { results, accepted };
    })),
    getTransaction: h.unary((req, call, signal) => countedAsync('GetTransaction', () => served(call, signal, 'GetTransaction', req.withProof ? PROOF_WEIGHT : 1, (cpu) => cpu.time(() => {
      const hash = hash32('tx_hash', req.txHash);
      const located = d.store.txLocation(hash);
      // A join from a checkpoint writes the history's ids before the blocks up to its tip are
      // committed here: such a transaction is not committed as this member serves it yet.
      const loc = located && located.height <= d.store.committedHeight() ? located : undefined;
      const none = { header: undefined, txCount: 0, proof: [] };
      if (loc) {
        const found = { status: TxStatus.TX_STATUS_COMMITTED, height: loc.height, blockHash: loc.blockHash, index: loc.index };
        if (!req.withProof) return { ...found, ...none };
        const what = `transaction ${toHex(hash).slice(0, 16)} is committed at height ${loc.height}, but its proof needs that block, which`;
        // A kept tree outlives its block's prune: pruned is said as pruned whether it is kept or not.
        if (d.store.isPruned(loc.height)) throw pruned(loc.height, what);
        const source = proofSourceOf(loc.blockHash, () => committedAt(loc.height, what));
        return { ...found, header: headerToWire(source.header), txCount: source.txCount, proof: merkleProof(source.tree, loc.index) };
      }
      const pending = d.pool.has(hash);
      return { status: pending ? TxStatus.TX_STATUS_PENDING : TxStatus.TX_STATUS_UNKNOWN, height: 0, blockHash: new Uint8Array(), index: 0, ...none };
    }), !req.withProof))),
    getStatus: h.unary((_req, call, signal) => served(call, signal, 'GetStatus', 1, (cpu) => cpu.time(() => {
      // The committed tip as this member serves it (durable, readable by GetBlock/ListBlocks),
      // not the engine's, which runs ahead by the blocks whose commit is still being written:
      // a client that reads committed_height and then asks for that block must find it.
      const committedHeight = d.store.committedHeight();
      const committedHash = committedHeight === 0 ? d.node.genesis.hash : d.store.hashAtHeight(committedHeight) ?? new Uint8Array();
      return {
        member: d.member, chainId: d.chainId, selfIndex: d.self, ...d.node.status(), committedHeight, committedHash,
        mempoolSize: d.pool.size, peers: d.peers?.() ?? [],
      };
    }), true)),
    getBlock: h.unary((req, call, signal) => countedAsync('GetBlock', () => served(call, signal, 'GetBlock', 1 + BLOCK_WEIGHT, (cpu) => cpu.time(() => {
      const by = req.by;
      if (!by) throw new FedError('REQUEST_INVALID', 'height or hash is required');
      if (by.$case === 'height' && by.value > 0 && by.value <= d.store.committedHeight()) {
        const stored = d.store.storedAtHeight(by.value);
        if (stored) return encodedBlockResponse<GetBlockResponse>(stored);
      }
      const b = by.$case === 'height' ? (by.value === 0 ? d.node.genesis : d.store.blockAtHeight(by.value)) : d.store.blockByHash(hash32('hash', by.value));
      if (!b && by.$case === 'height' && d.store.isPruned(by.value)) throw pruned(by.value);
      if (!b || b.header.height > d.store.committedHeight()) {
        const floor = d.store.prunedTo();
        throw new FedError('NOT_FOUND', `no committed block ${by.$case === 'height' ? `at height ${by.value}` : `with that hash${floor > 0 ? ` at heights ${floor + 1} and above (this member pruned the blocks below)` : ''}`}`);
      }
      return certified(b);
    })))),
    // Weighed by the blocks it may return (a page of 100: 101 units).
    listBlocks: h.unary((req, call, signal) => countedAsync('ListBlocks', () => served(call, signal, 'ListBlocks', listWeight(Math.min(req.limit || DEFAULT_LIST, MAX_LIST)), async (cpu) => {
      if (req.limit > MAX_LIST) throw new FedError('REQUEST_INVALID', `limit: at most ${MAX_LIST}`);
      const limit = req.limit || DEFAULT_LIST;
      const top = d.store.committedHeight();
      const blocks: Array<StoredBlock | GetBlockResponse> = [];
      let height = Math.max(1, req.fromHeight);
      const more = () => height <= top && blocks.length < limit;
      // A page of 100 blocks is up to ~130 ms of reading and copying (1,000-transaction blocks,
      // bench/block-reads.ts): read in slices, letting the engine's events in between, so reads
      // lengthen no vote by more than a few blocks' worth. Each slice is timed; the waits are not.
      while (more()) {
        if (blocks.length > 0) await new Promise((resolve) => setImmediate(resolve));
        cpu.time(() => {
          for (const end = blocks.length + LIST_SLICE; more() && blocks.length < end; height++) {
            blocks.push((req.headersOnly ? prunedHeader(height) : undefined) ?? storedAt(height));
          }
        });
      }
      return cpu.time(() => encodedBlockList(blocks, req.headersOnly));
    }))),
    streamCommits: boundedStream(h, d.flow ?? (() => DEFAULT_FLOW), {
      sizeOf: commitWireSize,
      stalled: (call, bytes) => { d.guard?.stalled(clientIdentity(call), 'StreamCommits', bytes, (d.flow?.() ?? DEFAULT_FLOW).stallMs); },
    }, async function* (req, call, signal) {
      // The slot is held from here until the generator ends: finished, cancelled, stalled or failed.
      let slot: ReturnType<ApiGuard['openStream']> | undefined;
      await admitted(signal, () => { slot = d.guard?.openStream(call, 'StreamCommits'); });
      try {
        let next = Math.max(1, req.fromHeight || d.store.committedHeight() + 1);
        while (!signal.aborted) {
          if (next <= d.store.committedHeight()) {
            // Read when the client has room for it and read budget (a unit a block), never
            // ahead: a block not yet sent is not held.
            if (slot) await d.guard?.pace(slot.client, BLOCK_WEIGHT, signal);
            if (signal.aborted) break;
            const height = next++;
            yield encodedBlockList<StreamCommitsResponse>([(req.headersOnly ? prunedHeader(height) : undefined) ?? storedAt(height)], req.headersOnly);
            continue;
          }
          await d.nextCommit(signal);
        }
      } finally {
        slot?.release();
      }
    }),
    getValidators: h.unary((_req, call, signal) => served(call, signal, 'GetValidators', 1, (cpu) => cpu.time(() => {
      const set = d.validators;
      const p = d.params?.();
      return {
        validators: set.members.map((v) => ({ index: v.index, name: v.name, peerId: v.peerId, publicKey: fromHex(v.publicKey) })),
        quorum: set.quorum, maxFaulty: set.f, epoch: set.epoch,
        baseTimeoutMs: p?.baseTimeoutMs ?? 0, idleHeartbeatMs: p?.idleHeartbeatMs ?? 0, paramsCommitted: p?.committed ?? false,
      };
    }), true)),
    getEpochs: h.unary((req, call, signal) => served(call, signal, 'GetEpochs', 1 + epochPage(req.limit) * BLOCK_WEIGHT, (cpu) => cpu.time(() => {
      const limit = epochPage(req.limit);
      // Served as stored: only the page asked for is read, and nothing is decoded into blocks.
      const ended = d.store.endedEpochCount();
      const proofs: GetEpochsResponse['proofs'] = [];
      let bytes = 0;
      for (let e = req.fromEpoch; e < ended && proofs.length < limit; e++) {
        const p = d.store.epochProofMessage(e);
        if (!p) break;
        bytes += (p.last?.txs ?? []).reduce((n, tx) => n + tx.length, 0) + 64 * 1024;
        if (proofs.length > 0 && bytes > EPOCH_PAGE_BYTES) break;
        proofs.push(p);
      }
      return { proofs, currentEpoch: d.validators.epoch };
    }))),
    getEvidence: h.unary((req, call, signal) => served(call, signal, 'GetEvidence', 1,
      (cpu) => cpu.time(() => d.evidence.page({ epoch: req.fromEpoch, view: req.fromView }, req.afterSeq, req.limit)))),
  };
}
