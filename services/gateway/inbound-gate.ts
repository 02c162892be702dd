// The gate every inbound TCP connection passes before its Noise handshake: a token bucket per
// remote host, and one more shared by all hosts where no validator lives. A handshake (X25519,
// Ed25519, then yamux and identify) costs the gateway's one thread about 10 ms of CPU, and the
// peer's identity is known only after it, so without this gate a keyless stranger that connects
// and hangs up in a loop is bounded by nothing but its own CPU (94 connections a second from one
// process took 91 % of a core). A host's bucket grows with the validators peers.yaml places there
// (members sharing a host, as on a devnet, reconnect together); hosts with no validator also share
// one bucket, so a stranger with many addresses is bounded as a whole. Pure: time comes in.

import { parseTcpMultiaddr } from '#libs/config/index.ts';
import { TokenBucket } from './exchange-filter.ts';

export interface InboundRate { rate: number; burst: number }

export interface InboundGateLimits {
  /** Per remote host, for each validator at that host plus one. */
  perHost: InboundRate;
  /** All hosts with no validator, together. */
  unknownHosts: InboundRate;
}

/**
 * Where the validators are, from the addresses known for each (peers.yaml, their change cards):
 * each validator's distinct hosts, once per validator — what the gate weights a host's bucket by,
 * and what `btcfed firewall` exempts. Addresses that do not parse say nothing.
 */
export function validatorHosts(addressesByValidator: Iterable<Iterable<string>>): string[] {
  const hosts: string[] = [];
  for (const addresses of addressesByValidator) {
    const at = new Set<string>();
    for (const a of addresses) {
      const r = parseTcpMultiaddr(a);
      if (r.ok) at.add(r.value.host);
    }
    hosts.push(...at);
  }
  return hosts;
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

/**
 * The key a host is counted under: an IPv4 address as it is ("::ffff:10.0.0.1", an IPv4 peer on a
 * dual-stack socket, is 10.0.0.1); an IPv6 address by its /64, the block one subscriber is given
 * (one machine can take any address in it, so counting each apart would give it 2^64 buckets).
 * Anything else (a name) in lower case.
 */
export function normaliseHost(host: string): string {
  const h = host.toLowerCase();
  if (h.startsWith('::ffff:') && h.includes('.')) return h.slice(7);
  if (!h.includes(':')) return h;
  const groups = ipv6Groups(h);
  return groups ? `${groups.slice(0, 4).join(':')}::/64` : h;
}

/** The eight 16-bit groups of an IPv6 address (without leading zeros), or undefined if it is not one. */
function ipv6Groups(h: string): string[] | undefined {
  const addr = h.split('%')[0]!;
  const halves = addr.split('::');
  if (halves.length > 2) return undefined;
  const part = (s: string) => (s === '' ? [] : s.split(':'));
  const head = part(halves[0]!);
  const tail = halves.length === 2 ? part(halves[1]!) : [];
  const last = (halves.length === 2 ? tail : head).at(-1);
  if (last?.includes('.')) {
    const q = last.split('.').map(Number);
    if (q.length !== 4 || q.some((x) => !Number.isInteger(x) || x < 0 || x > 255)) return undefined;
    const v4 = [((q[0]! << 8) | q[1]!).toString(16), ((q[2]! << 8) | q[3]!).toString(16)];
    (halves.length === 2 ? tail : head).splice(-1, 1, ...v4);
  }
  const fill = 8 - head.length - tail.length;
  if (halves.length === 1 ? fill !== 0 : fill < 1) return undefined;
  const groups = [...head, ...Array<string>(halves.length === 2 ? fill : 0).fill('0'), ...tail];
  if (groups.some((g) => !/^[0-9a-f]{1,4}$/.test(g))) return undefined;
  return groups.map((g) => g.replace(/^0+(?=.)/, ''));
}
