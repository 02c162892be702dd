// The Signer interface over gRPC: what the consensus driver uses to reach a signer on another
// host. Each SignRequest becomes its typed call (wire.ts); a refusal comes back as the same
// FedError the in-process signer throws (SIGNER_REFUSED / SIGNER_BAD_REQUEST with the rule in
// details), so callers and the shared test suite cannot tell the two apart.
// Must never retry a refused request, nor invent a signature the server did not return.

import * as grpc from '@grpc/grpc-js';
import { FedError } from '#libs/errors/index.ts';
import { call, createClient, errorCodeOf, waitForReady, type ClientSecurity } from '#libs/rpc/index.ts';
import { SignerServiceClient } from '#libs/gen/btcfed/v1/signer.pb.ts';
import type { SignRequest } from '#libs/hotstuff/index.ts';
import type { Signer, SignerIdentity, SignResult } from './signer.ts';
import { signRequestToWire } from './wire.ts';

export interface RemoteSignerOptions {
  address: string;
  security: ClientSecurity;
  /** Per call; signing is about 11 ms plus fsyncs, but the queue may be busy. Default 10 s. */
  deadlineMs?: number;
  /** Encode signer bitmaps at the set's full width (what the wire uses between members). */
  validatorCount?: number;
}

export interface RemoteSigner extends Signer {
  readonly client: SignerServiceClient;
  /** Resolves once the channel is connected. */
  ready(ms?: number): Promise<void>;
}

/**
 * The signer usually lives on a host of its own, and every view waits on it. When the path to it
 * drops packets (a cut, a firewall change) the TCP connection does not close: calls hang until
 * their deadline and, after the path heals, until TCP's backed-off retransmission — 10 s and
 * more after a 15 s cut, which the fault campaign measured as the slowest recovery. Keepalive
 * pings find a dead connection within about four seconds, and the channel dials a fresh one,
 * which goes through as soon as the path is back.
 */
export const SIGNER_KEEPALIVE = {
  'grpc.keepalive_time_ms': 2000,
  'grpc.keepalive_timeout_ms': 2000,
  'grpc.keepalive_permit_without_calls': 1,
} as const;

/** A gRPC error as the FedError the in-process signer would have thrown. */
export function fromRpcError(err: unknown): FedError {
  const e = err as grpc.ServiceError;
  const details = typeof e?.details === 'string' ? e.details : String(err);
  const rule = /^rule=([a-z-]+):/.exec(details)?.[1];
  const code = errorCodeOf(err) ?? (e?.code === grpc.status.FAILED_PRECONDITION ? 'SIGNER_REFUSED' : 'SIGNER_RPC_FAILED');
  return new FedError(code, details, { ...(rule ? { rule } : {}), grpcCode: e?.code }, { cause: err });
}

export function createRemoteSigner(opts: RemoteSignerOptions): RemoteSigner {
  const client = createClient(SignerServiceClient, opts.address, { security: opts.security, grpcOptions: SIGNER_KEEPALIVE });
  const deadlineMs = opts.deadlineMs ?? 10_000;

  async function sign(req: SignRequest): Promise<SignResult> {
    const wire = signRequestToWire(req, opts.validatorCount);
    try {
      let res: { signature: Uint8Array; replayed: boolean };
      switch (wire.method) {
        case 'signProposal':
          res = await call(client.signProposal.bind(client), wire.request, { deadlineMs });
          break;
        case 'signVote':
          res = await call(client.signVote.bind(client), wire.request, { deadlineMs });
          break;
        case 'signNewView':
          res = await call(client.signNewView.bind(client), wire.request, { deadlineMs });
          break;
      }
      if (res.signature.length === 0) throw new FedError('SIGNER_RPC_FAILED', 'the signer answered without a signature');
      return { signature: res.signature, replayed: res.replayed };
    } catch (err) {
      throw err instanceof FedError ? err : fromRpcError(err);
    }
  }

  return {
    client,
    ready: (ms = 5_000) => waitForReady(client, ms),
    async identity(): Promise<SignerIdentity> {
      try {
        const r = await call(client.getPublicKey.bind(client), {}, { deadlineMs });
        return {
          publicKey: r.publicKey, paramSet: r.paramSet, validatorIndex: r.validatorIndex,
          validatorCount: r.validatorCount, chainId: r.chainId, member: r.member,
        };
      } catch (err) {
        throw fromRpcError(err);
      }
    },
    sign,
    async close() {
      client.close();
    },
  };
}
