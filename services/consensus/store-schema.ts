// What the block store's data dir must say about itself before it is read: the layout version
// it was written with and the chain it belongs to (recorded in `meta` on first open).

import type { Database } from 'lmdb';
import { FedError } from '#libs/errors/index.ts';

/**
 * The layout of the block store's databases (block-store.ts). Recorded in `meta` on first open; a store with another
 * version is refused at start with what to do, never read with the wrong layout. Version 2: block
 * headers carry (and hash) their epoch, so blocks stored by version 1 have other hashes. A store
 * without a recorded version that already holds blocks predates version 2 (version 1 layout).
 * Version 3: the transaction index may hold a location as one number (packLocation); version 2's
 * objects are read as before, so a version 2 store is taken and relabelled 3 (nothing rewritten),
 * and a build reading only version 2 refuses it.
 * Version 4: the index holds the transactions of heights up to `indexed_to` in meta; those above
 * it are only in their blocks (tx-index.ts), so a build that reads the index alone must refuse it.
 * A version 2 or 3 store indexed every commit: it is taken with indexed_to at its committed tip.
 * Version 5: merges write the index's ids as sorted runs (`txruns`, listed in meta's `tx_runs`;
 * tx-runs.ts), not into the `txs` tree, so a build that reads the tree alone must refuse it. A
 * version 4 store's tree is read as it is, after the runs.
 */
export const STORE_SCHEMA_VERSION = 5;
/** Versions read as they are: their layout is a subset of this one's. */
const READABLE_AS_IS = new Set([2, 3, 4]);

/**
 * Refuses a store of another layout version (STORE_SCHEMA_UNSUPPORTED, with what to do) or of
 * another chain (STORE_WRONG_CHAIN); records both on a store that has neither. `hasBlocks`: the
 * store holds committed heights (one without a recorded version then predates version 2).
 */
export function checkStoreIdentity(meta: Database<string, string>, hasBlocks: boolean, opts: { path: string; chainId?: string | undefined }): void {
  const recorded = meta.get('schema');
  const schema = recorded ?? (hasBlocks ? '1' : undefined);
  if (schema === undefined || READABLE_AS_IS.has(Number(schema))) meta.putSync('schema', String(STORE_SCHEMA_VERSION));
  else if (Number(schema) !== STORE_SCHEMA_VERSION) {
    const newer = Number(schema) > STORE_SCHEMA_VERSION;
    throw new FedError('STORE_SCHEMA_UNSUPPORTED', `block store ${opts.path} has schema version ${schema}; this build reads version ${STORE_SCHEMA_VERSION}. `
      + (newer ? 'It was written by a newer btcfed: run that version, or restore this data dir from a backup made by this one.'
        : 'No migration from it exists: move the data dir aside and start with an empty one; the member catches up from its peers by block sync (the signer keeps its own state).'),
    { path: opts.path, found: Number(schema), supported: STORE_SCHEMA_VERSION });
  }
  if (opts.chainId === undefined) return;
  const chain = meta.get('chain_id');
  if (chain === undefined) meta.putSync('chain_id', opts.chainId);
  else if (chain !== opts.chainId) {
    throw new FedError('STORE_WRONG_CHAIN', `block store ${opts.path} holds chain "${chain}", but conf.yaml's consensus.chain_id is "${opts.chainId}": point --data-dir at this chain's store, or fix chain_id`,
      { path: opts.path, found: chain, expected: opts.chainId });
  }
}
