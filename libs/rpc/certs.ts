// Generates the TLS material a member needs: a CA, and CA-signed server and client
// certificates (ECDSA P-256 through WebCrypto), as PEM strings, for `btcfed init` to write
// and for tests to make at run time. Must never write files or keep keys: callers decide
// where PEM goes, and generated certificates are never committed.

import 'reflect-metadata'; // @peculiar/x509's dependency injection needs the Reflect metadata API
import * as x509 from '@peculiar/x509';
import { createPrivateKey, createPublicKey, randomBytes, webcrypto } from 'node:crypto';
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

interface LeafSpec {
  subject: string;
  names: x509.JsonGeneralNames;
  usages: readonly x509.ExtendedKeyUsageType[];
  validDays: number;
  publicKey: webcrypto.CryptoKey;
}

async function sign(ca: CertificatePem, spec: LeafSpec): Promise<string> {
  const caCert = new x509.X509Certificate(ca.cert);
  const signingKey = await importSigningKey(ca.key);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serialNumber(),
    subject: spec.subject,
    issuer: caCert.subject,
    ...validity(spec.validDays),
    signingAlgorithm: ALG,
    publicKey: spec.publicKey,
    signingKey,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([...spec.usages], false),
      new x509.SubjectAlternativeNameExtension(spec.names, false),
      await x509.SubjectKeyIdentifierExtension.create(spec.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(caCert),
    ],
  });
  return cert.toString('pem');
}

async function issue(ca: CertificatePem, opts: LeafOptions, usages: readonly x509.ExtendedKeyUsage[]): Promise<CertificatePem> {
  const keys = await newKeys();
  const cert = await sign(ca, { subject: distinguishedName(opts.commonName), names: subjectAltNames(opts.names ?? []), usages,
    validDays: opts.validDays ?? 825, publicKey: keys.publicKey });
  return { cert, key: await keyPem(keys.privateKey) };
}

/** True when `certPem` carries a signature by the CA certificate `caPem`'s key (dates not checked). */
export async function issuedBy(certPem: string, caPem: string): Promise<boolean> {
  const cert = new x509.X509Certificate(certPem);
  const ca = new x509.X509Certificate(caPem);
  if (cert.issuer !== ca.subject) return false;
  return cert.verify({ publicKey: ca.publicKey, signatureOnly: true });
}

export interface ReissueOptions {
  /** Default: as long as the old certificate was valid. */
  validDays?: number;
}

/**
 * The same certificate again, newly dated: the subject, the names (SANs), the extended key usages
 * and the key of `old`, signed by `ca`. Keeping the key means the certificate file alone changes,
 * so a service never reads a new certificate with an old key. Refuses a certificate `ca` did not
 * issue (CERT_CA_MISMATCH) and a key that is not the certificate's (CERT_KEY_MISMATCH).
 */
export async function reissueCertificate(ca: CertificatePem, old: CertificatePem, opts: ReissueOptions = {}): Promise<string> {
  const cert = new x509.X509Certificate(old.cert);
  if (!(await issuedBy(old.cert, ca.cert))) {
    throw new FedError('CERT_CA_MISMATCH', `certificate ${cert.subject} (issuer ${cert.issuer}) was not issued by the CA ${new x509.X509Certificate(ca.cert).subject}`,
      { subject: cert.subject, issuer: cert.issuer });
  }
  const spki = createPublicKey(old.key).export({ format: 'der', type: 'spki' });
  if (!Buffer.from(cert.publicKey.rawData).equals(spki)) {
    throw new FedError('CERT_KEY_MISMATCH', `the private key given for ${cert.subject} is not the key of its certificate`, { subject: cert.subject });
  }
  const publicKey = await webcrypto.subtle.importKey('spki', spki, { name: 'ECDSA', namedCurve: 'P-256' }, true, ['verify']);
  const san = cert.getExtension(x509.SubjectAlternativeNameExtension);
  const eku = cert.getExtension(x509.ExtendedKeyUsageExtension);
  const days = opts.validDays ?? Math.max(1, Math.round((cert.notAfter.getTime() - cert.notBefore.getTime() - BACKDATE_MS) / DAY_MS));
  return sign(ca, { subject: cert.subject, names: san ? san.names.toJSON() : [], usages: eku ? eku.usages : [], validDays: days, publicKey });
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
