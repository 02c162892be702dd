// Reads and checks the PEM files named in config before gRPC sees them, so a bad path or
// a mismatched key fails at startup with the file and the reason, not as a vague handshake
// error on the first call. Must never log or put key material into an error.

import { readFileSync } from 'node:fs';
import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';
import { FedError, errorMessage } from '#libs/errors/index.ts';

export type PemRole = 'certificate' | 'private key' | 'CA certificate';

const CERT_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

export function readPemFile(path: string, role: PemRole): Buffer {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? errorMessage(err);
    throw new FedError('RPC_TLS_FILE_UNREADABLE', `TLS ${role} file ${path} cannot be read (${code})`,
      { file: path, role }, { cause: err });
  }
  if (!bytes.toString('latin1').includes('-----BEGIN ')) {
    throw new FedError('RPC_TLS_FILE_INVALID', `TLS ${role} file ${path} is not PEM (no "-----BEGIN" line)`,
      { file: path, role });
  }
  return bytes;
}

function parseCertificates(pem: Buffer, path: string, role: PemRole): X509Certificate[] {
  const blocks = pem.toString('latin1').match(CERT_BLOCK) ?? [];
  if (blocks.length === 0) {
    throw new FedError('RPC_TLS_CERT_INVALID', `TLS ${role} file ${path} holds no "BEGIN CERTIFICATE" block`,
      { file: path, role });
  }
  return blocks.map((block, index) => {
    try {
      return new X509Certificate(block);
    } catch (err) {
      throw new FedError('RPC_TLS_CERT_INVALID',
        `TLS ${role} file ${path}: certificate #${index + 1} does not parse (${errorMessage(err)})`,
        { file: path, role, index }, { cause: err });
    }
  });
}

/** The certificates in a PEM file, parsed (RPC_TLS_FILE_UNREADABLE / RPC_TLS_CERT_INVALID otherwise). */
export function certificatesIn(path: string, role: PemRole): X509Certificate[] {
  return parseCertificates(readPemFile(path, role), path, role);
}

function checkDates(cert: X509Certificate, path: string, role: PemRole, now: Date): void {
  const from = new Date(cert.validFrom);
  const to = new Date(cert.validTo);
  if (to.getTime() <= now.getTime()) {
    throw new FedError('RPC_TLS_CERT_EXPIRED', `TLS ${role} in ${path} expired on ${to.toISOString()} (subject ${cert.subject.replace(/\n/g, ', ')})`,
      { file: path, role, notAfter: to.toISOString() });
  }
  if (from.getTime() > now.getTime()) {
    throw new FedError('RPC_TLS_CERT_NOT_YET_VALID', `TLS ${role} in ${path} is not valid before ${from.toISOString()} (check the clock)`,
      { file: path, role, notBefore: from.toISOString() });
  }
}

export interface KeyPairPem {
  cert: Buffer;
  key: Buffer;
}

/** A certificate (chain) and its private key, checked to belong together and to be in date. */
export function readKeyPair(certFile: string, keyFile: string, now = new Date()): KeyPairPem {
  const cert = readPemFile(certFile, 'certificate');
  const key = readPemFile(keyFile, 'private key');
  const [leaf] = parseCertificates(cert, certFile, 'certificate');
  if (!leaf) throw new FedError('RPC_TLS_CERT_INVALID', `TLS certificate file ${certFile} is empty`, { file: certFile });
  checkDates(leaf, certFile, 'certificate', now);
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(key);
  } catch (err) {
    throw new FedError('RPC_TLS_KEY_INVALID', `TLS private key file ${keyFile} does not parse (${errorMessage(err)}); encrypted keys are not supported`,
      { file: keyFile, role: 'private key' }, { cause: err });
  }
  if (!leaf.checkPrivateKey(privateKey)) {
    throw new FedError('RPC_TLS_KEY_MISMATCH', `TLS private key ${keyFile} does not belong to the certificate in ${certFile}`,
      { certFile, keyFile });
  }
  return { cert, key };
}

/** A CA bundle: every certificate in it must be a CA and in date. */
export function readCaBundle(caFile: string, now = new Date()): Buffer {
  const pem = readPemFile(caFile, 'CA certificate');
  const certs = parseCertificates(pem, caFile, 'CA certificate');
  certs.forEach((cert, index) => {
    if (!cert.ca) {
      throw new FedError('RPC_TLS_CA_INVALID',
        `TLS CA file ${caFile}: certificate #${index + 1} (${cert.subject.replace(/\n/g, ', ')}) is not a CA (basicConstraints CA:FALSE)`,
        { file: caFile, index });
    }
    checkDates(cert, caFile, 'CA certificate', now);
  });
  return pem;
}
