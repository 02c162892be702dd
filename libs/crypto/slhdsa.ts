// The one SLH-DSA (FIPS 205) interface of the project and the factory that picks a backend.
// Every backend produces and accepts the same bytes: pure SLH-DSA with an empty context string,
// keys as raw FIPS 205 bytes (public = PK.seed ‖ PK.root, secret = SK.seed ‖ SK.prf ‖ PK.seed ‖ PK.root).
// Signatures are hedged (randomised): two signatures of one message differ and both verify.
// Must never let a caller tell backends apart by anything but speed and the `backend` field.

import { FedError } from '#libs/errors/index.ts';
import { createNobleSlhDsa } from './noble-backend.ts';
import { createNodeSlhDsa, nativeSupport } from './node-backend.ts';
import type { ParamSet } from './params.ts';
import { DEFAULT_PARAM_SET, paramSpec } from './params.ts';

export const BACKENDS = ['node', 'noble'] as const;
export type BackendName = (typeof BACKENDS)[number];
export type BackendChoice = 'auto' | BackendName;

/** Raw FIPS 205 key bytes. */
export interface KeyPair {
  readonly publicKey: Uint8Array;
  readonly secretKey: Uint8Array;
}

export interface SlhDsa {
  readonly paramSet: ParamSet;
  readonly backend: BackendName;
  readonly publicKeyBytes: number;
  readonly secretKeyBytes: number;
  readonly signatureBytes: number;
  /** Length of the optional key generation seed: SK.seed ‖ SK.prf ‖ PK.seed (3n bytes). */
  readonly seedBytes: number;

  /**
   * A fresh random key pair, or with `seed` the deterministic FIPS 205 key pair of that seed
   * (for fixtures and reproducible test networks; throws CRYPTO_BAD_SEED on a wrong length).
   */
  generateKeyPair(seed?: Uint8Array): KeyPair;
  /** The public key inside a secret key; throws CRYPTO_BAD_KEY on a wrong length. */
  publicKeyOf(secretKey: Uint8Array): Uint8Array;

  /** Off the event loop where the backend can (node); throws CRYPTO_BAD_KEY on a wrong-length key. */
  sign(secretKey: Uint8Array, message: Uint8Array): Promise<Uint8Array>;
  signSync(secretKey: Uint8Array, message: Uint8Array): Uint8Array;
  /** Never rejects: malformed keys, signatures or garbage verify as false. */
  verify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): Promise<boolean>;
  /** Never throws: malformed keys, signatures or garbage verify as false. */
  verifySync(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean;
}

export interface SlhDsaOptions {
  readonly paramSet?: ParamSet;
  /** 'auto' (default): node where the runtime supports the parameter set, else noble. */
  readonly backend?: BackendChoice;
  /** node backend only: how many imported public keys to keep (default 1024). */
  readonly publicKeyCacheSize?: number;
}

/** What the factory needs from the runtime; tests pass a fake to play a runtime without SLH-DSA. */
export interface SlhDsaDeps {
  readonly nativeSupport: (paramSet: ParamSet) => boolean;
}

const RUNTIME: SlhDsaDeps = { nativeSupport };

/**
 * Which backend `choice` means for `paramSet` on this runtime. Throws CRYPTO_BACKEND_UNAVAILABLE
 * for an explicit 'node' the runtime cannot serve, CRYPTO_BAD_BACKEND for an unknown name.
 */
export function resolveBackend(
  paramSet: ParamSet,
  choice: BackendChoice = 'auto',
  deps: SlhDsaDeps = RUNTIME,
): BackendName {
  switch (choice) {
    case 'auto':
      return deps.nativeSupport(paramSet) ? 'node' : 'noble';
    case 'node':
      if (!deps.nativeSupport(paramSet)) {
        throw new FedError('CRYPTO_BACKEND_UNAVAILABLE', `node:crypto on this runtime cannot do ${paramSet}`, {
          paramSet,
          node: process.versions.node,
          openssl: process.versions.openssl,
        });
      }
      return 'node';
    case 'noble':
      return 'noble';
    default: {
      const never: never = choice;
      throw new FedError('CRYPTO_BAD_BACKEND', `unknown SLH-DSA backend '${String(never)}'`, {
        backend: String(never),
        supported: ['auto', ...BACKENDS],
      });
    }
  }
}

/**
 * An SLH-DSA instance for one parameter set (default slh-dsa-sha2-128f). Throws
 * CRYPTO_BAD_PARAM_SET for an unknown set and CRYPTO_BACKEND_UNAVAILABLE when `backend: 'node'`
 * is asked for where the runtime lacks the set.
 */
export function createSlhDsa(options: SlhDsaOptions = {}, deps: SlhDsaDeps = RUNTIME): SlhDsa {
  const paramSet = paramSpec(options.paramSet ?? DEFAULT_PARAM_SET).paramSet;
  const backend = resolveBackend(paramSet, options.backend ?? 'auto', deps);
  switch (backend) {
    case 'node':
      return createNodeSlhDsa(paramSet, { publicKeyCacheSize: options.publicKeyCacheSize });
    case 'noble':
      return createNobleSlhDsa(paramSet);
    default: {
      const never: never = backend;
      throw new FedError('CRYPTO_BAD_BACKEND', `unknown SLH-DSA backend '${String(never)}'`);
    }
  }
}

export { nativeSupport };
