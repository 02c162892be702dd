// The caller's role from its certificate's name: this member's `<member>-<role>` only, nothing
// for plaintext, and a refusal that names who was expected. The certificate comes through the
// same auth-context shape grpc-js gives handlers.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isFedError } from '#libs/errors/index.ts';
import type { CallWithAuthContext } from '#libs/rpc/index.ts';
import { appCertificateName, callerOf, requireRole } from './identity.ts';

const callAs = (cn: string | undefined): CallWithAuthContext => ({
  getAuthContext: () => ({
    transportSecurityType: 'ssl',
    sslPeerCertificate: cn === undefined ? ({} as never) : ({ subject: { CN: cn, O: 'btcfed' }, issuer: { CN: 'btcfed m0 CA' }, raw: Buffer.from(cn), valid_to: 'Jan 1 00:00:00 2030 GMT' } as never),
  }),
});
const m0 = { member: 'm0', mtls: true };

test("a certificate named <member>-<role> of this member is that role", () => {
  assert.deepEqual(callerOf(callAs('m0-consensus'), m0).kind, 'service');
  const c = callerOf(callAs('m0-gateway'), m0);
  assert.equal(c.kind === 'service' && c.role, 'gateway');
});

test("another member's certificate, an unknown role, or no certificate is refused under mTLS", () => {
  for (const cn of ['m1-consensus', 'm0-admin', 'm0 services', 'm00-consensus', 'xm0-consensus']) {
    assert.throws(() => callerOf(callAs(cn), m0), (e) => isFedError(e, 'RPC_PEER_NOT_ALLOWED'), cn);
  }
  assert.throws(() => callerOf(callAs(undefined), m0), (e) => isFedError(e, 'RPC_PEER_UNAUTHENTICATED'));
});

test('requireRole names the allowed certificates; plaintext has no identity to check', () => {
  assert.throws(() => requireRole(callAs('m0-gateway'), m0, ['consensus'], 'Attach'),
    (e) => isFedError(e, 'RPC_PEER_NOT_ALLOWED') && /Attach is for m0-consensus, not m0-gateway/.test(e.message));
  assert.equal(requireRole(callAs('m0-consensus'), m0, ['consensus'], 'Attach').kind, 'service');
  assert.equal(requireRole(callAs(undefined), { member: 'm0', mtls: false }, ['consensus'], 'Attach').kind, 'plaintext');
});

test("an application's own certificate (<member>-client-<app>) is a client of this member, and nothing more", () => {
  const c = callerOf(callAs('m0-client-payments'), m0);
  assert.equal(c.kind === 'service' && c.role, 'client');
  assert.equal(c.kind === 'service' && c.name, 'm0-client-payments', 'logs and refusals name the application');
  assert.throws(() => requireRole(callAs('m0-client-payments'), m0, ['operator'], 'Pause'), (e) => isFedError(e, 'RPC_PEER_NOT_ALLOWED'));
  for (const cn of ['m1-client-payments', 'm0-client-', 'm0-client-Pay', 'm0-client-a/b', `m0-client-${'x'.repeat(33)}`, 'm0-operator-x']) {
    assert.throws(() => callerOf(callAs(cn), m0), (e) => isFedError(e, 'RPC_PEER_NOT_ALLOWED'), cn);
  }
  assert.equal(appCertificateName('m0', 'payments'), 'm0-client-payments');
  assert.throws(() => appCertificateName('m0', 'Bad Name'), (e) => isFedError(e, 'CERT_OPTIONS_INVALID'));
});
