// Building the leader's next block from the mempool, and checking a received block's
// transaction root and running state hash. Pure apart from the clock value passed in.

import { IdMap, contentError, partsOf, randomIdSeed, type BlockPart } from '#libs/blocks/index.ts';
import { merkleRoot, nextStateHash, toHex } from '#libs/crypto/index.ts';
import { rememberTxs, txHashesOf } from './tx-hashes.ts';
import type { Block, BlockHeader, Hash } from '#libs/hotstuff/index.ts';
import type { IdSet, Mempool } from './mempool.ts';
import type { BatchStore, StoredBatch } from './batches.ts';

export interface PayloadRequest {
  epoch: number; view: number; parentHash: Hash; parentHeight: number; parentStateHash: Hash; parentTimestampMs: number;
  /** Above a block that ends the epoch: no transactions (the engine's request-payload.empty). */
  empty?: boolean;
}

export interface PayloadOptions {
  chainId: string;
  self: number;
  maxBlockTxs: number;
  maxBlockBytes: number;
  hashBlock(h: BlockHeader): Hash;
}

/** The ids of the transactions in the blocks between the committed tip and `parent`. */
export function inFlightTxs(parentHash: Hash, committedHeight: number, blockOf: (hash: Hash) => Block | undefined): IdSet {
  const out = new IdMap(randomIdSeed());
  let b = blockOf(parentHash);
  while (b && b.header.height > committedHeight) {
    for (const h of txHashesOf(b)) out.set(h, 0);
    b = blockOf(b.header.parentHash);
  }
  return out;
}

/**
 * The leader's block on `req`'s parent: `first` (a pending reconfiguration, which no client can put
 * in the pool) ahead of what the pool holds, within the block's limits; nothing above a block that
 * ends the epoch. With `batches`, also how the block travels: its whole batches that every
 * validator was sent and this member still holds (so it can serve them) by reference, the rest
 * inline; `parts` is undefined when no batch is named.
 */
export function buildBlock(req: PayloadRequest, opts: PayloadOptions, pool: Mempool, inFlight: IdSet, nowMs: number,
  first?: { tx: Uint8Array; hash: Hash }, batches?: BatchStore): { block: Block; parts?: BlockPart[] | undefined; named: string[] } {
  const lead = first && !req.empty && !inFlight.has(first.hash) && first.tx.length <= opts.maxBlockBytes ? [first] : [];
  const picked = req.empty ? [] : [...lead, ...pool.batch(opts.maxBlockTxs - lead.length, opts.maxBlockBytes - (lead[0]?.tx.length ?? 0), inFlight)];
  const ids = picked.map((p) => p.hash);
  const txRoot = merkleRoot(ids);
  const header: BlockHeader = {
    chainId: opts.chainId,
    epoch: req.epoch,
    height: req.parentHeight + 1,
    view: req.view,
    parentHash: req.parentHash,
    proposer: opts.self,
    // Block time only moves forward (libs/blocks): a clock behind the parent's stamp (a step back,
    // or a leader stamping ahead within the drift) gives the parent's time plus one.
    timestampMs: Math.max(nowMs, req.parentTimestampMs + 1),
    txRoot,
    stateHash: nextStateHash(req.parentStateHash, txRoot),
  };
  const txs = picked.map((p) => p.tx);
  rememberTxs(txs, ids, txRoot);
  const block = { header, hash: opts.hashBlock(header), txs };
  if (!batches) return { block, named: [] };
  const batchOf = (i: number): StoredBatch | undefined => {
    const b = (picked[i] as { batch?: StoredBatch } | undefined)?.batch;
    return b && b.everyone && batches.get(b.hex) === b ? b : undefined;
  };
  const parts = partsOf(txs, ids, batchOf);
  const named = parts.flatMap((p) => ('batch' in p ? [toHex(p.batch.digest)] : []));
  return { block, parts: named.length > 0 ? parts : undefined, named };
}

/** Why a block's content does not match its header, or null. `parent` when known. (libs/blocks is its one home.) */
export const payloadError = contentError;
