// The transaction ids and Merkle root of a block, computed once per block object: a block of
// 10,000 transactions is otherwise hashed again by every step that needs them (the root check
// at proposal and again at commit, the commit index, mempool removal, events).

import { merkleRoot, merkleRootOfLeafBytes, txHash } from '#libs/crypto/index.ts';
import type { Block } from '#libs/hotstuff/index.ts';

const hashes = new WeakMap<readonly Uint8Array[], Uint8Array[]>();
const roots = new WeakMap<readonly Uint8Array[], Uint8Array>();
/** A received block's Merkle leaves, taken from the batches it names, until its root is computed. */
const leafBytes = new WeakMap<readonly Uint8Array[], Uint8Array>();

export function txHashesOf(b: Pick<Block, 'txs'>): Uint8Array[] {
  let h = hashes.get(b.txs);
  if (!h) {
    h = b.txs.map(txHash);
    hashes.set(b.txs, h);
  }
  return h;
}

export function txRootOf(b: Pick<Block, 'txs'>): Uint8Array {
  let root = roots.get(b.txs);
  if (!root) {
    const leaves = leafBytes.get(b.txs);
    root = leaves ? merkleRootOfLeafBytes(leaves) : merkleRoot(txHashesOf(b));
    roots.set(b.txs, root);
    leafBytes.delete(b.txs);
  }
  return root;
}

/** Records what a leader already knows about the block it builds, so nothing is hashed twice. */
export function rememberTxs(txs: readonly Uint8Array[], ids: Uint8Array[], root: Uint8Array): void {
  hashes.set(txs, ids);
  roots.set(txs, root);
}

/**
 * Records a received block's transaction ids, known from the batches it was resolved from, and
 * the leaves of its Merkle tree when they came with them (resolveParts): its root is computed from
 * those, and checked against the header like any other.
 */
export function rememberIds(txs: readonly Uint8Array[], ids: Uint8Array[], leaves?: Uint8Array): void {
  hashes.set(txs, ids);
  if (leaves?.length === 32 * ids.length) leafBytes.set(txs, leaves);
}
