// The gate every inbound TCP connection passes before its Noise handshake: a token bucket per
// remote host, and one more shared by all hosts where no validator lives. A handshake (X25519,
// Ed25519, then yamux and identify) costs the gateway's one thread about 10 ms of CPU, and the
// peer's identity is known only after it, so without this gate a keyless stranger that connects
// and hangs up in a loop is bounded by nothing but its own CPU (94 connections a second from one
// process took 91 % of a core). A host's bucket grows with the validators peers.yaml places there
// (members sharing a host, as on a devnet, reconnect together); hosts with no validator also share
// one bucket, so a stranger with many addresses is bounded as a whole. Pure: time comes in.

import { TokenBucket } from './exchange-filter.ts';

export interface InboundRate { rate: number; burst: number }

export interface InboundGateLimits {
  /** Per remote host, for each validator at that host plus one. */
  perHost: InboundRate;
  /** All hosts with no validator, together. */
  unknownHosts: InboundRate;
}

export type GateVerdict = 'admit' | 'host_rate' | 'unknown_hosts_rate';

/** Hosts whose buckets are kept; past it the least recently seen is forgotten (a fresh bucket if it returns). */
export const MAX_TRACKED_HOSTS = 4096;

export class InboundGate {
  #limits: InboundGateLimits;
  /** Validators per host (IP, as peers.yaml writes it). */
  #validatorsAt = new Map<string, number>();
  /** Least recently seen first (re-inserted on each use). */
  readonly #hosts = new Map<string, TokenBucket>();
  #unknown: TokenBucket;

  constructor(limits: InboundGateLimits, validatorHosts: Iterable<string>, now: number) {
    this.#limits = limits;
    this.#unknown = new TokenBucket(limits.unknownHosts.burst, limits.unknownHosts.rate, now);
    this.setValidatorHosts(validatorHosts);
  }

  get trackedHosts(): number { return this.#hosts.size; }

  /** One entry per validator address's host (a host named twice counts twice). */
  setValidatorHosts(hosts: Iterable<string>): void {
    const at = new Map<string, number>();
    for (const h of hosts) { const k = normaliseHost(h); at.set(k, (at.get(k) ?? 0) + 1); }
    // Buckets are sized when made: a host whose count changed starts again at its new size.
    for (const h of new Set([...at.keys(), ...this.#validatorsAt.keys()])) {
      if (at.get(h) !== this.#validatorsAt.get(h)) this.#hosts.delete(h);
    }
    this.#validatorsAt = at;
  }

  setLimits(limits: InboundGateLimits, now: number): void {
    this.#limits = limits;
    this.#unknown = new TokenBucket(limits.unknownHosts.burst, limits.unknownHosts.rate, now);
    this.#hosts.clear();
  }

  /** Whether a new connection from `host` may go on to its handshake; spends a token when it may. */
  admit(host: string, now: number): GateVerdict {
    const key = normaliseHost(host);
    const validators = this.#validatorsAt.get(key) ?? 0;
    let bucket = this.#hosts.get(key);
    if (bucket) this.#hosts.delete(key);
    else {
      const { rate, burst } = this.#limits.perHost;
      bucket = new TokenBucket(burst * (1 + validators), rate * (1 + validators), now);
      if (this.#hosts.size >= MAX_TRACKED_HOSTS) this.#hosts.delete(this.#hosts.keys().next().value!);
    }
    this.#hosts.set(key, bucket);
    if (!bucket.peek(now)) return 'host_rate';
    if (validators === 0 && !this.#unknown.take(now)) return 'unknown_hosts_rate';
    bucket.take(now);
    return 'admit';
  }
}

/** "::ffff:10.0.0.1" (an IPv4 peer on a dual-stack socket) is 10.0.0.1; IPv6 in lower case. */
export function normaliseHost(host: string): string {
  const h = host.toLowerCase();
  return h.startsWith('::ffff:') && h.includes('.') ? h.slice(7) : h;
}
