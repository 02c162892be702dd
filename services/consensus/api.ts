// The public gRPC API of a member (ConsensusService) and the operator's AdminService. Requests
// are validated here; FedError codes map to gRPC status in STATUS, the one place this service
// does that. StreamCommits reads the committed log by height, so a slow client only lags — it
// never makes the service buffer without bound.
//
// ACCEPTED (a SubmitTransaction(s) answer without an error) is sent only once the transaction is
// durable on this member's disk (the mempool journal, one group commit per call at most), or
// committed already: see docs/consensus.md, "What ACCEPTED promises".

import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { FedError } from '#libs/errors/index.ts';
import { merkleLevels, merkleProof, toHex } from '#libs/crypto/index.ts';
import { txHashesOf } from './tx-hashes.ts';
import { faultBound, quorumSize, type Block } from '#libs/hotstuff/index.ts';
import { peerCertificate, requirePeer, rpcHandlers, statusTable } from '#libs/rpc/index.ts';
import { TxStatus, type AdminServiceServer, type ConsensusServiceServer, type GetBlockResponse, type GetStatusResponse, type PeerSummary } from '#libs/gen/btcfed/v1/consensus.pb.ts';
import { blockToWire, headerToWire, qcToWire } from '#libs/wire/index.ts';
import type { BlockStore } from './block-store.ts';
import type { ConsensusDriver } from './driver.ts';
import type { EvidenceLog } from './evidence.ts';
import type { Mempool, OfferResult } from './mempool.ts';
import type { MempoolJournal } from './mempool-journal.ts';

const MAX_BATCH_TXS = 10_000;
/** Blocks whose Merkle tree is kept for inclusion proofs (a 10,000-transaction block's is ~2 MiB). */
const PROOF_TREES = 8;

const STATUS = statusTable({
  TX_EMPTY: grpc.status.INVALID_ARGUMENT,
  TX_TOO_LARGE: grpc.status.INVALID_ARGUMENT,
  MEMPOOL_FULL: grpc.status.RESOURCE_EXHAUSTED,
  MEMPOOL_QUOTA: grpc.status.RESOURCE_EXHAUSTED,
  MEMPOOL_JOURNAL_FAILED: grpc.status.UNAVAILABLE,
  REQUEST_INVALID: grpc.status.INVALID_ARGUMENT,
  NOT_FOUND: grpc.status.NOT_FOUND,
  HALTED: grpc.status.UNAVAILABLE,
  STORE_CORRUPT: grpc.status.DATA_LOSS,
  RPC_PEER_UNAUTHENTICATED: grpc.status.UNAUTHENTICATED,
  RPC_PEER_NOT_ALLOWED: grpc.status.PERMISSION_DENIED,
});

export interface ValidatorInfo { name: string; peerId: string; publicKey: Uint8Array }

/** What the API reads of the node it serves: a validator's driver, or an observer's follower. */
export interface ServedNode {
  readonly genesis: Block;
  /** Set when the node stopped for good (a halt, a failed write it cannot retry). */
  readonly failure: Error | undefined;
  isCommitted(hash: Uint8Array): boolean;
  /** The consensus fields of GetStatus. */
  status(): Pick<GetStatusResponse, 'view' | 'phase' | 'leader' | 'lockedQcView' | 'highQcView' | 'paused' | 'halted' | 'observer' | 'sourceHeight' | 'behind'>;
}

/** Where a client's transactions go: a validator's mempool (and the upcoming leaders), or an observer's hand-off to validators. */
export interface Intake {
  offer(tx: Uint8Array, nowMs: number): OfferResult;
  /** Whether the transaction (hex hash) waits here for a block. */
  has(hashHex: string): boolean;
  readonly size: number;
  /** A transaction this call took: passed on (to the upcoming leaders, or to validators). */
  handOff(tx: Uint8Array): void;
}

/** A validator's intake: its mempool, and the hand-off to the upcoming leaders. */
export function mempoolIntake(pool: Mempool, isCommitted: (hash: Uint8Array) => boolean, handOff: (tx: Uint8Array) => void): Intake {
  return { offer: (tx, now) => pool.offer(tx, now, isCommitted), has: (k) => pool.has(k), get size() { return pool.size; }, handOff };
}

export interface ApiDeps {
  member: string;
  chainId: string;
  self: number;
  validators: readonly ValidatorInfo[];
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
  now?: () => number;
}

function hash32(field: string, b: Uint8Array): Uint8Array {
  if (b.length !== 32) throw new FedError('REQUEST_INVALID', `${field}: must be 32 bytes, got ${b.length}`);
  return b;
}

export function consensusService(d: ApiDeps): ConsensusServiceServer {
  const h = rpcHandlers({ statusOf: STATUS, log: d.log });
  const counted = <T>(method: string, fn: () => T): T => {
    try { return fn(); } catch (err) { d.rejected?.(method, err instanceof FedError ? err.code : 'INTERNAL'); throw err; }
  };
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
    for (const a of accepted) if (a.added || d.pool.has(toHex(a.hash))) waits.add(d.journal.append(a.hash, a.tx));
    return waits.size === 0 ? undefined : Promise.all(waits);
  };
  const certified = (b: Block, headersOnly: boolean): GetBlockResponse => {
    const qc = d.store.qcFor(b.hash);
    return { block: blockToWire(headersOnly ? { ...b, txs: [] } : b), blockHash: b.hash, qc: qc ? qcToWire(qc) : undefined };
  };
  /**
   * A committed block by height. A height at or below the committed tip without a block is a
   * damaged store: said loudly (DATA_LOSS, logged) instead of skipped, so a reader never
   * mistakes a gap for the log.
   */
  const committedAt = (height: number): Block => {
    const b = d.store.blockAtHeight(height);
    if (b) return b;
    d.log.error({ height, committed: d.store.committedHeight() }, 'committed height has no block in the store');
    throw new FedError('STORE_CORRUPT', `committed height ${height} has no block in this member's store`);
  };
  // Merkle trees of the last few blocks proofs were asked for: a block's tree costs about two
  // hashes per transaction to build, a proof from it a few array reads. Bounded by count.
  const trees = new Map<string, Uint8Array[][]>();
  const merkleTreeOf = (b: Block): Uint8Array[][] => {
    const key = toHex(b.hash);
    let tree = trees.get(key);
    if (tree) { trees.delete(key); trees.set(key, tree); return tree; }
    tree = merkleLevels(txHashesOf(b));
    trees.set(key, tree);
    if (trees.size > PROOF_TREES) trees.delete(trees.keys().next().value!);
    return tree;
  };
  const n = d.validators.length;
  return {
    submitTransaction: h.unary((req) => countedAsync('SubmitTransaction', async () => {
      if (d.node.failure) throw new FedError('HALTED', `consensus is halted: ${d.node.failure.message}`);
      const r = d.pool.offer(req.tx, (d.now ?? Date.now)());
      if (r.status === 'refused') throw new FedError(r.code, r.message, { size: d.pool.size });
      if (r.status === 'added') d.pool.handOff(req.tx);
      await durable([{ hash: r.hash, tx: req.tx, added: r.status === 'added' }]);
      return { txHash: r.hash, duplicate: r.status === 'duplicate' };
    })),
    submitTransactions: h.unary((req) => countedAsync('SubmitTransactions', async () => {
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
        if (r.status === 'added') { d.pool.handOff(tx); accepted++; }
        taken.push({ hash: r.hash, tx, added: r.status === 'added' });
        return { txHash: r.hash, duplicate: r.status === 'duplicate', errorCode: '', error: '' };
      });
      // One group commit for the whole call; if it fails, the call fails (UNAVAILABLE): its
      // transactions are then indeterminate to the client, which resubmits them.
      await durable(taken);
      return { results, accepted };
    })),
    getTransaction: h.unary((req) => counted('GetTransaction', () => {
      const hash = hash32('tx_hash', req.txHash);
      const loc = d.store.txLocation(hash);
      const none = { header: undefined, txCount: 0, proof: [] };
      if (loc) {
        const found = { status: TxStatus.TX_STATUS_COMMITTED, height: loc.height, blockHash: loc.blockHash, index: loc.index };
        if (!req.withProof) return { ...found, ...none };
        const block = committedAt(loc.height);
        const tree = merkleTreeOf(block);
        return { ...found, header: headerToWire(block.header), txCount: block.txs.length, proof: merkleProof(tree, loc.index) };
      }
      const pending = d.pool.has(toHex(hash));
      return { status: pending ? TxStatus.TX_STATUS_PENDING : TxStatus.TX_STATUS_UNKNOWN, height: 0, blockHash: new Uint8Array(), index: 0, ...none };
    })),
    getStatus: h.unary(() => {
      // The committed tip as this member serves it (durable, readable by GetBlock/ListBlocks),
      // not the engine's, which runs ahead by the blocks whose commit is still being written:
      // a client that reads committed_height and then asks for that block must find it.
      const committedHeight = d.store.committedHeight();
      const committedHash = committedHeight === 0 ? d.node.genesis.hash : d.store.hashAtHeight(committedHeight) ?? new Uint8Array();
      return {
        member: d.member, chainId: d.chainId, selfIndex: d.self, ...d.node.status(), committedHeight, committedHash,
        mempoolSize: d.pool.size, peers: d.peers?.() ?? [],
      };
    }),
    getBlock: h.unary((req) => counted('GetBlock', () => {
      const by = req.by;
      if (!by) throw new FedError('REQUEST_INVALID', 'height or hash is required');
      const b = by.$case === 'height' ? (by.value === 0 ? d.node.genesis : d.store.blockAtHeight(by.value)) : d.store.blockByHash(hash32('hash', by.value));
      if (!b || b.header.height > d.store.committedHeight()) throw new FedError('NOT_FOUND', `no committed block ${by.$case === 'height' ? `at height ${by.value}` : 'with that hash'}`);
      return certified(b, false);
    })),
    listBlocks: h.unary((req) => counted('ListBlocks', () => {
      if (req.limit > 100) throw new FedError('REQUEST_INVALID', 'limit: at most 100');
      const limit = req.limit || 20;
      const top = d.store.committedHeight();
      const blocks: GetBlockResponse[] = [];
      for (let height = Math.max(1, req.fromHeight); height <= top && blocks.length < limit; height++) {
        blocks.push(certified(committedAt(height), req.headersOnly));
      }
      return { blocks };
    })),
    streamCommits: h.serverStream(async function* (req, _call, signal) {
      let next = Math.max(1, req.fromHeight || d.store.committedHeight() + 1);
      while (!signal.aborted) {
        if (next <= d.store.committedHeight()) {
          yield { block: certified(committedAt(next++), req.headersOnly) };
          continue;
        }
        await d.nextCommit(signal);
      }
    }),
    getValidators: h.unary(() => ({
      validators: d.validators.map((v, index) => ({ index, name: v.name, peerId: v.peerId, publicKey: v.publicKey })),
      quorum: quorumSize(n), maxFaulty: faultBound(n),
    })),
    getEvidence: h.unary((req) => d.evidence.page(req.fromView, req.afterSeq, req.limit)),
  };
}

export interface AdminDeps extends Pick<ApiDeps, 'log'> {
  driver: ConsensusDriver;
  /** Client certificate fingerprints allowed; undefined = any certificate the transport accepted. */
  allowedClients?: readonly string[];
}

export function adminService(d: AdminDeps): AdminServiceServer {
  const h = rpcHandlers({ statusOf: STATUS, log: d.log });
  const allowed = d.allowedClients;
  const operator = <Req, Res>(method: string, fn: () => Res) => h.unary<Req, Res>((_req, call) => {
    const peer = allowed ? requirePeer(call, allowed) : peerCertificate(call);
    d.log.warn({ method, client: peer?.subject ?? 'loopback (no TLS)' }, 'admin request');
    return fn();
  });
  return {
    pause: operator('Pause', () => { d.driver.setPaused(true); return { paused: true }; }),
    resume: operator('Resume', () => { d.driver.setPaused(false); return { paused: false }; }),
    forceViewChange: operator('ForceViewChange', () => ({ view: d.driver.forceViewChange() })),
    dumpState: operator('DumpState', () => {
      const e = d.driver.engine;
      const hex = (_k: string, v: unknown) => (v instanceof Uint8Array ? Buffer.from(v).toString('hex') : v);
      return { stateJson: JSON.stringify({ view: e.view, halted: e.halted, paused: d.driver.paused, safety: e.safety,
        committed: { height: e.committed.header.height, hash: e.committed.hash }, failure: d.driver.failure?.message }, hex, 2) };
    }),
  };
}
