// Batches: the transactions a member sends once to every validator, named by their digest, and a
// proposal's parts — batches by reference and transactions inline — resolved back into the
// block's transactions. The one home of what a batch's digest is and of what parts resolve to;
// whether the result is the block the header commits to is contentError's (validity.ts), as for
// a block that carried its transactions.

import { bytesEqual, merkleRoot, toHex, txHash } from '#libs/crypto/index.ts';
import type { Hash } from '#libs/hotstuff/index.ts';

/** A batch by reference, as a proposal names it (wire.proto BatchRef). */
export interface BatchRef { digest: Hash; author: number; count: number; bytes: number }

/** One run of a proposed block's transactions (wire.proto BlockPart). */
export type BlockPart = { tx: Uint8Array } | { batch: BatchRef };

/** What a receiver holds of a batch: its transactions and their ids, in order. */
export interface HeldBatch { readonly txs: readonly Uint8Array[]; readonly ids: readonly Hash[]; readonly bytes: number }

/** A batch's digest: the Merkle root of its transactions' ids (libs/crypto merkleRoot). */
export function batchDigest(ids: readonly Hash[]): Hash {
  return merkleRoot(ids);
}

export interface PartLimits { maxBlockTxs: number; maxBlockBytes: number }

export type Resolved =
  | { ok: true; txs: Uint8Array[]; ids: Hash[] }
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
  let bytes = 0;
  for (const [i, part] of parts.entries()) {
    if ('tx' in part) {
      txs.push(part.tx);
      ids.push(txHash(part.tx));
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
    bytes += b.bytes;
  }
  if (missing.length > 0) return { ok: false, missing };
  if (txs.length > limits.maxBlockTxs) return { ok: false, error: `parts resolve to ${txs.length} transactions; the limit is ${limits.maxBlockTxs}` };
  if (bytes > limits.maxBlockBytes) return { ok: false, error: `parts resolve to ${bytes} bytes; the limit is ${limits.maxBlockBytes}` };
  return { ok: true, txs, ids };
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
