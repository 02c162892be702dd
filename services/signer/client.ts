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
import type { EpochChangeProof } from '#libs/verify/index.ts';
import type { Approved, EpochAdvanced, Signer, SignerIdentity, SignResult } from './signer.ts';
import { reconfigSigningBytes } from '#libs/crypto/index.ts';
import type { Reconfiguration } from '#libs/validators/index.ts';
import { blockToWire, headerToWire, qcToWire, signRequestToWire } from './wire.ts';

export interface RemoteSignerOptions {
  address: string;
  security: ClientSecurity;
  /** Per call; signing is about 11 ms plus fsyncs, but the queue may be busy. Default 10 s. */
  deadlineMs?: number;
  /**
   * Encode signer bitmaps at the set's full width (what the wire uses between members): the size
   * of the set of the epoch being signed for, asked at each request — an epoch that adds members
   * widens it (a width fixed at start refused every QC carrying a new member's vote).
   */
  validatorCount?: number | (() => number);
  /** A connection attempt older than this is given up and a fresh channel dials (SIGNER_CONNECT_TIMEOUT_MS). */
  connectTimeoutMs?: number;
  /** Told each time a stuck connection attempt was given up. */
  onRedial?(stuckMs: number): void;
  /**
   * Told when a new channel could not be made (its TLS files cannot be read): the stuck one is
   * kept and the next attempt is connectTimeoutMs later.
   */
  onRedialFailed?(err: unknown): void;
}

export interface RemoteSigner extends Signer {
  /**
   * Ask for an operator's approval of a reconfiguration (the caller's certificate must be in the
   * signer's operator_clients). Throws SIGNER_REFUSED with the rule, or the RPC error.
   */
  approve(change: Reconfiguration): Promise<Approved>;
  /**
   * Show the signer the proof that its epoch ended (AdvanceEpoch). Throws SIGNER_REFUSED with rule
   * epoch-proof when the proof does not verify, or the RPC error.
   */
  advanceEpoch(proof: EpochChangeProof): Promise<EpochAdvanced>;
  /** The current channel's client (replaced when a stuck connection attempt is given up). */
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

/**
 * How long one connection attempt to the signer may take. grpc-js sets no limit on a TCP connect,
 * so an attempt made while the path drops packets waits on the kernel's SYN retransmissions (1,
 * 3, 7, 15, 31 s after it started) and the channel makes no other: after a cut heals, the next
 * retransmission — up to 16 s later — decides when signing resumes. The campaign measured 7.3 and
 * 11.5 s of recovery after signer cuts of 11.6 and 14.6 s. An attempt older than this is dropped
 * with its channel and a new channel dials at once; on a LAN or across a region a TLS connection
 * is made well within it.
 */
export const SIGNER_CONNECT_TIMEOUT_MS = 2000;

/** A gRPC error as the FedError the in-process signer would have thrown. */
export function fromRpcError(err: unknown): FedError {
  const e = err as grpc.ServiceError;
  const details = typeof e?.details === 'string' ? e.details : String(err);
  const rule = /^rule=([a-z-]+):/.exec(details)?.[1];
  const code = errorCodeOf(err) ?? (e?.code === grpc.status.FAILED_PRECONDITION ? 'SIGNER_REFUSED' : 'SIGNER_RPC_FAILED');
  return new FedError(code, details, { ...(rule ? { rule } : {}), grpcCode: e?.code }, { cause: err });
}

export function createRemoteSigner(opts: RemoteSignerOptions): RemoteSigner {
  const dial = () => createClient(SignerServiceClient, opts.address, { security: opts.security, grpcOptions: SIGNER_KEEPALIVE });
  let client = dial();
  const deadlineMs = opts.deadlineMs ?? 10_000;
  const connectTimeoutMs = opts.connectTimeoutMs ?? SIGNER_CONNECT_TIMEOUT_MS;
  let connectingSince: number | undefined;
  // Watches the channel; a connection attempt stuck past connectTimeoutMs is abandoned with its
  // channel (closing it destroys the socket) and a new channel dials at once.
  const watchdog = setInterval(() => {
    if (client.getChannel().getConnectivityState(false) !== grpc.connectivityState.CONNECTING) {
      connectingSince = undefined;
      return;
    }
    const now = Date.now();
    connectingSince ??= now;
    if (now - connectingSince < connectTimeoutMs) return;
    const stuck = client;
    try {
      // A new channel reads the TLS files again; a throw here, in a timer, would end the process.
      client = dial();
    } catch (err) {
      connectingSince = now;
      opts.onRedialFailed?.(err);
      return;
    }
    client.getChannel().getConnectivityState(true);
    stuck.close();
    opts.onRedial?.(now - connectingSince);
    connectingSince = undefined;
  }, Math.max(50, Math.min(500, connectTimeoutMs / 4)));
  watchdog.unref();

  async function sign(req: SignRequest): Promise<SignResult> {
    const wire = signRequestToWire(req, typeof opts.validatorCount === 'function' ? opts.validatorCount() : opts.validatorCount);
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
    get client() { return client; },
    async ready(ms = 5_000) {
      const end = Date.now() + ms;
      for (;;) {
        const c = client;
        try {
          return await waitForReady(c, Math.max(1, end - Date.now()));
        } catch (err) {
          if (c === client || Date.now() >= end) throw err; // else: the watchdog redialled; wait on the new channel
        }
      }
    },
    async identity(): Promise<SignerIdentity> {
      try {
        const r = await call(client.getPublicKey.bind(client), {}, { deadlineMs });
        return {
          publicKey: r.publicKey, paramSet: r.paramSet, validatorIndex: r.validatorIndex,
          validatorCount: r.validatorCount, chainId: r.chainId, member: r.member, epoch: r.epoch, seated: r.seated,
        };
      } catch (err) {
        throw fromRpcError(err);
      }
    },
    sign,
    async approve(change: Reconfiguration): Promise<Approved> {
      try {
        const r = await call(client.approveReconfiguration.bind(client), { change: reconfigSigningBytes(change) }, { deadlineMs });
        if (r.signature.length === 0) throw new FedError('SIGNER_RPC_FAILED', 'the signer answered without a signature');
        return { signature: r.signature, validatorIndex: r.validatorIndex, id: r.reconfigId };
      } catch (err) {
        throw err instanceof FedError ? err : fromRpcError(err);
      }
    },
    async advanceEpoch(proof: EpochChangeProof): Promise<EpochAdvanced> {
      try {
        const r = await call(client.advanceEpoch.bind(client), {
          last: blockToWire(proof.last), suffix: proof.suffix.map(headerToWire), qc: qcToWire(proof.qc),
        }, { deadlineMs });
        return { epoch: r.epoch, already: r.already, seated: r.seated, validatorIndex: r.validatorIndex, validatorCount: r.validatorCount };
      } catch (err) {
        throw err instanceof FedError ? err : fromRpcError(err);
      }
    },
    async close() {
      clearInterval(watchdog);
      client.close();
    },
  };
}
