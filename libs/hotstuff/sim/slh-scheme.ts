// The real signature scheme for the simulator's smaller sample: SLH-DSA through libs/crypto,
// over the project's canonical signing bytes and block hash — the same bytes the services
// sign. Keys are derived from the run seed so a run replays. Must never be used for volume:
// one signature costs milliseconds.

import { Prng } from './prng.ts';
import type { SigningContent, SimScheme } from './schemes.ts';
import type { SignedMessage } from '../types.ts';
import { contentOfMessage } from './schemes.ts';
import {
  blockHash,
  createSlhDsa,
  newViewSigningBytes,
  proposalSigningBytes,
  sha256,
  voteSigningBytes,
  type ParamSet,
} from '#libs/crypto/index.ts';

export function createSlhScheme(chainId: string, n: number, seed: number, paramSet?: ParamSet): SimScheme {
  const slh = createSlhDsa(paramSet ? { paramSet } : {});
  const rng = new Prng(seed ^ 0x51d5);
  const keys = Array.from({ length: n }, () => {
    const s = new Uint8Array(slh.seedBytes);
    for (let i = 0; i < s.length; i++) s[i] = rng.nextU32() & 0xff;
    return slh.generateKeyPair(s);
  });
  const bytesOf = (c: SigningContent): Uint8Array => {
    switch (c.kind) {
      case 'vote':
        return voteSigningBytes({ chainId, epoch: c.epoch, phase: c.phase, view: c.view, blockHash: c.blockHash });
      case 'proposal':
        return proposalSigningBytes({ chainId, epoch: c.epoch, view: c.view, blockHash: c.blockHash, justify: c.justify });
      case 'new-view':
        return newViewSigningBytes({ chainId, epoch: c.epoch, view: c.view, highQC: c.highQC });
    }
  };
  const verifyAs = (identity: number, m: SignedMessage): boolean => {
    const key = keys[identity];
    return key !== undefined && slh.verifySync(key.publicKey, bytesOf(contentOfMessage(m)), m.signature);
  };
  return {
    name: `slh-dsa/${slh.paramSet}/${slh.backend}`,
    hashBlock: (header) => blockHash(header),
    digest: sha256,
    sign: (identity, c) => slh.signSync(keys[identity]!.secretKey, bytesOf(c)),
    verify: (m: SignedMessage) => verifyAs(m.sender, m),
    verifyAs,
  };
}
