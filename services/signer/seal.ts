// The sealed key file of `custody: pkcs11, mode: sealed`: the SLH-DSA secret key encrypted under
// a token's non-extractable AES-256 key (CKM_AES_GCM, a fresh 96-bit IV each time). The header —
// format, version, parameter set, public key, chain id, the token's label and serial, the key's
// label, the cipher — is the GCM additional data, so none of it can be swapped; after unsealing,
// the public key is derived from the secret key again and must be the header's.
// Must never write, log or put into an error the secret key in clear.

import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import { FedError } from '#libs/errors/index.ts';
import { bytesEqual, fromHex, isParamSet, publicKeyFromSecretKey, toHex, type ParamSet } from '#libs/crypto/index.ts';
import type { Token } from './pkcs11.ts';
import { writeNewKeyFile } from './keyfile.ts';

const FORMAT = 'btcfed-signer-sealed';

export interface SealedHeader {
  format: typeof FORMAT;
  version: 1;
  paramSet: ParamSet;
  publicKey: string;
  chainId: string;
  token: { label: string; serial: string };
  keyLabel: string;
  cipher: { name: 'aes-256-gcm'; mechanism: 'CKM_AES_GCM'; iv: string };
}
interface SealedFile extends SealedHeader { sealed: string }

const aad = (h: SealedHeader): Uint8Array =>
  Buffer.from(JSON.stringify([h.format, h.version, h.paramSet, h.publicKey, h.chainId, h.token, h.keyLabel, h.cipher]));

/** The sealed file's text: `secretKey` encrypted under the token's key `keyLabel`. */
export function sealSecretKey(token: Token, keyLabel: string, chainId: string, paramSet: ParamSet, secretKey: Uint8Array): string {
  token.assertNonExtractable(keyLabel);
  const header: SealedHeader = {
    format: FORMAT, version: 1, paramSet,
    publicKey: toHex(publicKeyFromSecretKey(paramSet, secretKey)),
    chainId,
    token: { label: token.label, serial: token.serial },
    keyLabel,
    cipher: { name: 'aes-256-gcm', mechanism: 'CKM_AES_GCM', iv: randomBytes(12).toString('hex') },
  };
  const sealed = token.encrypt(keyLabel, fromHex(header.cipher.iv), aad(header), secretKey);
  const file: SealedFile = { ...header, sealed: Buffer.from(sealed).toString('base64') };
  return `${JSON.stringify(file, null, 1)}\n`;
}

function corrupt(file: string, why: string): FedError {
  return new FedError('SIGNER_SEALED_CORRUPT', `sealed key ${file}: ${why}`, { file });
}

/** Parses a sealed file (no token needed): SIGNER_SEALED_CORRUPT naming the file otherwise. */
export function parseSealed(text: string, file: string): SealedFile {
  let k: SealedFile;
  try {
    k = JSON.parse(text) as SealedFile;
  } catch {
    throw corrupt(file, 'not JSON (truncated, or not a sealed signer key)');
  }
  const ok = k !== null && typeof k === 'object' && k.format === FORMAT && k.version === 1 && isParamSet(k.paramSet)
    && typeof k.publicKey === 'string' && /^([0-9a-f]{2})+$/.test(k.publicKey) && typeof k.chainId === 'string'
    && typeof k.token?.label === 'string' && typeof k.token.serial === 'string' && typeof k.keyLabel === 'string'
    && k.cipher?.name === 'aes-256-gcm' && k.cipher.mechanism === 'CKM_AES_GCM' && typeof k.cipher.iv === 'string' && /^[0-9a-f]{24}$/.test(k.cipher.iv)
    && typeof k.sealed === 'string' && k.sealed.length > 0;
  if (!ok) throw corrupt(file, `not a ${FORMAT} v1 file`);
  return k;
}

/** The public key and where it is sealed, without the token. */
export async function readSealedHeader(file: string): Promise<SealedHeader> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new FedError(code === 'ENOENT' ? 'SIGNER_KEY_MISSING' : 'SIGNER_KEY_UNREADABLE', `sealed key ${file} cannot be read (${code})`, { file });
  }
  const { sealed: _, ...header } = parseSealed(text, file);
  return header;
}

export interface Unsealed { paramSet: ParamSet; secretKey: Uint8Array; publicKey: Uint8Array }

/**
 * Unseals into this process's memory. Refused: a blob of another chain or key label than
 * expected (SIGNER_SEALED_MISMATCH), a tag the token rejects (SIGNER_SEALED_DECRYPT: another
 * token's key, or altered), a secret key whose public key is not the header's (SIGNER_SEALED_MISMATCH).
 */
export function unsealSecretKey(token: Token, text: string, file: string, expect: { keyLabel: string; chainId: string }): Unsealed {
  const k = parseSealed(text, file);
  const { sealed, ...header } = k;
  if (header.keyLabel !== expect.keyLabel || header.chainId !== expect.chainId) {
    throw new FedError('SIGNER_SEALED_MISMATCH',
      `sealed key ${file} was sealed for chain ${header.chainId} under key "${header.keyLabel}" of token "${header.token.label}", but signer.yaml says chain ${expect.chainId}, key_label "${expect.keyLabel}"`,
      { file, keyLabel: header.keyLabel, token: header.token.label });
  }
  const secretKey = token.decrypt(expect.keyLabel, fromHex(header.cipher.iv), aad(header), Buffer.from(sealed, 'base64'), file);
  let publicKey: Uint8Array;
  try {
    publicKey = publicKeyFromSecretKey(header.paramSet, secretKey);
  } catch {
    secretKey.fill(0);
    throw new FedError('SIGNER_SEALED_MISMATCH', `sealed key ${file} unsealed to something that is not a ${header.paramSet} secret key`, { file });
  }
  if (!bytesEqual(publicKey, fromHex(header.publicKey))) {
    secretKey.fill(0);
    throw new FedError('SIGNER_SEALED_MISMATCH', `sealed key ${file}: the secret key's public key ${toHex(publicKey).slice(0, 16)}… is not the declared ${header.publicKey.slice(0, 16)}…`, { file });
  }
  return { paramSet: header.paramSet, secretKey, publicKey };
}

/** Writes a new sealed file (0600); never replaces one (that would lose a validator identity). */
export function writeNewSealedFile(file: string, text: string): Promise<void> {
  return writeNewKeyFile(file, text, 'sealed key');
}
