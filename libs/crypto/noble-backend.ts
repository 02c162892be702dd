// SLH-DSA through @noble/post-quantum (pure JavaScript): the fallback where the runtime's
// OpenSSL lacks a parameter set, and the reference the node backend is cross-checked against.
// Pure FIPS 205 SLH-DSA with an empty context string, hedged (random opt_rand), exactly the
// bytes OpenSSL's `crypto.sign(null, …)` produces and accepts.
// Must never throw from verify, and never run off the event loop: its async forms only defer
// the work to the next macrotask, they still block the thread while computing.

import {
  slh_dsa_sha2_128f,
  slh_dsa_sha2_128s,
  slh_dsa_sha2_192f,
  slh_dsa_sha2_192s,
  slh_dsa_sha2_256f,
  slh_dsa_sha2_256s,
} from '@noble/post-quantum/slh-dsa.js';
import { setImmediate as nextMacrotask } from 'node:timers/promises';
import type { ParamSet } from './params.ts';
import { assertMessage, assertSecretKey, assertSeed, paramSpec, wellFormedForVerify } from './params.ts';
import type { KeyPair, SlhDsa } from './slhdsa.ts';

type NobleSigner = typeof slh_dsa_sha2_128f;

const NOBLE: Record<ParamSet, NobleSigner> = {
  'slh-dsa-sha2-128f': slh_dsa_sha2_128f,
  'slh-dsa-sha2-128s': slh_dsa_sha2_128s,
  'slh-dsa-sha2-192f': slh_dsa_sha2_192f,
  'slh-dsa-sha2-192s': slh_dsa_sha2_192s,
  'slh-dsa-sha2-256f': slh_dsa_sha2_256f,
  'slh-dsa-sha2-256s': slh_dsa_sha2_256s,
};

/**
 * FIPS 205 key generation from SK.seed ‖ SK.prf ‖ PK.seed (3n bytes): the same seed gives the
 * same key pair in every conforming implementation. The node backend borrows it, because
 * node:crypto cannot import a seed.
 */
export function nobleKeyPairFromSeed(paramSet: ParamSet, seed: Uint8Array): KeyPair {
  assertSeed(paramSpec(paramSet), seed);
  const { publicKey, secretKey } = NOBLE[paramSet].keygen(seed);
  return { publicKey, secretKey };
}

export function createNobleSlhDsa(paramSet: ParamSet): SlhDsa {
  const spec = paramSpec(paramSet);
  const impl = NOBLE[paramSet];

  const signSync = (secretKey: Uint8Array, message: Uint8Array): Uint8Array => {
    assertSecretKey(spec, secretKey);
    assertMessage(message);
    // No options: an empty context and fresh randomness, as OpenSSL does by default.
    return impl.sign(message, secretKey);
  };

  const verifySync = (publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean => {
    if (!wellFormedForVerify(spec, publicKey, message, signature)) return false;
    try {
      return impl.verify(signature, message, publicKey);
    } catch {
      // Whatever the bytes, a verification answers yes or no.
      return false;
    }
  };

  return Object.freeze({
    paramSet,
    backend: 'noble',
    publicKeyBytes: spec.publicKeyBytes,
    secretKeyBytes: spec.secretKeyBytes,
    signatureBytes: spec.signatureBytes,
    seedBytes: spec.seedBytes,

    generateKeyPair(seed?: Uint8Array): KeyPair {
      if (seed !== undefined) return nobleKeyPairFromSeed(paramSet, seed);
      const { publicKey, secretKey } = impl.keygen();
      return { publicKey, secretKey };
    },

    publicKeyOf(secretKey: Uint8Array): Uint8Array {
      assertSecretKey(spec, secretKey);
      return secretKey.slice(2 * spec.n);
    },

    signSync,
    verifySync,

    async sign(secretKey: Uint8Array, message: Uint8Array): Promise<Uint8Array> {
      // Validate before deferring so a bad key rejects without costing a macrotask.
      assertSecretKey(spec, secretKey);
      assertMessage(message);
      await nextMacrotask();
      return signSync(secretKey, message);
    },

    async verify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): Promise<boolean> {
      if (!wellFormedForVerify(spec, publicKey, message, signature)) return false;
      await nextMacrotask();
      return verifySync(publicKey, message, signature);
    },
  });
}
