// Clients for the project's gRPC services: a channel with checked credentials, per-call
// deadlines, and a promise form of unary calls typed from the ts-proto client.
// Must never make a call without a deadline by accident: unary calls default to one.

import * as grpc from '@grpc/grpc-js';
import { FedError, errorMessage } from '#libs/errors/index.ts';
import { dialTarget } from './address.ts';
import { channelCredentials, type ClientSecurity } from './credentials.ts';
import { ERROR_CODE_TRAILER } from './status.ts';
import { probeTls } from './tls-probe.ts';

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

/** What each client made by createClient dials and with which files, for naming a TLS failure. */
interface Dialled {
  security: ClientSecurity;
  target: string;
  /** The latest probe's answer, shared by every call waiting on this channel. */
  probe?: { at: number; result: Promise<FedError | undefined> };
  channel?: grpc.Channel;
}
const DIALLED = new WeakMap<grpc.Client, Dialled>();
/** A probe's answer is reused this long (a channel retrying every second does not probe every time). */
const PROBE_REUSE_MS = 2_000;

function probeOf(d: Dialled): Promise<FedError | undefined> {
  if (!d.probe || Date.now() - d.probe.at > PROBE_REUSE_MS) d.probe = { at: Date.now(), result: probeTls(d.security, d.target).catch(() => undefined) };
  return d.probe.result;
}

/**
 * Calls `onTls` with the TLS mismatch that keeps `channel` from connecting, as soon as a connection
 * attempt fails and the probe names it; stops at `end` or when `stopped()`.
 */
function watchForTls(d: Dialled, channel: grpc.Channel, end: number, stopped: () => boolean, onTls: (err: FedError) => void): void {
  const watch = (state: grpc.connectivityState): void => {
    if (stopped() || Date.now() >= end) return;
    if (state === grpc.connectivityState.TRANSIENT_FAILURE) {
      void probeOf(d).then((err) => { if (err && !stopped()) onTls(err); });
    }
    if (state === grpc.connectivityState.READY) return;
    // A channel closed meanwhile (the client is done with it) throws "Channel has been shut down":
    // nothing to watch any more, and nothing may throw from here (it ran after tests ended).
    try {
      channel.watchConnectivityState(state, end, (err) => { if (!err) { const next = stateOf(channel); if (next !== undefined) watch(next); } });
    } catch { /* closed */ }
  };
  const first = stateOf(channel);
  if (first !== undefined) watch(first);
}

/** The channel's state, or undefined once it is closed. */
function stateOf(channel: grpc.Channel): grpc.connectivityState | undefined {
  try {
    return channel.getConnectivityState(false);
  } catch {
    return undefined;
  }
}

/**
 * A call that waits on a channel which cannot connect because of TLS ends at once with UNAVAILABLE,
 * the mismatch in its details and its code in the btcfed-error-code trailer (errorCodeOf), instead of
 * at its deadline with "no connection".
 */
function tlsInterceptor(d: Dialled): grpc.Interceptor {
  return (options, nextCall) => {
    let tlsErr: FedError | undefined;
    let ended = false;
    const end = options.deadline instanceof Date ? options.deadline.getTime() : typeof options.deadline === 'number' ? options.deadline : Date.now() + DEFAULT_DEADLINE_MS;
    const call: grpc.InterceptingCall = new grpc.InterceptingCall(nextCall(options), {
      start(metadata, listener, next) {
        next(metadata, {
          onReceiveStatus(status, nextStatus) {
            ended = true;
            if (tlsErr && status.code !== grpc.status.OK) {
              const trailer = status.metadata.clone();
              trailer.set(ERROR_CODE_TRAILER, tlsErr.code);
              nextStatus({ ...status, code: grpc.status.UNAVAILABLE, details: tlsErr.message, metadata: trailer });
              return;
            }
            nextStatus(status);
          },
        });
        if (d.channel) {
          watchForTls(d, d.channel, end, () => ended, (err) => {
            tlsErr = err;
            call.cancelWithStatus(grpc.status.UNAVAILABLE, err.message);
          });
        }
      },
    });
    return call;
  };
}

/** A client of the server at `address`; a wildcard listen address (0.0.0.0:P) is dialled on loopback (dialTarget). */
export function createClient<C extends grpc.Client>(Ctor: ClientConstructor<C>, address: string, opts: RpcClientOptions): C {
  const target = dialTarget(address);
  const { credentials, options } = channelCredentials(opts.security, target);
  const d: Dialled = { security: opts.security, target };
  const tlsAware = opts.security.mode !== 'insecure';
  const interceptors = [...(tlsAware ? [tlsInterceptor(d)] : []), ...(opts.grpcOptions?.interceptors ?? [])];
  const client = new Ctor(target, credentials, { ...RECONNECT_OPTIONS, ...options, ...opts.grpcOptions, interceptors });
  d.channel = client.getChannel() as grpc.Channel;
  if (tlsAware) DIALLED.set(client, d);
  return client;
}

/** A deadline `ms` from now, for CallOptions.deadline and waitForReady. */
export function deadline(ms: number): Date {
  return new Date(Date.now() + ms);
}

/**
 * Resolves once the channel is connected; FedError('RPC_NOT_READY') after `ms`, or as soon as a
 * TLS mismatch keeps it from connecting, that FedError (RPC_TLS_*, tls-probe.ts).
 */
export function waitForReady(client: grpc.Client, ms: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let done = false;
    client.waitForReady(deadline(ms), (err) => {
      if (done) return;
      done = true;
      if (!err) return resolve();
      reject(new FedError('RPC_NOT_READY', `gRPC server at ${client.getChannel().getTarget()} not ready within ${ms} ms: ${errorMessage(err)}`,
        { target: client.getChannel().getTarget(), ms }, { cause: err }));
    });
    const d = DIALLED.get(client);
    if (d && !done) {
      watchForTls(d, client.getChannel() as grpc.Channel, Date.now() + ms, () => done, (err) => {
        done = true;
        reject(err);
      });
    }
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

/** The FedError code a server's rate limits refuse with (services/consensus/api-guard.ts): back off and ask again. */
export const RATE_LIMIT_CODE = 'API_RATE_LIMIT';

/**
 * As call(), for a tool that reads a whole log: a call the server refuses by its rate limits
 * (RESOURCE_EXHAUSTED with `API_RATE_LIMIT`: its read units or read CPU are spent) is made again
 * after the wait the refusal names ("try again in 1.2 s"), else a second, until `patienceMs` has
 * passed (default a minute); any other error, or a refusal past it, rejects as call() does.
 */
export async function callPatiently<Req, Res>(method: UnaryMethod<Req, Res>, request: Req, opts: CallOptions & {
  patienceMs?: number;
  /** Told of each wait before it starts: how long, and the server's words (a command line says it on stderr). */
  onWait?: (waitMs: number, details: string) => void;
} = {}): Promise<Res> {
  const until = Date.now() + (opts.patienceMs ?? 60_000);
  for (;;) {
    try {
      return await call(method, request, opts);
    } catch (err) {
      if (!hasStatus(err, grpc.status.RESOURCE_EXHAUSTED) || err.metadata?.get(ERROR_CODE_TRAILER)[0] !== RATE_LIMIT_CODE) throw err;
      const named = /try again in ([\d.]+) s/.exec(err.details);
      const waitMs = Math.min(10_000, named ? Math.ceil(Number(named[1]) * 1000) : 1000);
      if (Date.now() + waitMs > until) throw err;
      opts.onWait?.(waitMs, err.details);
      await new Promise((resolve) => setTimeout(resolve, waitMs));
    }
  }
}

/** True when `err` is a gRPC error with status `code`. */
export function hasStatus(err: unknown, code: grpc.status): err is grpc.ServiceError {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === code
    && 'details' in err;
}
