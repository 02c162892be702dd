// The SignerService gRPC handlers: who is calling (a client certificate is required under
// mutual TLS, optionally one of the allowed fingerprints), decoding the typed request, and
// handing it to the LocalSigner. FedError codes map to gRPC status in STATUS below, the one
// place this service does that: a rule refusal is FAILED_PRECONDITION "rule=<name>: …".
// Must never sign anything but a decoded, typed consensus message.

import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { isFedError } from '#libs/errors/index.ts';
import { peerCertificate, requirePeer, rpcHandlers, statusTable, type CallWithAuthContext } from '#libs/rpc/index.ts';
import type { SignRequest } from '#libs/hotstuff/index.ts';
import type { SignerServiceServer } from '#libs/gen/btcfed/v1/signer.pb.ts';
import type { LocalSigner } from './signer.ts';
import { decodeReconfiguration } from '#libs/validators/index.ts';
import { FedError } from '#libs/errors/index.ts';
import { blockFromWire, headerFromWire, newViewFromWire, proposalFromWire, qcFromWire, voteFromWire } from './wire.ts';

export const STATUS = statusTable({
  SIGNER_REFUSED: grpc.status.FAILED_PRECONDITION,
  SIGNER_BAD_REQUEST: grpc.status.INVALID_ARGUMENT,
  RECONFIG_MALFORMED: grpc.status.INVALID_ARGUMENT,
  SIGNER_NO_OPERATORS: grpc.status.PERMISSION_DENIED,
  SIGNER_UNAVAILABLE: grpc.status.UNAVAILABLE,
  SIGNER_STORAGE_FAILED: grpc.status.UNAVAILABLE,
  RPC_PEER_UNAUTHENTICATED: grpc.status.UNAUTHENTICATED,
  RPC_PEER_NOT_ALLOWED: grpc.status.PERMISSION_DENIED,
});

export interface SignerRpcDeps {
  signer: LocalSigner;
  log: Logger;
  /** mTLS: a verified client certificate is required on every call. */
  requireCertificate: boolean;
  /** Certificate SHA-256 fingerprints; empty = any certificate the CA signed. */
  allowedClients: readonly string[];
  /** The operators' certificate fingerprints: the only callers of ApproveReconfiguration (signer.yaml operator_clients). */
  operatorClients: readonly string[];
}

type AnyCall = CallWithAuthContext & { getPeer(): string };

/** Who is calling, for the journal; throws when the certificate rules are not met. */
function clientOf(call: AnyCall, deps: SignerRpcDeps, alsoAllowed: readonly string[] = []): string {
  if (deps.allowedClients.length > 0) {
    const peer = requirePeer(call, [...deps.allowedClients, ...alsoAllowed]);
    return `${peer.commonName ?? peer.subject} sha256:${peer.fingerprint256.slice(0, 16)}`;
  }
  const peer = peerCertificate(call);
  if (peer) return `${peer.commonName ?? peer.subject} sha256:${peer.fingerprint256.slice(0, 16)}`;
  if (deps.requireCertificate) requirePeer(call, []);
  return `insecure ${call.getPeer()}`;
}

/**
 * Who may approve a reconfiguration: under mTLS only a certificate in operator_clients (none
 * listed: nobody); without TLS (a loopback dev signer started --insecure) any caller, logged.
 */
function operatorOf(call: AnyCall, deps: SignerRpcDeps): string {
  if (deps.requireCertificate || peerCertificate(call)) {
    if (deps.operatorClients.length === 0) {
      throw new FedError('SIGNER_NO_OPERATORS', 'no operator may approve reconfigurations: signer.yaml operator_clients is empty (list the operators\' certificate fingerprints)');
    }
    const peer = requirePeer(call, deps.operatorClients);
    return `operator ${peer.commonName ?? peer.subject} sha256:${peer.fingerprint256.slice(0, 16)}`;
  }
  return `insecure ${call.getPeer()}`;
}

export function signerService(deps: SignerRpcDeps): SignerServiceServer {
  const handlers = rpcHandlers({ statusOf: STATUS, log: deps.log });
  const n = (): number => deps.signer.identityNow.validatorCount;

  /** Decoding errors are refusals too: journaled and published before the reply. */
  async function signDecoded(kind: SignRequest['kind'], view: number, decode: () => SignRequest, client: string) {
    let req: SignRequest;
    try {
      req = decode();
    } catch (err) {
      if (isFedError(err, 'SIGNER_BAD_REQUEST')) return deps.signer.refuseMalformed(kind, view, err.message, client);
      throw err;
    }
    return deps.signer.sign(req, client);
  }

  return {
    getPublicKey: handlers.unary(async (_req, call) => {
      clientOf(call, deps, deps.operatorClients); // public facts: an operator may read them too
      const id = deps.signer.identityNow;
      return {
        publicKey: id.publicKey, paramSet: id.paramSet, validatorIndex: id.validatorIndex,
        validatorCount: id.validatorCount, chainId: id.chainId, member: id.member, epoch: id.epoch, seated: id.seated,
      };
    }),
    signProposal: handlers.unary(async (req, call) => {
      const r = await signDecoded('proposal', req.view, () => proposalFromWire(req, n()), clientOf(call, deps));
      return { signature: r.signature, replayed: r.replayed };
    }),
    approveReconfiguration: handlers.unary(async (req, call) => {
      const client = operatorOf(call, deps);
      const r = await deps.signer.approve(decodeReconfiguration(req.change), client);
      return { signature: r.signature, validatorIndex: r.validatorIndex, reconfigId: r.id };
    }),
    advanceEpoch: handlers.unary(async (req, call) => {
      // The proof proves itself (a quorum of the epoch's keys): the consensus service shows it when
      // its epoch ends, an operator may show it to a signer that was away.
      const client = clientOf(call, deps, deps.operatorClients);
      let proof;
      try {
        proof = { last: blockFromWire(req.last, 'last'), suffix: req.suffix.map((h, i) => headerFromWire(h, `suffix[${i}]`)), qc: qcFromWire(req.qc, 'qc') };  // any width: the proof's epoch may be another than the signer's, and followEpoch checks the signers against it
      } catch (err) {
        if (isFedError(err, 'SIGNER_BAD_REQUEST')) deps.log.warn({ client, err: err.message }, 'AdvanceEpoch: malformed proof refused');
        throw err;
      }
      const r = await deps.signer.advanceEpoch(proof, client);
      return { epoch: r.epoch, already: r.already, seated: r.seated, validatorIndex: r.validatorIndex, validatorCount: r.validatorCount };
    }),
    signVote: handlers.unary(async (req, call) => {
      const r = await signDecoded('vote', req.view, () => voteFromWire(req, n()), clientOf(call, deps));
      return { signature: r.signature, replayed: r.replayed };
    }),
    signNewView: handlers.unary(async (req, call) => {
      const r = await signDecoded('new-view', req.view, () => newViewFromWire(req, n()), clientOf(call, deps));
      return { signature: r.signature, replayed: r.replayed };
    }),
  };
}
