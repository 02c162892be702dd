// Generates the TLS material a member needs: a CA, and CA-signed server and client
// certificates (ECDSA P-256 through WebCrypto), as PEM strings, for `btcfed init` to write
// and for tests to make at run time. Must never write files or keep keys: callers decide
// where PEM goes, and generated certificates are never committed.

import 'reflect-metadata'; // @peculiar/x509's dependency injection needs the Reflect metadata API
import * as x509 from '@peculiar/x509';
import { createPrivateKey, randomBytes, webcrypto } from 'node:crypto';
import { isIP } from 'node:net';
import { FedError } from '#libs/errors/index.ts';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

/** A certificate and its PKCS#8 private key, both PEM. */
export interface CertificatePem {
  cert: string;
  key: string;
}

export interface CaOptions {
  /** Default "btcfed CA". */
  commonName?: string;
  /** Default 3650. */
  validDays?: number;
}

export interface LeafOptions {
  commonName: string;
  /** Extra SANs besides localhost, 127.0.0.1 and ::1; IP literals become IP SANs. */
  names?: readonly string[];
  /** Default 825 (the longest browsers accept, a sane ceiling for services too). */
  validDays?: number;
}

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const DAY_MS = 86_400_000;
// Issued an hour in the past so a peer whose clock is a little behind still accepts it.
const BACKDATE_MS = 3_600_000;

function serialNumber(): string {
  const bytes = randomBytes(16);
  bytes[0] = ((bytes[0] ?? 0) & 0x7f) | 0x01; // positive and without a leading zero byte
  return bytes.toString('hex');
}

function validity(days: number): { notBefore: Date; notAfter: Date } {
  if (!Number.isInteger(days) || days < 1) {
    throw new FedError('CERT_OPTIONS_INVALID', `validDays must be a positive integer, got ${days}`, { days });
  }
  const now = Date.now();
  return { notBefore: new Date(now - BACKDATE_MS), notAfter: new Date(now + days * DAY_MS) };
}

function distinguishedName(commonName: string): string {
  if (!/^[\w .@-]{1,64}$/.test(commonName)) {
    throw new FedError('CERT_OPTIONS_INVALID', `common name ${JSON.stringify(commonName)} must be 1-64 letters, digits, space, ".", "@", "-" or "_"`);
  }
  return `CN=${commonName}, O=btcfed`;
}

async function newKeys(): Promise<webcrypto.CryptoKeyPair> {
  return webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify']) as Promise<webcrypto.CryptoKeyPair>;
}

async function keyPem(key: webcrypto.CryptoKey): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', key));
  return createPrivateKey({ key: der, format: 'der', type: 'pkcs8' }).export({ format: 'pem', type: 'pkcs8' }).toString();
}

async function importSigningKey(pem: string): Promise<webcrypto.CryptoKey> {
  const der = createPrivateKey(pem).export({ format: 'der', type: 'pkcs8' });
  return webcrypto.subtle.importKey('pkcs8', der, { name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign']);
}

export async function generateCa(opts: CaOptions = {}): Promise<CertificatePem> {
  const keys = await newKeys();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serialNumber(),
    name: distinguishedName(opts.commonName ?? 'btcfed CA'),
    ...validity(opts.validDays ?? 3650),
    signingAlgorithm: ALG,
    keys,
    extensions: [
      // pathLength 0: this CA signs leaves only.
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { cert: cert.toString('pem'), key: await keyPem(keys.privateKey) };
}

function subjectAltNames(names: readonly string[]): x509.JsonGeneralNames {
  const all = [...new Set(['localhost', '127.0.0.1', '::1', ...names])];
  return all.map((value) => ({ type: isIP(value) ? 'ip' : 'dns', value }));
}

async function issue(ca: CertificatePem, opts: LeafOptions, usages: readonly x509.ExtendedKeyUsage[]): Promise<CertificatePem> {
  const caCert = new x509.X509Certificate(ca.cert);
  const signingKey = await importSigningKey(ca.key);
  const keys = await newKeys();
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serialNumber(),
    subject: distinguishedName(opts.commonName),
    issuer: caCert.subject,
    ...validity(opts.validDays ?? 825),
    signingAlgorithm: ALG,
    publicKey: keys.publicKey,
    signingKey,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([...usages], false),
      new x509.SubjectAlternativeNameExtension(subjectAltNames(opts.names ?? []), false),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(caCert),
    ],
  });
  return { cert: cert.toString('pem'), key: await keyPem(keys.privateKey) };
}

/** A certificate a gRPC server presents (serverAuth). */
export function issueServerCertificate(ca: CertificatePem, opts: LeafOptions): Promise<CertificatePem> {
  return issue(ca, opts, [x509.ExtendedKeyUsage.serverAuth]);
}

/** A certificate for a service that both serves and calls others over mutual TLS. */
export function issueServiceCertificate(ca: CertificatePem, opts: LeafOptions): Promise<CertificatePem> {
  return issue(ca, opts, [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]);
}

/** A certificate for one use: a server (serverAuth), a client (clientAuth), or a service that is both. */
export function issueRoleCertificate(ca: CertificatePem, usage: 'server' | 'client' | 'both', opts: LeafOptions): Promise<CertificatePem> {
  switch (usage) {
    case 'server': return issueServerCertificate(ca, opts);
    case 'client': return issueClientCertificate(ca, opts);
    case 'both': return issueServiceCertificate(ca, opts);
    default: {
      const never: never = usage;
      throw new FedError('CERT_OPTIONS_INVALID', `unknown certificate usage ${JSON.stringify(never)}`);
    }
  }
}

/** A certificate a gRPC client presents for mutual TLS (clientAuth). */
export function issueClientCertificate(ca: CertificatePem, opts: LeafOptions): Promise<CertificatePem> {
  return issue(ca, opts, [x509.ExtendedKeyUsage.clientAuth]);
}
