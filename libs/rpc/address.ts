// Parsing of gRPC bind/target addresses and the loopback rule for plaintext: an insecure
// channel or listener is allowed only where no other host can reach it.
// Must never treat an address it cannot parse as loopback.

import { isIP } from 'node:net';
import { FedError } from '#libs/errors/index.ts';

export interface HostPort {
  host: string;
  port: number;
}

/**
 * Parses "host:port", "[v6]:port", optionally prefixed by "dns:", "ipv4:" or "ipv6:" as
 * grpc-js targets may be. A bare IPv6 address without brackets is refused (ambiguous).
 */
export function parseAddress(address: string): HostPort {
  const bad = (why: string): never => {
    throw new FedError('RPC_ADDRESS_INVALID', `invalid gRPC address ${JSON.stringify(address)}: ${why}`, { address });
  };
  let rest = address.trim().replace(/^(dns:(\/\/[^/]*\/)?|ipv4:|ipv6:)/, '');
  let host: string;
  if (rest.startsWith('[')) {
    const end = rest.indexOf(']');
    if (end < 0) bad('missing "]"');
    host = rest.slice(1, end);
    rest = rest.slice(end + 1);
    if (!rest.startsWith(':')) bad('expected ":port" after "]"');
    rest = rest.slice(1);
  } else {
    const colon = rest.lastIndexOf(':');
    if (colon < 0) bad('expected host:port');
    host = rest.slice(0, colon);
    rest = rest.slice(colon + 1);
    if (host.includes(':')) bad('an IPv6 address must be written in brackets, e.g. [::1]:50051');
  }
  if (host === '') bad('empty host');
  if (!/^\d{1,5}$/.test(rest)) bad('port must be a number');
  const port = Number(rest);
  if (port > 65535) bad('port out of range');
  return { host, port };
}

/**
 * A listen address as a dial target: a wildcard host (0.0.0.0, ::) — a service told to listen on
 * every interface — is dialled on this host's loopback (127.0.0.1, ::1), which its certificate
 * always names. Any other address is returned as it is.
 */
export function dialTarget(address: string): string {
  const { host, port } = parseAddress(address);
  if (host === '0.0.0.0') return `127.0.0.1:${port}`;
  if (host === '::' || host === '0:0:0:0:0:0:0:0') return `[::1]:${port}`;
  return address;
}

/** 127.0.0.0/8, ::1 (and its IPv4-mapped form of 127/8), or the name localhost. */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase();
  if (h === 'localhost') return true;
  switch (isIP(h)) {
    case 4:
      return h.startsWith('127.');
    case 6:
      if (h === '::1' || h === '0:0:0:0:0:0:0:1') return true;
      return /^::ffff:127\.\d+\.\d+\.\d+$/.test(h);
    default:
      return false;
  }
}

/** Throws RPC_INSECURE_NON_LOOPBACK unless plaintext on `address` stays on this machine. */
export function assertInsecureAllowed(address: string, side: 'server' | 'client'): void {
  const { host } = parseAddress(address);
  if (!isLoopbackHost(host)) {
    throw new FedError('RPC_INSECURE_NON_LOOPBACK',
      `insecure gRPC ${side} on ${address} refused: plaintext is allowed only on loopback (127.0.0.0/8, ::1, localhost); configure TLS`,
      { address, host, side });
  }
}
