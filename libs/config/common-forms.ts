// The forms almost every config value of a libp2p kind takes — an Ed25519 key and its peer id
// ("12D3KooW…"), a TCP multiaddr over IPv4 or a DNS name — read without libp2p's modules.
// Loading those (keys, peer ids, multiaddrs) costs a process some 200 ms of CPU, a fifth of a
// service's start, and every service parses conf.yaml and peers.yaml. Each reader here answers
// `undefined` for anything but its one exact form, and values.ts then asks libp2p as before: what
// these accept, libp2p accepts with the same result (common-forms.test.ts holds them to it).

const ALPHABET = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz';
const DIGIT = new Map([...ALPHABET].map((c, i) => [c, i]));

/** Bitcoin's base58 (libp2p's peer ids without a multibase prefix). */
export function base58btcEncode(bytes: Uint8Array): string {
  let zeros = 0;
  while (zeros < bytes.length && bytes[zeros] === 0) zeros++;
  const digits: number[] = [];
  for (let i = zeros; i < bytes.length; i++) {
    let carry = bytes[i]!;
    for (let j = 0; j < digits.length; j++) {
      carry += digits[j]! << 8;
      digits[j] = carry % 58;
      carry = (carry / 58) | 0;
    }
    while (carry > 0) { digits.push(carry % 58); carry = (carry / 58) | 0; }
  }
  let out = '1'.repeat(zeros);
  for (let k = digits.length - 1; k >= 0; k--) out += ALPHABET[digits[k]!];
  return out;
}

/** The bytes of a base58 string, or undefined when a character is not base58. */
export function base58btcDecode(s: string): Uint8Array | undefined {
  let ones = 0;
  while (ones < s.length && s[ones] === '1') ones++;
  const bytes: number[] = [];
  for (let i = ones; i < s.length; i++) {
    const d = DIGIT.get(s[i]!);
    if (d === undefined) return undefined;
    let carry = d;
    for (let j = 0; j < bytes.length; j++) {
      carry += bytes[j]! * 58;
      bytes[j] = carry & 0xff;
      carry >>= 8;
    }
    while (carry > 0) { bytes.push(carry & 0xff); carry >>= 8; }
  }
  const out = new Uint8Array(ones + bytes.length);
  for (let k = 0; k < bytes.length; k++) out[out.length - 1 - k] = bytes[k]!;
  return out;
}

/** libp2p's protobuf PublicKey { Type = Ed25519 (1), Data = 32 bytes }, field by field. */
const ED25519_PUBLIC_PREFIX = [0x08, 0x01, 0x12, 0x20];
/** PrivateKey { Type = Ed25519, Data = 64 bytes: the seed, then the public key }. */
const ED25519_PRIVATE_PREFIX = [0x08, 0x01, 0x12, 0x40];
/** An identity multihash (code 0, length 36) of the public key's protobuf: the peer id's bytes. */
const IDENTITY_36 = [0x00, 0x24];

function startsWith(bytes: Uint8Array, prefix: readonly number[]): boolean {
  return prefix.every((b, i) => bytes[i] === b);
}

function peerIdOfEd25519Protobuf(publicProtobuf: Uint8Array): string {
  const mh = new Uint8Array(IDENTITY_36.length + publicProtobuf.length);
  mh.set(IDENTITY_36);
  mh.set(publicProtobuf, IDENTITY_36.length);
  return base58btcEncode(mh);
}

/** The peer id of an Ed25519 public key in libp2p's protobuf form; undefined for any other form. */
export function ed25519PeerIdOfPublicKey(protobuf: Uint8Array): string | undefined {
  if (protobuf.length !== 36 || !startsWith(protobuf, ED25519_PUBLIC_PREFIX)) return undefined;
  return peerIdOfEd25519Protobuf(protobuf);
}

/** An Ed25519 private key in libp2p's protobuf form: its public key's protobuf and peer id; undefined for any other form. */
export function ed25519PrivateKeyParts(protobuf: Uint8Array): { publicKey: Uint8Array; peerId: string } | undefined {
  if (protobuf.length !== 68 || !startsWith(protobuf, ED25519_PRIVATE_PREFIX)) return undefined;
  const publicKey = new Uint8Array(36);
  publicKey.set(ED25519_PUBLIC_PREFIX);
  publicKey.set(protobuf.subarray(36), 4);
  return { publicKey, peerId: peerIdOfEd25519Protobuf(publicKey) };
}

/** An Ed25519 peer id ("12D3KooW…") as libp2p writes it; undefined for any other string. */
export function ed25519PeerId(s: string): string | undefined {
  if (s.length > 60) return undefined;
  const bytes = base58btcDecode(s);
  if (!bytes || bytes.length !== 38 || !startsWith(bytes, IDENTITY_36) || !startsWith(bytes.subarray(2), ED25519_PUBLIC_PREFIX)) return undefined;
  // Base58 has one spelling per byte string (leading '1's are the leading zero bytes, the rest a
  // number without leading zeros): the string is libp2p's own.
  return s;
}

export interface AddressPart { name: string; value: string }

const OCTET = '(?:25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)';
const LABEL = '[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?';
const COMMON_TCP = new RegExp(
  `^/(?:(ip4)/(${OCTET}(?:\\.${OCTET}){3})|(dns4|dns6)/(${LABEL}(?:\\.${LABEL})*))/tcp/(0|[1-9]\\d{0,4})(?:/p2p/([1-9A-HJ-NP-Za-km-z]{1,60}))?$`,
);

/**
 * The parts of "/ip4/<a.b.c.d>/tcp/<port>" or "/dns4|dns6/<name>/tcp/<port>", with "/p2p/<Ed25519
 * peer id>" or without, as libp2p's multiaddr names them; undefined for any other string.
 */
export function commonTcpMultiaddr(input: string): AddressPart[] | undefined {
  const m = COMMON_TCP.exec(input);
  if (!m || Number(m[5]) > 65535) return undefined;
  const parts: AddressPart[] = [{ name: m[1] ?? m[3]!, value: m[2] ?? m[4]! }, { name: 'tcp', value: m[5]! }];
  if (m[6] !== undefined) {
    const id = ed25519PeerId(m[6]);
    if (id === undefined) return undefined;
    parts.push({ name: 'p2p', value: id });
  }
  return parts;
}
