// The key-custody ceremonies of the signer CLI (main.ts): a new key into a token, an existing
// key file moved into a token (the file destroyed only after the sealed key is proven to unseal
// to the same public key), the safety state bound to the token, and a check of token, PIN and key
// without starting the signer. Each names what it did; the secret key exists only in this
// process's memory and is wiped when done.
// Must never destroy a key file before its sealed copy has been read back and verified, and never
// replace an existing sealed key, token key or state.

import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { FedError } from '#libs/errors/index.ts';
import type { SignerConf } from '#libs/config/index.ts';
import { bytesEqual, createSlhDsa, toHex, type ParamSet } from '#libs/crypto/index.ts';
import { fsyncDir } from '#libs/files/index.ts';
import { openCustodyKey, openToken, passphraseSource, stateAuthority, stateKeyLabel, type Pkcs11Custody } from './custody.ts';
import { assertPrivateFile, openKey, readPassphrase } from './keyfile.ts';
import type { Token } from './pkcs11.ts';
import { sealSecretKey, unsealSecretKey, writeNewSealedFile } from './seal.ts';
import { STATE_FILE, authenticatedStore, safetyStore } from './state-file.ts';

function pkcs11Of(conf: SignerConf, command: string): Pkcs11Custody {
  if (conf.custody.backend !== 'pkcs11') {
    throw new FedError('CLI_INVALID', `${command}: signer.yaml custody is backend ${conf.custody.backend}; set custody.backend: pkcs11 (module, token_label, pin_file, key_label) first`, { field: 'custody' });
  }
  return conf.custody;
}

/** Seals `secretKey` under a new token key, writes the sealed file, and reads it back through the token. */
async function sealInto(token: Token, c: Pkcs11Custody, conf: SignerConf, dataDir: string, paramSet: ParamSet, secretKey: Uint8Array, publicKey: Uint8Array): Promise<string> {
  const file = path.resolve(dataDir, c.sealed_file);
  try {
    await fs.access(file);
    throw new FedError('SIGNER_KEY_EXISTS', `sealed key ${file} already exists; refusing to overwrite a validator key`, { file });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  if (token.hasSecretKey(c.key_label) || token.hasSecretKey(stateKeyLabel(c.key_label))) {
    throw new FedError('SIGNER_TOKEN_KEY_EXISTS', `${token.describe()} already holds "${c.key_label}" or "${stateKeyLabel(c.key_label)}": choose a new key_label for a new key`, { token: token.label, label: c.key_label });
  }
  token.generateAesKey(c.key_label);
  token.generateHmacKey(stateKeyLabel(c.key_label));
  await writeNewSealedFile(file, sealSecretKey(token, c.key_label, conf.chain_id, paramSet, secretKey));
  const back = unsealSecretKey(token, await fs.readFile(file, 'utf8'), file, { keyLabel: c.key_label, chainId: conf.chain_id });
  const same = bytesEqual(back.publicKey, publicKey) && bytesEqual(back.secretKey, secretKey);
  back.secretKey.fill(0);
  if (!same) throw new FedError('SIGNER_SEALED_MISMATCH', `sealed key ${file} read back does not hold the key just sealed; nothing else was changed`, { file });
  return file;
}

/** keygen --backend pkcs11: a new SLH-DSA key sealed (or, native, generated) in the token. */
export async function keygenIntoToken(conf: SignerConf, dataDir: string): Promise<{ publicKey: Uint8Array; where: string }> {
  const c = pkcs11Of(conf, 'keygen --backend pkcs11');
  const token = await openToken(c, dataDir);
  try {
    if (c.mode === 'native') {
      const publicKey = token.generateSlhDsa(c.key_label, conf.crypto.param_set as ParamSet);
      token.generateHmacKey(stateKeyLabel(c.key_label));
      return { publicKey, where: `pkcs11 native: key "${c.key_label}" of ${token.describe()}` };
    }
    const slh = createSlhDsa({ paramSet: conf.crypto.param_set as ParamSet, backend: conf.crypto.backend });
    const pair = slh.generateKeyPair();
    try {
      const file = await sealInto(token, c, conf, dataDir, slh.paramSet, pair.secretKey, pair.publicKey);
      return { publicKey: pair.publicKey, where: `pkcs11 sealed: ${file} under key "${c.key_label}" of ${token.describe()}` };
    } finally {
      pair.secretKey.fill(0);
    }
  } finally {
    token.close();
  }
}

/** Overwrites a file with random bytes (durably), then unlinks it and syncs its directory. */
async function destroyFile(file: string): Promise<void> {
  const size = (await fs.stat(file)).size;
  const h = await fs.open(file, 'r+');
  try {
    await h.write(randomBytes(Math.max(size, 1)), 0, Math.max(size, 1), 0);
    await h.sync();
  } finally {
    await h.close();
  }
  await fs.unlink(file);
  await fsyncDir(path.dirname(file));
}

export interface ImportResult { publicKey: Uint8Array; sealedFile: string; keyFile: string; stateBound: boolean }

/**
 * import-key: the file key (key_file + passphrase) sealed into the token, verified by unsealing it
 * again, the safety state (if any) bound to the token and verified, and only then the key file
 * overwritten and deleted. The caller holds the data-dir lock (the signer is stopped).
 */
export async function importKeyIntoToken(conf: SignerConf, dataDir: string, env?: NodeJS.ProcessEnv): Promise<ImportResult> {
  const c = pkcs11Of(conf, 'import-key');
  if (c.mode !== 'sealed') throw new FedError('CLI_INVALID', 'import-key: custody mode native keeps keys generated inside the token only (a token that can import SLH-DSA keys is not assumed); use mode: sealed', { field: 'custody.mode' });
  const keyFile = path.resolve(dataDir, conf.key_file);
  await assertPrivateFile(keyFile, 'key file');
  const key = await openKey(await fs.readFile(keyFile, 'utf8'), await readPassphrase(passphraseSource(conf, dataDir), env), keyFile);
  const token = await openToken(c, dataDir);
  try {
    if (key.paramSet !== conf.crypto.param_set) throw new FedError('SIGNER_KEY_INVALID', `key file ${keyFile} holds a ${key.paramSet} key but signer.yaml says ${conf.crypto.param_set}`, { file: keyFile });
    const sealedFile = await sealInto(token, c, conf, dataDir, key.paramSet, key.secretKey, key.publicKey);
    const stateBound = await bindState(conf, dataDir, token, toHex(key.publicKey));
    await destroyFile(keyFile);
    return { publicKey: key.publicKey, sealedFile, keyFile, stateBound };
  } finally {
    key.secretKey.fill(0);
    token.close();
  }
}

/**
 * Authenticates the safety state as it is on disk under the token (a new record, counter above
 * the token's), then loads it back through the token. False when there is no state yet. Refuses a
 * state of another key or chain. The operator vouches that it is this key's newest state.
 */
export async function bindState(conf: SignerConf, dataDir: string, token: Token, publicKey: string): Promise<boolean> {
  const c = pkcs11Of(conf, 'bind-state');
  const file = path.join(dataDir, STATE_FILE);
  const state = await safetyStore(file).load();
  if (state === undefined) return false;
  if (state.publicKey !== publicKey || state.chainId !== conf.chain_id) {
    throw new FedError('SIGNER_STATE_MISMATCH', `safety state ${file} belongs to key ${state.publicKey.slice(0, 16)}… on chain ${state.chainId}, not to key ${publicKey.slice(0, 16)}… on ${conf.chain_id}`, { file });
  }
  const authority = stateAuthority(token, c);
  await authenticatedStore(file, authority).save(state);
  const again = await authenticatedStore(file, authority).load();
  if (again === undefined || again.signed !== state.signed || again.lastVote.view !== state.lastVote.view) {
    throw new FedError('SIGNER_STATE_MISMATCH', `safety state ${file} did not read back as bound`, { file });
  }
  return true;
}

/** bind-state: the operator's resolution of SIGNER_STATE_UNAUTHENTICATED / _ROLLBACK (after checking the state). */
export async function bindStateCmd(conf: SignerConf, dataDir: string): Promise<{ bound: boolean; publicKey: string }> {
  const key = await openCustodyKey(conf, dataDir); // the token, PIN and key must all be usable first
  key.secretKey.fill(0);
  key.close();
  const c = pkcs11Of(conf, 'bind-state');
  const token = await openToken(c, dataDir);
  try {
    return { bound: await bindState(conf, dataDir, token, toHex(key.publicKey)), publicKey: toHex(key.publicKey) };
  } finally {
    token.close();
  }
}

/**
 * check-custody: token present, PIN accepted, key usable (sealed: unsealed and its public key
 * checked; native: a signature made and verified), the state HMAC key present and the state (if
 * any) authenticated — without starting the signer. Returns the lines to print.
 */
export async function checkCustody(conf: SignerConf, dataDir: string, env?: NodeJS.ProcessEnv): Promise<string[]> {
  const key = await openCustodyKey(conf, dataDir, env);
  try {
    const lines = [`custody ok: ${key.describe}`, `public_key ${toHex(key.publicKey)} (${key.paramSet})`];
    const slh = createSlhDsa({ paramSet: key.paramSet, backend: conf.crypto.backend });
    const probe = randomBytes(32);
    const sig = key.signInToken ? await key.signInToken(probe) : await slh.sign(key.secretKey, probe);
    if (!(await slh.verify(key.publicKey, probe, sig))) throw new FedError('SIGNER_KEY_INVALID', `a signature made with ${key.describe} does not verify under its public key`);
    lines.push('signing ok: a test signature verifies');
    const state = await key.store(path.join(dataDir, STATE_FILE)).load();
    lines.push(state === undefined ? 'state: none yet (run --init for a brand-new key)' : `state ok: ${key.store(path.join(dataDir, STATE_FILE)).authenticatedBy ? 'authenticated by the token, counter current' : 'checksum verified'}; epoch ${state.epoch}, last vote view ${state.lastVote.view}, ${state.signed} signatures`);
    if (state && state.publicKey !== toHex(key.publicKey)) throw new FedError('SIGNER_STATE_MISMATCH', `safety state belongs to key ${state.publicKey.slice(0, 16)}…, not to this one`);
    return lines;
  } finally {
    key.secretKey.fill(0);
    key.close();
  }
}
