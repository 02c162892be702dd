// The SLH-DSA (FIPS 205) parameter sets this project signs with, their byte sizes, and the
// checks that follow from those sizes alone. Both backends read their lengths from here so they
// cannot disagree about what a well-formed key or signature is.
// Must never hold key material or depend on a backend.

import { FedError } from '#libs/errors/index.ts';

export const PARAM_SETS = [
  'slh-dsa-sha2-128f',
  'slh-dsa-sha2-128s',
  'slh-dsa-sha2-192f',
  'slh-dsa-sha2-192s',
  'slh-dsa-sha2-256f',
  'slh-dsa-sha2-256s',
] as const;

export type ParamSet = (typeof PARAM_SETS)[number];

export const DEFAULT_PARAM_SET = 'slh-dsa-sha2-128f' satisfies ParamSet;

export interface ParamSpec {
  readonly paramSet: ParamSet;
  /** FIPS 205 security parameter n, in bytes. */
  readonly n: number;
  /** PK.seed ‖ PK.root = 2n bytes. */
  readonly publicKeyBytes: number;
  /** SK.seed ‖ SK.prf ‖ PK.seed ‖ PK.root = 4n bytes. */
  readonly secretKeyBytes: number;
  readonly signatureBytes: number;
  /** SK.seed ‖ SK.prf ‖ PK.seed = 3n bytes: everything key generation draws at random. */
  readonly seedBytes: number;
  /** The `alg` member of node:crypto's JWK (`kty: 'AKP'`) for this set. */
  readonly jwkAlg: string;
}

// Signature sizes are FIPS 205 Table 2; the rest is a function of n.
const SIGNATURE_BYTES: Record<ParamSet, number> = {
  'slh-dsa-sha2-128f': 17088,
  'slh-dsa-sha2-128s': 7856,
  'slh-dsa-sha2-192f': 35664,
  'slh-dsa-sha2-192s': 16224,
  'slh-dsa-sha2-256f': 49856,
  'slh-dsa-sha2-256s': 29792,
};

const N_BYTES: Record<ParamSet, number> = {
  'slh-dsa-sha2-128f': 16,
  'slh-dsa-sha2-128s': 16,
  'slh-dsa-sha2-192f': 24,
  'slh-dsa-sha2-192s': 24,
  'slh-dsa-sha2-256f': 32,
  'slh-dsa-sha2-256s': 32,
};

function buildSpec(paramSet: ParamSet): ParamSpec {
  const n = N_BYTES[paramSet];
  // 'slh-dsa-sha2-128f' -> 'SLH-DSA-SHA2-128f': node keeps the variant letter lower case.
  const variant = paramSet.slice('slh-dsa-sha2-'.length);
  return Object.freeze({
    paramSet,
    n,
    publicKeyBytes: 2 * n,
    secretKeyBytes: 4 * n,
    signatureBytes: SIGNATURE_BYTES[paramSet],
    seedBytes: 3 * n,
    jwkAlg: `SLH-DSA-SHA2-${variant}`,
  });
}

const SPECS: ReadonlyMap<ParamSet, ParamSpec> = new Map(PARAM_SETS.map((p) => [p, buildSpec(p)]));

export function isParamSet(value: unknown): value is ParamSet {
  return typeof value === 'string' && (PARAM_SETS as readonly string[]).includes(value);
}

/** The sizes of a parameter set; throws CRYPTO_BAD_PARAM_SET for anything not in PARAM_SETS. */
export function paramSpec(paramSet: string): ParamSpec {
  const spec = isParamSet(paramSet) ? SPECS.get(paramSet) : undefined;
  if (spec === undefined) {
    throw new FedError('CRYPTO_BAD_PARAM_SET', `unknown SLH-DSA parameter set '${paramSet}'`, {
      paramSet,
      supported: [...PARAM_SETS],
    });
  }
  return spec;
}

/** Throws CRYPTO_BAD_KEY unless `secretKey` is a byte array of the set's secret key length. */
export function assertSecretKey(spec: ParamSpec, secretKey: Uint8Array): void {
  if (!(secretKey instanceof Uint8Array) || secretKey.length !== spec.secretKeyBytes) {
    // Never put the bytes themselves in the error: errors end up in logs.
    throw new FedError('CRYPTO_BAD_KEY', `${spec.paramSet} secret key must be ${spec.secretKeyBytes} bytes`, {
      paramSet: spec.paramSet,
      expected: spec.secretKeyBytes,
      actual: secretKey instanceof Uint8Array ? secretKey.length : typeof secretKey,
    });
  }
}

/** Throws CRYPTO_BAD_SEED unless `seed` is SK.seed ‖ SK.prf ‖ PK.seed (3n bytes). */
export function assertSeed(spec: ParamSpec, seed: Uint8Array): void {
  if (!(seed instanceof Uint8Array) || seed.length !== spec.seedBytes) {
    throw new FedError('CRYPTO_BAD_SEED', `${spec.paramSet} key seed must be ${spec.seedBytes} bytes`, {
      paramSet: spec.paramSet,
      expected: spec.seedBytes,
      actual: seed instanceof Uint8Array ? seed.length : typeof seed,
    });
  }
}

/**
 * The public key inside a FIPS 205 secret key (SK.seed ‖ SK.prf ‖ PK.seed ‖ PK.root): its second
 * half. A copy, so the caller may keep it while the secret key is wiped.
 */
export function publicKeyFromSecretKey(paramSet: ParamSet, secretKey: Uint8Array): Uint8Array {
  const spec = paramSpec(paramSet);
  assertSecretKey(spec, secretKey);
  return secretKey.slice(2 * spec.n);
}

/** True when the inputs of a verification have the right lengths; verify answers false otherwise. */
export function wellFormedForVerify(
  spec: ParamSpec,
  publicKey: Uint8Array,
  message: Uint8Array,
  signature: Uint8Array,
): boolean {
  return (
    publicKey instanceof Uint8Array &&
    message instanceof Uint8Array &&
    signature instanceof Uint8Array &&
    publicKey.length === spec.publicKeyBytes &&
    signature.length === spec.signatureBytes
  );
}

/** Throws CRYPTO_BAD_MESSAGE unless the message is a byte array (signing a string by accident is a bug). */
export function assertMessage(message: Uint8Array): void {
  if (!(message instanceof Uint8Array)) {
    throw new FedError('CRYPTO_BAD_MESSAGE', 'the message to sign must be a Uint8Array', {
      actual: typeof message,
    });
  }
}
