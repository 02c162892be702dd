// The transaction ids of a block, computed once per block object: a block of 10,000
// transactions is otherwise hashed again by every step that needs its ids (root check, commit
// index, mempool removal, events).

import { txHash } from '#libs/crypto/index.ts';
import type { Block } from '#libs/hotstuff/index.ts';

const cache = new WeakMap<readonly Uint8Array[], Uint8Array[]>();

export function txHashesOf(b: Pick<Block, 'txs'>): Uint8Array[] {
  let hashes = cache.get(b.txs);
  if (!hashes) {
    hashes = b.txs.map(txHash);
    cache.set(b.txs, hashes);
  }
  return hashes;
}
