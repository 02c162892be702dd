// The one test suite every SlhDsa implementation must pass (STYLE: one shared suite per
// interface, run against every implementation). Registered by slhdsa.test.ts for each backend.
// Sizes are FIPS 205 Table 2, written out here rather than read from the code under test.
// Must never be imported by production code.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { isFedError } from '#libs/errors/index.ts';
import type { ParamSet } from './params.ts';
import type { SlhDsa } from './slhdsa.ts';

export const FIPS205_SIZES: Record<ParamSet, { pk: number; sk: number; sig: number }> = {
  'slh-dsa-sha2-128f': { pk: 32, sk: 64, sig: 17088 },
  'slh-dsa-sha2-128s': { pk: 32, sk: 64, sig: 7856 },
  'slh-dsa-sha2-192f': { pk: 48, sk: 96, sig: 35664 },
  'slh-dsa-sha2-192s': { pk: 48, sk: 96, sig: 16224 },
  'slh-dsa-sha2-256f': { pk: 64, sk: 128, sig: 49856 },
  'slh-dsa-sha2-256s': { pk: 64, sk: 128, sig: 29792 },
};

/** A copy of `bytes` with one bit flipped at `index` (default: the middle). */
export function flipBit(bytes: Uint8Array, index = bytes.length >> 1): Uint8Array {
  const copy = bytes.slice();
  copy[index] = (copy[index] ?? 0) ^ 0x01;
  return copy;
}

export function hasCode(code: string): (err: unknown) => boolean {
  return (err) => isFedError(err, code);
}

const text = (s: string): Uint8Array => new TextEncoder().encode(s);

export function slhDsaContract(label: string, make: () => SlhDsa): void {
  describe(`SlhDsa contract: ${label}`, () => {
    const dsa = make();
    const sizes = FIPS205_SIZES[dsa.paramSet];
    const keys = dsa.generateKeyPair();
    const other = dsa.generateKeyPair();
    const msg = text(`contract message for ${label}`);
    const sig = dsa.signSync(keys.secretKey, msg);

    it('reports and produces the FIPS 205 sizes', () => {
      assert.equal(dsa.publicKeyBytes, sizes.pk);
      assert.equal(dsa.secretKeyBytes, sizes.sk);
      assert.equal(dsa.signatureBytes, sizes.sig);
      assert.equal(dsa.seedBytes, (sizes.sk * 3) / 4);
      assert.equal(keys.publicKey.length, sizes.pk);
      assert.equal(keys.secretKey.length, sizes.sk);
      assert.equal(sig.length, sizes.sig);
      assert.ok(sig instanceof Uint8Array && !Buffer.isBuffer(sig), 'a plain Uint8Array');
    });

    it('derives the public key from the secret key (its second half)', () => {
      assert.deepEqual(dsa.publicKeyOf(keys.secretKey), keys.publicKey);
      assert.deepEqual(keys.secretKey.subarray(sizes.sk / 2), keys.publicKey);
      assert.notDeepEqual(keys.publicKey, other.publicKey);
    });

    it('signs hedged: a second signature differs and both verify, sync and async', async () => {
      const again = await dsa.sign(keys.secretKey, msg);
      assert.equal(again.length, sizes.sig);
      assert.notDeepEqual(again, sig);
      for (const s of [sig, again]) {
        assert.equal(dsa.verifySync(keys.publicKey, msg, s), true);
        assert.equal(await dsa.verify(keys.publicKey, msg, s), true);
      }
    });

    it('rejects a tampered message, a tampered signature and a wrong key, sync and async', async () => {
      const bad: Array<[string, Uint8Array, Uint8Array, Uint8Array]> = [
        ['message bit', keys.publicKey, flipBit(msg), sig],
        ['signature bit (middle)', keys.publicKey, msg, flipBit(sig)],
        ['signature bit (last)', keys.publicKey, msg, flipBit(sig, sig.length - 1)],
        ['signature bit (first)', keys.publicKey, msg, flipBit(sig, 0)],
        ['other key', other.publicKey, msg, sig],
        ['public key bit', flipBit(keys.publicKey), msg, sig],
      ];
      for (const [what, pk, m, s] of bad) {
        assert.equal(dsa.verifySync(pk, m, s), false, what);
        assert.equal(await dsa.verify(pk, m, s), false, what);
      }
    });

    it('answers false, never throws, on malformed or garbage input', async () => {
      const garbage: Array<[string, unknown, unknown, unknown]> = [
        ['short key', keys.publicKey.subarray(1), msg, sig],
        ['long key', new Uint8Array(sizes.pk + 1), msg, sig],
        ['empty key', new Uint8Array(0), msg, sig],
        ['short signature', keys.publicKey, msg, sig.subarray(1)],
        ['long signature', keys.publicKey, msg, new Uint8Array(sizes.sig + 1)],
        ['empty signature', keys.publicKey, msg, new Uint8Array(0)],
        ['random signature', keys.publicKey, msg, randomBytes(sizes.sig)],
        ['zero key and signature', new Uint8Array(sizes.pk), msg, new Uint8Array(sizes.sig)],
        ['string message', keys.publicKey, 'not bytes', sig],
        ['null signature', keys.publicKey, msg, null],
        ['undefined key', undefined, msg, sig],
      ];
      for (const [what, pk, m, s] of garbage) {
        const args = [pk, m, s] as [Uint8Array, Uint8Array, Uint8Array];
        assert.equal(dsa.verifySync(...args), false, what);
        assert.equal(await dsa.verify(...args), false, what);
      }
    });

    it('refuses a wrong-length secret key with CRYPTO_BAD_KEY, sync and async', async () => {
      for (const sk of [keys.secretKey.subarray(1), new Uint8Array(sizes.sk + 1), new Uint8Array(0)]) {
        assert.throws(() => dsa.signSync(sk, msg), hasCode('CRYPTO_BAD_KEY'));
        await assert.rejects(dsa.sign(sk, msg), hasCode('CRYPTO_BAD_KEY'));
        assert.throws(() => dsa.publicKeyOf(sk), hasCode('CRYPTO_BAD_KEY'));
      }
    });

    it('signs and verifies the empty message', async () => {
      const empty = new Uint8Array(0);
      const s = await dsa.sign(keys.secretKey, empty);
      assert.equal(dsa.verifySync(keys.publicKey, empty, s), true);
      assert.equal(dsa.verifySync(keys.publicKey, new Uint8Array(1), s), false);
    });

    it('generates the same key pair from the same seed, a different one from another', () => {
      const seed = new Uint8Array(dsa.seedBytes).map((_, i) => i);
      const a = dsa.generateKeyPair(seed);
      const b = dsa.generateKeyPair(seed.slice());
      // Bit 0 lies in SK.seed, which the public root depends on (SK.prf, in the middle, does not).
      const c = dsa.generateKeyPair(flipBit(seed, 0));
      assert.deepEqual(a, b);
      assert.notDeepEqual(a.publicKey, c.publicKey);
      // FIPS 205 layout: the secret key starts with the seed (SK.seed ‖ SK.prf ‖ PK.seed).
      assert.deepEqual(a.secretKey.subarray(0, dsa.seedBytes), seed);
      assert.throws(() => dsa.generateKeyPair(seed.subarray(1)), hasCode('CRYPTO_BAD_SEED'));
    });
  });
}
