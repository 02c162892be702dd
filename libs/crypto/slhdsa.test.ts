// SLH-DSA per backend: the shared contract for each backend, backend selection, and the node
// backend's key cache under eviction. Cross-backend agreement lives in slhdsa-cross.test.ts.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PARAM_SETS } from './params.ts';
import type { ParamSet } from './params.ts';
import { hasCode, slhDsaContract } from './slhdsa-contract.ts';
import { createSlhDsa, nativeSupport, resolveBackend } from './slhdsa.ts';

for (const paramSet of PARAM_SETS) {
  slhDsaContract(`node ${paramSet}`, () => createSlhDsa({ paramSet, backend: 'node' }));
}
// noble's "s" sets take one to two seconds per signature: they are covered by the cross test.
for (const paramSet of ['slh-dsa-sha2-128f', 'slh-dsa-sha2-192f', 'slh-dsa-sha2-256f'] as const) {
  slhDsaContract(`noble ${paramSet}`, () => createSlhDsa({ paramSet, backend: 'noble' }));
}

describe('backend selection', () => {
  it('auto picks node on this runtime (Node 24, OpenSSL 3.5) for every parameter set', () => {
    for (const paramSet of PARAM_SETS) {
      assert.equal(nativeSupport(paramSet), true, paramSet);
      assert.equal(resolveBackend(paramSet), 'node', paramSet);
      assert.equal(createSlhDsa({ paramSet }).backend, 'node', paramSet);
    }
  });

  it('defaults to slh-dsa-sha2-128f', () => {
    const dsa = createSlhDsa();
    assert.equal(dsa.paramSet, 'slh-dsa-sha2-128f');
    assert.equal(dsa.signatureBytes, 17088);
  });

  it('gives noble when asked explicitly, and it works', () => {
    const dsa = createSlhDsa({ backend: 'noble' });
    assert.equal(dsa.backend, 'noble');
    const { publicKey, secretKey } = dsa.generateKeyPair();
    const msg = new TextEncoder().encode('explicit noble');
    assert.equal(dsa.verifySync(publicKey, msg, dsa.signSync(secretKey, msg)), true);
  });

  it('on a runtime without native support: auto falls back to noble, explicit node throws', () => {
    const withoutNative = { nativeSupport: (_: ParamSet) => false };
    assert.equal(createSlhDsa({ backend: 'auto' }, withoutNative).backend, 'noble');
    assert.throws(
      () => createSlhDsa({ backend: 'node', paramSet: 'slh-dsa-sha2-192f' }, withoutNative),
      hasCode('CRYPTO_BACKEND_UNAVAILABLE'),
    );
    assert.equal(createSlhDsa({ backend: 'noble' }, withoutNative).backend, 'noble');
  });

  it('refuses unknown parameter sets and backends with their codes', () => {
    const unknownSet = { paramSet: 'slh-dsa-shake-128f' } as unknown as { paramSet: ParamSet };
    assert.throws(() => createSlhDsa(unknownSet), hasCode('CRYPTO_BAD_PARAM_SET'));
    assert.throws(() => nativeSupport('nope' as ParamSet), hasCode('CRYPTO_BAD_PARAM_SET'));
    const unknownBackend = { backend: 'openssl' } as unknown as { backend: 'node' };
    assert.throws(() => createSlhDsa(unknownBackend), hasCode('CRYPTO_BAD_BACKEND'));
  });
});

describe('node backend key cache', () => {
  it('stays correct when more keys are used than it holds', async () => {
    const dsa = createSlhDsa({ backend: 'node', publicKeyCacheSize: 2 });
    const msg = new TextEncoder().encode('cache');
    const signed = [0, 1, 2].map(() => {
      const k = dsa.generateKeyPair();
      return { publicKey: k.publicKey, sig: dsa.signSync(k.secretKey, msg) };
    });
    // Round-robin over three keys with room for two: every lookup evicts and re-imports.
    for (let round = 0; round < 3; round++) {
      for (const [i, s] of signed.entries()) {
        assert.equal(dsa.verifySync(s.publicKey, msg, s.sig), true, `key ${i}`);
        const wrong = signed[(i + 1) % signed.length];
        assert.ok(wrong !== undefined);
        assert.equal(await dsa.verify(wrong.publicKey, msg, s.sig), false, `key ${i} against another`);
      }
    }
  });

  it('treats an equal key in a different array as the same key', () => {
    const dsa = createSlhDsa({ backend: 'node' });
    const k = dsa.generateKeyPair();
    const msg = new TextEncoder().encode('copy');
    const sig = dsa.signSync(k.secretKey.slice(), msg);
    assert.equal(dsa.verifySync(k.publicKey.slice(), msg, sig), true);
    assert.equal(dsa.verifySync(Buffer.from(k.publicKey), msg, sig), true);
  });
});
