// The common forms read without libp2p (common-forms.ts) against libp2p's own modules: whatever the
// readers accept, libp2p accepts with the same result, and values.ts gives what libp2p alone gave.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { privateKeyFromProtobuf, publicKeyFromProtobuf, publicKeyToProtobuf } from '@libp2p/crypto/keys';
import { peerIdFromPublicKey, peerIdFromString } from '@libp2p/peer-id';
import { multiaddr } from '@multiformats/multiaddr';
import {
  base58btcDecode, base58btcEncode, commonTcpMultiaddr, ed25519PeerId, ed25519PeerIdOfPublicKey, ed25519PrivateKeyParts,
} from './common-forms.ts';
import { parsePeerId, parsePrivateKey, parsePublicKey, parseTcpMultiaddr } from './values.ts';

const bytes = (...b: number[]) => Uint8Array.from(b);
const withPrefix = (prefix: number[], data: Uint8Array) => Uint8Array.from([...prefix, ...data]);
const ed25519Public = (data: Uint8Array) => withPrefix([0x08, 0x01, 0x12, 0x20], data);
const ed25519Private = (data: Uint8Array) => withPrefix([0x08, 0x01, 0x12, 0x40], data);
const b64 = (b: Uint8Array) => Buffer.from(b).toString('base64');

/** What libp2p's modules alone make of a TCP multiaddr: its parts' names and values, or why not. */
function libp2pParts(input: string): { name: string; value: string }[] | 'refused' {
  try {
    return multiaddr(input).getComponents().map((c) => ({ name: c.name, value: c.value ?? '' }));
  } catch {
    return 'refused';
  }
}

test('base58: known answers, and a round trip of any bytes, leading zeros included', () => {
  assert.equal(base58btcEncode(new TextEncoder().encode('Hello World!')), '2NEpo7TZRRrLZSi2U');
  assert.equal(base58btcEncode(bytes(0, 0, 1)), '112');
  assert.equal(base58btcEncode(bytes()), '');
  assert.deepEqual(base58btcDecode('2NEpo7TZRRrLZSi2U'), new TextEncoder().encode('Hello World!'));
  assert.deepEqual(base58btcDecode('112'), bytes(0, 0, 1));
  for (const bad of ['0', 'O', 'I', 'l', '12D3KooW+']) assert.equal(base58btcDecode(bad), undefined, bad);
  fc.assert(fc.property(fc.uint8Array({ maxLength: 64 }), (b) => {
    assert.deepEqual(base58btcDecode(base58btcEncode(b)), b);
  }), { numRuns: 500 });
  // One spelling per byte string: what decodes, encodes back to itself (ed25519PeerId relies on it).
  fc.assert(fc.property(fc.stringMatching(/^[1-9A-HJ-NP-Za-km-z]{0,60}$/), (s) => {
    assert.equal(base58btcEncode(base58btcDecode(s)!), s);
  }), { numRuns: 500 });
});

test('an Ed25519 public key: the same peer id as libp2p gives, and the peer id read back as libp2p reads it', () => {
  fc.assert(fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), (data) => {
    const protobuf = ed25519Public(data);
    const theirs = peerIdFromPublicKey(publicKeyFromProtobuf(protobuf)).toString();
    assert.equal(ed25519PeerIdOfPublicKey(protobuf), theirs);
    assert.equal(ed25519PeerId(theirs), theirs);
    assert.equal(peerIdFromString(theirs).toString(), theirs);
    assert.deepEqual(parsePublicKey(b64(protobuf)), { ok: true, value: { peerId: theirs } });
    assert.deepEqual(parsePeerId(theirs), { ok: true, value: theirs });
  }), { numRuns: 200 });
});

test('an Ed25519 private key: the public key and peer id libp2p derives from it', () => {
  fc.assert(fc.property(fc.uint8Array({ minLength: 64, maxLength: 64 }), (data) => {
    const protobuf = ed25519Private(data);
    const key = privateKeyFromProtobuf(protobuf);
    const parts = ed25519PrivateKeyParts(protobuf);
    assert.ok(parts);
    assert.deepEqual(parts.publicKey, publicKeyToProtobuf(key.publicKey));
    assert.equal(parts.peerId, peerIdFromPublicKey(key.publicKey).toString());
    assert.deepEqual(parsePrivateKey(b64(protobuf)), { ok: true, value: { peerId: parts.peerId, publicKey: b64(parts.publicKey) } });
  }), { numRuns: 200 });
});

test('any other key or peer id form is left to libp2p, which still reads it', () => {
  const data = new Uint8Array(32).fill(7);
  // A key of another length, a field out of order, a trailing byte: not the common form.
  assert.equal(ed25519PeerIdOfPublicKey(ed25519Public(data).subarray(0, 35)), undefined);
  assert.equal(ed25519PeerIdOfPublicKey(withPrefix([0x12, 0x20], withPrefix([0x08, 0x01], data))), undefined);
  assert.equal(ed25519PeerIdOfPublicKey(withPrefix([], [...ed25519Public(data), 0] as unknown as Uint8Array)), undefined);
  assert.equal(ed25519PrivateKeyParts(ed25519Private(new Uint8Array(96))), undefined);
  // An RSA-style peer id (a SHA-256 multihash, "Qm…") and the CID form: libp2p reads both.
  const qm = 'QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N';
  assert.equal(ed25519PeerId(qm), undefined);
  assert.deepEqual(parsePeerId(qm), { ok: true, value: peerIdFromString(qm).toString() });
  const ed = peerIdFromPublicKey(publicKeyFromProtobuf(ed25519Public(data)));
  const cid = ed.toCID().toString();
  assert.equal(ed25519PeerId(cid), undefined);
  assert.deepEqual(parsePeerId(cid), { ok: true, value: ed.toString() });
  // A secp256k1 public key (libp2p's test vector form): libp2p, as before.
  const secp = ed25519Public(data);
  secp[1] = 0x02;
  assert.equal(ed25519PeerIdOfPublicKey(secp), undefined);
  assert.equal(parsePublicKey(b64(secp)).ok, false, 'a secp256k1 key of 32 bytes is no key: libp2p refuses it');
  assert.equal(parsePeerId('12D3KooWnot-base58').ok, false);
});

const octet = fc.integer({ min: 0, max: 255 });
const label = fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?$/);
const host = fc.oneof(
  fc.tuple(octet, octet, octet, octet).map((o) => `/ip4/${o.join('.')}`),
  fc.tuple(fc.constantFrom('dns4', 'dns6'), fc.array(label, { minLength: 1, maxLength: 4 })).map(([p, ls]) => `/${p}/${ls.join('.')}`),
);
const peer = fc.uint8Array({ minLength: 32, maxLength: 32 }).map((d) => peerIdFromPublicKey(publicKeyFromProtobuf(ed25519Public(d))).toString());

test('a TCP multiaddr over IPv4 or DNS, with a peer id or without: the parts libp2p reads', () => {
  fc.assert(fc.property(host, fc.integer({ min: 0, max: 65535 }), fc.option(peer), (h, port, id) => {
    const input = `${h}/tcp/${port}${id ? `/p2p/${id}` : ''}`;
    const ours = commonTcpMultiaddr(input);
    assert.ok(ours, input);
    assert.deepEqual(ours, libp2pParts(input), input);
  }), { numRuns: 300 });
});

test('any string: what the common reader accepts, libp2p accepts the same, and parseTcpMultiaddr answers as with libp2p alone', () => {
  // Strings made of multiaddrs' own pieces, so that many come close to the common form.
  const piece = fc.constantFrom('/ip4/', '/ip6/', '/dns4/', '/dns6/', '/tcp/', '/udp/', '/p2p/', '/', '.', '0', '1', '7', '25', '255', '256', '01',
    '65535', '65536', '::1', 'a', 'example', '-', 'com', '12D3KooW', 'Qm', ' ', '');
  const near = fc.array(piece, { maxLength: 12 }).map((ps) => ps.join(''));
  const mutated = fc.tuple(host, fc.integer({ min: 0, max: 70000 }), fc.option(peer), fc.integer({ min: 0, max: 80 }), piece)
    .map(([h, port, id, at, p]) => {
      const s = `${h}/tcp/${port}${id ? `/p2p/${id}` : ''}`;
      return s.slice(0, at) + p + s.slice(at);
    });
  fc.assert(fc.property(fc.oneof(near, mutated), (input) => {
    const ours = commonTcpMultiaddr(input);
    const theirs = libp2pParts(input);
    if (ours) assert.deepEqual(ours, theirs, input);
    for (const listen of [false, true]) {
      const got = parseTcpMultiaddr(input, { listen });
      const want = theirs === 'refused' ? undefined : theirs;
      if (!want) { assert.equal(got.ok, false, input); continue; }
      const [hostPart, tcp, p2p, ...rest] = want;
      const acceptable = Boolean(hostPart) && ['ip4', 'ip6', 'dns4', 'dns6'].includes(hostPart!.name) && tcp?.name === 'tcp'
        && Number(tcp.value) <= 65535 && (Number(tcp.value) !== 0 || listen) && rest.length === 0 && (!p2p || (p2p.name === 'p2p' && !listen));
      assert.equal(got.ok, acceptable, `${input} (listen ${listen})`);
      if (got.ok) assert.deepEqual(got.value, { address: input, host: hostPart!.value, port: Number(tcp!.value), ...(p2p ? { peerId: p2p.value } : {}) });
    }
  }), { numRuns: 2000 });
});

test('the common multiaddr reader leaves every other form to libp2p', () => {
  for (const other of ['/ip6/::1/tcp/7100', '/ip4/01.2.3.4/tcp/7100', '/ip4/1.2.3.4/tcp/07100', '/ip4/1.2.3.4/tcp/65536',
    '/ip4/1.2.3.4/tcp/7100/', '/ip4/256.1.1.1/tcp/1', '/dns4/-bad/tcp/1', '/ip4/1.2.3.4/udp/1', '/ip4/1.2.3.4/tcp/1/p2p/QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N']) {
    assert.equal(commonTcpMultiaddr(other), undefined, other);
  }
  assert.deepEqual(parseTcpMultiaddr('/ip6/::1/tcp/7100'), { ok: true, value: { address: '/ip6/::1/tcp/7100', host: '::1', port: 7100 } });
  assert.equal(parseTcpMultiaddr('/ip4/1.2.3.4/tcp/65536').ok, false);
});
