// Turns the transport-security part of a service's config into grpc-js credentials.
// Three modes only: insecure (loopback only), TLS, mutual TLS. Must never fall back to
// plaintext when a TLS file is missing or wrong: it throws and the service does not start.

import * as grpc from '@grpc/grpc-js';
import { isIP } from 'node:net';
import { checkServerIdentity } from 'node:tls';
import { assertInsecureAllowed, parseAddress } from './address.ts';
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

/**
 * How the server's certificate is checked: against `serverName` when given, else against the
 * host dialled (an IP against the certificate's IP names). TLS does not allow an IP address as
 * the SNI server name (RFC 6066; Node warns), so for an IP the handshake names "localhost" and
 * our own identity check still verifies the IP itself.
 */
function nameCheck(serverName: string | undefined, address: string): { options: grpc.ChannelOptions; verify: grpc.VerifyOptions } {
  const expected = serverName ?? parseAddress(address).host;
  const sni = isIP(expected) ? 'localhost' : expected;
  const options: grpc.ChannelOptions = serverName || isIP(expected) ? { 'grpc.ssl_target_name_override': sni, 'grpc.default_authority': sni } : {};
  return { options, verify: { checkServerIdentity: (_name, cert) => checkServerIdentity(expected, cert) } };
}

export function channelCredentials(security: ClientSecurity, address: string): ChannelSetup {
  switch (security.mode) {
    case 'insecure':
      assertInsecureAllowed(address, 'client');
      return { credentials: grpc.credentials.createInsecure(), options: {} };
    case 'tls': {
      const ca = security.caFile ? readCaBundle(security.caFile) : null;
      const check = nameCheck(security.serverName, address);
      return { credentials: grpc.credentials.createSsl(ca, null, null, check.verify), options: check.options };
    }
    case 'mtls': {
      const ca = readCaBundle(security.caFile);
      const pair = readKeyPair(security.certFile, security.keyFile);
      const check = nameCheck(security.serverName, address);
      return { credentials: grpc.credentials.createSsl(ca, pair.key, pair.cert, check.verify), options: check.options };
    }
    default: {
      const never: never = security;
      throw new Error(`unknown client security mode ${JSON.stringify(never)}`);
    }
  }
}
