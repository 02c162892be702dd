// Deny by default for a gRPC service of a member: every method of the service names the roles
// (libs/service/identity.ts) that may call it, and a call from any other certificate is refused
// with PERMISSION_DENIED before the handler sees it — logged with the caller and counted.
// The policy is typed over the service's methods, so a new method without a policy does not compile.

import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { FedError, errorMessage } from '#libs/errors/index.ts';
import type { Counter, Metrics } from '#libs/metrics/index.ts';
import { ERROR_CODE_TRAILER } from '#libs/rpc/index.ts';
import { requireRole, type CallerCheck, type ServiceRole } from './identity.ts';

export type RolePolicy<S> = { readonly [K in keyof S]: readonly ServiceRole[] };

export interface GuardOptions {
  /** A function when the member's name may change with the config. */
  check: CallerCheck | (() => CallerCheck);
  log: Logger;
  /** Counts a refusal by method and reason code (see refusalCounter). */
  refused?: (method: string, code: string) => void;
}

/** One counter per service process: `rpc_refused_requests_total{method, code}`. */
export function refusalCounter(metrics: Metrics): (method: string, code: string) => void {
  const c: Counter = metrics.counter('rpc_refused_requests_total', 'gRPC calls refused for the caller\'s certificate, by method and reason code', ['method', 'code']);
  return (method, code) => c.inc({ method, code });
}

function statusOf(err: unknown): grpc.StatusObject {
  const metadata = new grpc.Metadata();
  const code = err instanceof FedError ? err.code : 'INTERNAL';
  metadata.set(ERROR_CODE_TRAILER, code);
  return { code: code === 'RPC_PEER_UNAUTHENTICATED' ? grpc.status.UNAUTHENTICATED : grpc.status.PERMISSION_DENIED, details: errorMessage(err), metadata };
}

type AnyCall = grpc.ServerUnaryCall<unknown, unknown> | grpc.ServerReadableStream<unknown, unknown>
  | grpc.ServerWritableStream<unknown, unknown> | grpc.ServerDuplexStream<unknown, unknown>;
type AnyHandler = (call: AnyCall, callback?: grpc.sendUnaryData<unknown>) => void;

/** The same roles for every method of a service (e.g. a public API). */
export function everyMethod<S extends grpc.UntypedServiceImplementation>(definition: grpc.ServiceDefinition<S>, roles: readonly ServiceRole[]): RolePolicy<S> {
  return Object.fromEntries(Object.keys(definition).map((k) => [k, roles])) as RolePolicy<S>;
}

/** `impl` with each handler behind its method's role check. */
export function guardService<S extends grpc.UntypedServiceImplementation>(
  definition: grpc.ServiceDefinition<S>, impl: S, policy: RolePolicy<S>, opts: GuardOptions): S {
  const guarded: Record<string, AnyHandler> = {};
  for (const [method, handler] of Object.entries(impl) as [string, AnyHandler][]) {
    const spec = definition[method];
    const roles = policy[method as keyof S];
    if (!spec || !roles) throw new FedError('RPC_SERVICE_INVALID', `no role policy for method ${method}`);
    const what = spec.path;
    guarded[method] = (call, callback) => {
      try {
        requireRole(call, typeof opts.check === 'function' ? opts.check() : opts.check, roles, what);
      } catch (err) {
        const status = statusOf(err);
        opts.refused?.(what, err instanceof FedError ? err.code : 'INTERNAL');
        opts.log.warn({ method: what, peer: call.getPeer(), reason: errorMessage(err) }, 'rpc caller refused');
        if (callback) callback(status);
        else call.emit('error', status);
        return;
      }
      handler(call, callback);
    };
  }
  return guarded as S;
}
