// The checks every peer record learned from another member goes through before it reaches the
// peer table or peers.yaml, and the rate limits that keep one peer from starting a discovery
// storm. Pure: records and state in, decisions out.
// Must never let through self, a validator (validators are dialled only where peers.yaml or the
// set change that seated them says), a key that does not parse, an address the store would refuse, more than
// MAX_ADDRESSES_PER_PEER addresses for one peer, an address outside the networks the operator
// named (peers.learned_networks), or more new peers per interval than the cap.
// Learned addresses only ever go after the ones already known: they cannot reorder a peer.

import { isIP, type BlockList } from 'node:net';
import { parsePublicKey, parseTcpMultiaddr, type Peer } from '#libs/config/index.ts';

export const MAX_RECORDS_PER_MESSAGE = 200;
/** Addresses kept per learned peer (the store's own limit is 32). */
export const MAX_ADDRESSES_PER_PEER = 8;

/** A DNS name as /dns4 and /dns6 may carry: labels of letters, digits and inner hyphens. */
const HOSTNAME = /^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*\.?$/i;

export interface RecordIn { publicKey: string; addresses: readonly string[] }

export type RejectReason = 'bad_key' | 'self' | 'bad_address' | 'private_address' | 'no_address' | 'too_many'
  | 'too_many_addresses' | 'validator' | 'cap' | 'table_full' | 'penalised' | 'outside_networks'
  /** A learned peer forgotten after its dials failed, announced again before FORGOTTEN_MS passed. */
  | 'unreachable';

/**
 * Reasons that only a broken or hostile sender produces: each message with one is a strike. Not
 * 'validator': an honest sender whose set is another epoch's (an observer, a member not yet told
 * the change, a member-to-be following the chain) relays a peer we seat as an ordinary peer, at
 * whatever addresses it knows; dropping the record is all it takes.
 */
export const STRIKE_REASONS: ReadonlySet<RejectReason> = new Set(['bad_key', 'bad_address', 'too_many', 'too_many_addresses']);

export interface FilterContext {
  selfPeerId: string;
  /** Addresses already known per peer id (table + peers.yaml). */
  known: (peerId: string) => readonly string[] | undefined;
  /** Drop loopback, private and link-local addresses (public networks). Devnets keep them. */
  dropPrivate: boolean;
  /** peers.learned_networks: when set, only IP addresses inside them are taken (no DNS names). */
  networks?: BlockList | undefined;
  /**
   * The addresses a validator is dialled at (peers.yaml's and its member card's), or undefined when
   * the peer is not a validator. A validator's record is never taken; one that names another address
   * is rejected as 'validator' (counted, not a strike), one that repeats them is ignored silently.
   */
  validator: (peerId: string) => readonly string[] | undefined;
}

export interface FilterResult {
  /** New peers, or known peers with new addresses (addresses: the known ones first, then the new, at most MAX_ADDRESSES_PER_PEER). */
  fresh: Peer[];
  rejected: Array<{ reason: RejectReason; detail: string }>;
}

export function filterRecords(records: readonly RecordIn[], ctx: FilterContext, now: number): FilterResult {
  const rejected: FilterResult['rejected'] = [];
  const byId = new Map<string, Peer>();
  if (records.length > MAX_RECORDS_PER_MESSAGE) {
    rejected.push({ reason: 'too_many', detail: `${records.length - MAX_RECORDS_PER_MESSAGE} records past the first ${MAX_RECORDS_PER_MESSAGE}` });
  }
  for (const r of records.slice(0, MAX_RECORDS_PER_MESSAGE)) {
    const key = parsePublicKey(r.publicKey);
    if (!key.ok) { rejected.push({ reason: 'bad_key', detail: key.reason }); continue; }
    const peerId = key.value.peerId;
    if (peerId === ctx.selfPeerId) continue; // our own record: expected, not an error
    // Whoever's record it is (a validator's too: its form is the sender's doing, not its view of the set).
    if (r.addresses.length > MAX_ADDRESSES_PER_PEER) {
      rejected.push({ reason: 'too_many_addresses', detail: `${peerId}: ${r.addresses.length} addresses, at most ${MAX_ADDRESSES_PER_PEER} taken` });
    }
    const configured = ctx.validator(peerId);
    if (configured) {
      const foreign = r.addresses.filter((a) => !configured.includes(a));
      if (foreign.length > 0) rejected.push({ reason: 'validator', detail: `${peerId}: ${foreign.slice(0, 3).join(' ')}${foreign.length > 3 ? ` (+${foreign.length - 3})` : ''}` });
      continue;
    }
    const addresses: string[] = [];
    for (const a of r.addresses.slice(0, MAX_ADDRESSES_PER_PEER)) {
      const why = addressProblem(a, peerId, ctx.dropPrivate, ctx.networks);
      if (why) rejected.push({ reason: why, detail: `${peerId}: ${a}` });
      else addresses.push(a);
    }
    if (addresses.length === 0) { rejected.push({ reason: 'no_address', detail: peerId }); continue; }
    const prev = byId.get(peerId);
    byId.set(peerId, { publicKey: r.publicKey.trim(), peerId, addresses: [...new Set([...(prev?.addresses ?? []), ...addresses])], lastSeenMs: now });
  }
  const fresh: Peer[] = [];
  for (const p of byId.values()) {
    const known = ctx.known(p.peerId);
    const added = p.addresses.filter((a) => !known?.includes(a));
    if (known && added.length === 0) continue;
    const merged = [...new Set([...(known ?? []), ...added])].slice(0, MAX_ADDRESSES_PER_PEER);
    if (known && merged.length === known.length) continue; // full: what we know stays, in its order
    fresh.push({ ...p, addresses: merged });
  }
  return { fresh, rejected };
}

/** Why an address is refused, or undefined when it is fine. */
export function addressProblem(address: string, peerId: string, dropPrivate: boolean, networks?: BlockList): RejectReason | undefined {
  if (typeof address !== 'string' || address.length > 256) return 'bad_address';
  const r = parseTcpMultiaddr(address);
  if (!r.ok) return 'bad_address';
  if (r.value.peerId !== undefined && r.value.peerId !== peerId) return 'bad_address';
  const host = r.value.host;
  if (isIP(host) === 0 && !HOSTNAME.test(host)) return 'bad_address';
  if (host === '0.0.0.0' || host === '::' || r.value.port === 0) return 'bad_address';
  if (networks) {
    const family = isIP(host);
    if (family === 0 || !networks.check(host, family === 4 ? 'ipv4' : 'ipv6')) return 'outside_networks';
  }
  if (dropPrivate && isPrivateHost(host)) return 'private_address';
  return undefined;
}

export function isPrivateHost(host: string): boolean {
  const h = host.toLowerCase();
  if (h === 'localhost') return true;
  switch (isIP(h)) {
    case 4: {
      const [a, b] = h.split('.').map(Number) as [number, number];
      return a === 127 || a === 10 || (a === 172 && b >= 16 && b <= 31) || (a === 192 && b === 168) || (a === 169 && b === 254) || a === 0;
    }
    case 6:
      return h === '::1' || h.startsWith('fe80:') || h.startsWith('fc') || h.startsWith('fd') || h.startsWith('::ffff:127.');
    default:
      return false;
  }
}

/** A token bucket: `capacity` requests at once, refilled at `perSecond`. */
export class TokenBucket {
  #tokens: number;
  #last: number;
  readonly capacity: number;
  readonly perSecond: number;

  constructor(capacity: number, perSecond: number, now: number) {
    this.capacity = capacity;
    this.perSecond = perSecond;
    this.#tokens = capacity;
    this.#last = now;
  }

  /** Whether take() would succeed now (refills, takes nothing). */
  peek(now: number): boolean {
    this.#tokens = Math.min(this.capacity, this.#tokens + ((now - this.#last) / 1000) * this.perSecond);
    this.#last = now;
    return this.#tokens >= 1;
  }

  take(now: number): boolean {
    if (!this.peek(now)) return false;
    this.#tokens -= 1;
    return true;
  }
}

/** A cap on new peers learned per interval, across all sources. */
export class DiscoveryBudget {
  #used = 0;
  #windowStart: number;
  cap: number;
  intervalMs: number;

  constructor(cap: number, intervalMs: number, now: number) {
    this.cap = cap;
    this.intervalMs = intervalMs;
    this.#windowStart = now;
  }

  /** How many of `wanted` new peers may be taken now. */
  grant(wanted: number, now: number): number {
    if (now - this.#windowStart >= this.intervalMs) { this.#windowStart = now; this.#used = 0; }
    const n = Math.max(0, Math.min(wanted, this.cap - this.#used));
    this.#used += n;
    return n;
  }
}
