// Batches: the transactions a member sends once to every validator, named by their digest, and a
// proposal's parts — batches by reference and transactions inline — resolved back into the
// block's transactions. The one home of what a batch's digest is and of what parts resolve to;
// whether the result is the block the header commits to is contentError's (validity.ts), as for
// a block that carried its transactions.

import { bytesEqual, merkleLeafBytes, merkleRoot, merkleRootOfLeafBytes, toHex, txHash } from '#libs/crypto/index.ts';
import type { Hash } from '#libs/hotstuff/index.ts';

/** A batch by reference, as a proposal names it (wire.proto BatchRef). */
export interface BatchRef { digest: Hash; author: number; count: number; bytes: number }

/** One run of a proposed block's transactions (wire.proto BlockPart). */
export type BlockPart = { tx: Uint8Array } | { batch: BatchRef };

/**
 * What a receiver holds of a batch: its transactions and their ids, in order, and the leaf level
 * of its Merkle tree (merkleLeafBytes) when it was computed with the digest (batchTree): a block
 * naming the batch takes its leaves from there instead of hashing them again.
 */
export interface HeldBatch { readonly txs: readonly Uint8Array[]; readonly ids: readonly Hash[]; readonly bytes: number; readonly leaves?: Uint8Array }

/** A batch's digest: the Merkle root of its transactions' ids (libs/crypto merkleRoot). */
export function batchDigest(ids: readonly Hash[]): Hash {
  return merkleRoot(ids);
}

/** batchDigest, with the leaf level it was computed from (kept with the batch). */
export function batchTree(ids: readonly Hash[]): { digest: Hash; leaves: Uint8Array } {
  const leaves = merkleLeafBytes(ids);
  return { digest: merkleRootOfLeafBytes(leaves), leaves };
}

export interface PartLimits { maxBlockTxs: number; maxBlockBytes: number }

export type Resolved =
  /** `leaves`: the block's Merkle leaf level, when every batch named came with its leaves. */
  | { ok: true; txs: Uint8Array[]; ids: Hash[]; leaves?: Uint8Array }
  | { ok: false; missing: BatchRef[] }
  | { ok: false; error: string };

/**
 * The transactions `parts` stand for, with their ids, when every batch they name is held
 * (`held`, by hex digest); else the batches missing; else why the parts cannot be a block's —
 * a held batch whose size is not what the reference says, or more transactions or bytes than a
 * block may have. Inline transactions are hashed here; a held batch's ids were computed once,
 * when it arrived.
 */
export function resolveParts(parts: readonly BlockPart[], held: (digestHex: string) => HeldBatch | undefined, limits: PartLimits): Resolved {
  const missing: BatchRef[] = [];
  const txs: Uint8Array[] = [];
  const ids: Hash[] = [];
  /** The leaves of each part in order (inline transactions' computed at the end), while every batch has its own. */
  let leafRuns: (Uint8Array | number)[] | undefined = [];
  let bytes = 0;
  for (const [i, part] of parts.entries()) {
    if ('tx' in part) {
      txs.push(part.tx);
      ids.push(txHash(part.tx));
      leafRuns?.push(ids.length - 1);
      bytes += part.tx.length;
      continue;
    }
    const ref = part.batch;
    const b = held(toHex(ref.digest));
    if (!b) {
      missing.push(ref);
      continue;
    }
    if (b.txs.length !== ref.count || b.bytes !== ref.bytes) {
      return { ok: false, error: `parts[${i}]: batch ${toHex(ref.digest).slice(0, 16)} holds ${b.txs.length} transactions of ${b.bytes} bytes, not ${ref.count} of ${ref.bytes}` };
    }
    for (let k = 0; k < b.txs.length; k++) {
      txs.push(b.txs[k]!);
      ids.push(b.ids[k]!);
    }
    if (b.leaves?.length === 32 * b.ids.length) leafRuns?.push(b.leaves);
    else leafRuns = undefined;
    bytes += b.bytes;
  }
  if (missing.length > 0) return { ok: false, missing };
  if (txs.length > limits.maxBlockTxs) return { ok: false, error: `parts resolve to ${txs.length} transactions; the limit is ${limits.maxBlockTxs}` };
  if (bytes > limits.maxBlockBytes) return { ok: false, error: `parts resolve to ${bytes} bytes; the limit is ${limits.maxBlockBytes}` };
  if (!leafRuns || !parts.some((p) => 'batch' in p)) return { ok: true, txs, ids };
  const leaves = new Uint8Array(32 * ids.length);
  let at = 0;
  for (const run of leafRuns) {
    const bytesOfRun = typeof run === 'number' ? merkleLeafBytes([ids[run]!]) : run;
    leaves.set(bytesOfRun, at);
    at += bytesOfRun.length;
  }
  return { ok: true, txs, ids, leaves };
}

/**
 * A block's transactions as parts: each run that is a whole batch of `batchOf` (the batch's
 * transactions, all of them, in its order) by reference, every other transaction inline.
 * `batchOf(i)` names the batch the i-th transaction was taken from, if any.
 */
export function partsOf(txs: readonly Uint8Array[], ids: readonly Hash[], batchOf: (i: number) => (HeldBatch & { ref: BatchRef }) | undefined): BlockPart[] {
  const parts: BlockPart[] = [];
  for (let i = 0; i < txs.length;) {
    const b = batchOf(i);
    const n = b?.ids.length ?? 0;
    let whole = b !== undefined && n > 0 && i + n <= txs.length;
    for (let k = 0; whole && k < n; k++) {
      const id = ids[i + k]!;
      if (batchOf(i + k) !== b || (id !== b!.ids[k] && !bytesEqual(id, b!.ids[k]!))) whole = false;
    }
    if (whole) {
      parts.push({ batch: b!.ref });
      i += n;
    } else {
      parts.push({ tx: txs[i]! });
      i++;
    }
  }
  return parts;
}
