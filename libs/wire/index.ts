// libs/wire: the engine's messages on the wire (protobuf ConsensusFrame) and back, with the
// structural checks every decoded message must pass before anything verifies a signature.
export {
  signersToBitmap, bitmapToSigners, qcToWire, qcFromWire, headerToWire, headerFromWire,
  blockToWire, blockFromWire, checkHash, checkView, checkPhase, checkSender, checkSignature, invalid,
} from './convert.ts';
export type { WireLimits } from './convert.ts';
export { WIRE_MAX_VALIDATORS } from './convert.ts';
export { MAX_CHECKPOINT_EPOCHS, MAX_EPOCH_SUFFIX, MAX_HISTORY_SUMMARIES, encodeFrame, decodeFrame, summaryFromWire, summaryToWire } from './frame.ts';
export type { BlockSummary, Frame, FrameLimits, CertifiedBlock, EpochEnd, WireEpochProof } from './frame.ts';
export { encodeBlockBytes, encodeTxBatchFrame } from './block-bytes.ts';
export { signingBytesOf, signingBytesOfRequest } from './signing.ts';
export { peekFrame } from './peek.ts';
export type { FramePeek, PeekKind } from './peek.ts';
