// Block validity shared by the consensus service's proposal path and block sync.
export { blockEndsEpoch, blockError, blockTimeError, contentError, type BlockTimeBounds, type ValidityContext } from './validity.ts';
export { rememberTxs, txHashesOf, txRootOf } from './tx-hashes.ts';
