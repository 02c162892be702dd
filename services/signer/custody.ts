// Where the signer's SLH-DSA key comes from (signer.yaml `custody`): `file` — key_file sealed with
// a passphrase (keyfile.ts); `pkcs11` `sealed` — the secret key sealed by a token's non-extractable
// AES key (seal.ts), unsealed into this process's memory at start; `pkcs11` `native` — the token
// holds the key and signs (PKCS#11 3.2 CKM_SLH_DSA). With a token, the safety state is bound to it
// too (state-file.ts authenticatedStore, the HMAC key `<key_label>/state`).
// Must never fall back from a configured token to another key source, and never write the secret
// key anywhere in clear.

import fs from 'node:fs/promises';
import path from 'node:path';
import { FedError } from '#libs/errors/index.ts';
import type { SignerConf } from '#libs/config/index.ts';
import { fromHex, paramSpec, type ParamSet } from '#libs/crypto/index.ts';
import { assertPrivateFile, openKey, readPassphrase, readPublicKey, type PassphraseSource } from './keyfile.ts';
import { Token } from './pkcs11.ts';
import { readSealedHeader, unsealSecretKey } from './seal.ts';
import { authenticatedStore, safetyStore, type SafetyStore, type StateAuthority } from './state-file.ts';

export type Pkcs11Custody = Extract<SignerConf['custody'], { backend: 'pkcs11' }>;

const inDir = (dataDir: string, p: string) => path.resolve(dataDir, p);

export function passphraseSource(conf: SignerConf, dataDir: string): PassphraseSource {
  if (conf.passphrase_env) return { env: conf.passphrase_env };
  if (conf.passphrase_file) return { file: inDir(dataDir, conf.passphrase_file) };
  throw new FedError('SIGNER_PASSPHRASE_MISSING', 'signer.yaml names no passphrase (passphrase_file or passphrase_env): the key file cannot be opened', { field: 'passphrase_file' });
}

/** The HMAC key and the counter of the safety state sit beside the key, under derived labels. */
export const stateKeyLabel = (keyLabel: string) => `${keyLabel}/state`;
export const stateCounterLabel = (keyLabel: string) => `${keyLabel}/counter`;

/** Opens (logs in to) the token signer.yaml names. */
export function openToken(c: Pkcs11Custody, dataDir: string): Promise<Token> {
  return Token.open({ module: c.module, tokenLabel: c.token_label, slot: c.slot, pinFile: inDir(dataDir, c.pin_file) });
}

/** The token as the safety state's authority (HMAC key and counter labels derived from key_label). */
export function stateAuthority(token: Token, c: Pkcs11Custody): StateAuthority {
  const key = stateKeyLabel(c.key_label);
  const counter = stateCounterLabel(c.key_label);
  return {
    key,
    describe: `key "${key}" of ${token.describe()}`,
    mac: (data) => token.hmac(key, data),
    readCounter: () => token.readCounter(counter),
    writeCounter: (v) => token.writeCounter(counter, v),
  };
}

/** An opened key: what signs, which public key, which back-end, and the state store bound to it. */
export interface OpenedKey {
  paramSet: ParamSet;
  publicKey: Uint8Array;
  /** The secret key in this process's memory; empty for native custody (the token signs). */
  secretKey: Uint8Array;
  /** native custody: signs inside the token. */
  signInToken?: (message: Uint8Array) => Promise<Uint8Array>;
  /** For logs and show-key: `file …`, `pkcs11 sealed …`, `pkcs11 native …`. */
  describe: string;
  store(stateFile: string): SafetyStore;
  close(): void;
}

function checkParamSet(conf: SignerConf, paramSet: ParamSet, where: string): void {
  if (paramSet !== conf.crypto.param_set) {
    throw new FedError('SIGNER_KEY_INVALID', `${where} holds a ${paramSet} key but signer.yaml says crypto.param_set ${conf.crypto.param_set}`, { paramSet });
  }
}

/** Opens the key signer.yaml's custody names; refuses (FedError naming file/token/label) anything it cannot trust. */
export async function openCustodyKey(conf: SignerConf, dataDir: string, env?: NodeJS.ProcessEnv): Promise<OpenedKey> {
  const c = conf.custody;
  if (c.backend === 'file') {
    const file = inDir(dataDir, conf.key_file);
    await assertPrivateFile(file, 'key file');
    const passphrase = await readPassphrase(passphraseSource(conf, dataDir), env);
    const key = await openKey(await fs.readFile(file, 'utf8'), passphrase, file);
    checkParamSet(conf, key.paramSet, `key file ${file}`);
    return { ...key, describe: `file ${file}`, store: (f) => safetyStore(f), close: () => {} };
  }
  const token = await openToken(c, dataDir);
  try {
    if (c.mode === 'native') token.assertNativeSlhDsa(); // before anything else: the clearest refusal
    const authority = stateAuthority(token, c);
    if (!token.hasSecretKey(authority.key)) {
      throw new FedError('SIGNER_TOKEN_KEY_MISSING', `${token.describe()} has no state HMAC key labelled "${authority.key}" (made by keygen --backend pkcs11 or import-key)`, { token: token.label, label: authority.key });
    }
    const store = (f: string) => authenticatedStore(f, authority);
    if (c.mode === 'native') {
      const paramSet = conf.crypto.param_set as ParamSet;
      const publicKey = token.slhDsaPublicKey(c.key_label);
      const sigBytes = paramSpec(paramSet).signatureBytes;
      return {
        paramSet, publicKey, secretKey: new Uint8Array(0),
        signInToken: async (m) => token.signSlhDsa(c.key_label, m, sigBytes),
        describe: `pkcs11 native: key "${c.key_label}" of ${token.describe()}`, store, close: () => token.close(),
      };
    }
    const file = inDir(dataDir, c.sealed_file);
    await assertPrivateFile(file, 'sealed key');
    const key = unsealSecretKey(token, await fs.readFile(file, 'utf8'), file, { keyLabel: c.key_label, chainId: conf.chain_id });
    checkParamSet(conf, key.paramSet, `sealed key ${file}`);
    return { ...key, describe: `pkcs11 sealed: ${file} under key "${c.key_label}" of ${token.describe()}`, store, close: () => token.close() };
  } catch (err) {
    token.close();
    throw err;
  }
}

/** The public key the configured back-end holds, without the passphrase (sealed: without the token either). */
export async function custodyPublicKey(conf: SignerConf, dataDir: string): Promise<{ publicKey: Uint8Array; paramSet: ParamSet; where: string }> {
  const c = conf.custody;
  if (c.backend === 'file') {
    const file = inDir(dataDir, conf.key_file);
    return { ...(await readPublicKey(file)), where: `file ${file}` };
  }
  if (c.mode === 'sealed') {
    const file = inDir(dataDir, c.sealed_file);
    const h = await readSealedHeader(file);
    return { publicKey: fromHex(h.publicKey), paramSet: h.paramSet, where: `pkcs11 sealed: ${file} under key "${h.keyLabel}" of token "${h.token.label}" (serial ${h.token.serial})` };
  }
  const token = await openToken(c, dataDir);
  try {
    return { publicKey: token.slhDsaPublicKey(c.key_label), paramSet: conf.crypto.param_set as ParamSet, where: `pkcs11 native: key "${c.key_label}" of ${token.describe()}` };
  } finally {
    token.close();
  }
}

