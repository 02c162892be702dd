// The public surface of libs/crypto: SLH-DSA behind one interface with two backends (node:crypto
// and @noble/post-quantum), SHA-256 and the transaction Merkle root, and the canonical bytes that
// signatures and block hashes cover. Import from here, never from the files behind it.
// Must never export a way to sign anything but bytes the caller chose, nor any key material.

export type { BackendChoice, BackendName, KeyPair, SlhDsa, SlhDsaDeps, SlhDsaOptions } from './slhdsa.ts';
export { BACKENDS, createSlhDsa, nativeSupport, resolveBackend } from './slhdsa.ts';

export type { ParamSet, ParamSpec } from './params.ts';
export { DEFAULT_PARAM_SET, PARAM_SETS, isParamSet, paramSpec, publicKeyFromSecretKey } from './params.ts';

export {
  HASH_BYTES,
  MERKLE_EMPTY_TAG,
  ZERO_HASH,
  assertHash,
  bytesEqual,
  fromHex,
  merkleLeafBytes,
  merkleLevels,
  merkleProof,
  merkleRoot,
  merkleRootOfLeafBytes,
  sha256,
  verifyMerkleProof,
  sha256Hex,
  toHex,
  txHash,
} from './hash.ts';

export type { BlockHeaderFields, NewViewFields, Phase, ProposalFields, QcRef, ReconfigFields, ReconfigOpFields, VoteFields } from './canonical.ts';
export {
  CanonicalWriter,
  DOMAIN_TAGS,
  MAX_ADDRESS_BYTES,
  MAX_CHAIN_ID_BYTES,
  MAX_OP_ADDRESSES,
  PHASES,
  blockHash,
  blockHeaderBytes,
  isPhase,
  newViewSigningBytes,
  nextStateHash,
  proposalSigningBytes,
  reconfigSigningBytes,
  voteSigningBytes,
} from './canonical.ts';

/** Every code a FedError thrown by this library can carry. */
export const CRYPTO_ERROR_CODES = [
  'CRYPTO_BACKEND_UNAVAILABLE',
  'CRYPTO_BAD_BACKEND',
  'CRYPTO_BAD_PARAM_SET',
  'CRYPTO_BAD_KEY',
  'CRYPTO_BAD_SEED',
  'CRYPTO_BAD_MESSAGE',
  'CRYPTO_SIGN_FAILED',
  'CRYPTO_KEY_EXPORT',
  'CRYPTO_BAD_HASH',
  'CRYPTO_BAD_TX',
  'CRYPTO_BAD_HEX',
  'CRYPTO_BAD_STRING',
  'CRYPTO_BAD_INTEGER',
  'CRYPTO_BAD_PHASE',
  'CRYPTO_BAD_QC',
] as const;
export type CryptoErrorCode = (typeof CRYPTO_ERROR_CODES)[number];
