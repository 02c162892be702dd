// The signer's first-start marker lives with the signer (services/signer/fresh.ts); the CLI's
// member init writes it and btcfed devnet reads it.
export { FRESH_MARKER, consumeFreshMarker, isFreshSigner, markFreshSigner } from '../services/signer/fresh.ts';
