// conf.yaml's `nats` section (libs/config natsSection) as the NATS client's connect options:
// the servers, at most one way to authenticate (user and password, token, creds, nkey seed),
// and TLS. Secrets are read from their files here, at connect time; a missing or unreadable
// file is an error that names the field and the file.

import { readFileSync } from 'node:fs';
import { credsAuthenticator, nkeyAuthenticator, type NodeConnectionOptions } from '@nats-io/transport-node';
import { FedError, errorMessage } from '#libs/errors/index.ts';
import type { Conf } from '#libs/config/index.ts';

export type NatsConf = Conf['nats'];
export type NatsConnectOptions = Pick<NodeConnectionOptions, 'servers' | 'user' | 'pass' | 'token' | 'authenticator' | 'tls'>;

/** `resolve` turns a path as written in the file into one to open (relative to the member dir). */
export function natsConnectOptions(nats: NatsConf, resolve: (p: string) => string = (p) => p): NatsConnectOptions {
  const read = (field: string, p: string): string => {
    const file = resolve(p);
    try {
      return readFileSync(file, 'utf8');
    } catch (err) {
      throw new FedError('NATS_CONFIG_INVALID', `nats.${field}: cannot read ${file}: ${errorMessage(err)}`, { field, file });
    }
  };
  const out: NatsConnectOptions = { servers: nats.servers ?? [nats.url] };
  if (nats.user !== undefined && nats.password_file !== undefined) {
    out.user = nats.user;
    out.pass = read('password_file', nats.password_file).trim();
  }
  if (nats.token_file !== undefined) out.token = read('token_file', nats.token_file).trim();
  if (nats.creds_file !== undefined) out.authenticator = credsAuthenticator(new TextEncoder().encode(read('creds_file', nats.creds_file)));
  if (nats.nkey_seed_file !== undefined) out.authenticator = nkeyAuthenticator(new TextEncoder().encode(read('nkey_seed_file', nats.nkey_seed_file).trim()));
  if (nats.tls) {
    const tls: NonNullable<NatsConnectOptions['tls']> = {};
    if (nats.tls.ca_file !== undefined) tls.ca = read('tls.ca_file', nats.tls.ca_file);
    if (nats.tls.cert_file !== undefined) tls.cert = read('tls.cert_file', nats.tls.cert_file);
    if (nats.tls.key_file !== undefined) tls.key = read('tls.key_file', nats.tls.key_file);
    out.tls = tls;
  }
  return out;
}
