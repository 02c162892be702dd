// Conversions between the engine's data (libs/hotstuff types) and the protobuf wire messages,
// with the checks a decoder owes the engine: field sizes, phase and view ranges, signer
// bitmaps within the validator set. A block's hash is always recomputed from its header,
// never taken from the wire. Must never verify signatures (that is the next stage).

import { FedError } from '#libs/errors/index.ts';
import { Phase, type Block, type BlockHeader, type Hash, type QuorumCert } from '#libs/hotstuff/index.ts';
import type {
  Block as BlockMsg, BlockHeader as BlockHeaderMsg, QuorumCert as QuorumCertMsg,
} from '#libs/gen/btcfed/v1/wire.pb.ts';

/**
 * The widest validator set anything is decoded for (signer bitmaps up to 32 bytes). Where messages
 * of several epochs meet — frames at an epoch boundary, a store that kept them — they are decoded
 * at this width and each epoch's own size is checked after, against that epoch's set.
 */
export const WIRE_MAX_VALIDATORS = 256;

export interface WireLimits {
  /** N: signer indices and senders must be below it. */
  validatorCount: number;
  /** Exact length of one signature for the configured parameter set (unchecked when absent). */
  signatureBytes?: number;
  /** Upper bounds on transactions in one block and their total size (unchecked when absent). */
  maxBlockTxs?: number;
  maxBlockBytes?: number;
}

export function invalid(field: string, reason: string): FedError<'WIRE_INVALID'> {
  return new FedError('WIRE_INVALID', `${field}: ${reason}`, { field });
}

export function checkHash(field: string, h: Uint8Array): Hash {
  if (h.length !== 32) throw invalid(field, `must be 32 bytes, got ${h.length}`);
  return h;
}

export function checkView(field: string, v: number): number {
  if (!Number.isSafeInteger(v) || v < 0) throw invalid(field, `must be a non-negative integer, got ${v}`);
  return v;
}

export function checkPhase(field: string, p: number): Phase {
  if (p !== Phase.PREPARE && p !== Phase.PRE_COMMIT && p !== Phase.COMMIT) throw invalid(field, `unknown phase ${p}`);
  return p;
}

export function checkSender(field: string, s: number, limits: WireLimits): number {
  if (!Number.isInteger(s) || s < 0 || s >= limits.validatorCount) throw invalid(field, `validator ${s} is not in the set of ${limits.validatorCount}`);
  return s;
}

export function checkSignature(field: string, sig: Uint8Array, limits: WireLimits): Uint8Array {
  if (limits.signatureBytes !== undefined && sig.length !== limits.signatureBytes) {
    throw invalid(field, `must be ${limits.signatureBytes} bytes, got ${sig.length}`);
  }
  return sig;
}

/**
 * Signer indices (strictly increasing) → bitmap: bit i of byte i/8, least significant first.
 * With `validatorCount`, exactly ⌈N/8⌉ bytes (what members put on the wire) and indices below N;
 * without, the shortest bitmap that holds the highest index.
 */
export function signersToBitmap(signers: readonly number[], validatorCount?: number): Uint8Array {
  const last = signers.at(-1) ?? -1;
  const length = validatorCount === undefined ? (last >> 3) + 1 : Math.ceil(validatorCount / 8);
  const limit = validatorCount ?? length * 8;
  const out = new Uint8Array(last < 0 && validatorCount === undefined ? 0 : length);
  let prev = -1;
  for (const i of signers) {
    if (!Number.isInteger(i) || i <= prev || i >= limit) throw invalid('signers', `must be strictly increasing indices below ${limit}, got ${i}`);
    out[i >> 3]! |= 1 << (i & 7);
    prev = i;
  }
  return out;
}

export function bitmapToSigners(field: string, bitmap: Uint8Array, validatorCount: number = bitmap.length * 8): number[] {
  if (bitmap.length > Math.ceil(validatorCount / 8)) throw invalid(field, `bitmap of ${bitmap.length} bytes is too long for ${validatorCount} validators`);
  const out: number[] = [];
  for (let byte = 0; byte < bitmap.length; byte++) {
    const b = bitmap[byte]!;
    for (let bit = 0; bit < 8; bit++) {
      if ((b >> bit) & 1) {
        const i = byte * 8 + bit;
        if (i >= validatorCount) throw invalid(field, `bit ${i} names no validator (N = ${validatorCount})`);
        out.push(i);
      }
    }
  }
  return out;
}

export function qcToWire(qc: QuorumCert, validatorCount?: number): QuorumCertMsg {
  return { phase: qc.phase, view: qc.view, blockHash: qc.blockHash, signers: signersToBitmap(qc.signers, validatorCount), signatures: qc.signatures };
}

export function qcFromWire(field: string, m: QuorumCertMsg | undefined, limits: WireLimits): QuorumCert {
  if (!m) throw invalid(field, 'missing');
  const signers = bitmapToSigners(`${field}.signers`, m.signers, limits.validatorCount);
  if (m.signatures.length !== signers.length) {
    throw invalid(`${field}.signatures`, `${m.signatures.length} signatures for ${signers.length} signers`);
  }
  m.signatures.forEach((s, i) => checkSignature(`${field}.signatures[${i}]`, s, limits));
  return {
    phase: checkPhase(`${field}.phase`, m.phase),
    view: checkView(`${field}.view`, m.view),
    blockHash: checkHash(`${field}.block_hash`, m.blockHash),
    signers,
    signatures: m.signatures,
  };
}

export function headerToWire(h: BlockHeader): BlockHeaderMsg {
  return { ...h };
}

export function headerFromWire(field: string, m: BlockHeaderMsg | undefined): BlockHeader {
  if (!m) throw invalid(field, 'missing');
  if (m.chainId.length === 0 || m.chainId.length > 64) throw invalid(`${field}.chain_id`, 'must be 1–64 characters');
  return {
    chainId: m.chainId,
    epoch: checkView(`${field}.epoch`, m.epoch),
    height: checkView(`${field}.height`, m.height),
    view: checkView(`${field}.view`, m.view),
    parentHash: checkHash(`${field}.parent_hash`, m.parentHash),
    proposer: checkView(`${field}.proposer`, m.proposer),
    timestampMs: checkView(`${field}.timestamp_ms`, m.timestampMs),
    txRoot: checkHash(`${field}.tx_root`, m.txRoot),
    stateHash: checkHash(`${field}.state_hash`, m.stateHash),
  };
}

export function blockToWire(b: Block): BlockMsg {
  return { header: headerToWire(b.header), txs: b.txs };
}

/** Decodes a block and computes its hash; the tx root is checked by the caller that has a Merkle function. */
export function blockFromWire(field: string, m: BlockMsg | undefined, limits: WireLimits, hashBlock: (h: BlockHeader) => Hash): Block {
  if (!m) throw invalid(field, 'missing');
  const header = headerFromWire(`${field}.header`, m.header);
  if (header.proposer >= limits.validatorCount && header.height > 0) throw invalid(`${field}.header.proposer`, `validator ${header.proposer} is not in the set`);
  if (limits.maxBlockTxs !== undefined && m.txs.length > limits.maxBlockTxs) {
    throw invalid(`${field}.txs`, `${m.txs.length} transactions exceed the limit of ${limits.maxBlockTxs}`);
  }
  if (limits.maxBlockBytes !== undefined) {
    let bytes = 0;
    for (const tx of m.txs) bytes += tx.length;
    if (bytes > limits.maxBlockBytes) throw invalid(`${field}.txs`, `${bytes} bytes exceed the limit of ${limits.maxBlockBytes}`);
  }
  return { header, hash: hashBlock(header), txs: m.txs };
}
