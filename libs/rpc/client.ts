// Clients for the project's gRPC services: a channel with checked credentials, per-call
// deadlines, and a promise form of unary calls typed from the ts-proto client.
// Must never make a call without a deadline by accident: unary calls default to one.

import * as grpc from '@grpc/grpc-js';
import { FedError, errorMessage } from '#libs/errors/index.ts';
import { dialTarget } from './address.ts';
import { channelCredentials, type ClientSecurity } from './credentials.ts';

export interface RpcClientOptions {
  security: ClientSecurity;
  /** Passed to grpc-js (keepalive, message size, interceptors). */
  grpcOptions?: Partial<grpc.ClientOptions>;
}

/** The shape of a ts-proto grpc-js client constructor (e.g. `StoreServiceClient`). */
export type ClientConstructor<C extends grpc.Client> =
  new (address: string, credentials: grpc.ChannelCredentials, options?: Partial<grpc.ClientOptions>) => C;

/**
 * How fast a channel redials a server that went away. grpc-js's defaults (1 s, growing ×1.6 up
 * to 120 s) left a consensus service failing with a stale ECONNREFUSED for seconds after its
 * signer was back; the project's servers are a member's own services, so redialling at most
 * every second costs nothing and bounds recovery after a restart.
 */
export const RECONNECT_OPTIONS = { 'grpc.initial_reconnect_backoff_ms': 100, 'grpc.max_reconnect_backoff_ms': 1000 } as const;

/** A client of the server at `address`; a wildcard listen address (0.0.0.0:P) is dialled on loopback (dialTarget). */
export function createClient<C extends grpc.Client>(Ctor: ClientConstructor<C>, address: string, opts: RpcClientOptions): C {
  const target = dialTarget(address);
  const { credentials, options } = channelCredentials(opts.security, target);
  return new Ctor(target, credentials, { ...RECONNECT_OPTIONS, ...options, ...opts.grpcOptions });
}

/** A deadline `ms` from now, for CallOptions.deadline and waitForReady. */
export function deadline(ms: number): Date {
  return new Date(Date.now() + ms);
}

/** Resolves once the channel is connected; FedError('RPC_NOT_READY') after `ms`. */
export function waitForReady(client: grpc.Client, ms: number): Promise<void> {
  return new Promise((resolve, reject) => {
    client.waitForReady(deadline(ms), (err) => {
      if (!err) return resolve();
      reject(new FedError('RPC_NOT_READY', `gRPC server at ${client.getChannel().getTarget()} not ready within ${ms} ms: ${errorMessage(err)}`,
        { target: client.getChannel().getTarget(), ms }, { cause: err }));
    });
  });
}

/** The four-argument overload every ts-proto unary client method has. */
export type UnaryMethod<Req, Res> = (
  request: Req,
  metadata: grpc.Metadata,
  options: Partial<grpc.CallOptions>,
  callback: (error: grpc.ServiceError | null, response: Res) => void,
) => grpc.ClientUnaryCall;

export interface CallOptions {
  /** Default 10 000 ms; Infinity for none (only for calls that wait on purpose). */
  deadlineMs?: number;
  metadata?: grpc.Metadata;
  /** Aborting cancels the call (the promise rejects with CANCELLED). */
  signal?: AbortSignal;
  /** Queue the call until the channel connects instead of failing fast. */
  waitForReady?: boolean;
}

export const DEFAULT_DEADLINE_MS = 10_000;

/**
 * A unary call as a promise: `await call(client.getConfig.bind(client), req, { deadlineMs: 2000 })`.
 * Rejects with the grpc ServiceError (`code`, `details`, `metadata`; see errorCodeOf).
 */
export function call<Req, Res>(method: UnaryMethod<Req, Res>, request: Req, opts: CallOptions = {}): Promise<Res> {
  const ms = opts.deadlineMs ?? DEFAULT_DEADLINE_MS;
  const options: Partial<grpc.CallOptions> = Number.isFinite(ms) ? { deadline: deadline(ms) } : {};
  const metadata = opts.metadata?.clone() ?? new grpc.Metadata();
  // grpc-js carries wait-for-ready as a metadata option, not a call option.
  if (opts.waitForReady) metadata.setOptions({ ...metadata.getOptions(), waitForReady: true });
  return new Promise<Res>((resolve, reject) => {
    if (opts.signal?.aborted) {
      reject(new FedError('RPC_ABORTED', 'call aborted before it started'));
      return;
    }
    const onAbort = () => pending.cancel();
    const pending = method(request, metadata, options, (err, res) => {
      opts.signal?.removeEventListener('abort', onAbort);
      if (err) reject(err);
      else resolve(res);
    });
    opts.signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** True when `err` is a gRPC error with status `code`. */
export function hasStatus(err: unknown, code: grpc.status): err is grpc.ServiceError {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === code
    && 'details' in err;
}
