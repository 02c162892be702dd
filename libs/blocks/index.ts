// Block validity shared by the consensus service's proposal path and block sync.
export { blockEndsEpoch, blockError, blockTimeError, contentError, type BlockTimeBounds, type ValidityContext } from './validity.ts';
export { rememberIds, rememberTxs, txHashesOf, txRootOf } from './tx-hashes.ts';
export { batchDigest, batchTree, partsOf, resolveParts, type BatchRef, type BlockPart, type HeldBatch, type PartLimits, type Resolved } from './batch.ts';
export { ID_BYTES, IdMap, IdTable, randomIdSeed } from './id-map.ts';
