// Parsers for the value types config files use: durations (duration.ts), host:port endpoints,
// multiaddrs and libp2p keys. Each returns a reason string on failure so the schema
// can name the field; none of them throws on bad input.

import { BlockList, isIP } from 'node:net';
import { createRequire } from 'node:module';
import type { Parsed } from './duration.ts';
import { commonTcpMultiaddr, ed25519PeerId, ed25519PeerIdOfPublicKey, ed25519PrivateKeyParts, type AddressPart } from './common-forms.ts';

// libp2p's key, peer-id and multiaddr modules cost a process some 200 ms of CPU to load, a fifth
// of a service's start. The forms nearly every value takes are read without them
// (common-forms.ts); the modules are loaded on first use of any other form (require of an ES
// module, synchronous in Node 24), not at import.
const load = createRequire(import.meta.url);
let libp2pModules: {
  keys: typeof import('@libp2p/crypto/keys');
  peerId: typeof import('@libp2p/peer-id');
  multiaddr: typeof import('@multiformats/multiaddr');
} | undefined;
function libp2p(): NonNullable<typeof libp2pModules> {
  libp2pModules ??= {
    keys: load('@libp2p/crypto/keys') as typeof import('@libp2p/crypto/keys'),
    peerId: load('@libp2p/peer-id') as typeof import('@libp2p/peer-id'),
    multiaddr: load('@multiformats/multiaddr') as typeof import('@multiformats/multiaddr'),
  };
  return libp2pModules;
}

/** Loads now what values.ts loads on first use of an uncommon form (scripts/prepack.ts: what a signer host keeps). */
export function loadLibp2pModules(): void {
  libp2p();
}

export type { Parsed } from './duration.ts';
export { BASE_TIMEOUT_RANGE_MS, baseTimeoutProblem, idleHeartbeatProblem, parseDuration } from './duration.ts';

/** peer_id: a libp2p peer id as its string form ("12D3Koo…"). */
export function parsePeerId(input: string): Parsed<string> {
  try {
    return { ok: true, value: ed25519PeerId(input) ?? libp2p().peerId.peerIdFromString(input).toString() };
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
  let components: AddressPart[] | undefined = commonTcpMultiaddr(input);
  try {
    components ??= libp2p().multiaddr.multiaddr(input).getComponents().map((c) => ({ name: c.name, value: c.value ?? '' }));
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
  const value: PeerAddress = { address: input, host: host.value, port };
  if (p2p && p2p.value !== '') value.peerId = p2p.value;
  return { ok: true, value };
}

/** node.private_key: base64 of a protobuf-encoded libp2p private key. Yields its peer id. */
export function parsePrivateKey(input: string): Parsed<{ peerId: string; publicKey: string }> {
  try {
    const bytes = decodeBase64Strict(input);
    const common = ed25519PrivateKeyParts(bytes);
    if (common) return { ok: true, value: { peerId: common.peerId, publicKey: Buffer.from(common.publicKey).toString('base64') } };
    const { keys, peerId } = libp2p();
    const key = keys.privateKeyFromProtobuf(bytes);
    const publicKey = Buffer.from(keys.publicKeyToProtobuf(key.publicKey)).toString('base64');
    return { ok: true, value: { peerId: peerId.peerIdFromPublicKey(key.publicKey).toString(), publicKey } };
  } catch (err) {
    return { ok: false, reason: `not a base64 protobuf-encoded libp2p private key (${(err as Error).message})` };
  }
}

/** peers[].public_key: base64 of a protobuf-encoded libp2p public key. Yields its peer id. */
export function parsePublicKey(input: string): Parsed<{ peerId: string }> {
  try {
    const bytes = decodeBase64Strict(input);
    const common = ed25519PeerIdOfPublicKey(bytes);
    if (common !== undefined) return { ok: true, value: { peerId: common } };
    const { keys, peerId } = libp2p();
    const key = keys.publicKeyFromProtobuf(bytes);
    return { ok: true, value: { peerId: peerId.peerIdFromPublicKey(key).toString() } };
  } catch (err) {
    return { ok: false, reason: `not a base64 protobuf-encoded libp2p public key (${(err as Error).message})` };
  }
}

function decodeBase64Strict(input: string): Uint8Array {
  const s = input.trim();
  if (s.length === 0 || !/^[A-Za-z0-9+/]+={0,2}$/.test(s) || s.length % 4 !== 0) throw new Error('invalid base64');
  return new Uint8Array(Buffer.from(s, 'base64'));
}
