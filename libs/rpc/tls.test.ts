// TLS and mutual TLS over real grpc-js on 127.0.0.1, with certificates generated at test
// time: the handshake works with the right files, a client without (or with a foreign)
// certificate is refused under mTLS, and bad files fail at startup naming the file.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { isFedError } from '#libs/errors/index.ts';
import {
  call, certificateFingerprint, createClient, createServer, requirePeer, type ClientSecurity, type RpcServer, type ServerSecurity,
} from './index.ts';
import { EchoClient, EchoService, echoImpl, echoRequest, silentLog, writeTestPki, type TestPki } from './testdata/echo.ts';

let pki: TestPki;
before(async () => { pki = await writeTestPki(); });
after(() => pki.cleanup());

async function start(security: ServerSecurity): Promise<{ server: RpcServer; address: string }> {
  const server = createServer({ security, log: silentLog });
  server.addService(EchoService, echoImpl());
  const port = await server.bind('127.0.0.1:0');
  return { server, address: `127.0.0.1:${port}` };
}

async function sayOnce(address: string, security: ClientSecurity): Promise<string> {
  const client = createClient(EchoClient, address, { security });
  try {
    const res = await call(client.say.bind(client), echoRequest({ text: 'over tls' }), { deadlineMs: 3000 });
    return res.peerSubject;
  } finally {
    client.close();
  }
}

test('TLS: a client trusting the CA talks to the server', { timeout: 15_000 }, async () => {
  const { server, address } = await start({ mode: 'tls', certFile: pki.serverCert, keyFile: pki.serverKey });
  try {
    assert.equal(await sayOnce(address, { mode: 'tls', caFile: pki.caFile }), '');
    // A client that trusts another CA refuses the server.
    await assert.rejects(sayOnce(address, { mode: 'tls', caFile: pki.otherCaFile }),
      (err: grpc.ServiceError) => err.code === grpc.status.UNAVAILABLE);
    // Plaintext against a TLS port fails too.
    await assert.rejects(sayOnce(address, { mode: 'insecure' }), (err: grpc.ServiceError) => err.code === grpc.status.UNAVAILABLE);
  } finally {
    await server.shutdown({ graceMs: 100 });
  }
});

test('mTLS: a client certificate is required and the handler sees who called', { timeout: 15_000 }, async () => {
  const { server, address } = await start({ mode: 'mtls', certFile: pki.serverCert, keyFile: pki.serverKey, caFile: pki.caFile });
  try {
    const subject = await sayOnce(address, { mode: 'mtls', caFile: pki.caFile, certFile: pki.clientCert, keyFile: pki.clientKey });
    assert.match(subject, /CN=echo-client/);

    await assert.rejects(sayOnce(address, { mode: 'tls', caFile: pki.caFile }),
      (err: grpc.ServiceError) => err.code === grpc.status.UNAVAILABLE, 'no client certificate');
    await assert.rejects(
      sayOnce(address, { mode: 'mtls', caFile: pki.caFile, certFile: pki.otherClientCert, keyFile: pki.otherClientKey }),
      (err: grpc.ServiceError) => err.code === grpc.status.UNAVAILABLE, 'certificate from a foreign CA');
  } finally {
    await server.shutdown({ graceMs: 100 });
  }
});

test('requirePeer allows listed fingerprints only', { timeout: 15_000 }, async () => {
  const server = createServer({
    security: { mode: 'mtls', certFile: pki.serverCert, keyFile: pki.serverKey, caFile: pki.caFile }, log: silentLog,
  });
  const allowed = [certificateFingerprint(readFileSync(pki.clientCert))];
  const seen: string[] = [];
  const impl = echoImpl();
  server.addService(EchoService, {
    ...impl,
    say: (callObj, callback) => {
      try {
        seen.push(requirePeer(callObj, allowed).commonName ?? '');
        callback(null, { text: 'ok', peerSubject: '' });
      } catch (err) {
        callback({ code: grpc.status.PERMISSION_DENIED, details: (err as Error).message });
      }
    },
  });
  const address = `127.0.0.1:${await server.bind('127.0.0.1:0')}`;
  try {
    await sayOnce(address, { mode: 'mtls', caFile: pki.caFile, certFile: pki.clientCert, keyFile: pki.clientKey });
    assert.deepEqual(seen, ['echo-client']);
    assert.throws(() => requirePeer({ getAuthContext: () => ({}) }, allowed), (err) => isFedError(err, 'RPC_PEER_UNAUTHENTICATED'));
  } finally {
    await server.shutdown({ graceMs: 100 });
  }
  const fp = allowed[0] ?? '';
  assert.match(fp, /^[0-9a-f]{64}$/);
});

test('bad TLS files fail at startup, naming the file and the reason', () => {
  const expectCode = (code: string, security: ServerSecurity, fileHint: string) =>
    assert.throws(() => createServer({ security, log: silentLog }), (err) => {
      assert.ok(isFedError(err, code), `expected ${code}, got ${String(err)}`);
      assert.ok((err as Error).message.includes(fileHint), `message names ${fileHint}: ${(err as Error).message}`);
      return true;
    });
  const missing = join(pki.dir, 'missing.pem');
  const garbage = join(pki.dir, 'garbage.pem');
  writeFileSync(garbage, 'not a pem file\n');
  expectCode('RPC_TLS_FILE_UNREADABLE', { mode: 'tls', certFile: missing, keyFile: pki.serverKey }, missing);
  expectCode('RPC_TLS_FILE_INVALID', { mode: 'tls', certFile: garbage, keyFile: pki.serverKey }, garbage);
  expectCode('RPC_TLS_KEY_MISMATCH', { mode: 'tls', certFile: pki.serverCert, keyFile: pki.clientKey }, pki.clientKey);
  expectCode('RPC_TLS_CERT_INVALID', { mode: 'tls', certFile: pki.serverKey, keyFile: pki.serverKey }, pki.serverKey);
  expectCode('RPC_TLS_CA_INVALID',
    { mode: 'mtls', certFile: pki.serverCert, keyFile: pki.serverKey, caFile: pki.clientCert }, pki.clientCert);
  assert.throws(() => createClient(EchoClient, '127.0.0.1:1', { security: { mode: 'tls', caFile: missing } }),
    (err) => isFedError(err, 'RPC_TLS_FILE_UNREADABLE'));
});

test('without a server name, a client checks the certificate against the host it dials', { timeout: 20_000 }, async () => {
  // A server certificate for 127.0.0.3 (and the loopback names every certificate carries, not 127.0.0.2).
  const { generateCa, issueServerCertificate } = await import('./certs.ts');
  const ca = await generateCa({ commonName: 'names CA' });
  const leaf = await issueServerCertificate(ca, { commonName: 'signer-host', names: ['127.0.0.3'] });
  const file = (name: string, pem: string) => { const f = join(pki.dir, name); writeFileSync(f, pem, { mode: 0o600 }); return f; };
  const caFile = file('names-ca.pem', ca.cert);
  const security: ServerSecurity = { mode: 'tls', certFile: file('names.pem', leaf.cert), keyFile: file('names-key.pem', leaf.key) };
  const server = createServer({ security, log: silentLog });
  server.addService(EchoService, echoImpl());
  // Loopback only: the same server on two loopback addresses.
  const port = await server.bind('127.0.0.3:0');
  await server.bind(`127.0.0.2:${port}`);
  try {
    assert.equal(await sayOnce(`127.0.0.3:${port}`, { mode: 'tls', caFile }), '', 'the name in the certificate');
    await assert.rejects(sayOnce(`127.0.0.2:${port}`, { mode: 'tls', caFile }), (err: grpc.ServiceError) => err.code === grpc.status.UNAVAILABLE,
      'another address of the same server is refused: the certificate does not name it');
  } finally {
    await server.shutdown({ graceMs: 100 });
  }
});
