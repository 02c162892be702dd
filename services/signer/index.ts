// Public surface of services/signer for the rest of the repository: the Signer interface the
// consensus driver talks to, the gRPC client that implements it against a remote signer, and
// the one conversion between libs/hotstuff's QCs (index lists) and wire.proto's (bitmaps).
// Must never export the key file, the state file or anything that signs without the rules.

export type { Signer, SignerIdentity, SignResult, Refusal } from './signer.ts';
export { createRemoteSigner, fromRpcError } from './client.ts';
export type { RemoteSigner, RemoteSignerOptions } from './client.ts';
export { RULES, type Rule } from './rules.ts';
export {
  bitmapToSigners, signersToBitmap, qcToWire, qcFromWire, headerToWire, headerFromWire, blockToWire, blockFromWire,
  signRequestToWire, proposalFromWire, voteFromWire, newViewFromWire,
} from './wire.ts';
export type { SignerCall } from './wire.ts';
