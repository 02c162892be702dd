// SLH-DSA through node:crypto (OpenSSL 3.5 inside Node 24): the fast backend. Keys cross the
// boundary as raw FIPS 205 bytes, imported and exported as JWK { kty: 'AKP', alg, pub, priv }
// with base64url members (priv = the whole 4n-byte secret key, pub = its second half).
// The async forms run on the libuv thread pool, so a service can verify in parallel while its
// event loop stays free (the pool has UV_THREADPOOL_SIZE threads, 4 by default).
// Must never throw from verify, never put key bytes in an error, and never keep a secret key
// as a string (the secret-key cache is keyed by a digest of the key).

import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  sign as cryptoSign,
  verify as cryptoVerify,
  type KeyObject,
} from 'node:crypto';
import { FedError } from '#libs/errors/index.ts';
import { BoundedLru } from './key-cache.ts';
import { nobleKeyPairFromSeed } from './noble-backend.ts';
import type { ParamSet, ParamSpec } from './params.ts';
import { assertMessage, assertSecretKey, paramSpec, wellFormedForVerify } from './params.ts';
import type { KeyPair, SlhDsa } from './slhdsa.ts';

const probed = new Map<ParamSet, boolean>();

/**
 * Whether this runtime's node:crypto knows the parameter set. Probed once per set and cached:
 * import an all-zero public key and check that verifying garbage answers false. (Generating a key
 * would prove the same but costs up to 50 ms for the "s" sets.)
 */
export function nativeSupport(paramSet: ParamSet): boolean {
  const known = probed.get(paramSet);
  if (known !== undefined) return known;
  const spec = paramSpec(paramSet);
  let supported = false;
  try {
    const key = importPublicKey(spec, new Uint8Array(spec.publicKeyBytes));
    supported =
      key.asymmetricKeyType === paramSet &&
      cryptoVerify(null, new Uint8Array(0), key, new Uint8Array(spec.signatureBytes)) === false;
  } catch {
    supported = false;
  }
  probed.set(paramSet, supported);
  return supported;
}

function b64url(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64url');
}

/** Decodes a JWK member into a fresh (unpooled) array and wipes the temporary Buffer. */
function fromB64url(text: unknown, expectedBytes: number, what: string): Uint8Array {
  if (typeof text !== 'string') throw new FedError('CRYPTO_KEY_EXPORT', `node exported no JWK '${what}'`);
  const tmp = Buffer.from(text, 'base64url');
  const out = new Uint8Array(tmp);
  tmp.fill(0);
  if (out.length !== expectedBytes) {
    throw new FedError('CRYPTO_KEY_EXPORT', `node exported a ${out.length}-byte '${what}'`, { expectedBytes });
  }
  return out;
}

function importPublicKey(spec: ParamSpec, publicKey: Uint8Array): KeyObject {
  return createPublicKey({ key: { kty: 'AKP', alg: spec.jwkAlg, pub: b64url(publicKey) }, format: 'jwk' });
}

function importSecretKey(spec: ParamSpec, secretKey: Uint8Array): KeyObject {
  // node wants `pub` beside `priv`; it is the secret key's own second half.
  const pub = secretKey.subarray(2 * spec.n);
  try {
    return createPrivateKey({
      key: { kty: 'AKP', alg: spec.jwkAlg, priv: b64url(secretKey), pub: b64url(pub) },
      format: 'jwk',
    });
  } catch (err) {
    throw new FedError('CRYPTO_BAD_KEY', `node:crypto refused the ${spec.paramSet} secret key`, {}, { cause: err });
  }
}

function asUint8Array(buf: Buffer): Uint8Array {
  // Plain Uint8Array so both backends hand out the same type (deepEqual compares prototypes).
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}

export interface NodeBackendOptions {
  /** How many imported public keys to keep (one per validator is the working set). */
  readonly publicKeyCacheSize?: number;
  /** How many imported secret keys to keep (a signer has one). */
  readonly secretKeyCacheSize?: number;
}

export function createNodeSlhDsa(paramSet: ParamSet, options: NodeBackendOptions = {}): SlhDsa {
  const spec = paramSpec(paramSet);
  if (!nativeSupport(paramSet)) {
    throw new FedError('CRYPTO_BACKEND_UNAVAILABLE', `node:crypto on this runtime cannot do ${paramSet}`, {
      paramSet,
      node: process.versions.node,
      openssl: process.versions.openssl,
    });
  }
  const publicKeys = new BoundedLru<string, KeyObject>(options.publicKeyCacheSize ?? 1024);
  const secretKeys = new BoundedLru<string, KeyObject>(options.secretKeyCacheSize ?? 16);

  const publicKeyObject = (publicKey: Uint8Array): KeyObject =>
    publicKeys.getOrCreate(b64url(publicKey), () => importPublicKey(spec, publicKey));

  const secretKeyObject = (secretKey: Uint8Array): KeyObject => {
    assertSecretKey(spec, secretKey);
    const id = createHash('sha256').update(secretKey).digest('base64');
    return secretKeys.getOrCreate(id, () => importSecretKey(spec, secretKey));
  };

  const signFailed = (err: unknown): FedError =>
    new FedError('CRYPTO_SIGN_FAILED', `node:crypto failed to sign with ${paramSet}`, {}, { cause: err });

  const verifySync = (publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean => {
    if (!wellFormedForVerify(spec, publicKey, message, signature)) return false;
    try {
      return cryptoVerify(null, message, publicKeyObject(publicKey), signature);
    } catch {
      return false;
    }
  };

  return Object.freeze({
    paramSet,
    backend: 'node',
    publicKeyBytes: spec.publicKeyBytes,
    secretKeyBytes: spec.secretKeyBytes,
    signatureBytes: spec.signatureBytes,
    seedBytes: spec.seedBytes,

    generateKeyPair(seed?: Uint8Array): KeyPair {
      // node:crypto cannot import a seed; FIPS 205 keygen is deterministic, so noble's gives the same pair.
      if (seed !== undefined) return nobleKeyPairFromSeed(paramSet, seed);
      const { privateKey } = generateKeyPairSync(paramSet);
      const jwk = privateKey.export({ format: 'jwk' });
      const secretKey = fromB64url(jwk['priv'], spec.secretKeyBytes, 'priv');
      return { publicKey: secretKey.slice(2 * spec.n), secretKey };
    },

    publicKeyOf(secretKey: Uint8Array): Uint8Array {
      assertSecretKey(spec, secretKey);
      return secretKey.slice(2 * spec.n);
    },

    signSync(secretKey: Uint8Array, message: Uint8Array): Uint8Array {
      assertMessage(message);
      const key = secretKeyObject(secretKey);
      try {
        return asUint8Array(cryptoSign(null, message, key));
      } catch (err) {
        throw signFailed(err);
      }
    },

    async sign(secretKey: Uint8Array, message: Uint8Array): Promise<Uint8Array> {
      assertMessage(message);
      const key = secretKeyObject(secretKey);
      return new Promise<Uint8Array>((resolve, reject) => {
        cryptoSign(null, message, key, (err, signature) => {
          if (err !== null) reject(signFailed(err));
          else resolve(asUint8Array(signature));
        });
      });
    },

    verifySync,

    async verify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): Promise<boolean> {
      if (!wellFormedForVerify(spec, publicKey, message, signature)) return false;
      let key: KeyObject;
      try {
        key = publicKeyObject(publicKey);
      } catch {
        return false;
      }
      return new Promise<boolean>((resolve) => {
        try {
          cryptoVerify(null, message, key, signature, (err, ok) => resolve(err === null && ok === true));
        } catch {
          resolve(false);
        }
      });
    },
  });
}
