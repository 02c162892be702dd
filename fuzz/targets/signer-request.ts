// Target signer-request: the body of a call to the signer's gRPC service (signer.proto) — what a
// consensus service (or, with a stolen client certificate, anyone) asks it to sign — as the
// signer decodes it before any rule runs: SignProposal, SignVote, SignNewView, AdvanceEpoch
// (services/signer/wire.ts, services/signer/rpc.ts). Refusal: FedError SIGNER_BAD_REQUEST (the
// signer journals it as a malformed request), or an Error of the protobuf reader (grpc-js answers
// INTERNAL and the server keeps serving). The first input byte picks the method.

import fc from 'fast-check';
import { isFedError } from '#libs/errors/index.ts';
import { Phase, type SignRequest } from '#libs/hotstuff/index.ts';
import { AdvanceEpochRequest, SignNewViewRequest, SignProposalRequest, SignVoteRequest } from '#libs/gen/btcfed/v1/signer.pb.ts';
import { blockFromWire, headerFromWire, newViewFromWire, proposalFromWire, qcFromWire, signRequestToWire, voteFromWire } from '../../services/signer/wire.ts';
import type { FuzzTarget } from '../engine.ts';
import { protoBytes } from './wire-frame.ts';
import { N, block, hash, header, qc, view, wildArray, wildBlock, wildBytes, wildHeader, wildPhase, wildQc, wildU64 } from './wire-values.ts';

class ReadFailed extends Error {}

const METHODS = ['signProposal', 'signVote', 'signNewView', 'advanceEpoch'] as const;

function decodeOrRefuse<T>(decode: (b: Uint8Array) => T, b: Uint8Array): T {
  try { return decode(b); } catch (err) { throw new ReadFailed(String(err)); }
}

function decode(input: Uint8Array): unknown {
  const body = input.subarray(1);
  switch (METHODS[(input[0] ?? 0) % METHODS.length]!) {
    case 'signProposal': return proposalFromWire(decodeOrRefuse(SignProposalRequest.decode, body), N);
    case 'signVote': return voteFromWire(decodeOrRefuse(SignVoteRequest.decode, body), N);
    case 'signNewView': return newViewFromWire(decodeOrRefuse(SignNewViewRequest.decode, body), N);
    case 'advanceEpoch': {
      const req = decodeOrRefuse(AdvanceEpochRequest.decode, body);
      return { last: blockFromWire(req.last, 'last'), suffix: req.suffix.map((h, i) => headerFromWire(h, `suffix[${i}]`)), qc: qcFromWire(req.qc, 'qc') };
    }
  }
}

const valid: fc.Arbitrary<SignRequest> = fc.oneof(
  fc.record({ epoch: view, view, block, justify: qc }).map((r) => ({ kind: 'proposal' as const, ...r })),
  fc.record({ epoch: view, view, highQC: qc }).map((r) => ({ kind: 'new-view' as const, ...r })),
  fc.record({ epoch: view, view, blockHash: hash, header, justify: qc }).map((r) => ({ kind: 'vote' as const, phase: Phase.PREPARE, ...r })),
  fc.record({ epoch: view, view, blockHash: hash, prepareQC: qc }).map((r) => ({ kind: 'vote' as const, phase: Phase.PRE_COMMIT, ...r })),
  fc.record({ epoch: view, view, blockHash: hash, precommitQC: qc }).map((r) => ({ kind: 'vote' as const, phase: Phase.COMMIT, ...r })),
);

export function encodeValid(req: SignRequest): Uint8Array {
  const call = signRequestToWire(req, N);
  switch (call.method) {
    case 'signProposal': return Uint8Array.from([0, ...SignProposalRequest.encode(call.request).finish()]);
    case 'signVote': return Uint8Array.from([1, ...SignVoteRequest.encode(call.request).finish()]);
    case 'signNewView': return Uint8Array.from([2, ...SignNewViewRequest.encode(call.request).finish()]);
  }
}

const opt = <T>(a: fc.Arbitrary<T>) => fc.option(a, { nil: undefined });
const withMethod = (m: number, b: Uint8Array) => Uint8Array.from([m, ...b]);

const generate = fc.oneof(
  valid.map(encodeValid),
  fc.record({ epoch: wildU64, view: wildU64, block: opt(wildBlock), justify: opt(wildQc) }).map((r) => withMethod(0, protoBytes(SignProposalRequest.encode, r as never))),
  // Every evidence field free: a vote may carry the wrong phase's evidence, or all of it.
  fc.record({ epoch: wildU64, phase: wildPhase, view: wildU64, blockHash: wildBytes(32), header: opt(wildHeader), justify: opt(wildQc), prepareQc: opt(wildQc), precommitQc: opt(wildQc) })
    .map((r) => withMethod(1, protoBytes(SignVoteRequest.encode, r as never))),
  fc.record({ epoch: wildU64, view: wildU64, highQc: opt(wildQc) }).map((r) => withMethod(2, protoBytes(SignNewViewRequest.encode, r as never))),
  fc.record({ last: opt(wildBlock), suffix: wildArray(wildHeader, 8), qc: opt(wildQc) }).map((r) => withMethod(3, protoBytes(AdvanceEpochRequest.encode, r as never))),
);

export const signerRequest: FuzzTarget<SignRequest> = {
  name: 'signer-request',
  describe: 'the signer\'s gRPC requests (SignProposal, SignVote with each phase\'s evidence, SignNewView, AdvanceEpoch\'s proof) as decoded before any voting rule',
  sources: ['services/signer/wire.ts', 'libs/wire/convert.ts', 'libs/gen/btcfed/v1/signer.pb.ts'],
  generate,
  run: (input) => { decode(input); },
  refusal: (err) => err instanceof ReadFailed || isFedError(err, 'SIGNER_BAD_REQUEST'),
  roundTrip: { values: valid, encode: encodeValid, decode },
};
