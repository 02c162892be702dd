// Who a member's gRPC caller is: under mutual TLS with the member's own CA, each service and
// each person holds its own certificate, named `<member>-<role>` (e.g. "m0-consensus"), and
// servers authorise on that role. The CA is the member's alone (btcfed init makes one per
// member), so a certificate that passed the handshake was issued for this member; the name
// check also refuses another member's certificate where a CA is shared by mistake.
// Must never treat a plaintext call as a role: without TLS there is no identity, only loopback.

import { FedError } from '#libs/errors/index.ts';
import { peerCertificate, type CallWithAuthContext } from '#libs/rpc/index.ts';

/** Every identity of a member; each has its own certificate and key. */
export const SERVICE_ROLES = ['store', 'gateway', 'consensus', 'signer', 'operator', 'client'] as const;
export type ServiceRole = (typeof SERVICE_ROLES)[number];

/** What each certificate may be used for (extended key usage): a role serves, calls, or both. */
export const ROLE_USAGE: Readonly<Record<ServiceRole, 'server' | 'client' | 'both'>> = {
  store: 'server', // answers the gateway, consensus and the operator; calls nobody over gRPC
  gateway: 'both', // serves Attach and ListPeers; calls the store
  consensus: 'both', // serves the public and admin APIs; calls the store, the gateway and the signer
  signer: 'server', // answers consensus only; calls nobody
  operator: 'client', // a person: AdminService, the store's write API, the CLI
  client: 'client', // an application: the public ConsensusService only
};

/** The common name of `role`'s certificate in `member`: "m0-consensus". */
export function certificateName(member: string, role: ServiceRole): string {
  return `${member}-${role}`;
}

/** An application's own name within a member's clients: lower-case letters, digits, dashes. */
export const APP_NAME = /^[a-z0-9][a-z0-9-]{0,31}$/;

/**
 * The common name of one application's client certificate: "m0-client-payments". Each
 * application gets its own (`btcfed cert issue`), so the member's logs and guards tell them
 * apart and one can be replaced without the others; the role is `client`.
 */
export function appCertificateName(member: string, app: string): string {
  if (!APP_NAME.test(app)) throw new FedError('CERT_OPTIONS_INVALID', `application name "${app}": lower-case letters, digits and dashes, at most 32`);
  return `${certificateName(member, 'client')}-${app}`;
}

/** What a server of `member` needs to know to tell callers apart. */
export interface CallerCheck {
  member: string;
  /** True when the server runs mutual TLS; false (plaintext on loopback) leaves nothing to check. */
  mtls: boolean;
}

export type Caller =
  | { kind: 'plaintext' }
  | { kind: 'service'; role: ServiceRole; name: string; fingerprint256: string };

/**
 * The caller's role from its verified certificate; FedError 'RPC_PEER_UNAUTHENTICATED' without one
 * under mTLS, 'RPC_PEER_NOT_ALLOWED' when the name is not `<member>-<role>` of this member.
 */
export function callerOf(call: CallWithAuthContext, check: CallerCheck): Caller {
  if (!check.mtls) return { kind: 'plaintext' };
  const peer = peerCertificate(call);
  if (!peer) throw new FedError('RPC_PEER_UNAUTHENTICATED', 'a client certificate is required');
  const name = peer.commonName ?? '';
  const appPrefix = `${certificateName(check.member, 'client')}-`;
  const role = SERVICE_ROLES.find((r) => name === certificateName(check.member, r))
    ?? (name.startsWith(appPrefix) && APP_NAME.test(name.slice(appPrefix.length)) ? 'client' : undefined);
  if (!role) {
    throw new FedError('RPC_PEER_NOT_ALLOWED',
      `client certificate CN=${name || '(none)'} is not one of member ${check.member}'s (${certificateName(check.member, 'consensus')}, …); `
      + 'certificates made before per-service certificates need a new btcfed init', { subject: peer.subject, fingerprint256: peer.fingerprint256 });
  }
  return { kind: 'service', role, name, fingerprint256: peer.fingerprint256 };
}

/** The caller, if its role is one of `allowed` (always, for plaintext); else FedError 'RPC_PEER_NOT_ALLOWED'. */
export function requireRole(call: CallWithAuthContext, check: CallerCheck, allowed: readonly ServiceRole[], what: string): Caller {
  const caller = callerOf(call, check);
  if (caller.kind === 'service' && !allowed.includes(caller.role)) {
    throw new FedError('RPC_PEER_NOT_ALLOWED',
      `${what} is for ${allowed.map((r) => certificateName(check.member, r)).join(', ') || 'nobody'}, not ${caller.name}`,
      { role: caller.role, fingerprint256: caller.fingerprint256 });
  }
  return caller;
}
