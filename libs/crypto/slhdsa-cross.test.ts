// The two SLH-DSA backends must be interchangeable: for every parameter set, keys made by one
// sign in the other, signatures made by one verify in the other, and both reject the same
// tampering. noble signs twice per set (its "s" sets cost one to two seconds per signature).

import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { PARAM_SETS } from './params.ts';
import { FIPS205_SIZES, flipBit } from './slhdsa-contract.ts';
import { createSlhDsa } from './slhdsa.ts';
import type { KeyPair, SlhDsa } from './slhdsa.ts';

interface Signed {
  readonly what: string;
  readonly publicKey: Uint8Array;
  readonly signature: Uint8Array;
}

for (const paramSet of PARAM_SETS) {
  describe(`node ⇄ noble, ${paramSet}`, () => {
    const node = createSlhDsa({ paramSet, backend: 'node' });
    const noble = createSlhDsa({ paramSet, backend: 'noble' });
    const backends: readonly SlhDsa[] = [node, noble];
    const msg = new TextEncoder().encode(`cross-backend ${paramSet}`);
    let nodeKeys: KeyPair;
    let nobleKeys: KeyPair;
    let signed: Signed[] = [];

    before(async () => {
      nodeKeys = node.generateKeyPair();
      nobleKeys = noble.generateKeyPair();
      const entry = (what: string, publicKey: Uint8Array, signature: Uint8Array): Signed => ({ what, publicKey, signature });
      signed = [
        entry('node signs with a noble key (sync)', nobleKeys.publicKey, node.signSync(nobleKeys.secretKey, msg)),
        entry('noble signs with a node key (sync)', nodeKeys.publicKey, noble.signSync(nodeKeys.secretKey, msg)),
        entry('node signs with its own key (async)', nodeKeys.publicKey, await node.sign(nodeKeys.secretKey, msg)),
        entry('noble signs with its own key (async)', nobleKeys.publicKey, await noble.sign(nobleKeys.secretKey, msg)),
      ];
    });

    it('keys have the FIPS 205 sizes and each backend derives the other one\'s public key', () => {
      const sizes = FIPS205_SIZES[paramSet];
      for (const keys of [nodeKeys, nobleKeys]) {
        assert.equal(keys.publicKey.length, sizes.pk);
        assert.equal(keys.secretKey.length, sizes.sk);
      }
      assert.deepEqual(noble.publicKeyOf(nodeKeys.secretKey), nodeKeys.publicKey);
      assert.deepEqual(node.publicKeyOf(nobleKeys.secretKey), nobleKeys.publicKey);
      for (const s of signed) assert.equal(s.signature.length, sizes.sig, s.what);
    });

    it('every signature verifies in both backends, sync and async alike', async () => {
      for (const s of signed) {
        for (const dsa of backends) {
          assert.equal(dsa.verifySync(s.publicKey, msg, s.signature), true, `${s.what}, ${dsa.backend} sync`);
          assert.equal(await dsa.verify(s.publicKey, msg, s.signature), true, `${s.what}, ${dsa.backend} async`);
        }
      }
    });

    it('a flipped message bit, a flipped signature bit and a wrong key fail in both backends', async () => {
      for (const s of signed) {
        const wrongKey = s.publicKey === nodeKeys.publicKey ? nobleKeys.publicKey : nodeKeys.publicKey;
        const cases: Array<[string, Uint8Array, Uint8Array, Uint8Array]> = [
          ['message bit', s.publicKey, flipBit(msg), s.signature],
          ['signature bit', s.publicKey, msg, flipBit(s.signature)],
          ['wrong public key', wrongKey, msg, s.signature],
        ];
        for (const [what, pk, m, sig] of cases) {
          for (const dsa of backends) {
            const label = `${s.what}: ${what}, ${dsa.backend}`;
            assert.equal(dsa.verifySync(pk, m, sig), false, `${label} sync`);
            assert.equal(await dsa.verify(pk, m, sig), false, `${label} async`);
          }
        }
      }
    });

    it('a seeded key pair is the same in both backends and signs in both', async () => {
      const seed = new Uint8Array(node.seedBytes).map((_, i) => (i * 7 + 1) & 0xff);
      const a = node.generateKeyPair(seed);
      const b = noble.generateKeyPair(seed);
      assert.deepEqual(a, b);
      const sig = await node.sign(b.secretKey, msg);
      assert.equal(noble.verifySync(a.publicKey, msg, sig), true);
    });
  });
}
