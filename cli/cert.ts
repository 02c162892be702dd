// The certificates of a member after `btcfed init` / `member init` made them:
//   btcfed cert issue  — a client certificate for one application, signed by the member's CA;
//   btcfed cert check  — each certificate of a member dir, when it expires, and whether the
//                        member's CA issued it (no CA key needed: runs on any host);
//   btcfed cert renew  — every service certificate again (same subject, names, usages and key),
//                        each file replaced atomically, the fingerprints pinned in conf.yaml and
//                        signer.yaml following the certificate.
// A CA is used for a member only when it is that member's (CERT_CA_MISMATCH otherwise): m1's CA
// never signs m0's certificates. Must never write a key or CA key anywhere but where it was.

import fs from 'node:fs/promises';
import { existsSync, readFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import path from 'node:path';
import { parseDocument } from 'yaml';
import { parseConfText, parseDuration, parseSignerConfText, resolvePath } from '#libs/config/index.ts';
import { FedError } from '#libs/errors/index.ts';
import { writeFileAtomic } from '#libs/files/index.ts';
import { issueRoleCertificate, issuedBy, reissueCertificate, type CertificatePem } from '#libs/rpc/certs.ts';
import { certificateFingerprint } from '#libs/rpc/index.ts';
import { SERVICE_PLACEHOLDER, SERVICE_ROLES, appCertificateName, type ServiceRole } from '#libs/service/index.ts';

const DAY_MS = 86_400_000;

/** The common name `member init` gives member `name`'s CA: what ties a CA to its member. */
export const caCommonName = (member: string): string => `btcfed ${member} CA`;

export interface IssueOptions {
  /** The member's name (m0). */
  member: string;
  /** The member's CA dir: ca.pem and ca-key.pem (btcfed init: <out>/ca/<member>). */
  caDir: string;
  app: string;
  /** Where the certificate, its key and the CA certificate go (created, never overwritten). */
  out: string;
  validDays?: number;
  /** The member dir: its tls/ca.pem must be the CA in caDir (fingerprint). */
  memberDir?: string;
}

const subjectOf = (c: X509Certificate): string => c.subject.replace(/\n/g, ', ');

/** The member's CA from caDir (certificate and key), refused unless it is member `member`'s. */
export async function readMemberCa(caDir: string, member: string, memberCaFile?: string): Promise<CertificatePem> {
  const read = async (f: string) => {
    try {
      return await fs.readFile(path.join(caDir, f), 'utf8');
    } catch {
      throw new FedError('CERT_CA_MISSING', `${path.join(caDir, f)} not found: --ca-dir must hold the member's CA (ca.pem, ca-key.pem; btcfed init puts them in <out>/ca/<member>)`);
    }
  };
  const ca = { cert: await read('ca.pem'), key: await read('ca-key.pem') };
  checkCaOfMember(ca.cert, path.join(caDir, 'ca.pem'), member, memberCaFile);
  return ca;
}

/**
 * CERT_CA_MISMATCH unless the CA certificate is member `member`'s: its common name is the one
 * member init gives it, and, with `memberCaFile` (the member dir's tls/ca.pem, what its services
 * trust), it is that very certificate.
 */
export function checkCaOfMember(caPem: string, caFile: string, member: string, memberCaFile?: string): void {
  const ca = new X509Certificate(caPem);
  const want = `CN=${caCommonName(member)}`;
  if (!ca.subject.split('\n').includes(want)) {
    throw new FedError('CERT_CA_MISMATCH', `${caFile} is the CA "${subjectOf(ca)}", not member ${member}'s (${want}): a member's certificates are signed by its own CA only`,
      { caFile, member, subject: subjectOf(ca) });
  }
  if (memberCaFile === undefined) return;
  const theirs = certificateFingerprint(readFileSync(memberCaFile, 'utf8'));
  const ours = certificateFingerprint(caPem);
  if (theirs !== ours) {
    throw new FedError('CERT_CA_MISMATCH', `${caFile} (sha256 ${ours.slice(0, 16)}…) is not the CA member ${member}'s services trust, ${memberCaFile} (sha256 ${theirs.slice(0, 16)}…)`,
      { caFile, memberCaFile, member });
  }
}

export async function issueClientCert(o: IssueOptions): Promise<{ cert: string; key: string; ca: string; name: string }> {
  const name = appCertificateName(o.member, o.app);
  const ca = await readMemberCa(o.caDir, o.member, o.memberDir === undefined ? undefined : memberCertificates(o.memberDir).caFile);
  const leaf = await issueRoleCertificate(ca, 'client', { commonName: name, validDays: o.validDays });
  await fs.mkdir(o.out, { recursive: true, mode: 0o700 });
  const files = { cert: path.join(o.out, `${name}.pem`), key: path.join(o.out, `${name}-key.pem`), ca: path.join(o.out, `${o.member}-ca.pem`) };
  await fs.writeFile(files.cert, leaf.cert, { mode: 0o644, flag: 'wx' });
  await fs.writeFile(files.key, leaf.key, { mode: 0o600, flag: 'wx' });
  await fs.writeFile(files.ca, ca.cert, { mode: 0o644, flag: 'wx' }).catch((err: NodeJS.ErrnoException) => { if (err.code !== 'EEXIST') throw err; });
  return { ...files, name };
}

/** One certificate a member's service (or its operator, or its applications) presents. */
export interface MemberCertificate {
  role: ServiceRole;
  certFile: string;
  keyFile: string;
}

export interface MemberCertificates {
  member: string;
  /** The CA certificate the member's services trust. */
  caFile: string;
  /** Those present on this host (a member host has no signer's, a signer host only the signer's). */
  certs: MemberCertificate[];
  /** conf.yaml and signer.yaml, where fingerprints are pinned (those present). */
  confFiles: string[];
}

/**
 * The certificates of a member dir (or of a signer dir alone) as its conf.yaml and signer.yaml
 * name them: each role's through conf.yaml's {service} paths, the signer's from signer.yaml.
 */
export function memberCertificates(dir: string): MemberCertificates {
  const certs: MemberCertificate[] = [];
  const confFiles: string[] = [];
  let member: string | undefined;
  let caFile: string | undefined;
  const confFile = path.join(dir, 'conf.yaml');
  if (existsSync(confFile)) {
    const c = parseConfText(readFileSync(confFile, 'utf8'), confFile);
    member = c.node.name;
    confFiles.push(confFile);
    if (!c.tls) throw new FedError('CERT_NONE', `${confFile} has no tls section: the member runs without certificates`, { file: confFile });
    const at = (p: string) => resolvePath(c, dir, p);
    caFile = at(c.tls.ca_file);
    for (const role of SERVICE_ROLES) {
      if (role === 'signer') continue;
      const certFile = at(c.tls.cert_file.split(SERVICE_PLACEHOLDER).join(role));
      const keyFile = at(c.tls.key_file.split(SERVICE_PLACEHOLDER).join(role));
      if (existsSync(certFile) && existsSync(keyFile)) certs.push({ role, certFile, keyFile });
      if (!c.tls.cert_file.includes(SERVICE_PLACEHOLDER)) break; // one file for every service
    }
  }
  const signerDir = existsSync(path.join(dir, 'signer.yaml')) ? dir : path.join(dir, 'signer');
  const signerFile = path.join(signerDir, 'signer.yaml');
  if (existsSync(signerFile)) {
    const s = parseSignerConfText(readFileSync(signerFile, 'utf8'), signerFile);
    member ??= s.member;
    confFiles.push(signerFile);
    if (s.tls?.cert_file && s.tls.key_file) {
      const certFile = path.resolve(signerDir, s.tls.cert_file);
      const keyFile = path.resolve(signerDir, s.tls.key_file);
      if (existsSync(certFile) && existsSync(keyFile)) certs.push({ role: 'signer', certFile, keyFile });
      if (s.tls.ca_file) caFile ??= path.resolve(signerDir, s.tls.ca_file);
    }
  }
  if (member === undefined || caFile === undefined) {
    throw new FedError('CERT_NONE', `${dir} holds no conf.yaml or signer.yaml with TLS files: give a member dir (or a signer dir)`, { dir });
  }
  return { member, caFile, certs, confFiles };
}

/** Application certificates `cert issue` made (FILE.pem with FILE-key.pem beside it), as the member's client role. */
export function appCertificates(files: readonly string[]): MemberCertificate[] {
  return files.map((certFile) => {
    const keyFile = certFile.replace(/\.pem$/, '-key.pem');
    if (keyFile === certFile || !existsSync(certFile) || !existsSync(keyFile)) {
      throw new FedError('CLI_INVALID', `--app-cert ${certFile}: a certificate NAME.pem from btcfed cert issue, with NAME-key.pem beside it`, { file: certFile });
    }
    return { role: 'client' as const, certFile, keyFile };
  });
}

/** "30d", "12h", "90m": a window before expiry, in ms. */
export function parseWithin(text: string): number {
  const days = /^(\d+(?:\.\d+)?)d$/.exec(text.trim());
  if (days) return Number(days[1]) * DAY_MS;
  const d = parseDuration(text);
  if (!d.ok) throw new FedError('CLI_INVALID', `--within ${JSON.stringify(text)}: a duration such as 30d, 12h or 90m`);
  return d.value;
}

export interface CertificateState {
  role: ServiceRole;
  file: string;
  subject: string;
  notAfter: Date;
  /** Days until it expires (negative once expired). */
  daysLeft: number;
  /** Whether the member's CA (what its services trust) issued it. */
  fromMemberCa: boolean;
}

/** `btcfed cert check`: each certificate of the dir, its expiry, and whether the member's CA issued it. */
export async function checkCertificates(dir: string, now = new Date(), appCerts: readonly string[] = []): Promise<{ member: string; caFile: string; certs: CertificateState[] }> {
  const m = memberCertificates(dir);
  const caPem = await fs.readFile(m.caFile, 'utf8');
  const certs: CertificateState[] = [];
  for (const c of [...m.certs, ...appCertificates(appCerts)]) {
    const pem = await fs.readFile(c.certFile, 'utf8');
    const x = new X509Certificate(pem);
    const notAfter = new Date(x.validTo);
    certs.push({ role: c.role, file: c.certFile, subject: subjectOf(x), notAfter, daysLeft: (notAfter.getTime() - now.getTime()) / DAY_MS,
      fromMemberCa: await issuedBy(pem, caPem) });
  }
  return { member: m.member, caFile: m.caFile, certs };
}

export interface RenewOptions {
  /** The member dir (or a signer dir alone). */
  dir: string;
  /** The member's CA dir (ca.pem, ca-key.pem). */
  caDir: string;
  /** Renew only certificates expiring within this many ms; default every one. */
  withinMs?: number;
  /** Default: as long as each old certificate was valid. */
  validDays?: number;
  now?: Date;
  /** Application certificates from `cert issue` to renew too (NAME.pem, key NAME-key.pem). */
  appCerts?: readonly string[];
}

export interface Renewed {
  role: ServiceRole;
  file: string;
  subject: string;
  was: Date;
  until: Date;
  /** Where the new certificate's fingerprint was added beside the old one ("file: field"). */
  pinned: string[];
}

export interface RenewResult {
  member: string;
  renewed: Renewed[];
  /** Certificates left alone: not expiring within the window. */
  kept: { role: ServiceRole; file: string; until: Date }[];
}

/** Lists of fingerprints that name a certificate, by config file kind. */
const PINNED_FIELDS = [['services', 'consensus', 'admin_clients'], ['allowed_clients'], ['operator_clients']] as const;

/** Adds `next` after `old` in every pinned list of the config files that holds `old`; the files each replaced atomically. */
async function followPins(confFiles: readonly string[], old: string, next: string): Promise<string[]> {
  const where: string[] = [];
  for (const file of confFiles) {
    const text = await fs.readFile(file, 'utf8');
    const doc = parseDocument(text);
    let changed = false;
    for (const field of PINNED_FIELDS) {
      const list = doc.getIn([...field]) as { items?: { value?: unknown }[] } | undefined;
      const values = (list?.items ?? []).map((i) => (typeof i.value === 'string' ? i.value.replace(/[:\s]/g, '').toLowerCase() : i.value));
      if (!values.includes(old) || values.includes(next)) continue;
      doc.addIn([...field], next);
      changed = true;
      where.push(`${path.basename(file)}: ${field.join('.')}`);
    }
    if (!changed) continue;
    const out = doc.toString();
    if (path.basename(file) === 'signer.yaml') parseSignerConfText(out, file);
    else parseConfText(out, file);
    const st = await fs.stat(file);
    await writeFileAtomic(file, out, { mode: st.mode & 0o777 });
  }
  return where;
}

/**
 * `btcfed cert renew`: each certificate of the dir that expires within the window, issued again by
 * the member's CA with its subject, names, usages and key, the certificate file replaced atomically
 * (temp, fsync, rename, fsync of the dir); a fingerprint pinned for it (admin_clients,
 * allowed_clients, operator_clients) gets the new one beside it. Services read their TLS files at
 * start: restart them to present the new certificates.
 */
export async function renewCertificates(o: RenewOptions): Promise<RenewResult> {
  const m = memberCertificates(o.dir);
  const ca = await readMemberCa(o.caDir, m.member, m.caFile);
  const now = o.now ?? new Date();
  const result: RenewResult = { member: m.member, renewed: [], kept: [] };
  for (const c of [...m.certs, ...appCertificates(o.appCerts ?? [])]) {
    const old = { cert: await fs.readFile(c.certFile, 'utf8'), key: await fs.readFile(c.keyFile, 'utf8') };
    const x = new X509Certificate(old.cert);
    const was = new Date(x.validTo);
    if (o.withinMs !== undefined && was.getTime() - now.getTime() > o.withinMs) {
      result.kept.push({ role: c.role, file: c.certFile, until: was });
      continue;
    }
    let pem: string;
    try {
      pem = await reissueCertificate(ca, old, o.validDays === undefined ? {} : { validDays: o.validDays });
    } catch (err) {
      if (err instanceof FedError) throw new FedError(err.code, `${c.certFile}: ${err.message}`, { ...err.details, file: c.certFile });
      throw err;
    }
    const st = await fs.stat(c.certFile);
    await writeFileAtomic(c.certFile, pem, { mode: st.mode & 0o777 });
    const pinned = await followPins(m.confFiles, certificateFingerprint(old.cert), certificateFingerprint(pem));
    result.renewed.push({ role: c.role, file: c.certFile, subject: subjectOf(x), was, until: new Date(new X509Certificate(pem).validTo), pinned });
  }
  return result;
}
