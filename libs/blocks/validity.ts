// What makes a block valid, in one place: the proposal path (the engine, before it votes or
// proposes) and block sync (before a fetched block is stored) both call blockError. Cheap
// checks come first (the header, libs/hotstuff header.ts: chain id, parent link, height, a time
// after the parent's, its hash), then the Merkle root over
// the transactions, the running state hash, and exactly-once: no transaction twice in the
// block, none already committed, none in an uncommitted ancestor between it and the committed
// tip. A reconfiguration transaction (libs/validators reconfig-tx.ts) must be the block's only one,
// for the block's epoch, valid against that epoch's set and authorised by a quorum of it; a member
// that does not run epochs refuses any. Must never accept a block it could not fully check without
// saying which part it skipped.

import { nextStateHash, toHex } from '#libs/crypto/index.ts';
import { blockHeaderError, bytesEqual, type Block, type BlockHeader, type Hash } from '#libs/hotstuff/index.ts';
import { authorizeChange, decodeReconfigTx, isReconfigTx, nextValidatorSet, type ReconfigRules, type ValidatorSet, type Verify } from '#libs/validators/index.ts';
import { IdMap, randomIdSeed } from './id-map.ts';
import { txHashesOf, txRootOf } from './tx-hashes.ts';

export interface ValidityContext {
  chainId: string;
  hashBlock(h: BlockHeader): Hash;
  /** Is this transaction id in the committed log (the block store's tx index)? */
  isCommitted(txId: Hash): boolean;
  /**
   * Reconfiguration: the validator set of the blocks' epoch, the rules a change is held to and the
   * signature check for its approvals. Absent (a member that does not run epochs yet): a block
   * carrying a reconfiguration is refused.
   */
  reconfig?: { set: ValidatorSet; rules: ReconfigRules; verify: Verify };
}

/** Does the block carry a reconfiguration, so that it ends its epoch once committed? (The engine's endsEpoch.) */
export function blockEndsEpoch(block: Block): boolean {
  return block.txs.some(isReconfigTx);
}

/**
 * Why `block` is invalid, or null. `parent` undefined: the parent is not known yet, so the
 * parent link, height and state hash are left for the call made once it is (the engine makes
 * it). `ancestors`: the uncommitted blocks from the parent down to (not including) the
 * committed tip, whose transactions the block must not repeat.
 */
export function blockError(block: Block, parent: Block | undefined, ancestors: readonly Block[], ctx: ValidityContext): string | null {
  return blockHeaderError(block, { chainId: ctx.chainId, hashBlock: ctx.hashBlock, ...(parent ? { parent, timeAfterParent: true } : {}) })
    ?? contentError(block, parent) ?? duplicateError(block, ancestors, ctx) ?? reconfigError(block, ctx);
}

/**
 * The block's reconfiguration, if it carries one: the only one, decodable, for the block's epoch,
 * a valid change of that epoch's set, approved by a quorum of it — cheapest checks first, the
 * approvals' signatures last.
 */
function reconfigError(block: Block, ctx: ValidityContext): string | null {
  const at = block.txs.flatMap((tx, i) => (isReconfigTx(tx) ? [i] : []));
  if (at.length === 0) return null;
  if (!ctx.reconfig) return `transaction ${at[0]} is a reconfiguration, which this member does not run yet`;
  if (at.length > 1) return `transactions ${at[0]} and ${at[1]} are both reconfigurations (at most one per block)`;
  const { set, rules, verify } = ctx.reconfig;
  try {
    const { change, approvals } = decodeReconfigTx(block.txs[at[0]!]!);
    if (change.epoch !== block.header.epoch) return `transaction ${at[0]}: the change ends epoch ${change.epoch}, the block is of epoch ${block.header.epoch}`;
    if (set.epoch !== block.header.epoch) return `transaction ${at[0]}: checked against the set of epoch ${set.epoch}, the block is of epoch ${block.header.epoch}`;
    nextValidatorSet(set, change, rules);
    authorizeChange(set, change, approvals, verify);
    return null;
  } catch (err) {
    return `transaction ${at[0]}: ${(err as Error).message}`;
  }
}

/** The part of blockError about the header's content commitments: tx root, and state hash when the parent is known. */
export function contentError(block: Block, parent: Block | undefined): string | null {
  const root = txRootOf(block);
  if (!bytesEqual(root, block.header.txRoot)) return 'tx_root does not match the transactions';
  if (parent && !bytesEqual(nextStateHash(parent.header.stateHash, root), block.header.stateHash)) {
    return 'state_hash does not follow from the parent';
  }
  return null;
}

/**
 * The ids of the block being checked (duplicateError): cleared and filled again for each block, so
 * it allocates nothing once it is as large as the largest block, which bounds it. Its seed is this
 * process's own, so a proposer cannot grind ids onto one probe sequence.
 */
const blockIds = new IdMap(randomIdSeed());

/** Exactly-once: the first transaction the block repeats (within itself, committed, or in flight). */
function duplicateError(block: Block, ancestors: readonly Block[], ctx: ValidityContext): string | null {
  const ids = txHashesOf(block);
  if (ids.length === 0) return null;
  const seen = blockIds;
  seen.clear();
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i]!;
    if (!seen.add(id, i)) return `transaction ${i} (${toHex(id).slice(0, 16)}) appears twice in the block`;
    if (ctx.isCommitted(id)) return `transaction ${i} (${toHex(id).slice(0, 16)}) is already committed`;
  }
  for (const a of ancestors) {
    for (const id of txHashesOf(a)) {
      if (seen.has(id)) return `transaction ${toHex(id).slice(0, 16)} is already in uncommitted ancestor at height ${a.header.height}`;
    }
  }
  return null;
}

/** How far a proposal's time may stray from the receiver's clock (conf consensus.block_time_*). */
export interface BlockTimeBounds {
  /** Ahead of the receiver's clock at most this (the clocks' disagreement). */
  driftMs: number;
  /** Behind it at most this plus the drift (how long an honest proposal can take to arrive). */
  maxDelayMs: number;
}

/**
 * Why a proposed block's time is not believable by the clock of the member that received it
 * (at `receivedMs`), or null. Proposer-based time, as CometBFT's PBTS: the leader stamps its
 * block and the others vote for it only when that stamp is timely by their own clocks; with
 * the parent rule in blockError (strictly after the parent's) block time is monotonic and
 * within drift of real time whoever leads. Checked when a proposal arrives, before its
 * signature; not for fetched blocks, which a quorum certified when they were proposed.
 */
export function blockTimeError(timestampMs: number, receivedMs: number, b: BlockTimeBounds): string | null {
  if (timestampMs > receivedMs + b.driftMs) {
    return `timestamp ${timestampMs} is ${timestampMs - receivedMs} ms ahead of our clock (drift allowed: ${b.driftMs} ms)`;
  }
  if (timestampMs < receivedMs - b.driftMs - b.maxDelayMs) {
    return `timestamp ${timestampMs} is ${receivedMs - timestampMs} ms behind our clock (allowed: ${b.driftMs + b.maxDelayMs} ms)`;
  }
  return null;
}
