// A PKCS#11 token as the signer uses it (pkcs11js over the module signer.yaml names): one logged-in
// session, objects found by label, and the few operations key custody needs — an AES-256 key made
// inside the token (sensitive, non-extractable) that seals and unseals with CKM_AES_GCM, a generic
// secret that MACs the safety state (CKM_SHA256_HMAC), a monotonic counter in a token data object,
// and (PKCS#11 3.2) SLH-DSA keys generated and used inside the token. Every failure is a FedError
// that names the module, the token and the label. A call that fails is retried once on a fresh
// session (a token that was pulled and came back); if that fails too it is SIGNER_TOKEN_FAILED.
// A PIN the token refused is never offered again by this process: hardware tokens lock the user
// PIN after a few wrong tries, and a signer retrying on every request would lock it for good.
// Must never read a key's value, never put the PIN in a message, and never create a key that is
// extractable or not sensitive.

import pkcs11js from 'pkcs11js';
import fs from 'node:fs/promises';
import { FedError, errorMessage } from '#libs/errors/index.ts';
import type { ParamSet } from '#libs/crypto/index.ts';
import { assertPrivateFile } from './keyfile.ts';

type Handle = Buffer;

/**
 * PKCS#11 3.2 constants pkcs11js 2.1.7 does not define. Values from the OASIS PKCS#11 v3.2
 * pkcs11t.h (CKM_SLH_DSA_KEY_PAIR_GEN 0x2D, CKM_SLH_DSA 0x2E, CKK_SLH_DSA 0x4B,
 * CKA_PARAMETER_SET 0x61D, CKP_SLH_DSA_* 1..12), as copied into PyKCS11 (src/pykcs11.i) and the
 * Pkcs11Interop extensions of BouncyHsm (CKK_V_3_2.cs, CK_SLH_DSA_PARAMETER_SET.cs).
 */
export const P11_32 = {
  CKM_SLH_DSA_KEY_PAIR_GEN: 0x2d,
  CKM_SLH_DSA: 0x2e,
  CKK_SLH_DSA: 0x4b,
  CKA_PARAMETER_SET: 0x61d,
} as const;
/** CKP_SLH_DSA_* of the parameter sets this project signs with (the SHA-2 ones). */
export const CKP_SLH_DSA: Readonly<Record<ParamSet, number>> = {
  'slh-dsa-sha2-128s': 0x01, 'slh-dsa-sha2-128f': 0x03, 'slh-dsa-sha2-192s': 0x05,
  'slh-dsa-sha2-192f': 0x07, 'slh-dsa-sha2-256s': 0x09, 'slh-dsa-sha2-256f': 0x0b,
};

export interface TokenRef {
  module: string;
  tokenLabel?: string | undefined;
  slot?: number | undefined;
  pinFile: string;
}

/** The PKCS#11 return value's name (CKR_…) of an error pkcs11js threw, else undefined. */
export function ckr(err: unknown): string | undefined {
  const m = /\b(CKR_[A-Z_]+)/.exec(errorMessage(err));
  return m?.[1];
}

/** Reads the user PIN: the file must be 0600; one trailing newline is dropped. */
export async function readPin(file: string): Promise<string> {
  await assertPrivateFile(file, 'PIN file');
  const pin = (await fs.readFile(file, 'utf8')).replace(/\r?\n$/, '');
  if (!pin) throw new FedError('SIGNER_TOKEN_PIN', `PIN file ${file} is empty`, { file });
  return pin;
}

// One library object per module path: C_Initialize may run once per process.
const libraries = new Map<string, pkcs11js.PKCS11>();

function library(module: string): pkcs11js.PKCS11 {
  let lib = libraries.get(module);
  if (lib) return lib;
  lib = new pkcs11js.PKCS11();
  try {
    lib.load(module);
  } catch (err) {
    throw new FedError('SIGNER_TOKEN_MODULE', `PKCS#11 module ${module} cannot be loaded: ${errorMessage(err)}`, { module });
  }
  try {
    lib.C_Initialize();
  } catch (err) {
    throw new FedError('SIGNER_TOKEN_ABSENT',
      `PKCS#11 module ${module} does not initialise (${ckr(err) ?? errorMessage(err)}): no token reachable (for SoftHSM2: is the token directory SOFTHSM2_CONF names there?)`, { module, ckr: ckr(err) });
  }
  libraries.set(module, lib);
  return lib;
}

/** A slot handle's number (pkcs11js gives it as little-endian bytes). */
const slotNumber = (slot: Buffer): number => slot.readUIntLE(0, Math.min(6, slot.length));

const trimmed = (s: string) => s.replace(/[\s\0]+$/, '');

/**
 * Return values a token gives while another process writes its files: SoftHSM2 answers
 * C_GetTokenInfo with CKR_GENERAL_ERROR while a token's object file is being rewritten (four
 * signers on one token directory, each bumping its counter, made one of them fail to start about
 * once in thirty). Read again after a pause; anything else is not transient.
 */
const TRANSIENT = new Set(['CKR_GENERAL_ERROR', 'CKR_DEVICE_ERROR', 'CKR_FUNCTION_FAILED']);
/** Pauses between reads of a token's info: 10, 20, 40, 80, 160 ms (310 ms in all). */
const INFO_RETRIES = 5;
const pause = new Int32Array(new SharedArrayBuffer(4));

/** C_GetTokenInfo, read again after a pause while the answer is a transient error. */
export function tokenInfo(lib: Pick<pkcs11js.PKCS11, 'C_GetTokenInfo'>, slot: Buffer): pkcs11js.TokenInfo {
  for (let attempt = 0; ; attempt++) {
    try {
      return lib.C_GetTokenInfo(slot);
    } catch (err) {
      const code = ckr(err);
      if (attempt >= INFO_RETRIES || code === undefined || !TRANSIENT.has(code)) throw err;
      // PKCS#11 calls block the thread anyway; a start or a reconnect waits here, never a signing.
      Atomics.wait(pause, 0, 0, 10 << attempt);
    }
  }
}

export class Token {
  readonly #ref: TokenRef;
  readonly #pin: string;
  readonly #lib: pkcs11js.PKCS11;
  #slot: Handle;
  #session: Handle | undefined;
  /** The token refused the PIN once: every later login is this error, without asking the token. */
  #pinRefused: FedError | undefined;
  readonly #handles = new Map<string, Handle>();
  /** The token's label and serial number as it reports them. */
  readonly label: string;
  readonly serial: string;

  private constructor(ref: TokenRef, pin: string, lib: pkcs11js.PKCS11, slot: Handle) {
    this.#ref = ref;
    this.#pin = pin;
    this.#lib = lib;
    this.#slot = slot;
    const info = tokenInfo(lib, slot);
    this.label = trimmed(info.label);
    this.serial = trimmed(info.serialNumber);
  }

  /** Loads the module, finds the token, logs in. SIGNER_TOKEN_MODULE / _ABSENT / _PIN otherwise. */
  static async open(ref: TokenRef): Promise<Token> {
    const pin = await readPin(ref.pinFile);
    const lib = library(ref.module);
    const token = new Token(ref, pin, lib, Token.#findSlot(lib, ref));
    token.#login();
    return token;
  }

  /** `token "label" (serial …) of module …`, for messages. */
  describe(): string {
    return `token "${this.label}" (serial ${this.serial}) of ${this.#ref.module}`;
  }

  static #wanted(ref: TokenRef): string {
    return ref.tokenLabel !== undefined ? `token labelled "${ref.tokenLabel}"` : `slot ${ref.slot}`;
  }

  static #findSlot(lib: pkcs11js.PKCS11, ref: TokenRef): Handle {
    let slots: Handle[];
    try {
      slots = lib.C_GetSlotList(true);
    } catch (err) {
      throw new FedError('SIGNER_TOKEN_ABSENT', `PKCS#11 module ${ref.module} lists no slots: ${errorMessage(err)}`, { module: ref.module });
    }
    const labels: string[] = [];
    const unreadable: string[] = [];
    for (const slot of slots) {
      if (ref.slot !== undefined) {
        if (slotNumber(slot) === ref.slot) return slot;
        continue;
      }
      let info: pkcs11js.TokenInfo;
      try {
        info = tokenInfo(lib, slot);
      } catch (err) {
        // Another token that cannot be read must not stop this one from being found.
        unreadable.push(`slot ${slotNumber(slot)} (${ckr(err) ?? errorMessage(err)})`);
        continue;
      }
      if ((info.flags & pkcs11js.CKF_TOKEN_INITIALIZED) === 0) continue; // a free slot
      const label = trimmed(info.label);
      labels.push(label);
      if (label === ref.tokenLabel) return slot;
    }
    throw new FedError('SIGNER_TOKEN_ABSENT',
      `no ${Token.#wanted(ref)} in PKCS#11 module ${ref.module} (tokens present: ${labels.length ? labels.map((l) => JSON.stringify(l)).join(', ') : 'none'}${unreadable.length ? `; unreadable: ${unreadable.join(', ')}` : ''}): is the token plugged in, or SOFTHSM2_CONF pointing at its directory?`,
      { module: ref.module, token: ref.tokenLabel, slot: ref.slot });
  }

  #login(): void {
    if (this.#pinRefused) throw this.#pinRefused;
    const lib = this.#lib;
    this.#session = lib.C_OpenSession(this.#slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION);
    try {
      lib.C_Login(this.#session, pkcs11js.CKU_USER, this.#pin);
    } catch (err) {
      const code = ckr(err);
      if (code === 'CKR_USER_ALREADY_LOGGED_IN') return;
      try { lib.C_CloseSession(this.#session); } catch { /* the login error is the one to report */ }
      this.#session = undefined;
      if (code === 'CKR_PIN_INCORRECT' || code === 'CKR_PIN_LOCKED' || code === 'CKR_PIN_LEN_RANGE' || code === 'CKR_PIN_EXPIRED') {
        const refused = `${this.describe()} refused the PIN from ${this.#ref.pinFile} (${code})${code === 'CKR_PIN_LOCKED' ? ': the PIN is locked, the SO must unlock it' : ''}`;
        const details = { module: this.#ref.module, token: this.label, file: this.#ref.pinFile, ckr: code };
        this.#pinRefused = new FedError('SIGNER_TOKEN_PIN', `${refused}; not offered to the token again (a token locks its PIN after a few wrong tries): fix the PIN file and restart the signer`, details);
        throw new FedError('SIGNER_TOKEN_PIN', refused, details);
      }
      throw new FedError('SIGNER_TOKEN_FAILED', `logging in to ${this.describe()} failed: ${errorMessage(err)}`, { module: this.#ref.module, token: this.label, ckr: code });
    }
  }

  /**
   * The module started again (C_Finalize, C_Initialize), the slot found again, a fresh session:
   * after the token failed. A token that was pulled and came back leaves stale objects behind a
   * mere new session (SoftHSM2), so only a re-initialised module sees it again.
   */
  #reconnect(): void {
    this.#handles.clear();
    this.#session = undefined;
    try { this.#lib.C_Finalize(); } catch { /* not initialised, or already gone */ }
    try {
      this.#lib.C_Initialize();
    } catch (err) {
      throw new FedError('SIGNER_TOKEN_ABSENT', `PKCS#11 module ${this.#ref.module} does not initialise again (${ckr(err) ?? errorMessage(err)})`, { module: this.#ref.module });
    }
    this.#slot = Token.#findSlot(this.#lib, this.#ref);
    this.#login();
  }

  /** Runs `op` on the session; a PKCS#11 failure gets one retry on a fresh session, then SIGNER_TOKEN_FAILED. */
  #call<T>(what: string, op: (s: Handle) => T): T {
    try {
      if (this.#session === undefined) this.#reconnect();
      return op(this.#session!);
    } catch (first) {
      if (first instanceof FedError) throw first;
      try {
        this.#reconnect();
        return op(this.#session!);
      } catch (err) {
        if (err instanceof FedError && err.code !== 'SIGNER_TOKEN_ABSENT') throw err;
        throw new FedError('SIGNER_TOKEN_FAILED', `${what} on token "${this.label}" (${this.#ref.module}) failed: ${errorMessage(err)}`,
          { module: this.#ref.module, token: this.label, ckr: ckr(err) ?? ckr(first) }, { cause: err });
      }
    }
  }

  #find(s: Handle, label: string, cls: number): Handle | undefined {
    const key = `${cls}/${label}`;
    const cached = this.#handles.get(key);
    if (cached) return cached;
    const lib = this.#lib;
    lib.C_FindObjectsInit(s, [{ type: pkcs11js.CKA_CLASS, value: cls }, { type: pkcs11js.CKA_LABEL, value: label }]);
    let found: Handle[];
    try {
      found = lib.C_FindObjects(s, 4);
    } finally {
      lib.C_FindObjectsFinal(s);
    }
    if (found.length > 1) {
      throw new FedError('SIGNER_TOKEN_KEY_AMBIGUOUS', `${found.length} objects labelled "${label}" on ${this.describe()}: each label must name one object`, { token: this.label, label });
    }
    if (found[0]) this.#handles.set(key, found[0]);
    return found[0];
  }

  #missing(label: string, what: string): FedError {
    return new FedError('SIGNER_TOKEN_KEY_MISSING', `${this.describe()} has no ${what} labelled "${label}" (deleted, or another token?)`, { token: this.label, label });
  }

  /** Whether a secret key labelled `label` is on the token. */
  hasSecretKey(label: string): boolean {
    return this.#call(`looking up "${label}"`, (s) => this.#find(s, label, pkcs11js.CKO_SECRET_KEY) !== undefined);
  }

  #secretKey(s: Handle, label: string, what: string): Handle {
    const h = this.#find(s, label, pkcs11js.CKO_SECRET_KEY);
    if (!h) throw this.#missing(label, what);
    return h;
  }

  #assertAbsent(s: Handle, label: string, cls: number): void {
    if (this.#find(s, label, cls) !== undefined) {
      throw new FedError('SIGNER_TOKEN_KEY_EXISTS', `${this.describe()} already holds an object labelled "${label}"; refusing to make a second (choose another key_label, or use the one there)`, { token: this.label, label });
    }
  }

  /** Secret keys made here: on the token, private, sensitive, never extractable. */
  #generateSecret(label: string, mechanism: number, keyType: number, usage: pkcs11js.Template): void {
    this.#call(`generating "${label}"`, (s) => {
      this.#assertAbsent(s, label, pkcs11js.CKO_SECRET_KEY);
      this.#lib.C_GenerateKey(s, { mechanism }, [
        { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY }, { type: pkcs11js.CKA_KEY_TYPE, value: keyType },
        { type: pkcs11js.CKA_VALUE_LEN, value: 32 }, { type: pkcs11js.CKA_LABEL, value: label },
        { type: pkcs11js.CKA_TOKEN, value: true }, { type: pkcs11js.CKA_PRIVATE, value: true },
        { type: pkcs11js.CKA_SENSITIVE, value: true }, { type: pkcs11js.CKA_EXTRACTABLE, value: false },
        ...usage,
      ]);
    });
  }

  generateAesKey(label: string): void {
    this.#generateSecret(label, pkcs11js.CKM_AES_KEY_GEN, pkcs11js.CKK_AES,
      [{ type: pkcs11js.CKA_ENCRYPT, value: true }, { type: pkcs11js.CKA_DECRYPT, value: true }]);
  }

  generateHmacKey(label: string): void {
    this.#generateSecret(label, pkcs11js.CKM_GENERIC_SECRET_KEY_GEN, pkcs11js.CKK_GENERIC_SECRET,
      [{ type: pkcs11js.CKA_SIGN, value: true }, { type: pkcs11js.CKA_VERIFY, value: true }]);
  }

  /** Whether the key may leave the token: it must not (checked, not assumed, before sealing under it). */
  assertNonExtractable(label: string): void {
    this.#call(`reading the attributes of "${label}"`, (s) => {
      const h = this.#secretKey(s, label, 'AES key');
      const [sensitive, extractable] = this.#lib.C_GetAttributeValue(s, h, [{ type: pkcs11js.CKA_SENSITIVE }, { type: pkcs11js.CKA_EXTRACTABLE }]);
      const yes = (a: pkcs11js.Attribute | undefined) => Buffer.isBuffer(a?.value) && a.value[0] === 1;
      if (!yes(sensitive) || yes(extractable)) {
        throw new FedError('SIGNER_TOKEN_KEY_WEAK', `key "${label}" on ${this.describe()} is not sensitive and non-extractable: it could leave the token, so it seals nothing`, { token: this.label, label });
      }
    });
  }

  #gcm(iv: Uint8Array, aad: Uint8Array): pkcs11js.Mechanism {
    const parameter: pkcs11js.AesGCM = { type: pkcs11js.CK_PARAMS_AES_GCM, iv: Buffer.from(iv), aad: Buffer.from(aad), ivBits: iv.length * 8, tagBits: 128 };
    return { mechanism: pkcs11js.CKM_AES_GCM, parameter };
  }

  /** AES-256-GCM under the token's key: ciphertext ‖ 16-byte tag. */
  encrypt(label: string, iv: Uint8Array, aad: Uint8Array, plaintext: Uint8Array): Uint8Array {
    return this.#call(`sealing with "${label}"`, (s) => {
      const h = this.#secretKey(s, label, 'AES key');
      this.#lib.C_EncryptInit(s, this.#gcm(iv, aad), h);
      return new Uint8Array(this.#lib.C_Encrypt(s, Buffer.from(plaintext), Buffer.alloc(plaintext.length + 32)));
    });
  }

  /**
   * Undoes encrypt. The token answering but refusing the tag (another token's key, an altered
   * blob) is SIGNER_SEALED_DECRYPT, not a token failure.
   */
  decrypt(label: string, iv: Uint8Array, aad: Uint8Array, sealed: Uint8Array, file: string): Uint8Array {
    const h = this.#call(`looking up "${label}"`, (s) => this.#secretKey(s, label, 'AES key'));
    const s = this.#session!;
    try {
      this.#lib.C_DecryptInit(s, this.#gcm(iv, aad), h);
      return new Uint8Array(this.#lib.C_Decrypt(s, Buffer.from(sealed), Buffer.alloc(sealed.length)));
    } catch (err) {
      throw new FedError('SIGNER_SEALED_DECRYPT',
        `sealed key ${file} does not unseal under key "${label}" of ${this.describe()} (${ckr(err) ?? errorMessage(err)}): it was sealed under another token's key, or altered`,
        { file, token: this.label, label, ckr: ckr(err) });
    }
  }

  /** HMAC-SHA-256 under the token's generic secret `label`. */
  hmac(label: string, data: Uint8Array): Uint8Array {
    return this.#call(`MAC with "${label}"`, (s) => {
      const h = this.#secretKey(s, label, 'HMAC key');
      this.#lib.C_SignInit(s, { mechanism: pkcs11js.CKM_SHA256_HMAC }, h);
      return new Uint8Array(this.#lib.C_Sign(s, Buffer.from(data), Buffer.alloc(64)));
    });
  }

  /**
   * A monotonic counter in a private data object labelled `label` (the highest if a crash left
   * two); undefined when there is none.
   */
  readCounter(label: string): bigint | undefined {
    return this.#call(`reading counter "${label}"`, (s) => {
      const values = this.#counters(s, label).map((c) => c.value);
      return values.length ? values.reduce((a, b) => (a > b ? a : b)) : undefined;
    });
  }

  #counters(s: Handle, label: string): Array<{ h: Handle; value: bigint }> {
    const lib = this.#lib;
    lib.C_FindObjectsInit(s, [{ type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_DATA }, { type: pkcs11js.CKA_LABEL, value: label }]);
    let found: Handle[];
    try {
      found = lib.C_FindObjects(s, 16);
    } finally {
      lib.C_FindObjectsFinal(s);
    }
    return found.map((h) => {
      const v = lib.C_GetAttributeValue(s, h, [{ type: pkcs11js.CKA_VALUE }])[0]?.value;
      return { h, value: Buffer.isBuffer(v) && v.length === 8 ? v.readBigUInt64BE(0) : -1n };
    });
  }

  /**
   * Sets the counter to `value`, which must be above it: a new data object first, then the old
   * ones destroyed (SoftHSM keeps CKA_VALUE of a data object read-only), so a crash leaves the
   * higher value readable.
   */
  writeCounter(label: string, value: bigint): void {
    this.#call(`writing counter "${label}"`, (s) => {
      const old = this.#counters(s, label);
      const high = old.reduce((a, c) => (c.value > a ? c.value : a), -1n);
      if (value === high) return; // already there (a check caught it up)
      if (value < high) throw new FedError('SIGNER_STATE_COUNTER', `counter "${label}" on ${this.describe()} is at ${high}; refusing to set it to ${value} (it only rises)`, { token: this.label, label });
      const v = Buffer.alloc(8);
      v.writeBigUInt64BE(value);
      this.#lib.C_CreateObject(s, [
        { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_DATA }, { type: pkcs11js.CKA_TOKEN, value: true },
        { type: pkcs11js.CKA_PRIVATE, value: true }, { type: pkcs11js.CKA_LABEL, value: label },
        { type: pkcs11js.CKA_APPLICATION, value: 'btcfed-signer' }, { type: pkcs11js.CKA_VALUE, value: v },
      ]);
      for (const o of old) this.#lib.C_DestroyObject(s, o.h);
    });
  }

  /** The mechanisms the token lists (C_GetMechanismList). */
  mechanisms(): number[] {
    return this.#call('listing mechanisms', () => this.#lib.C_GetMechanismList(this.#slot));
  }

  /** Refuses native custody on a token that does not list CKM_SLH_DSA and its key-pair generation. */
  assertNativeSlhDsa(): void {
    const listed = new Set(this.mechanisms());
    const lacking = [['CKM_SLH_DSA', P11_32.CKM_SLH_DSA], ['CKM_SLH_DSA_KEY_PAIR_GEN', P11_32.CKM_SLH_DSA_KEY_PAIR_GEN]].filter(([, m]) => !listed.has(m as number)).map(([n]) => n);
    if (lacking.length) {
      throw new FedError('SIGNER_CUSTODY_UNSUPPORTED',
        `${this.describe()} does not list ${lacking.join(' or ')} (PKCS#11 3.2 SLH-DSA): custody mode native needs a token that signs SLH-DSA itself; use mode: sealed`,
        { token: this.label, lacking });
    }
  }

  /** PKCS#11 3.2: an SLH-DSA key pair generated inside the token; its public key. */
  generateSlhDsa(label: string, paramSet: ParamSet): Uint8Array {
    this.assertNativeSlhDsa();
    return this.#call(`generating SLH-DSA key "${label}"`, (s) => {
      this.#assertAbsent(s, label, pkcs11js.CKO_PRIVATE_KEY);
      const common = [{ type: pkcs11js.CKA_KEY_TYPE, value: P11_32.CKK_SLH_DSA }, { type: pkcs11js.CKA_LABEL, value: label }, { type: pkcs11js.CKA_TOKEN, value: true }];
      const pair = this.#lib.C_GenerateKeyPair(s, { mechanism: P11_32.CKM_SLH_DSA_KEY_PAIR_GEN },
        [...common, { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PUBLIC_KEY }, { type: P11_32.CKA_PARAMETER_SET, value: CKP_SLH_DSA[paramSet] }, { type: pkcs11js.CKA_VERIFY, value: true }],
        [...common, { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PRIVATE_KEY }, { type: pkcs11js.CKA_PRIVATE, value: true }, { type: pkcs11js.CKA_SENSITIVE, value: true },
          { type: pkcs11js.CKA_EXTRACTABLE, value: false }, { type: pkcs11js.CKA_SIGN, value: true }]);
      const v = this.#lib.C_GetAttributeValue(s, pair.publicKey, [{ type: pkcs11js.CKA_VALUE }])[0]?.value;
      return new Uint8Array(v as Buffer);
    });
  }

  /** PKCS#11 3.2: the public key of the SLH-DSA pair `label` (CKA_VALUE of its public key object). */
  slhDsaPublicKey(label: string): Uint8Array {
    return this.#call(`reading SLH-DSA key "${label}"`, (s) => {
      const h = this.#find(s, label, pkcs11js.CKO_PUBLIC_KEY);
      if (!h) throw this.#missing(label, 'SLH-DSA public key');
      return new Uint8Array(this.#lib.C_GetAttributeValue(s, h, [{ type: pkcs11js.CKA_VALUE }])[0]?.value as Buffer);
    });
  }

  /** PKCS#11 3.2: pure SLH-DSA (CKM_SLH_DSA, no context) inside the token. */
  signSlhDsa(label: string, message: Uint8Array, signatureBytes: number): Uint8Array {
    return this.#call(`signing with "${label}"`, (s) => {
      const h = this.#find(s, label, pkcs11js.CKO_PRIVATE_KEY);
      if (!h) throw this.#missing(label, 'SLH-DSA private key');
      this.#lib.C_SignInit(s, { mechanism: P11_32.CKM_SLH_DSA }, h);
      return new Uint8Array(this.#lib.C_Sign(s, Buffer.from(message), Buffer.alloc(signatureBytes)));
    });
  }

  /** Destroys the secret key or key pair labelled `label` (ceremony tests and failed ceremonies only). */
  destroy(label: string): void {
    this.#call(`destroying "${label}"`, (s) => {
      for (const cls of [pkcs11js.CKO_SECRET_KEY, pkcs11js.CKO_PRIVATE_KEY, pkcs11js.CKO_PUBLIC_KEY, pkcs11js.CKO_DATA]) {
        const h = this.#find(s, label, cls);
        if (h) this.#lib.C_DestroyObject(s, h);
      }
      this.#handles.clear();
    });
  }

  close(): void {
    if (this.#session === undefined) return;
    try {
      this.#lib.C_Logout(this.#session);
    } catch { /* the token may be gone */ }
    try {
      this.#lib.C_CloseSession(this.#session);
    } catch { /* the token may be gone */ }
    this.#session = undefined;
    this.#handles.clear();
  }
}
