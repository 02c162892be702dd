// Generated certificates: a CA that can sign, leaves it signed with the SANs and usages a
// gRPC server or client needs, random serials, sane validity. Checked with node:crypto.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { isFedError } from '#libs/errors/index.ts';
import { generateCa, issueClientCertificate, issueRoleCertificate, issueServerCertificate } from './certs.ts';

const DAY = 86_400_000;

test('a CA and a server certificate it signed, with the expected SANs', async () => {
  const ca = await generateCa({ commonName: 'm0 CA' });
  const caCert = new X509Certificate(ca.cert);
  assert.equal(caCert.ca, true);
  assert.match(caCert.subject, /CN=m0 CA/);
  assert.equal(caCert.checkPrivateKey(createPrivateKey(ca.key)), true);

  const server = await issueServerCertificate(ca, { commonName: 'store', names: ['store.m0.internal', '10.0.0.5'] });
  const cert = new X509Certificate(server.cert);
  assert.equal(cert.ca, false);
  assert.equal(cert.verify(caCert.publicKey), true, 'signed by the CA');
  assert.equal(cert.checkIssued(caCert), true);
  assert.equal(cert.checkPrivateKey(createPrivateKey(server.key)), true);
  assert.equal(cert.checkHost('localhost'), 'localhost');
  assert.equal(cert.checkHost('store.m0.internal'), 'store.m0.internal');
  assert.equal(cert.checkIP('127.0.0.1'), '127.0.0.1');
  assert.equal(cert.checkIP('::1'), '::1');
  assert.equal(cert.checkIP('10.0.0.5'), '10.0.0.5');
  assert.equal(cert.checkHost('other.example'), undefined);
  assert.deepEqual(cert.keyUsage, ['1.3.6.1.5.5.7.3.1']);
  assert.match(server.key, /^-----BEGIN PRIVATE KEY-----/);
  assert.equal(createPrivateKey(server.key).asymmetricKeyDetails?.namedCurve, 'prime256v1');

  const from = new Date(cert.validFrom).getTime();
  const to = new Date(cert.validTo).getTime();
  assert.ok(from <= Date.now() && from > Date.now() - 2 * 3_600_000, 'valid from about now (backdated at most 2h)');
  assert.ok(Math.abs(to - (Date.now() + 825 * DAY)) < DAY, 'valid for 825 days by default');
});

test('client certificates carry clientAuth; serials are random', async () => {
  const ca = await generateCa();
  const a = new X509Certificate((await issueClientCertificate(ca, { commonName: 'consensus', validDays: 30 })).cert);
  const b = new X509Certificate((await issueClientCertificate(ca, { commonName: 'consensus' })).cert);
  assert.deepEqual(a.keyUsage, ['1.3.6.1.5.5.7.3.2']);
  assert.notEqual(a.serialNumber, b.serialNumber);
  assert.ok(a.serialNumber.length >= 30);
  assert.ok(new Date(a.validTo).getTime() < Date.now() + 31 * DAY);
});

test('bad options are refused', async () => {
  const ca = await generateCa();
  await assert.rejects(issueServerCertificate(ca, { commonName: 'x', validDays: 0 }), (err) => isFedError(err, 'CERT_OPTIONS_INVALID'));
  await assert.rejects(issueServerCertificate(ca, { commonName: 'a,b=c' }), (err) => isFedError(err, 'CERT_OPTIONS_INVALID'));
});

test('role certificates carry only the usages their role needs', async () => {
  const ca = await generateCa();
  const eku = async (usage: 'server' | 'client' | 'both') =>
    new X509Certificate((await issueRoleCertificate(ca, usage, { commonName: `m0-${usage}` })).cert).keyUsage;
  assert.deepEqual(await eku('server'), ['1.3.6.1.5.5.7.3.1']);
  assert.deepEqual(await eku('client'), ['1.3.6.1.5.5.7.3.2']);
  assert.deepEqual((await eku('both'))?.sort(), ['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']);
});

test('reissue: the same subject, names, usages and key, newly dated, signed by the same CA; another CA\'s certificate or a foreign key refused', async () => {
  const { issuedBy, reissueCertificate } = await import('./certs.ts');
  const ca = await generateCa({ commonName: 'btcfed m0 CA' });
  const old = await issueRoleCertificate(ca, 'both', { commonName: 'm0-consensus', names: ['10.0.0.1', 'm0.fed.example'], validDays: 30 });
  const renewed = new X509Certificate(await reissueCertificate(ca, old, { validDays: 400 }));
  const before = new X509Certificate(old.cert);
  assert.equal(renewed.subject, before.subject);
  assert.equal(renewed.subjectAltName, before.subjectAltName);
  assert.deepEqual(renewed.keyUsage, before.keyUsage, 'extended key usages kept (serverAuth + clientAuth)');
  assert.equal(renewed.checkPrivateKey(createPrivateKey(old.key)), true, 'the same key');
  assert.ok(renewed.verify(new X509Certificate(ca.cert).publicKey));
  assert.notEqual(renewed.serialNumber, before.serialNumber);
  assert.ok(Math.abs(Date.parse(renewed.validTo) - Date.now() - 400 * DAY) < 60_000);
  // Without validDays: as long as the old one was valid.
  const same = new X509Certificate(await reissueCertificate(ca, old));
  assert.ok(Math.abs(Date.parse(same.validTo) - Date.now() - 30 * DAY) < 60_000);

  const other = await generateCa({ commonName: 'btcfed m1 CA' });
  assert.equal(await issuedBy(old.cert, ca.cert), true);
  assert.equal(await issuedBy(old.cert, other.cert), false);
  await assert.rejects(reissueCertificate(other, old), (e) => isFedError(e, 'CERT_CA_MISMATCH') && /was not issued by the CA CN=btcfed m1 CA/.test(e.message));
  const stranger = await issueClientCertificate(ca, { commonName: 'x' });
  await assert.rejects(reissueCertificate(ca, { cert: old.cert, key: stranger.key }), (e) => isFedError(e, 'CERT_KEY_MISMATCH'));
});
