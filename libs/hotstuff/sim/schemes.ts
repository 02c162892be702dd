// Signature schemes for the simulator, both behind one interface and both reached by the
// engine only through its injected `verify`: a fast fake (a keyed 64-bit hash — not
// cryptography, it only has to stop one simulated member from signing as another, which
// simulated members never try) for volume, and real SLH-DSA (see slh-scheme.ts) for a sample.
// Must never be used outside the simulator.

import { sha256 } from '#libs/crypto/index.ts';
import { toHex } from '../bytes.ts';
import type { SignRequest } from '../events.ts';
import type { BlockHeader, Hash, Phase, QuorumCert, SignedMessage } from '../types.ts';
import { Prng } from './prng.ts';

export type SigningContent =
  | { kind: 'vote'; epoch: number; phase: Phase; view: number; blockHash: Hash }
  | { kind: 'proposal'; epoch: number; view: number; blockHash: Hash; justify: QuorumCert }
  | { kind: 'new-view'; epoch: number; view: number; highQC: QuorumCert };

export interface SimScheme {
  readonly name: string;
  hashBlock(header: BlockHeader): Hash;
  /** Digest of a payload, for txRoot and the running state hash. */
  digest(...parts: Uint8Array[]): Hash;
  sign(identity: number, content: SigningContent): Uint8Array;
  /** Against the key of identity `m.sender` (epoch 0's validator index is the identity). */
  verify(message: SignedMessage): boolean;
  /** Against the key of `identity` (an epoch's index → identity map is the caller's). */
  verifyAs(identity: number, message: SignedMessage): boolean;
}

export function contentOfRequest(r: SignRequest): SigningContent {
  switch (r.kind) {
    case 'proposal':
      return { kind: 'proposal', epoch: r.epoch, view: r.view, blockHash: r.block.hash, justify: r.justify };
    case 'vote':
      return { kind: 'vote', epoch: r.epoch, phase: r.phase, view: r.view, blockHash: r.blockHash };
    case 'new-view':
      return { kind: 'new-view', epoch: r.epoch, view: r.view, highQC: r.highQC };
  }
}

export function contentOfMessage(m: SignedMessage): SigningContent {
  switch (m.type) {
    case 'proposal':
      return { kind: 'proposal', epoch: m.block.header.epoch, view: m.view, blockHash: m.block.hash, justify: m.justify };
    case 'vote':
      return { kind: 'vote', epoch: m.epoch, phase: m.phase, view: m.view, blockHash: m.blockHash };
    case 'new-view':
      return { kind: 'new-view', epoch: m.epoch, view: m.view, highQC: m.highQC };
  }
}

const enc = new TextEncoder();

function headerString(h: BlockHeader): string {
  return `${h.chainId}|${h.epoch}|${h.height}|${h.view}|${toHex(h.parentHash)}|${h.proposer}|${h.timestampMs}|${toHex(h.txRoot)}|${toHex(h.stateHash)}`;
}

function contentString(chainId: string, c: SigningContent): string {
  switch (c.kind) {
    case 'vote':
      return `v|${chainId}|${c.epoch}|${c.phase}|${c.view}|${toHex(c.blockHash)}`;
    case 'proposal':
      return `p|${chainId}|${c.epoch}|${c.view}|${toHex(c.blockHash)}|${c.justify.phase}|${c.justify.view}|${toHex(c.justify.blockHash)}`;
    case 'new-view':
      return `n|${chainId}|${c.epoch}|${c.view}|${c.highQC.phase}|${c.highQC.view}|${toHex(c.highQC.blockHash)}`;
  }
}

/** Two independent 32-bit multiply-xorshift hashes of the string, keyed. */
function keyedHash(key: number, s: string): Uint8Array {
  let h1 = key ^ 0x811c9dc5;
  let h2 = Math.imul(key, 0x01000193) ^ 0x2545f491;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 0x01000193);
    h2 = Math.imul(h2 ^ c, 0x5bd1e995);
    h2 ^= h2 >>> 15;
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 0x85ebca6b);
  h2 = Math.imul(h2 ^ (h2 >>> 13), 0xc2b2ae35);
  const out = new Uint8Array(8);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, h1 >>> 0);
  dv.setUint32(4, (h2 ^ (h2 >>> 16)) >>> 0);
  return out;
}

export function createFakeScheme(chainId: string, n: number, seed: number): SimScheme {
  const rng = new Prng(seed ^ 0x5eed);
  const keys = Array.from({ length: n }, () => rng.nextU32());
  const hashes = new WeakMap<BlockHeader, Hash>();
  const sign = (identity: number, c: SigningContent): Uint8Array => keyedHash(keys[identity]!, contentString(chainId, c));
  return {
    name: 'fake',
    hashBlock(header) {
      let h = hashes.get(header);
      if (!h) hashes.set(header, (h = sha256(enc.encode(headerString(header)))));
      return h;
    },
    digest: sha256,
    sign,
    verify(m) {
      return verifyAs(m.sender, m);
    },
    verifyAs,
  };
  function verifyAs(identity: number, m: SignedMessage): boolean {
    const key = keys[identity];
    if (key === undefined || m.signature.length !== 8) return false;
    const expected = keyedHash(key, contentString(chainId, contentOfMessage(m)));
    for (let i = 0; i < 8; i++) if (expected[i] !== m.signature[i]) return false;
    return true;
  }
}
