// A member's gRPC transport security, from conf.yaml's `tls` section: mutual TLS between its
// services with the member's CA, certificate and key (each service is a server to some and a
// client of others, so one certificate carries both uses); without `tls`, plaintext, which
// libs/rpc allows on loopback only.

import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseConfText, resolvePath, type Conf } from '#libs/config/index.ts';
import type { ClientSecurity, ServerSecurity } from '#libs/rpc/index.ts';

export interface MemberSecurity { client: ClientSecurity; server: ServerSecurity }

export function memberSecurity(conf: Pick<Conf, 'tls' | 'data_dir'>, confDir: string): MemberSecurity {
  if (!conf.tls) return { client: { mode: 'insecure' }, server: { mode: 'insecure' } };
  const file = (p: string) => resolvePath(conf, confDir, p);
  const files = { caFile: file(conf.tls.ca_file), certFile: file(conf.tls.cert_file), keyFile: file(conf.tls.key_file) };
  // Certificates name the member's hosts; on one machine that is localhost.
  return { client: { mode: 'mtls', ...files, serverName: 'localhost' }, server: { mode: 'mtls', ...files } };
}

/** For a service started with only --data-dir: read conf.yaml there (read-only; the store owns it). */
export function memberSecurityFromDir(dataDir: string | undefined): MemberSecurity {
  if (!dataDir) return { client: { mode: 'insecure' }, server: { mode: 'insecure' } };
  const file = path.join(dataDir, 'conf.yaml');
  return memberSecurity(parseConfText(readFileSync(file, 'utf8'), file), dataDir);
}
