// Parsers for the value types config files use: durations, host:port endpoints,
// multiaddrs and libp2p keys. Each returns a reason string on failure so the schema
// can name the field; none of them throws on bad input.

import { BlockList, isIP } from 'node:net';
import { multiaddr } from '@multiformats/multiaddr';
import { privateKeyFromProtobuf, publicKeyFromProtobuf, publicKeyToProtobuf } from '@libp2p/crypto/keys';
import { peerIdFromPublicKey, peerIdFromString } from '@libp2p/peer-id';

export type Parsed<T> = { ok: true; value: T } | { ok: false; reason: string };

const DURATION_PART = /(\d+(?:\.\d+)?)\s*(ms|s|m|h)/y;
const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as const;

/** consensus.idle_heartbeat's rule (conf.yaml and a committed parameter change): why `ms` is refused, or undefined. */
export function idleHeartbeatProblem(ms: number): string | undefined {
  if (!Number.isFinite(ms) || ms < 0) return 'must be a duration of 0 or more';
  if (ms > 0 && (ms < 1000 || ms > 30_000)) return 'must be 0 (a block every view) or 1s to 30s (BtcfedNoCommit fires after a minute without a block)';
  return undefined;
}

/** The base view timeout a committed parameter change may set: long enough to sign in, short enough to notice a dead leader. */
export const BASE_TIMEOUT_RANGE_MS = { min: 100, max: 60_000 } as const;

export function baseTimeoutProblem(ms: number): string | undefined {
  if (!Number.isSafeInteger(ms) || ms < BASE_TIMEOUT_RANGE_MS.min || ms > BASE_TIMEOUT_RANGE_MS.max) return `must be ${BASE_TIMEOUT_RANGE_MS.min}ms to ${BASE_TIMEOUT_RANGE_MS.max / 1000}s`;
  return undefined;
}

/**
 * "500ms", "30s", "5m", "1h", and compounds as Go writes them ("1m30s", "1h2m3.5s"); a bare number
 * is seconds. Result in milliseconds.
 */
export function parseDuration(input: unknown): Parsed<number> {
  if (typeof input === 'number') {
    if (!Number.isFinite(input) || input < 0) return { ok: false, reason: 'must be a non-negative number of seconds' };
    return { ok: true, value: Math.round(input * 1000) };
  }
  if (typeof input !== 'string') return { ok: false, reason: 'must be a duration such as "500ms", "30s", "5m" or a number of seconds' };
  const text = input.trim();
  const bad = { ok: false as const, reason: `"${input}" is not a duration such as "500ms", "30s", "1m30s", "1h"` };
  if (text === '') return bad;
  let ms = 0;
  DURATION_PART.lastIndex = 0;
  while (DURATION_PART.lastIndex < text.length) {
    const m = DURATION_PART.exec(text);
    if (!m) return bad;
    ms += Number(m[1]) * UNIT_MS[m[2] as keyof typeof UNIT_MS];
  }
  return { ok: true, value: Math.round(ms) };
}

/** peer_id: a libp2p peer id as its string form ("12D3Koo…"). */
export function parsePeerId(input: string): Parsed<string> {
  try {
    return { ok: true, value: peerIdFromString(input).toString() };
  } catch {
    return { ok: false, reason: `"${input.length > 60 ? `${input.slice(0, 60)}…` : input}" is not a libp2p peer id (12D3KooW… or Qm…; btcfed show-node-id prints a member's)` };
  }
}

export interface HostPort { host: string; port: number }

/** "127.0.0.1:7100", "[::1]:7100", "localhost:7100"; port 0 only when allowed (tests bind it). */
export function parseHostPort(input: string, allowZero = false): Parsed<HostPort> {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s[\]]+)):(\d{1,5})$/.exec(input);
  if (!m) return { ok: false, reason: `"${input}" is not host:port (IPv6 in brackets: [::1]:7100)` };
  const port = Number(m[3]);
  if (port > 65535 || (port === 0 && !allowZero)) return { ok: false, reason: `port ${port} is out of range` };
  return { ok: true, value: { host: m[1] ?? m[2]!, port } };
}

export interface Cidr { address: string; prefix: number; family: 'ipv4' | 'ipv6' }

/** "127.0.0.0/8", "10.20.0.0/16", "fd00::/8": an IP network (the address bits past the prefix may be set). */
export function parseCidr(input: unknown): Parsed<Cidr> {
  const bad = (why: string) => ({ ok: false as const, reason: `"${String(input).slice(0, 60)}" is not a network such as "10.20.0.0/16" or "fd00::/8": ${why}` });
  if (typeof input !== 'string') return bad('not a string');
  const m = /^([^/\s]+)\/(\d{1,3})$/.exec(input.trim());
  if (!m) return bad('address/prefix-length expected');
  const v = isIP(m[1]!);
  if (v === 0) return bad(`${m[1]} is not an IP address`);
  const prefix = Number(m[2]);
  if (prefix > (v === 4 ? 32 : 128)) return bad(`prefix /${prefix} is longer than the address`);
  return { ok: true, value: { address: m[1]!, prefix, family: v === 4 ? 'ipv4' : 'ipv6' } };
}

/** A membership test over networks; undefined for none (no restriction). */
export function networkList(cidrs: readonly Cidr[]): BlockList | undefined {
  if (cidrs.length === 0) return undefined;
  const list = new BlockList();
  for (const c of cidrs) list.addSubnet(c.address, c.prefix, c.family);
  return list;
}

const HOST_PROTOCOLS = new Set(['ip4', 'ip6', 'dns4', 'dns6']);

export interface PeerAddress { address: string; host: string; port: number; peerId?: string }

/**
 * A libp2p TCP multiaddr: /ip4|/ip6|/dns4|/dns6 host, /tcp port, optionally /p2p/<peer id>.
 * `listen` addresses may use port 0 and must not carry /p2p.
 */
export function parseTcpMultiaddr(input: unknown, opts: { listen?: boolean } = {}): Parsed<PeerAddress> {
  if (typeof input !== 'string' || input.length === 0) return { ok: false, reason: 'must be a multiaddr string' };
  let components;
  try {
    components = multiaddr(input).getComponents();
  } catch (err) {
    return { ok: false, reason: `"${input}" is not a multiaddr: ${(err as Error).message}` };
  }
  const [host, tcp, p2p, ...rest] = components;
  if (!host || !HOST_PROTOCOLS.has(host.name)) {
    return { ok: false, reason: `"${input}" must start with /ip4, /ip6, /dns4 or /dns6` };
  }
  if (!tcp || tcp.name !== 'tcp') return { ok: false, reason: `"${input}" must continue with /tcp/<port>` };
  const port = Number(tcp.value);
  if (!Number.isInteger(port) || port > 65535 || (port === 0 && !opts.listen)) {
    return { ok: false, reason: `"${input}" has an invalid TCP port` };
  }
  if (rest.length > 0 || (p2p && p2p.name !== 'p2p')) {
    return { ok: false, reason: `"${input}" has unsupported parts after /tcp (only /p2p/<peer id> may follow)` };
  }
  if (p2p && opts.listen) return { ok: false, reason: `"${input}": a listen address must not name a peer id` };
  const value: PeerAddress = { address: input, host: host.value ?? '', port };
  if (p2p?.value) value.peerId = p2p.value;
  return { ok: true, value };
}

/** node.private_key: base64 of a protobuf-encoded libp2p private key. Yields its peer id. */
export function parsePrivateKey(input: string): Parsed<{ peerId: string; publicKey: string }> {
  try {
    const bytes = decodeBase64Strict(input);
    const key = privateKeyFromProtobuf(bytes);
    const publicKey = Buffer.from(publicKeyToProtobuf(key.publicKey)).toString('base64');
    return { ok: true, value: { peerId: peerIdFromPublicKey(key.publicKey).toString(), publicKey } };
  } catch (err) {
    return { ok: false, reason: `not a base64 protobuf-encoded libp2p private key (${(err as Error).message})` };
  }
}

/** peers[].public_key: base64 of a protobuf-encoded libp2p public key. Yields its peer id. */
export function parsePublicKey(input: string): Parsed<{ peerId: string }> {
  try {
    const key = publicKeyFromProtobuf(decodeBase64Strict(input));
    return { ok: true, value: { peerId: peerIdFromPublicKey(key).toString() } };
  } catch (err) {
    return { ok: false, reason: `not a base64 protobuf-encoded libp2p public key (${(err as Error).message})` };
  }
}

function decodeBase64Strict(input: string): Uint8Array {
  const s = input.trim();
  if (s.length === 0 || !/^[A-Za-z0-9+/]+={0,2}$/.test(s) || s.length % 4 !== 0) throw new Error('invalid base64');
  return new Uint8Array(Buffer.from(s, 'base64'));
}
