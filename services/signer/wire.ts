// The signer's side of signer.proto: SignRequests to and from their gRPC requests. The QC,
// header and block conversions (signer bitmap: bit i = validator i, byte i/8, least significant
// bit first) live in libs/wire, shared with the consensus frames; this file adapts them to the
// signer's requests and reports a malformed field as FedError 'SIGNER_BAD_REQUEST' naming it.
// It never decides whether a message is safe to sign.

import { FedError, isFedError } from '#libs/errors/index.ts';
import { blockHash } from '#libs/crypto/index.ts';
import { Phase, type Block, type BlockHeader, type QuorumCert, type SignRequest } from '#libs/hotstuff/index.ts';
import * as wire from '#libs/wire/index.ts';
import type {
  Block as BlockMsg,
  BlockHeader as BlockHeaderMsg,
  Phase as PhaseMsg,
  QuorumCert as QuorumCertMsg,
} from '#libs/gen/btcfed/v1/wire.pb.ts';
import type { SignNewViewRequest, SignProposalRequest, SignVoteRequest } from '#libs/gen/btcfed/v1/signer.pb.ts';

function bad(field: string, why: string): never {
  throw new FedError('SIGNER_BAD_REQUEST', `${field}: ${why}`, { field, rule: 'malformed' });
}

/** libs/wire's checks, with its WIRE_INVALID reported as the signer's malformed-request refusal. */
function checked<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (isFedError(err, 'WIRE_INVALID')) throw new FedError('SIGNER_BAD_REQUEST', err.message, { field: err.details.field, rule: 'malformed' });
    throw err;
  }
}

/** Without `n` any index is accepted (the rules check signers against the signer's own set). */
const limitsOf = (n?: number): wire.WireLimits => ({ validatorCount: n ?? 1 << 16 });

// ---------------------------------------------------------------- the shared conversions (libs/wire)

export function signersToBitmap(signers: readonly number[], n?: number): Uint8Array {
  return checked(() => wire.signersToBitmap(signers, n));
}

export function bitmapToSigners(bitmap: Uint8Array, n?: number, field = 'signers'): number[] {
  return checked(() => wire.bitmapToSigners(field, bitmap, n));
}

export function qcToWire(qc: QuorumCert, n?: number): QuorumCertMsg {
  return checked(() => wire.qcToWire(qc, n));
}

export function qcFromWire(msg: QuorumCertMsg | undefined, field: string, n?: number): QuorumCert {
  return checked(() => wire.qcFromWire(field, msg, limitsOf(n)));
}

export function headerToWire(h: BlockHeader): BlockHeaderMsg {
  return wire.headerToWire(h);
}

export function headerFromWire(msg: BlockHeaderMsg | undefined, field: string): BlockHeader {
  return checked(() => wire.headerFromWire(field, msg));
}

export function blockToWire(b: Block): BlockMsg {
  return wire.blockToWire(b);
}

/** The hash is never taken from the wire: it is computed from the header's canonical bytes. */
export function blockFromWire(msg: BlockMsg | undefined, field: string): Block {
  return checked(() => {
    try {
      return wire.blockFromWire(field, msg, limitsOf(), blockHash);
    } catch (err) {
      if (isFedError(err, 'WIRE_INVALID')) throw err;
      return bad(`${field}.header`, (err as Error).message);
    }
  });
}

const view = (value: number, field: string): number => checked(() => wire.checkView(field, value));
const hash = (value: Uint8Array, field: string): Uint8Array => checked(() => wire.checkHash(field, value));
const phaseOf = (value: number, field: string): Phase => checked(() => wire.checkPhase(field, value));

// ---------------------------------------------------------------- sign requests

export type SignerCall =
  | { method: 'signProposal'; request: SignProposalRequest }
  | { method: 'signVote'; request: SignVoteRequest }
  | { method: 'signNewView'; request: SignNewViewRequest };

/** The gRPC call that carries a SignRequest (what the consensus driver sends). */
export function signRequestToWire(req: SignRequest, n?: number): SignerCall {
  switch (req.kind) {
    case 'proposal':
      return { method: 'signProposal', request: { epoch: req.epoch, view: req.view, block: blockToWire(req.block), justify: qcToWire(req.justify, n) } };
    case 'new-view':
      return { method: 'signNewView', request: { epoch: req.epoch, view: req.view, highQc: qcToWire(req.highQC, n) } };
    case 'vote': {
      const base = { epoch: req.epoch, phase: req.phase as PhaseMsg, view: req.view, blockHash: req.blockHash,
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
  return { kind: 'proposal', epoch: view(msg.epoch, 'epoch'), view: view(msg.view, 'view'), block: blockFromWire(msg.block, 'block'), justify: qcFromWire(msg.justify, 'justify', n) };
}

export function newViewFromWire(msg: SignNewViewRequest, n?: number): SignRequest {
  return { kind: 'new-view', epoch: view(msg.epoch, 'epoch'), view: view(msg.view, 'view'), highQC: qcFromWire(msg.highQc, 'high_qc', n) };
}

/** Only the evidence field of the vote's phase may be set: anything else is a malformed request. */
export function voteFromWire(msg: SignVoteRequest, n?: number): SignRequest {
  const phase = phaseOf(msg.phase, 'phase');
  const base = { kind: 'vote' as const, epoch: view(msg.epoch, 'epoch'), view: view(msg.view, 'view'), blockHash: hash(msg.blockHash, 'block_hash') };
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
