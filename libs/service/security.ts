// A member's gRPC transport security, from conf.yaml's `tls` section: mutual TLS between its
// services with the member's own CA. Each service (and the operator, and client applications)
// holds its own certificate: `cert_file` and `key_file` name them with a `{service}` placeholder
// (`tls/{service}.pem` → tls/gateway.pem for the gateway), so one conf.yaml serves every host
// while each host holds only its own key. Without `tls`, plaintext, which libs/rpc allows on
// loopback only.

import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseConfText, resolvePath, type Conf } from '#libs/config/index.ts';
import type { ClientSecurity, ServerSecurity } from '#libs/rpc/index.ts';
import type { CallerCheck, ServiceRole } from './identity.ts';

export interface MemberSecurity {
  client: ClientSecurity;
  server: ServerSecurity;
  /** What this member's servers check callers against (libs/service/identity.ts). */
  check: CallerCheck;
}

export interface SecurityOptions {
  /**
   * The name the member's servers' certificates must carry. Default: the host of the address
   * dialled (an IP address is checked against the certificate's IP names, a DNS name against
   * its DNS names), so a signer on 10.0.1.1 must hold a certificate for 10.0.1.1. `btcfed init`
   * puts localhost, 127.0.0.1 and ::1 in every certificate, and the names of --server-names.
   */
  serverName?: string;
}

/** The placeholder in tls.cert_file and tls.key_file that names the service. */
export const SERVICE_PLACEHOLDER = '{service}';

/** `role`'s certificate and key files of a member (paths as in conf.yaml, `{service}` filled in). */
export function roleFiles(tls: NonNullable<Conf['tls']>, role: ServiceRole): { certFile: string; keyFile: string } {
  const fill = (p: string) => p.split(SERVICE_PLACEHOLDER).join(role);
  return { certFile: fill(tls.cert_file), keyFile: fill(tls.key_file) };
}

export function memberSecurity(conf: Pick<Conf, 'tls' | 'data_dir' | 'node'>, confDir: string, role: ServiceRole = 'client',
  opts: SecurityOptions = {}): MemberSecurity {
  const check: CallerCheck = { member: conf.node.name, mtls: conf.tls !== undefined };
  if (!conf.tls) return { client: { mode: 'insecure' }, server: { mode: 'insecure' }, check };
  const file = (p: string) => resolvePath(conf, confDir, p);
  const own = roleFiles(conf.tls, role);
  const files = { caFile: file(conf.tls.ca_file), certFile: file(own.certFile), keyFile: file(own.keyFile) };
  return { client: { mode: 'mtls', ...files, ...(opts.serverName ? { serverName: opts.serverName } : {}) }, server: { mode: 'mtls', ...files }, check };
}

/** For a service started with only --data-dir: read conf.yaml there (read-only; the store owns it). */
export function memberSecurityFromDir(dataDir: string | undefined, role: ServiceRole = 'client', opts: SecurityOptions = {}): MemberSecurity {
  if (!dataDir) return { client: { mode: 'insecure' }, server: { mode: 'insecure' }, check: { member: '', mtls: false } };
  const file = path.join(dataDir, 'conf.yaml');
  return memberSecurity(parseConfText(readFileSync(file, 'utf8'), file), dataDir, role, opts);
}
