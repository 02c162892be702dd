// Handler adapters that turn what a service handler throws into a gRPC status, through the
// one code→status mapping each service owns. A FedError's message goes to the client; any
// other error becomes INTERNAL with a generic message and a reference, the real one is logged.
// Must never send a stack trace or a non-FedError message to a client.

import { randomBytes } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { isFedError } from '#libs/errors/index.ts';

/** Trailer carrying the FedError code, so a client can switch on it as well as on the status. */
export const ERROR_CODE_TRAILER = 'btcfed-error-code';

/** A service's mapping from FedError codes to gRPC status; undefined means "not expected here". */
export type StatusOf = (code: string) => grpc.status | undefined;

/** Builds a StatusOf from a plain table: `statusTable({ PEER_NOT_FOUND: grpc.status.NOT_FOUND })`. */
export function statusTable(table: Readonly<Record<string, grpc.status>>): StatusOf {
  return (code) => (Object.hasOwn(table, code) ? table[code] : undefined);
}

export interface RpcHandlersOptions {
  statusOf: StatusOf;
  log: Logger;
}

export type StreamHandler<Req, Res> =
  (req: Req, call: grpc.ServerWritableStream<Req, Res>, signal: AbortSignal) => AsyncIterable<Res>;

export type UnaryHandler<Req, Res> =
  (req: Req, call: grpc.ServerUnaryCall<Req, Res>, signal: AbortSignal) => Promise<Res> | Res;

export interface RpcHandlers {
  /** `signal` aborts when the client cancels, its deadline passes, or the server forces shutdown. */
  unary<Req, Res>(fn: UnaryHandler<Req, Res>): grpc.handleUnaryCall<Req, Res>;
  /**
   * The iterable's values are written in order, respecting flow control; its end ends the
   * stream OK. `signal` aborts when the client cancels or the server shuts down.
   */
  serverStream<Req, Res>(fn: StreamHandler<Req, Res>): grpc.handleServerStreamingCall<Req, Res>;
  /** The status to send for `err`, logging it when it is not an expected FedError (for bidi streams). */
  toStatus(err: unknown, path: string): grpc.StatusObject;
}

export function rpcHandlers(opts: RpcHandlersOptions): RpcHandlers {
  const { statusOf, log } = opts;

  function toStatus(err: unknown, path: string): grpc.StatusObject {
    const metadata = new grpc.Metadata();
    if (isFedError(err)) {
      const code = statusOf(err.code);
      if (code !== undefined && code !== grpc.status.OK) {
        log.debug({ method: path, code: err.code, status: grpc.status[code] }, 'rpc refused');
        metadata.set(ERROR_CODE_TRAILER, err.code);
        return { code, details: err.message, metadata };
      }
    }
    const ref = randomBytes(6).toString('hex');
    log.error({ err, method: path, ref }, 'rpc failed with an unexpected error');
    return { code: grpc.status.INTERNAL, details: `internal error (ref ${ref})`, metadata };
  }

  // The client has gone (cancel, deadline, forced shutdown): nobody reads this status, and an
  // abort error from the handler is not a fault worth an error log.
  function cancelledStatus(path: string): grpc.StatusObject {
    log.debug({ method: path }, 'rpc cancelled');
    return { code: grpc.status.CANCELLED, details: 'cancelled', metadata: new grpc.Metadata() };
  }

  return {
    toStatus,
    unary<Req, Res>(fn: UnaryHandler<Req, Res>): grpc.handleUnaryCall<Req, Res> {
      return (call, callback) => {
        const abort = new AbortController();
        call.once('cancelled', () => abort.abort());
        Promise.resolve()
          .then(() => fn(call.request, call, abort.signal))
          .then((res) => callback(null, res), (err: unknown) => callback(
            abort.signal.aborted ? cancelledStatus(call.getPath()) : toStatus(err, call.getPath())));
      };
    },
    serverStream<Req, Res>(fn: StreamHandler<Req, Res>): grpc.handleServerStreamingCall<Req, Res> {
      return (call) => {
        const abort = new AbortController();
        call.once('cancelled', () => abort.abort());
        Promise.resolve()
          .then(() => pump(fn(call.request, call, abort.signal), call))
          .then(
            () => { if (!call.cancelled) call.end(); },
            (err: unknown) => {
              if (abort.signal.aborted) log.debug({ method: call.getPath() }, 'rpc stream cancelled');
              else call.emit('error', toStatus(err, call.getPath()));
            },
          );
      };
    },
  };
}

async function pump<Req, Res>(source: AsyncIterable<Res>, call: grpc.ServerWritableStream<Req, Res>): Promise<void> {
  const iterator = source[Symbol.asyncIterator]();
  // A cancelled call must stop the generator, or a watch would run forever.
  const onCancel = () => { void iterator.return?.(); };
  call.once('cancelled', onCancel);
  try {
    for (;;) {
      const next = await iterator.next();
      if (next.done || call.cancelled) return;
      if (!call.write(next.value)) {
        await new Promise<void>((resolve) => {
          const done = () => { call.off('drain', done); call.off('cancelled', done); resolve(); };
          call.on('drain', done);
          call.on('cancelled', done);
        });
      }
    }
  } finally {
    call.off('cancelled', onCancel);
  }
}

/** The FedError code a server put in the trailers of a failed call, if any. */
export function errorCodeOf(err: unknown): string | undefined {
  const metadata = (err as { metadata?: unknown } | null)?.metadata;
  if (!(metadata instanceof grpc.Metadata)) return undefined;
  const [value] = metadata.get(ERROR_CODE_TRAILER);
  return typeof value === 'string' ? value : undefined;
}
