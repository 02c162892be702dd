// Conversions between libs/hotstuff's data (QCs with a sorted `signers` index list) and the
// protobuf messages of wire.proto / signer.proto (QCs with a signer BITMAP: bit i = validator i,
// byte i/8, least significant bit first). Written once here; the consensus driver reuses it.
// Decoding validates shape (sizes, phases, integer ranges) and throws FedError
// 'SIGNER_BAD_REQUEST' naming the field; it never decides whether a message is safe to sign.

import { FedError } from '#libs/errors/index.ts';
import { blockHash } from '#libs/crypto/index.ts';
import { Phase, type Block, type BlockHeader, type QuorumCert, type SignRequest } from '#libs/hotstuff/index.ts';
import type {
  Block as BlockMsg,
  BlockHeader as BlockHeaderMsg,
  Phase as PhaseMsg,
  QuorumCert as QuorumCertMsg,
} from '#libs/gen/btcfed/v1/wire.pb.ts';
import type { SignNewViewRequest, SignProposalRequest, SignVoteRequest } from '#libs/gen/btcfed/v1/signer.pb.ts';

const HASH_BYTES = 32;

function bad(field: string, why: string): never {
  throw new FedError('SIGNER_BAD_REQUEST', `${field}: ${why}`, { field, rule: 'malformed' });
}

// ---------------------------------------------------------------- signer bitmap

/**
 * The bitmap of a strictly increasing index list. With `n`, exactly ceil(n/8) bytes (what the
 * wire carries between members); without, the shortest bitmap that holds the highest index.
 */
export function signersToBitmap(signers: readonly number[], n?: number): Uint8Array {
  const highest = signers.length === 0 ? -1 : signers[signers.length - 1]!;
  const length = n === undefined ? Math.ceil((highest + 1) / 8) : Math.ceil(n / 8);
  const limit = n ?? length * 8;
  const out = new Uint8Array(length);
  let prev = -1;
  for (const s of signers) {
    if (!Number.isInteger(s) || s <= prev || s >= limit) bad('signers', `must be strictly increasing indices below ${limit}, got ${s}`);
    out[s >> 3]! |= 1 << (s & 7);
    prev = s;
  }
  return out;
}

/** The increasing index list of a bitmap; with `n`, bits at or above n and extra bytes are refused. */
export function bitmapToSigners(bitmap: Uint8Array, n?: number, field = 'signers'): number[] {
  if (n !== undefined && bitmap.length > Math.ceil(n / 8)) bad(field, `bitmap of ${bitmap.length} bytes for ${n} validators`);
  const out: number[] = [];
  for (let i = 0; i < bitmap.length * 8; i++) {
    if ((bitmap[i >> 3]! >> (i & 7)) & 1) {
      if (n !== undefined && i >= n) bad(field, `bit ${i} set but there are only ${n} validators`);
      out.push(i);
    }
  }
  return out;
}

// ---------------------------------------------------------------- QC, header, block

export function qcToWire(qc: QuorumCert, n?: number): QuorumCertMsg {
  return {
    phase: qc.phase as PhaseMsg,
    view: qc.view,
    blockHash: qc.blockHash,
    signers: signersToBitmap(qc.signers, n),
    signatures: [...qc.signatures],
  };
}

function phaseOf(value: number, field: string): Phase {
  if (value === Phase.PREPARE || value === Phase.PRE_COMMIT || value === Phase.COMMIT) return value;
  return bad(field, `phase ${value} is not PREPARE, PRE_COMMIT or COMMIT`);
}

function view(value: number, field: string): number {
  if (!Number.isSafeInteger(value) || value < 0) bad(field, `${value} is not a non-negative safe integer`);
  return value;
}

function hash(value: Uint8Array, field: string): Uint8Array {
  if (!(value instanceof Uint8Array) || value.length !== HASH_BYTES) bad(field, `must be ${HASH_BYTES} bytes, got ${value?.length}`);
  return value;
}

export function qcFromWire(msg: QuorumCertMsg | undefined, field: string, n?: number): QuorumCert {
  if (!msg) return bad(field, 'missing');
  const signers = bitmapToSigners(msg.signers, n, `${field}.signers`);
  if (signers.length !== msg.signatures.length) {
    bad(`${field}.signatures`, `${msg.signatures.length} signatures for ${signers.length} signers`);
  }
  return {
    phase: phaseOf(msg.phase, `${field}.phase`),
    view: view(msg.view, `${field}.view`),
    blockHash: hash(msg.blockHash, `${field}.block_hash`),
    signers,
    signatures: [...msg.signatures],
  };
}

export function headerToWire(h: BlockHeader): BlockHeaderMsg {
  return { ...h };
}

export function headerFromWire(msg: BlockHeaderMsg | undefined, field: string): BlockHeader {
  if (!msg) return bad(field, 'missing');
  return {
    chainId: msg.chainId,
    height: view(msg.height, `${field}.height`),
    view: view(msg.view, `${field}.view`),
    parentHash: hash(msg.parentHash, `${field}.parent_hash`),
    proposer: view(msg.proposer, `${field}.proposer`),
    timestampMs: view(msg.timestampMs, `${field}.timestamp_ms`),
    txRoot: hash(msg.txRoot, `${field}.tx_root`),
    stateHash: hash(msg.stateHash, `${field}.state_hash`),
  };
}

export function blockToWire(b: Block): BlockMsg {
  return { header: headerToWire(b.header), txs: [...b.txs] };
}

/** The hash is never taken from the wire: it is computed from the header's canonical bytes. */
export function blockFromWire(msg: BlockMsg | undefined, field: string): Block {
  if (!msg) return bad(field, 'missing');
  const header = headerFromWire(msg.header, `${field}.header`);
  let digest: Uint8Array;
  try {
    digest = blockHash(header);
  } catch (err) {
    return bad(`${field}.header`, (err as Error).message);
  }
  return { header, hash: digest, txs: [...msg.txs] };
}

// ---------------------------------------------------------------- sign requests

export type SignerCall =
  | { method: 'signProposal'; request: SignProposalRequest }
  | { method: 'signVote'; request: SignVoteRequest }
  | { method: 'signNewView'; request: SignNewViewRequest };

/** The gRPC call that carries a SignRequest (what the consensus driver sends). */
export function signRequestToWire(req: SignRequest, n?: number): SignerCall {
  switch (req.kind) {
    case 'proposal':
      return { method: 'signProposal', request: { view: req.view, block: blockToWire(req.block), justify: qcToWire(req.justify, n) } };
    case 'new-view':
      return { method: 'signNewView', request: { view: req.view, highQc: qcToWire(req.highQC, n) } };
    case 'vote': {
      const base = { phase: req.phase as PhaseMsg, view: req.view, blockHash: req.blockHash,
        header: undefined, justify: undefined, prepareQc: undefined, precommitQc: undefined };
      switch (req.phase) {
        case Phase.PREPARE:
          return { method: 'signVote', request: { ...base, header: headerToWire(req.header), justify: qcToWire(req.justify, n) } };
        case Phase.PRE_COMMIT:
          return { method: 'signVote', request: { ...base, prepareQc: qcToWire(req.prepareQC, n) } };
        case Phase.COMMIT:
          return { method: 'signVote', request: { ...base, precommitQc: qcToWire(req.precommitQC, n) } };
      }
    }
  }
}

export function proposalFromWire(msg: SignProposalRequest, n?: number): SignRequest {
  return { kind: 'proposal', view: view(msg.view, 'view'), block: blockFromWire(msg.block, 'block'), justify: qcFromWire(msg.justify, 'justify', n) };
}

export function newViewFromWire(msg: SignNewViewRequest, n?: number): SignRequest {
  return { kind: 'new-view', view: view(msg.view, 'view'), highQC: qcFromWire(msg.highQc, 'high_qc', n) };
}

/** Only the evidence field of the vote's phase may be set: anything else is a malformed request. */
export function voteFromWire(msg: SignVoteRequest, n?: number): SignRequest {
  const phase = phaseOf(msg.phase, 'phase');
  const base = { kind: 'vote' as const, view: view(msg.view, 'view'), blockHash: hash(msg.blockHash, 'block_hash') };
  const present = (['header', 'justify', 'prepareQc', 'precommitQc'] as const).filter((k) => msg[k] !== undefined);
  const expect = (fields: string[]) => {
    const extra = present.filter((k) => !fields.includes(k));
    if (extra.length > 0) bad(extra[0]!, `not allowed in a phase ${phase} vote`);
  };
  switch (phase) {
    case Phase.PREPARE:
      expect(['header', 'justify']);
      return { ...base, phase, header: headerFromWire(msg.header, 'header'), justify: qcFromWire(msg.justify, 'justify', n) };
    case Phase.PRE_COMMIT:
      expect(['prepareQc']);
      return { ...base, phase, prepareQC: qcFromWire(msg.prepareQc, 'prepare_qc', n) };
    case Phase.COMMIT:
      expect(['precommitQc']);
      return { ...base, phase, precommitQC: qcFromWire(msg.precommitQc, 'precommit_qc', n) };
  }
}
