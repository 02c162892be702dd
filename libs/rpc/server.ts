// A grpc-js server as every service runs it: checked credentials, standard health checking
// (overall '' plus one entry per service), optional reflection, and a graceful shutdown that
// first tells load balancers NOT_SERVING, ends open streams (drain.ts), lets unary calls finish,
// then forces.
// Must never listen in plaintext on an address another host can reach.

import * as grpc from '@grpc/grpc-js';
import type { PackageDefinition } from '@grpc/proto-loader';
import { Health } from './health.ts';
import type { Logger } from 'pino';
import { FedError, errorMessage } from '#libs/errors/index.ts';
import { assertInsecureAllowed } from './address.ts';
import { serverCredentials, type ServerSecurity } from './credentials.ts';
import { exportCertificateExpiry } from './cert-expiry.ts';
import { addLazyReflection } from './reflection.ts';
import { streamDrain } from './drain.ts';
import type { Metrics } from '#libs/metrics/index.ts';

export interface RpcServerOptions {
  security: ServerSecurity;
  log: Logger;
  /**
   * Descriptors to serve over reflection (see loadBtcfedProtos), or how to load them: loaded and
   * built on the first reflection call (reflection.ts). Omit to serve none.
   */
  reflection?: PackageDefinition | (() => PackageDefinition);
  /** Passed to grpc-js (message size limits, keepalive, interceptors). */
  grpcOptions?: grpc.ServerOptions;
  /** Where the expiry of the certificates it loads is exported (cert-expiry.ts). */
  metrics?: Metrics;
}

export interface ShutdownOptions {
  /** How long in-flight calls may take before they are cancelled. Default 5000. */
  graceMs?: number;
  /** Time between NOT_SERVING and closing listeners, for load balancers to notice. Default 0. */
  announceMs?: number;
}

export interface RpcServer {
  /** The underlying grpc-js server, for what this wrapper does not cover. */
  readonly grpc: grpc.Server;
  /** Registers a service (e.g. ts-proto's `StoreServiceService`); returns its full name. */
  addService<Impl extends grpc.UntypedServiceImplementation>(
    definition: grpc.ServiceDefinition<Impl>, impl: Impl, opts?: { serving?: boolean }): string;
  /** Listens on "host:port" (port 0 picks one); resolves to the bound port. */
  bind(address: string): Promise<number>;
  /** Health status of one service by full name, or of the whole server with ''. */
  setServing(service: string, serving: boolean): void;
  shutdown(opts?: ShutdownOptions): Promise<void>;
}

/** "btcfed.v1.StoreService" from a method path like "/btcfed.v1.StoreService/GetConfig". */
export function serviceNameOf(definition: grpc.ServiceDefinition): string {
  const first = Object.values(definition)[0];
  const match = first ? /^\/([^/]+)\//.exec(first.path) : null;
  if (!match?.[1]) throw new FedError('RPC_SERVICE_INVALID', 'service definition has no methods with a path');
  return match[1];
}

/**
 * Every server pings each client connection after this long without a ping, and drops the
 * connection (cancelling its calls) when the answer takes longer than the timeout. A client whose
 * host died, or whose FIN was lost on a cut path, otherwise holds its streams for as long as the
 * kernel keeps the socket: the gateway's one Attach slot stayed taken for minutes after its
 * consensus was killed on the test bed, and a restarted consensus was refused all that time.
 * Node answers a PING in its HTTP/2 layer, so a busy but live client is never dropped.
 */
export const SERVER_KEEPALIVE = {
  'grpc.keepalive_time_ms': 5_000,
  'grpc.keepalive_timeout_ms': 5_000,
} as const;

export function createServer(opts: RpcServerOptions): RpcServer {
  const credentials = serverCredentials(opts.security);
  if (opts.metrics) exportCertificateExpiry(opts.metrics, opts.security);
  const server = new grpc.Server({ ...SERVER_KEEPALIVE, ...opts.grpcOptions });
  const streams = streamDrain();
  // Every service is registered through this, health's and reflection's too, so that each of
  // their streams ends when shutdown begins.
  const register: Pick<grpc.Server, 'addService'> = {
    addService: (definition, impl) => server.addService(definition, streams.track(definition, impl)),
  };
  const health = new Health({ '': 'NOT_SERVING' });
  health.addToServer(register);
  const services = new Set<string>(['']);
  const log = opts.log;
  let shutdownPromise: Promise<void> | undefined;

  const setServing = (service: string, serving: boolean): void => {
    if (!services.has(service)) {
      throw new FedError('RPC_SERVICE_UNKNOWN', `no service ${JSON.stringify(service)} registered on this server`, { service });
    }
    if (shutdownPromise && serving) return; // once draining, nothing comes back to SERVING
    health.setStatus(service, serving ? 'SERVING' : 'NOT_SERVING');
  };

  let reflecting = false;
  const bind = async (address: string): Promise<number> => {
    if (opts.security.mode === 'insecure') assertInsecureAllowed(address, 'server');
    // Reflection lists the services this server serves, not every contract in the package it
    // was given (the store used to advertise all five): registered once they are all added.
    if (opts.reflection && !reflecting) {
      reflecting = true;
      const pkg = opts.reflection;
      addLazyReflection(register, { pkg: typeof pkg === 'function' ? pkg : () => pkg, services: [...services].filter((s) => s !== ''), log });
    }
    return new Promise<number>((resolve, reject) => {
      server.bindAsync(address, credentials, (err, port) => {
        if (err) {
          reject(new FedError('RPC_BIND_FAILED', `cannot listen on ${address}: ${errorMessage(err)}`, { address }, { cause: err }));
          return;
        }
        log.info({ address, port, security: opts.security.mode }, 'grpc listening');
        setServing('', true);
        resolve(port);
      });
    });
  };

  const shutdown = ({ graceMs = 5_000, announceMs = 0 }: ShutdownOptions = {}): Promise<void> => {
    shutdownPromise ??= (async () => {
      for (const service of services) health.setStatus(service, 'NOT_SERVING');
      log.info({ graceMs, announceMs }, 'grpc shutting down');
      // Health watchers have been told NOT_SERVING above, before their streams end here; a
      // stream opened from now on ends at once, while unary calls are still answered.
      const open = streams.open;
      streams.drain();
      if (open > 0) log.info({ streams: open }, 'grpc open streams ended (UNAVAILABLE)');
      if (announceMs > 0) await new Promise((r) => setTimeout(r, announceMs));
      await new Promise<void>((resolve) => {
        const force = setTimeout(() => {
          log.warn({ graceMs }, 'grpc calls still running after the grace period; cancelling them');
          server.forceShutdown();
          resolve();
        }, graceMs);
        server.tryShutdown((err) => {
          clearTimeout(force);
          if (err) log.warn({ err }, 'grpc graceful shutdown failed; forcing');
          server.forceShutdown();
          resolve();
        });
      });
      log.info('grpc stopped');
    })();
    return shutdownPromise;
  };

  return {
    grpc: server,
    addService(definition, impl, { serving = true } = {}) {
      const name = serviceNameOf(definition);
      register.addService(definition, impl);
      services.add(name);
      health.setStatus(name, serving && !shutdownPromise ? 'SERVING' : 'NOT_SERVING');
      return name;
    },
    bind,
    setServing,
    shutdown,
  };
}
