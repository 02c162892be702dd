// Checking what a member says without trusting it: a committed block (or a transaction in one)
// against the genesis validator set alone. A block is committed when a COMMIT QC — a quorum of
// distinct validators' signatures over (COMMIT, view, block hash) — certifies it or a descendant
// reached from it by parent links. Checks run cheapest first: chain id, header hash, transaction
// root, the height within its epoch's (where the trust root knows them), the link to the certified block, the QC's shape (phase, quorum, distinct signers in the
// set), then the SLH-DSA signatures, the same QC validation the engine uses (libs/hotstuff's
// QcVerifier). Every refusal names what failed.

import { blockHash, verifyMerkleProof, type SlhDsa } from '#libs/crypto/index.ts';
import { blockEndsEpoch, blockError, txHashesOf, txRootOf, type ValidityContext } from '#libs/blocks/index.ts';
import { Phase, QcVerifier, genesisBlock, headerError, type Block, type BlockHeader, type QuorumCert } from '#libs/hotstuff/index.ts';
import { signingBytesOf } from '#libs/wire/index.ts';

/** What a client trusts: the chain id and the validators' public keys, in validator-index order. */
export interface TrustRoot {
  chainId: string;
  publicKeys: readonly Uint8Array[];
  dsa: Pick<SlhDsa, 'verifySync'>;
  /**
   * The epoch those keys govern (default 0, genesis): only its blocks and QCs verify against them.
   * A later epoch's root comes from walking the epoch-change proofs (epochs.ts followEpoch).
   */
  epoch?: number;
  /**
   * The heights of that epoch's blocks, where known (epochs.ts epochHeights): a block outside them
   * is refused whoever signed it. Above an ended epoch's last block its keys are retired, and a
   * retired key may have signed anything (docs/signer.md).
   */
  heights?: EpochHeights;
}

/** An epoch's heights: its first block's, and its last's once it has ended (the block carrying the change). */
export interface EpochHeights { first: number; last?: number }

/**
 * Why a block at `height` is not one of an epoch with these heights, or null. The one home of the
 * rule that an epoch's committed blocks end with the block carrying its change: the light client
 * holds the end it walked to it, a follower the block it saw carry the change (verifyServedRun).
 */
export function epochHeightError(heights: EpochHeights | undefined, height: number): string | null {
  if (!heights) return null;
  if (height < heights.first) return `height ${height} is below its epoch's first block (${heights.first})`;
  if (heights.last !== undefined && height > heights.last) return `height ${height} is above its epoch's last block (${heights.last}): the epoch had ended, its keys are retired`;
  return null;
}

export interface CommitProof {
  /** The COMMIT QC of `block`, or of the last of `descendants`. */
  qc: QuorumCert;
  /** Headers from `block`'s child up to the certified block, when the QC certifies a descendant. */
  descendants?: readonly BlockHeader[];
}

export type Verdict =
  | { ok: true; height: number; view: number; signers: readonly number[]; txIndex?: number }
  | { ok: false; reason: string };

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const eq = (a: Uint8Array, b: Uint8Array): boolean => a.length === b.length && Buffer.from(a).equals(Buffer.from(b));

/**
 * Whether `block` is committed on the chain of `root`, by `proof`. With `txHash`, also whether
 * that transaction is in the block (its index). `block.txs` must be the block's transactions
 * (they are checked against the header's transaction root).
 */
export function verifyCommitted(root: TrustRoot, block: Block, proof: CommitProof, txHash?: Uint8Array): Verdict {
  const h = block.header;
  const epoch = root.epoch ?? 0;
  const bad = headerError(h, block.hash, { chainId: root.chainId, epoch, hashBlock: blockHash });
  if (bad) return refuse(bad.field === 'epoch' ? `block: of epoch ${h.epoch}, the trusted keys are epoch ${epoch}'s` : `block: ${bad.why}`);
  if (!eq(txRootOf(block), h.txRoot)) return refuse(`block: its ${block.txs.length} transactions do not match the header's tx_root`);
  const verdict = certified(root, h, block.hash, proof);
  if (!verdict.ok || txHash === undefined) return verdict;
  const index = txHashesOf(block).findIndex((t) => eq(t, txHash));
  if (index < 0) return refuse(`transaction ${hex(txHash).slice(0, 16)}… is not in block ${h.height}`);
  return { ...verdict, txIndex: index };
}

/** A transaction's inclusion proof as GetTransaction (with_proof) gives it: no block needed. */
export interface Inclusion {
  header: BlockHeader;
  txHash: Uint8Array;
  index: number;
  txCount: number;
  /** Merkle siblings from the leaf up (libs/crypto merkleProof). */
  siblings: readonly Uint8Array[];
}

/**
 * Whether a transaction is in a committed block, from its header, its Merkle branch to the
 * header's transaction root, and the block's commit proof — without the block's transactions.
 */
export function verifyIncluded(root: TrustRoot, inc: Inclusion, proof: CommitProof): Verdict {
  const h = inc.header;
  const own = blockHash(h); // the header alone: its hash is what the commit proof certifies
  const epoch = root.epoch ?? 0;
  const bad = headerError(h, own, { chainId: root.chainId, epoch });
  if (bad) return refuse(bad.field === 'epoch' ? `header: of epoch ${h.epoch}, the trusted keys are epoch ${epoch}'s` : `header: ${bad.why}`);
  if (!verifyMerkleProof(inc.txHash, inc.index, inc.txCount, inc.siblings, h.txRoot)) {
    return refuse(`transaction ${hex(inc.txHash).slice(0, 16)}…: its Merkle branch (index ${inc.index} of ${inc.txCount}, ${inc.siblings.length} siblings) does not lead to the header's tx_root`);
  }
  const verdict = certified(root, h, own, proof);
  return verdict.ok ? { ...verdict, txIndex: inc.index } : verdict;
}

/** A block as a member or observer serves it to a follower: with the best QC it holds for it. */
export interface ServedBlock { block: Block; qc?: QuorumCert | undefined }

export type RunVerdict =
  /** `blocks` (possibly none) are proven committed by `qc`, the COMMIT QC of the last of them. */
  | { ok: true; blocks: Block[]; qc: QuorumCert | undefined; servedTop: number }
  | { ok: false; reason: string };

/**
 * Which blocks of `run` — served as the committed log above `tip` — are proven committed. Each
 * must extend the one before it (from `tip`) and hold as a block (libs/blocks: hash, chain id,
 * height, transaction root, state hash, no transaction twice in the log); the proof is the last
 * COMMIT QC in the run, whose signatures must verify against `root`. Blocks above that QC are
 * not proven yet and are left out. A run that breaks any of this is refused as a whole, naming
 * the block and why. `isCommitted` says whether a transaction id is in the log at or below `tip`.
 * With `reconfig` (the epoch's set and rules), a block may carry that epoch's change; without, a
 * block carrying one is refused.
 */
export function verifyServedRun(root: TrustRoot, tip: Block, run: readonly ServedBlock[], isCommitted: (txId: Uint8Array) => boolean,
  reconfig?: ValidityContext['reconfig']): RunVerdict {
  // Transactions of the run's earlier blocks: a later block must not repeat them.
  const inRun = new Set<string>();
  const validity: ValidityContext = { chainId: root.chainId, hashBlock: blockHash, isCommitted: (id: Uint8Array) => inRun.has(hex(id)) || isCommitted(id), ...(reconfig ? { reconfig } : {}) };
  let parent = tip;
  let certifiedAt = -1;
  const epoch = root.epoch ?? 0;
  let heights = root.heights;
  for (const [i, { block, qc }] of run.entries()) {
    // The block carrying the epoch's change (the tip, or one of the run) is the epoch's last
    // committed one: the empty blocks its epoch certified above it are never committed.
    if (parent.header.epoch === epoch && blockEndsEpoch(parent)) heights = { first: heights?.first ?? 0, last: parent.header.height };
    const why = (block.header.epoch === epoch ? epochHeightError(heights, block.header.height) : null) ?? blockError(block, parent, [], validity);
    if (why) return { ok: false, reason: `block ${i} of ${run.length} (height ${block.header.height}): ${why}` };
    for (const id of txHashesOf(block)) inRun.add(hex(id));
    if (qc?.phase === Phase.COMMIT) certifiedAt = i;
    parent = block;
  }
  const servedTop = run.length > 0 ? run[run.length - 1]!.block.header.height : tip.header.height;
  if (certifiedAt < 0) return { ok: true, blocks: [], qc: undefined, servedTop };
  const last = run[certifiedAt]!;
  const verdict = certified(root, last.block.header, last.block.hash, { qc: last.qc! });
  if (!verdict.ok) return { ok: false, reason: `block ${certifiedAt} of ${run.length} (height ${last.block.header.height}): ${verdict.reason}` };
  return { ok: true, blocks: run.slice(0, certifiedAt + 1).map((r) => r.block), qc: last.qc, servedTop };
}

const refuse = (reason: string): Verdict => ({ ok: false, reason });

/** The header (whose hash is `own`) is committed by `proof`: linked descendants, then the COMMIT QC. */
function certified(root: TrustRoot, h: BlockHeader, own: Uint8Array, proof: CommitProof): Verdict {
  // Only the block proven committed is bounded: an ended epoch's suffix lies above its last block.
  const outside = epochHeightError(root.heights, h.height);
  if (outside) return refuse(`block: ${outside}`);
  // The certified block: this one, or a descendant linked by parent hashes.
  let tip = h;
  let tipHash = own;
  for (const [i, d] of (proof.descendants ?? []).entries()) {
    if (d.chainId !== root.chainId) return refuse(`descendants[${i}]: chain id "${d.chainId}"`);
    if (d.epoch !== h.epoch) return refuse(`descendants[${i}]: of epoch ${d.epoch}, not ${h.epoch}`);
    if (!eq(d.parentHash, tipHash) || d.height !== tip.height + 1) return refuse(`descendants[${i}]: does not extend height ${tip.height} (${hex(tipHash).slice(0, 16)}…)`);
    tip = d;
    tipHash = blockHash(d);
  }
  const qc = proof.qc;
  if (!eq(qc.blockHash, tipHash)) return refuse(`qc: certifies ${hex(qc.blockHash).slice(0, 16)}…, not the block at height ${tip.height} (${hex(tipHash).slice(0, 16)}…)`);
  if (qc.phase !== Phase.COMMIT) return refuse(`qc: phase ${qc.phase} is not COMMIT (${Phase.COMMIT}): only a COMMIT QC proves a commit`);
  if (qc.view !== tip.view) return refuse(`qc: view ${qc.view}, but the certified block was proposed in view ${tip.view}`);

  const n = root.publicKeys.length;
  const verifier = new QcVerifier(n, genesisBlock(root.chainId, blockHash).hash, (m) => {
    const key = root.publicKeys[m.sender];
    return key !== undefined && root.dsa.verifySync(key, signingBytesOf(root.chainId, m), m.signature);
  }, h.epoch);
  const checked = verifier.check(qc);
  if (!checked.ok) return refuse(`qc: ${checked.why}`);
  return { ok: true, height: h.height, view: qc.view, signers: qc.signers };
}

export { epochEndCommitted, epochHeights, followEpoch, trustRootOf, type EpochChangeProof, type EpochVerdict } from './epochs.ts';
export { decodeEndedEpochs, encodeEndedEpochs, replayEndedEpochs, type DecodedEpochs, type EndedEpoch } from './ended-epochs.ts';
