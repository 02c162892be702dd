// Admission to the public API: who the caller is, whether its limits (client-limits.ts) let this
// request in, and the refusal it gets when they do not — a FedError that STATUS in api.ts maps to
// RESOURCE_EXHAUSTED, its message naming the limit, its value and its conf.yaml key — counted
// (btcfed_consensus_api_refused_total{method,limit}) and logged with the client, the 1st, 2nd,
// 4th, 8th, … time per client and limit, so a flood of refused calls cannot flood the log.
//
// The client is the verified certificate's SHA-256 fingerprint: an application's certificate,
// however many connections it opens. Without TLS (plaintext, loopback only) there is no identity
// to go by but the caller's address, so every local caller is one client there.

import { setTimeout as sleep } from 'node:timers/promises';
import type * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { readCpuLimits, type Conf, type Role } from '#libs/config/index.ts';
import { FedError } from '#libs/errors/index.ts';
import { peerCertificate, type CallWithAuthContext } from '#libs/rpc/index.ts';
import { ClientLimits, worthLogging, type Budget, type ClientLimitsOptions, type LimitName, type Refusal } from './client-limits.ts';
import { http2StreamOf, type FlowOptions } from './commit-stream.ts';
import { ReadCpu } from './read-cpu.ts';

export interface ClientIdentity {
  /** The key its limits are kept under. */
  key: string;
  /** For logs: the certificate's common name and fingerprint, or the address. */
  label: string;
}

export interface CallerCall extends CallWithAuthContext { getPeer(): string }

/** The FedError code of a refusal, by the limit that refused (all RESOURCE_EXHAUSTED). */
export const REFUSAL_CODES = {
  streams: 'API_STREAM_LIMIT',
  stalled: 'API_STREAM_STALLED',
  rate: 'API_RATE_LIMIT',
  clients: 'API_CLIENT_LIMIT',
} as const;

// Reads in flight and the rates share API_RATE_LIMIT: either way the client backs off and retries.
const codeOf = (limit: LimitName): string =>
  limit === 'stream_stall' ? REFUSAL_CODES.stalled
    : limit.startsWith('streams_') ? REFUSAL_CODES.streams
      : limit === 'max_clients' ? REFUSAL_CODES.clients
        : REFUSAL_CODES.rate;

/** The host part of grpc-js's getPeer(): "127.0.0.1:5000", "::1:5000", "[::1]:5000", "ipv4:10.0.0.1:5000". */
export function hostOf(peer: string): string {
  const p = peer.replace(/^(ipv4|ipv6):/, '');
  if (p.startsWith('[')) return p.slice(1, Math.max(1, p.indexOf(']')));
  const i = p.lastIndexOf(':');
  return i > 0 && /^\d+$/.test(p.slice(i + 1)) ? p.slice(0, i) : p;
}

export function clientIdentity(call: CallerCall): ClientIdentity {
  const cert = peerCertificate(call);
  if (cert) return { key: `sha256:${cert.fingerprint256}`, label: `${cert.commonName ?? cert.subject} (sha256 ${cert.fingerprint256.slice(0, 16)}…)` };
  const host = hostOf(call.getPeer());
  return { key: `addr:${host}`, label: `address ${host}` };
}

export interface ApiGuardDeps {
  limits: ClientLimits;
  log: Logger;
  /** How long a refusal waits before it is answered (read at each refusal, so a reload applies). */
  refusalDelayMs?(): number;
  /** Counts one refusal (the metric). */
  refused?(method: string, limit: LimitName): void;
  /** Counts the milliseconds of CPU a read call was charged, each time it is (the metric). */
  readCpu?(method: string, ms: number): void;
}

export class ApiGuard {
  readonly limits: ClientLimits;
  readonly #log: Logger;
  readonly #refused: ((method: string, limit: LimitName) => void) | undefined;
  readonly #readCpu: ((method: string, ms: number) => void) | undefined;
  readonly #delay: () => number;

  constructor(deps: ApiGuardDeps) {
    this.limits = deps.limits;
    this.#log = deps.log;
    this.#refused = deps.refused;
    this.#readCpu = deps.readCpu;
    this.#delay = deps.refusalDelayMs ?? (() => 0);
  }

  /**
   * Waits out the refusal delay (or until `signal` aborts): the caller answers a refusal after it.
   * A refused client that asks again at once — a flood — then makes a few calls a second per call
   * it keeps open (HTTP/2 bounds those per connection), not thousands.
   */
  async hold(signal: AbortSignal): Promise<void> {
    const ms = this.#delay();
    if (ms > 0 && !signal.aborted) await sleep(ms, undefined, { signal }).catch(() => undefined);
  }

  /** Charges `weight` to the caller's `budget`, or throws the refusal (RESOURCE_EXHAUSTED). */
  admit(call: CallerCall, method: string, budget: Budget, weight: number): void {
    const client = clientIdentity(call);
    const r = this.limits.admit(client.key, budget, weight, method);
    if (r) throw this.#refusal(client, method, r);
  }

  /**
   * Admits a read call: a slot among the caller's reads in flight, held until HTTP/2 has taken the
   * whole answer (the call's stream closes) — a client that asks and does not read makes this member
   * hold its answers, so how many it may have is bounded —, then its read CPU (not in debt; `cheap`:
   * its client's own may be, client-limits.ts), then its weight in read units. Returns the meter the
   * call's work is timed on and charged to — and counted, by method, in what it charges.
   */
  read(call: CallerCall & object, method: string, weight: number, cheap = false): ReadCpu {
    const client = clientIdentity(call);
    const slot = this.limits.startRead(client.key, method);
    if (!slot.ok) throw this.#refusal(client, method, slot.refusal);
    // CPU before units: it charges nothing at admission, so a call it refuses spends no units.
    const cpu = this.limits.admitReadCpu(client.key, method, cheap);
    const r = cpu.ok ? this.limits.admit(client.key, 'read', weight, method) : cpu.refusal;
    if (r || !cpu.ok) {
      slot.release();
      throw this.#refusal(client, method, cpu.ok ? r! : cpu.refusal);
    }
    const stream = http2StreamOf(call);
    if (stream && !stream.closed && !stream.destroyed) stream.once('close', slot.release);
    else slot.release();
    const counted = this.#readCpu;
    if (!counted) return new ReadCpu(cpu.charge);
    // What the grant charges, no more: it ignores a time that is not above 0.
    return new ReadCpu((ms) => {
      cpu.charge(ms);
      if (ms > 0) counted(method, ms);
    });
  }

  /** A slot for a stream of the caller, or throws the refusal; release the slot when the stream ends. */
  openStream(call: CallerCall, method: string): { client: ClientIdentity; release(): void } {
    const client = clientIdentity(call);
    const grant = this.limits.openStream(client.key, method);
    if (!grant.ok) throw this.#refusal(client, method, grant.refusal);
    return { client, release: grant.release };
  }

  /**
   * Waits until the client's read budget (and the total) hold `weight`, and spends it: a stream's
   * blocks are reads like any other, so a follower replaying the chain goes at its read rate
   * instead of as fast as this member can read and encrypt. Returns early when `signal` aborts.
   */
  async pace(client: ClientIdentity, weight: number, signal: AbortSignal): Promise<void> {
    for (let ms = this.limits.delay(client.key, 'read', weight); ms > 0 && !signal.aborted; ms = this.limits.delay(client.key, 'read', weight)) {
      await sleep(ms, undefined, { signal }).catch(() => undefined);
    }
  }

  /** A stream cancelled because its client stopped reading: counted and logged like a refusal. */
  stalled(client: ClientIdentity, method: string, undrainedBytes: number, stallMs: number): FedError {
    const nth = this.limits.refused(client.key, 'stream_stall');
    const message = `${method}: the client read nothing for ${stallMs / 1000} s with ${undrainedBytes} bytes waiting (services.consensus.limits.stream_stall): stream cancelled`;
    return this.#refusal(client, method, { limit: 'stream_stall', message, nth });
  }

  #refusal(client: ClientIdentity, method: string, r: Refusal): FedError {
    this.#refused?.(method, r.limit);
    if (worthLogging(r.nth)) {
      this.#log.warn({ method, limit: r.limit, client: client.label, refusals: r.nth, detail: r.message }, 'api client refused: over its limit');
    }
    return new FedError(codeOf(r.limit), r.message, { limit: r.limit });
  }
}

type LimitsConf = Conf['services']['consensus']['limits'];

/**
 * services.consensus.limits as the limiter and StreamCommits' flow control take them, for a member
 * of `role` (node.role): read CPU is conf.yaml's where it is set, the role's defaults elsewhere.
 */
export function limitsFromConf(l: LimitsConf, role: Role = 'validator'): { clients: ClientLimitsOptions; flow: FlowOptions; refusalDelayMs: number } {
  const cpu = readCpuLimits(l, role);
  return {
    clients: {
      maxClients: l.max_clients, streamsPerClient: l.streams_per_client, streamsTotal: l.streams_total,
      readsInFlightPerClient: l.reads_in_flight_per_client, readsInFlightTotal: l.reads_in_flight_total,
      readPerClient: l.read_per_client, readTotal: l.read_total, submitPerClient: l.submit_per_client, submitTotal: l.submit_total,
      readCpuPerClient: cpu.read_cpu_per_client, readCpuTotal: cpu.read_cpu_total,
    },
    flow: { maxBufferedBytes: l.stream_buffer_bytes, stallMs: l.stream_stall },
    refusalDelayMs: l.refusal_delay,
  };
}

/** What a composition root (main.ts, observer.ts) wires for the public API's limits. */
export interface PublicApiLimits {
  guard: ApiGuard;
  flow(): FlowOptions;
  /** For the public listener: HTTP/2 concurrent streams per connection (read at start; a reload needs a restart for it). */
  grpcOptions: grpc.ServerOptions;
  /** A new config: the new limits apply to the next call, and flow control to the next stream. */
  reload(l: LimitsConf): void;
}

/**
 * The public API's limits from services.consensus.limits, for a member of `deps.role` (node.role;
 * validator when not given): its read CPU defaults are the role's (libs/config READ_CPU_DEFAULTS).
 */
export function publicApiLimits(l: LimitsConf, deps: {
  log: Logger; role?: Role; refused?(method: string, limit: LimitName): void; readCpu?(method: string, ms: number): void; now?: () => number;
}): PublicApiLimits {
  const role = deps.role ?? 'validator';
  let current = limitsFromConf(l, role);
  let seen = JSON.stringify(l);
  const limits = new ClientLimits(current.clients, { now: deps.now ?? Date.now });
  const guard = new ApiGuard({ limits, log: deps.log, refusalDelayMs: () => current.refusalDelayMs,
    ...(deps.refused ? { refused: deps.refused } : {}), ...(deps.readCpu ? { readCpu: deps.readCpu } : {}) });
  return {
    guard,
    flow: () => current.flow,
    grpcOptions: { 'grpc.max_concurrent_streams': l.http2_max_concurrent_streams },
    reload(next) {
      const text = JSON.stringify(next);
      if (text === seen) return;
      seen = text;
      current = limitsFromConf(next, role);
      limits.configure(current.clients);
      // With the read CPU that applies, set or the role's default.
      deps.log.info({ limits: { ...next, ...readCpuLimits(next, role) } }, 'api limits reloaded');
    },
  };
}
