// The SLH-DSA secret key at rest: scrypt (memory-hard) derives an AES-256-GCM key from the
// operator's passphrase; the header (parameter set, public key, KDF parameters) is bound as
// additional data so it cannot be swapped. The file is mode 0600 and the signer refuses a key
// file (or passphrase file) that group or others can read.
// Must never log, print or put into an error the secret key or the passphrase.

import { createCipheriv, createDecipheriv, randomBytes, scrypt as scryptCb, type ScryptOptions } from 'node:crypto';
import fs from 'node:fs/promises';
import { FedError } from '#libs/errors/index.ts';
import { bytesEqual, fromHex, publicKeyFromSecretKey, toHex, type ParamSet } from '#libs/crypto/index.ts';
import { writeFileAtomic } from '#libs/files/index.ts';

const FORMAT = 'btcfed-signer-key';

/** N = 2^15, r = 8: 32 MiB and about 0.1 s per derivation on these machines. */
export const DEFAULT_KDF = { name: 'scrypt', N: 1 << 15, r: 8, p: 1 } as const;

interface KeyFileHeader {
  format: typeof FORMAT;
  version: 1;
  paramSet: ParamSet;
  publicKey: string;
  kdf: { name: 'scrypt'; N: number; r: number; p: number; salt: string };
  cipher: { name: 'aes-256-gcm'; iv: string };
}
interface KeyFile extends KeyFileHeader { ciphertext: string; tag: string }

function deriveKey(passphrase: string, kdf: KeyFileHeader['kdf']): Promise<Buffer> {
  const options: ScryptOptions = { N: kdf.N, r: kdf.r, p: kdf.p, maxmem: 256 * kdf.N * kdf.r + (1 << 20) };
  return new Promise((resolve, reject) => {
    scryptCb(passphrase.normalize('NFC'), Buffer.from(kdf.salt, 'hex'), 32, options, (err, key) => (err ? reject(err) : resolve(key)));
  });
}

const aad = (h: KeyFileHeader): Buffer => Buffer.from(JSON.stringify([h.format, h.version, h.paramSet, h.publicKey, h.kdf, h.cipher]));

/** Encrypts `secretKey` into the key file's text. */
export async function sealKey(paramSet: ParamSet, secretKey: Uint8Array, passphrase: string, kdf: { N: number; r: number; p: number } = DEFAULT_KDF): Promise<string> {
  if (passphrase.length < 8) throw new FedError('SIGNER_PASSPHRASE_WEAK', 'the passphrase must be at least 8 characters');
  const header: KeyFileHeader = {
    format: FORMAT, version: 1, paramSet,
    publicKey: toHex(publicKeyFromSecretKey(paramSet, secretKey)),
    kdf: { name: 'scrypt', N: kdf.N, r: kdf.r, p: kdf.p, salt: randomBytes(16).toString('hex') },
    cipher: { name: 'aes-256-gcm', iv: randomBytes(12).toString('hex') },
  };
  const key = await deriveKey(passphrase, header.kdf);
  const cipher = createCipheriv('aes-256-gcm', key, Buffer.from(header.cipher.iv, 'hex'));
  cipher.setAAD(aad(header));
  const ciphertext = Buffer.concat([cipher.update(secretKey), cipher.final()]);
  key.fill(0);
  const file: KeyFile = { ...header, ciphertext: ciphertext.toString('base64'), tag: cipher.getAuthTag().toString('base64') };
  return `${JSON.stringify(file, null, 1)}\n`;
}

function keyError(file: string, why: string): FedError {
  return new FedError('SIGNER_KEY_INVALID', `key file ${file}: ${why}`, { file });
}

function parseKeyFile(text: string, file: string): KeyFile {
  let k: KeyFile;
  try {
    k = JSON.parse(text) as KeyFile;
  } catch {
    throw keyError(file, 'not JSON (truncated or not a signer key)');
  }
  const ok = k && k.format === FORMAT && k.version === 1 && typeof k.paramSet === 'string' && typeof k.publicKey === 'string'
    && k.kdf?.name === 'scrypt' && Number.isInteger(k.kdf.N) && Number.isInteger(k.kdf.r) && Number.isInteger(k.kdf.p)
    && typeof k.kdf.salt === 'string' && k.cipher?.name === 'aes-256-gcm' && typeof k.cipher.iv === 'string'
    && typeof k.ciphertext === 'string' && typeof k.tag === 'string';
  if (!ok) throw keyError(file, `not a ${FORMAT} v1 file`);
  return k;
}

/** The public key a key file declares, without the passphrase. */
export async function readPublicKey(file: string): Promise<{ paramSet: ParamSet; publicKey: Uint8Array }> {
  const k = parseKeyFile(await fs.readFile(file, 'utf8'), file);
  return { paramSet: k.paramSet, publicKey: fromHex(k.publicKey) };
}

/** Decrypts a key file's text; a wrong passphrase or a tampered file is SIGNER_KEY_DECRYPT. */
export async function openKey(text: string, passphrase: string, file: string): Promise<{ paramSet: ParamSet; secretKey: Uint8Array; publicKey: Uint8Array }> {
  const k = parseKeyFile(text, file);
  const { ciphertext, tag, ...header } = k;
  const key = await deriveKey(passphrase, header.kdf);
  let secretKey: Uint8Array;
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(header.cipher.iv, 'hex'));
    decipher.setAAD(aad(header));
    decipher.setAuthTag(Buffer.from(tag, 'base64'));
    secretKey = new Uint8Array(Buffer.concat([decipher.update(Buffer.from(ciphertext, 'base64')), decipher.final()]));
  } catch {
    throw new FedError('SIGNER_KEY_DECRYPT', `key file ${file} does not decrypt: wrong passphrase, or the file was altered`, { file });
  } finally {
    key.fill(0);
  }
  const publicKey = publicKeyFromSecretKey(k.paramSet, secretKey);
  if (!bytesEqual(publicKey, fromHex(k.publicKey))) throw keyError(file, 'the secret key does not match the declared public key');
  return { paramSet: k.paramSet, secretKey, publicKey };
}

/** Refuses a file that group or others may read (or write): `what` names it in the error. */
export async function assertPrivateFile(file: string, what: string): Promise<void> {
  let mode: number;
  try {
    mode = (await fs.stat(file)).mode;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new FedError(code === 'ENOENT' ? 'SIGNER_KEY_MISSING' : 'SIGNER_KEY_UNREADABLE', `${what} ${file} cannot be read (${code})`, { file });
  }
  if ((mode & 0o077) !== 0) {
    throw new FedError('SIGNER_KEY_PERMISSIONS',
      `${what} ${file} has mode ${(mode & 0o777).toString(8).padStart(4, '0')}: others can read it; run chmod 600 ${file}`, { file, mode: mode & 0o777 });
  }
}

/** Writes a new key file (0600). Never replaces an existing key: that would lose a validator identity. */
export async function writeNewKeyFile(file: string, text: string, what = 'key file'): Promise<void> {
  try {
    await fs.access(file);
    throw new FedError('SIGNER_KEY_EXISTS', `${what} ${file} already exists; refusing to overwrite a validator key`, { file });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  await writeFileAtomic(file, text, { mode: 0o600 });
}

export type PassphraseSource = { file: string } | { env: string };

/** Reads the passphrase (a file must itself be 0600); one trailing newline is dropped. */
export async function readPassphrase(source: PassphraseSource, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  if ('env' in source) {
    const value = env[source.env];
    if (!value) throw new FedError('SIGNER_PASSPHRASE_MISSING', `environment variable ${source.env} (passphrase_env) is not set or empty`, { env: source.env });
    return value;
  }
  await assertPrivateFile(source.file, 'passphrase file');
  const text = await fs.readFile(source.file, 'utf8');
  const value = text.replace(/\r?\n$/, '');
  if (!value) throw new FedError('SIGNER_PASSPHRASE_MISSING', `passphrase file ${source.file} is empty`, { file: source.file });
  return value;
}
