// Following the validator set across epochs without trusting anyone: from genesis's set, each
// epoch-change proof — the block that ended epoch e (carrying the change and its approvals), the
// empty blocks of its suffix, and a COMMIT QC of epoch e on the top of them — is checked against
// epoch e's keys, and the change against epoch e's set and quorum (libs/validators EpochHistory),
// giving epoch e + 1's set. What a joining member, an observer or `btcfed verify` walks from the
// genesis file alone. Every refusal names what failed; a refused proof changes nothing.

import { merkleRoot, toHex, type SlhDsa } from '#libs/crypto/index.ts';
import type { Block, BlockHeader, QuorumCert } from '#libs/hotstuff/index.ts';
import { decodeReconfigTx, isReconfigTx, type EpochHistory, type ValidatorSet } from '#libs/validators/index.ts';
import { verifyCommitted, type EpochHeights, type TrustRoot } from './index.ts';

export interface EpochChangeProof {
  /** The last block of the epoch: it carries the change, with its approvals. */
  last: Block;
  /** Headers of the empty blocks above it that the QC's block is reached by (often none). */
  suffix: readonly BlockHeader[];
  /** A COMMIT QC of the epoch on `last`, or on the top of `suffix`. */
  qc: QuorumCert;
}

export type EpochVerdict = { ok: true; set: ValidatorSet; height: number } | { ok: false; reason: string };

/**
 * The trust root of one epoch's set: its keys, in its index order, for its epoch only — and, given
 * `heights` (epochHeights), for the blocks within them only.
 */
export function trustRootOf(chainId: string, set: ValidatorSet, dsa: Pick<SlhDsa, 'verifySync'>, heights?: EpochHeights): TrustRoot {
  return { chainId, publicKeys: set.publicKeys(), dsa, epoch: set.epoch, ...(heights ? { heights } : {}) };
}

/**
 * The heights of `epoch`'s blocks that `history` knows: from its first, and up to its last once
 * the history holds its end (the change committed there starts the next epoch). Undefined for an
 * epoch not reached.
 */
export function epochHeights(history: EpochHistory, epoch: number): EpochHeights | undefined {
  const first = history.firstHeight(epoch);
  if (first === undefined) return undefined;
  const next = history.firstHeight(epoch + 1);
  return next === undefined ? { first } : { first, last: next - 1 };
}

/** The transaction root of a block without transactions. */
const EMPTY_ROOT = toHex(merkleRoot([]));

/**
 * The part of followEpoch that `set`'s keys prove: the last block (its transactions included) and
 * the suffix are of `set`'s epoch, the suffix is empty, and the QC commits the last block. What a
 * second proof of a block already walked must pass (the change it carries is the same then).
 */
export function epochEndCommitted(chainId: string, set: ValidatorSet, proof: EpochChangeProof, dsa: Pick<SlhDsa, 'verifySync'>): { ok: true } | { ok: false; reason: string } {
  const last = proof.last;
  if (last.header.epoch !== set.epoch) return { ok: false, reason: `last block: of epoch ${last.header.epoch}, the history is at epoch ${set.epoch}` };
  for (const [i, h] of proof.suffix.entries()) {
    if (toHex(h.txRoot) !== EMPTY_ROOT) return { ok: false, reason: `suffix[${i}]: carries transactions (an epoch's suffix is empty)` };
  }
  const committed = verifyCommitted(trustRootOf(chainId, set, dsa), last, { qc: proof.qc, descendants: proof.suffix });
  return committed.ok ? { ok: true } : { ok: false, reason: committed.reason };
}

/**
 * Walk one boundary: if `proof` shows that the current epoch of `history` ended, extend `history`
 * with the next epoch's set and return it. Checked cheapest first: the epochs of the blocks, the
 * suffix empty, the link and the QC (a quorum of the current epoch, signatures verified), then the
 * change: exactly one in the block, valid against the current set, approved by its quorum.
 */
export function followEpoch(history: EpochHistory, chainId: string, proof: EpochChangeProof, dsa: Pick<SlhDsa, 'verifySync'>): EpochVerdict {
  const set = history.current;
  const last = proof.last;
  const committed = epochEndCommitted(chainId, set, proof, dsa);
  if (!committed.ok) return committed;
  const at = last.txs.flatMap((tx, i) => (isReconfigTx(tx) ? [i] : []));
  if (at.length !== 1) return { ok: false, reason: `last block: carries ${at.length} reconfigurations, an epoch ends with exactly one` };
  try {
    const { change, approvals } = decodeReconfigTx(last.txs[at[0]!]!);
    const next = history.apply({ change, approvals, height: last.header.height });
    return { ok: true, set: next, height: last.header.height };
  } catch (err) {
    return { ok: false, reason: `last block: transaction ${at[0]}: ${(err as Error).message}` };
  }
}
