// A TLS mismatch surfaces at once as an error naming what did not match, over real grpc-js on
// 127.0.0.1 with certificates from the project's own cert code: a server certificate another CA
// signed (RPC_TLS_SERVER_UNTRUSTED), a client certificate the server's CA did not sign
// (RPC_TLS_CLIENT_REJECTED), a server certificate that does not name the host dialled
// (RPC_TLS_NAME_MISMATCH), a server certificate past its notAfter (RPC_TLS_SERVER_EXPIRED) — for
// calls waiting on the channel and for waitForReady, well before
// their 5 s deadline. A server that is simply not there is still "not ready", not a TLS error.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createPrivateKey, webcrypto } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import tls from 'node:tls';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import 'reflect-metadata'; // @peculiar/x509 needs it, before its import
import * as x509 from '@peculiar/x509';
import { isFedError } from '#libs/errors/index.ts';
import { generateCa } from './certs.ts';
import { call, createClient, createServer, errorCodeOf, waitForReady, type ClientSecurity, type RpcServer } from './index.ts';
import { EchoClient, EchoService, echoImpl, echoRequest, silentLog, writeTestPki, type TestPki } from './testdata/echo.ts';

let pki: TestPki;
let server: RpcServer;
let address: string;
before(async () => {
  pki = await writeTestPki();
  server = createServer({ security: { mode: 'mtls', certFile: pki.serverCert, keyFile: pki.serverKey, caFile: pki.caFile }, log: silentLog });
  server.addService(EchoService, echoImpl());
  address = `127.0.0.1:${await server.bind('127.0.0.1:0')}`;
});
after(async () => {
  await server.shutdown({ graceMs: 100 });
  pki.cleanup();
});

/** A call that waits for the channel (as the CLI's do), 5 s deadline: its error, and how long it took. */
async function failingCall(security: ClientSecurity, to = address): Promise<{ err: grpc.ServiceError; ms: number }> {
  const client = createClient(EchoClient, to, { security });
  const t0 = Date.now();
  try {
    await call(client.say.bind(client), echoRequest({ text: 'x' }), { deadlineMs: 5000, waitForReady: true });
    assert.fail('the call succeeded');
  } catch (err) {
    return { err: err as grpc.ServiceError, ms: Date.now() - t0 };
  } finally {
    client.close();
  }
}

const right = (): Extract<ClientSecurity, { mode: 'mtls' }> => ({ mode: 'mtls', caFile: pki.caFile, certFile: pki.clientCert, keyFile: pki.clientKey });

test('the right files still connect', { timeout: 15_000 }, async () => {
  const client = createClient(EchoClient, address, { security: right() });
  try {
    await waitForReady(client, 5000);
    const res = await call(client.say.bind(client), echoRequest({ text: 'hi' }), { deadlineMs: 3000 });
    assert.match(res.peerSubject, /CN=echo-client/);
  } finally {
    client.close();
  }
});

test('a server certificate another CA signed: RPC_TLS_SERVER_UNTRUSTED at once, naming both', { timeout: 15_000 }, async () => {
  const { err, ms } = await failingCall({ ...right(), caFile: pki.otherCaFile });
  assert.equal(err.code, grpc.status.UNAVAILABLE);
  assert.equal(errorCodeOf(err), 'RPC_TLS_SERVER_UNTRUSTED');
  assert.match(err.details, new RegExp(`the server at ${address} presents a certificate \\(CN=echo-server, O=btcfed, issued by CN=test CA, O=btcfed\\) not signed by the CA this client trusts \\(${pki.otherCaFile}`));
  assert.ok(ms < 2500, `${ms} ms: not the 5 s deadline`);
});

test('a client certificate the server\'s CA did not sign: RPC_TLS_CLIENT_REJECTED at once', { timeout: 15_000 }, async () => {
  const { err, ms } = await failingCall({ ...right(), certFile: pki.otherClientCert, keyFile: pki.otherClientKey });
  assert.equal(errorCodeOf(err), 'RPC_TLS_CLIENT_REJECTED', err.details);
  assert.match(err.details, new RegExp(`the server at ${address} rejected our client certificate ${pki.otherClientCert} \\(.*\\): the server trusts another CA`));
  assert.ok(ms < 2500, `${ms} ms`);
});

test('a server certificate that does not name the host dialled: RPC_TLS_NAME_MISMATCH at once', { timeout: 15_000 }, async () => {
  const { err, ms } = await failingCall({ ...right(), serverName: 'signer.other.example' });
  assert.equal(errorCodeOf(err), 'RPC_TLS_NAME_MISMATCH', err.details);
  assert.match(err.details, /does not name signer\.other\.example, the host dialled \(it names DNS:localhost, IP Address:127\.0\.0\.1/);
  assert.ok(ms < 2500, `${ms} ms`);
});

/** A CA, and a server certificate it signed that expired yesterday (what certs.ts never issues). */
async function expiredServerPki(dir: string): Promise<{ caFile: string; certFile: string; keyFile: string }> {
  const ca = await generateCa({ commonName: 'expiry CA' });
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
  const caKey = await webcrypto.subtle.importKey('pkcs8', createPrivateKey(ca.key).export({ format: 'der', type: 'pkcs8' }), alg, false, ['sign']);
  const keys = await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify']);
  const day = 86_400_000;
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: '01', subject: 'CN=expired-server, O=btcfed', issuer: new x509.X509Certificate(ca.cert).subject,
    notBefore: new Date(Date.now() - 30 * day), notAfter: new Date(Date.now() - day),
    signingAlgorithm: alg, publicKey: keys.publicKey, signingKey: caKey,
    extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: 'localhost' }, { type: 'ip', value: '127.0.0.1' }])],
  });
  const key = createPrivateKey({ key: Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)), format: 'der', type: 'pkcs8' });
  const write = (name: string, pem: string) => { writeFileSync(join(dir, name), pem, { mode: 0o600 }); return join(dir, name); };
  return { caFile: write('expiry-ca.pem', ca.cert), certFile: write('expired.pem', cert.toString('pem')), keyFile: write('expired-key.pem', key.export({ format: 'pem', type: 'pkcs8' }).toString()) };
}

test('a server certificate past its notAfter: RPC_TLS_SERVER_EXPIRED at once, saying when', { timeout: 15_000 }, async () => {
  const e = await expiredServerPki(pki.dir);
  // Our own server refuses to start with it (RPC_TLS_CERT_EXPIRED); a TLS server that does not.
  const expired = tls.createServer({ cert: readFileSync(e.certFile), key: readFileSync(e.keyFile), ALPNProtocols: ['h2'] }, (socket) => socket.end());
  await new Promise<void>((r) => expired.listen(0, '127.0.0.1', r));
  const to = `127.0.0.1:${(expired.address() as { port: number }).port}`;
  try {
    const { err, ms } = await failingCall({ mode: 'tls', caFile: e.caFile }, to);
    assert.equal(errorCodeOf(err), 'RPC_TLS_SERVER_EXPIRED', err.details);
    assert.match(err.details, new RegExp(`the server at ${to} presents a certificate \\(CN=expired-server, O=btcfed\\) that expired on .*GMT`));
    assert.ok(ms < 2500, `${ms} ms`);
  } finally {
    await new Promise((r) => expired.close(r));
  }
});

test('waitForReady rejects with the TLS error at once; a server that is not there is still RPC_NOT_READY', { timeout: 15_000 }, async () => {
  const client = createClient(EchoClient, address, { security: { ...right(), caFile: pki.otherCaFile } });
  const t0 = Date.now();
  await assert.rejects(waitForReady(client, 5000), (err) => isFedError(err, 'RPC_TLS_SERVER_UNTRUSTED'));
  assert.ok(Date.now() - t0 < 2500);
  client.close();
  const nobody = createClient(EchoClient, '127.0.0.1:1', { security: right() });
  await assert.rejects(waitForReady(nobody, 800), (err) => isFedError(err, 'RPC_NOT_READY'));
  nobody.close();
});

test('files that cannot be read any more while a channel retries: its calls fail, the process does not', { timeout: 15_000 }, async () => {
  // The channel holds its credentials in memory from creation; only the probe that names a TLS
  // failure reads the files again. It threw "TLS CA certificate file … cannot be read" from inside
  // grpc-js's connectivity callback, an uncaught exception: a `btcfed devnet` died so when its
  // member dirs were removed under it, and so would any service whose files an operator moves.
  const files = await writeTestPki();
  const crashes: unknown[] = [];
  const onCrash = (err: unknown) => { crashes.push(err); };
  process.on('uncaughtException', onCrash);
  const client = createClient(EchoClient, '127.0.0.1:1', { security: { mode: 'mtls', caFile: files.caFile, certFile: files.clientCert, keyFile: files.clientKey } });
  try {
    files.cleanup();
    await assert.rejects(call(client.say.bind(client), echoRequest({ text: 'x' }), { deadlineMs: 1500, waitForReady: true }),
      (err: grpc.ServiceError) => err.code === grpc.status.DEADLINE_EXCEEDED || err.code === grpc.status.UNAVAILABLE);
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(crashes.map((e) => (e instanceof Error ? e.message : String(e))), []);
  } finally {
    process.off('uncaughtException', onCrash);
    client.close();
  }
});
