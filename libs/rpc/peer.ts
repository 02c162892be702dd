// Who is calling: the client certificate a mutual-TLS call presented, in a form handlers
// can authorise on (the signer and the admin API allow-list certificate fingerprints).
// Must never treat a call without a verified client certificate as authenticated.

import { createHash, X509Certificate } from 'node:crypto';
import type { PeerCertificate as TlsPeerCertificate } from 'node:tls';
import { FedError } from '#libs/errors/index.ts';

export interface PeerCertificate {
  /** Distinguished name, comma separated, e.g. "CN=consensus,O=btcfed". */
  subject: string;
  commonName: string | undefined;
  issuer: string;
  /** SHA-256 of the DER certificate, lowercase hex without colons. */
  fingerprint256: string;
  /** e.g. ["DNS:localhost", "IP Address:127.0.0.1"]. */
  subjectAltNames: string[];
  validTo: Date;
  raw: Buffer;
}

/** Any server call: grpc-js exposes the TLS peer through getAuthContext(). */
export interface CallWithAuthContext {
  getAuthContext(): { transportSecurityType?: string; sslPeerCertificate?: TlsPeerCertificate } | null;
}

function distinguishedName(name: TlsPeerCertificate['subject'] | undefined): string {
  if (!name) return '';
  return Object.entries(name)
    .map(([k, v]) => (Array.isArray(v) ? v.map((x) => `${k}=${x}`).join(',') : `${k}=${v}`))
    .join(',');
}

/** Lowercase hex without separators, whatever form (colons, upper case) it was written in. */
export function normalizeFingerprint(fingerprint: string): string {
  return fingerprint.replace(/[:\s]/g, '').toLowerCase();
}

/** The SHA-256 fingerprint of a PEM certificate, in the form peerCertificate reports. */
export function certificateFingerprint(pem: string | Buffer): string {
  return createHash('sha256').update(new X509Certificate(pem).raw).digest('hex');
}

/** The verified client certificate of a call, or undefined (no TLS, or no client certificate). */
export function peerCertificate(call: CallWithAuthContext): PeerCertificate | undefined {
  const cert = call.getAuthContext()?.sslPeerCertificate;
  // Node returns an empty object, not null, when the peer sent no certificate.
  if (!cert?.raw || cert.raw.length === 0) return undefined;
  const cn = cert.subject?.CN;
  return {
    subject: distinguishedName(cert.subject),
    commonName: Array.isArray(cn) ? cn[0] : cn,
    issuer: distinguishedName(cert.issuer),
    fingerprint256: createHash('sha256').update(cert.raw).digest('hex'),
    subjectAltNames: cert.subjectaltname ? cert.subjectaltname.split(/,\s*/) : [],
    validTo: new Date(cert.valid_to),
    raw: cert.raw,
  };
}

/**
 * The caller's certificate if its fingerprint is allowed; otherwise FedError
 * 'RPC_PEER_UNAUTHENTICATED' (no certificate) or 'RPC_PEER_NOT_ALLOWED'.
 */
export function requirePeer(call: CallWithAuthContext, allowedFingerprints: Iterable<string>): PeerCertificate {
  const peer = peerCertificate(call);
  if (!peer) {
    throw new FedError('RPC_PEER_UNAUTHENTICATED', 'a client certificate is required');
  }
  const allowed = new Set([...allowedFingerprints].map(normalizeFingerprint));
  if (!allowed.has(peer.fingerprint256)) {
    throw new FedError('RPC_PEER_NOT_ALLOWED', `client certificate ${peer.subject} (sha256 ${peer.fingerprint256}) is not allowed`,
      { subject: peer.subject, fingerprint256: peer.fingerprint256 });
  }
  return peer;
}
