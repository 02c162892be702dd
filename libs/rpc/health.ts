// gRPC's standard health service (grpc.health.v1: Check, List, Watch) over the project's generated
// codecs. grpc-health-check, which served it before, parses its .proto with protobufjs when it is
// imported: some 65 ms of CPU at every service's start, for three methods of two small messages.

import * as grpc from '@grpc/grpc-js';
import {
  HealthCheckResponse_ServingStatus as Status, HealthService, type HealthCheckResponse, type HealthServer,
} from '#libs/gen/grpc/health/v1/health.pb.ts';

export type ServingStatus = 'SERVING' | 'NOT_SERVING';

/** A List answer is refused past this many services, as gRPC's reference servers do. */
export const HEALTH_LIST_LIMIT = 100;

/** The health of a server's services by full name ('' for the whole server), and its watchers. */
export class Health {
  readonly #status = new Map<string, ServingStatus>();
  readonly #watchers = new Map<string, Set<(status: ServingStatus) => void>>();

  constructor(initial: Record<string, ServingStatus> = {}) {
    for (const [service, status] of Object.entries(initial)) this.#status.set(service, status);
  }

  setStatus(service: string, status: ServingStatus): void {
    this.#status.set(service, status);
    for (const tell of this.#watchers.get(service) ?? []) tell(status);
  }

  /** Watch calls open now, over every service name (each is forgotten when its call ends). */
  get watching(): number {
    let n = 0;
    for (const set of this.#watchers.values()) n += set.size;
    return n;
  }

  /** Service names with a watch open: names a client chose, so kept only while watched. */
  get watchedNames(): number {
    return this.#watchers.size;
  }

  /** Registers grpc.health.v1.Health on `server` (or on what registers services for it). */
  addToServer(server: Pick<grpc.Server, 'addService'>): void {
    const impl: HealthServer = {
      check: (call, callback) => {
        const status = this.#status.get(call.request.service);
        if (status) callback(null, { status: Status[status] });
        else callback({ code: grpc.status.NOT_FOUND, details: `health status unknown for service ${JSON.stringify(call.request.service)}` });
      },
      list: (_call, callback) => {
        if (this.#status.size > HEALTH_LIST_LIMIT) {
          callback({ code: grpc.status.RESOURCE_EXHAUSTED, details: `more than ${HEALTH_LIST_LIMIT} services to list` });
          return;
        }
        const statuses: Record<string, HealthCheckResponse> = {};
        for (const [service, status] of this.#status) statuses[service] = { status: Status[status] };
        callback(null, { statuses });
      },
      watch: (call) => {
        const service = call.request.service;
        const tell = (status: ServingStatus) => { call.write({ status: Status[status] }); };
        let set = this.#watchers.get(service);
        if (!set) this.#watchers.set(service, (set = new Set()));
        set.add(tell);
        const forget = () => {
          set.delete(tell);
          if (set.size === 0 && this.#watchers.get(service) === set) this.#watchers.delete(service);
        };
        call.on('cancelled', forget);
        call.on('close', forget);
        const now = this.#status.get(service);
        call.write({ status: now ? Status[now] : Status.SERVICE_UNKNOWN });
      },
    };
    server.addService(HealthService, impl);
  }
}
