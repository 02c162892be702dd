// Turns the transport-security part of a service's config into grpc-js credentials.
// Three modes only: insecure (loopback only), TLS, mutual TLS. Must never fall back to
// plaintext when a TLS file is missing or wrong: it throws and the service does not start.

import * as grpc from '@grpc/grpc-js';
import { assertInsecureAllowed } from './address.ts';
import { readCaBundle, readKeyPair } from './tls-files.ts';

/** How a server listens. File paths point at PEM files (from config). */
export type ServerSecurity =
  | { mode: 'insecure' }
  | { mode: 'tls'; certFile: string; keyFile: string }
  /** Clients must present a certificate signed by a CA in `caFile`. */
  | { mode: 'mtls'; certFile: string; keyFile: string; caFile: string };

/** How a client connects. Without `caFile`, TLS trusts the system roots. */
export type ClientSecurity =
  | { mode: 'insecure' }
  | { mode: 'tls'; caFile?: string; serverName?: string }
  | { mode: 'mtls'; caFile: string; certFile: string; keyFile: string; serverName?: string };

/**
 * Reads and checks the files now; the loopback rule for 'insecure' is checked per bind
 * address by the server, which knows where it listens.
 */
export function serverCredentials(security: ServerSecurity): grpc.ServerCredentials {
  switch (security.mode) {
    case 'insecure':
      return grpc.ServerCredentials.createInsecure();
    case 'tls': {
      const pair = readKeyPair(security.certFile, security.keyFile);
      return grpc.ServerCredentials.createSsl(null, [{ cert_chain: pair.cert, private_key: pair.key }], false);
    }
    case 'mtls': {
      const pair = readKeyPair(security.certFile, security.keyFile);
      const ca = readCaBundle(security.caFile);
      return grpc.ServerCredentials.createSsl(ca, [{ cert_chain: pair.cert, private_key: pair.key }], true);
    }
    default: {
      const never: never = security;
      throw new Error(`unknown server security mode ${JSON.stringify(never)}`);
    }
  }
}

export interface ChannelSetup {
  credentials: grpc.ChannelCredentials;
  options: grpc.ChannelOptions;
}

export function channelCredentials(security: ClientSecurity, address: string): ChannelSetup {
  // The name checked against the server certificate when dialling by IP or an alias.
  const override = (name: string | undefined): grpc.ChannelOptions =>
    name ? { 'grpc.ssl_target_name_override': name, 'grpc.default_authority': name } : {};
  switch (security.mode) {
    case 'insecure':
      assertInsecureAllowed(address, 'client');
      return { credentials: grpc.credentials.createInsecure(), options: {} };
    case 'tls': {
      const ca = security.caFile ? readCaBundle(security.caFile) : null;
      return { credentials: grpc.credentials.createSsl(ca), options: override(security.serverName) };
    }
    case 'mtls': {
      const ca = readCaBundle(security.caFile);
      const pair = readKeyPair(security.certFile, security.keyFile);
      return { credentials: grpc.credentials.createSsl(ca, pair.key, pair.cert), options: override(security.serverName) };
    }
    default: {
      const never: never = security;
      throw new Error(`unknown client security mode ${JSON.stringify(never)}`);
    }
  }
}
