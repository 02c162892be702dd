// The consensus service's link to its signer, as it runs: a real signer process with mutual TLS
// and the RemoteSigner consensus dials it with. Files that do not match fail its ready() at once
// with the TLS check that failed, not after the connect timeout with "not ready".

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { isFedError } from '#libs/errors/index.ts';
import { generateCa } from '#libs/rpc/certs.ts';
import { makeSignerWorld, type SignerWorld } from '../services/signer/testkit.ts';
import { createRemoteSigner } from '../services/signer/client.ts';
import type { ServiceProcess } from './support/process.ts';
import { startSignerProcess } from './support/signer.ts';

let world: SignerWorld;
let svc: ServiceProcess;
let port: number;
before(async () => {
  world = await makeSignerWorld({ tls: true });
  ({ svc, port } = await startSignerProcess(world.dir, ['--init', '--no-nats']));
});
after(async () => {
  await svc.stop();
  await world.cleanup();
});

async function readyError(security: { caFile: string; certFile: string; keyFile: string; serverName?: string }): Promise<{ err: unknown; ms: number }> {
  const client = createRemoteSigner({ address: `127.0.0.1:${port}`, validatorCount: world.n, security: { mode: 'mtls', serverName: 'localhost', ...security } });
  const t0 = Date.now();
  try {
    await client.ready(5000);
    return { err: undefined, ms: Date.now() - t0 };
  } catch (err) {
    return { err, ms: Date.now() - t0 };
  } finally {
    await client.close();
  }
}

test('the consensus certificate connects; another CA\'s signer certificate, or a consensus certificate of another CA, is named at once', { timeout: 60_000 }, async () => {
  const tls = world.tls!;
  const ok = await readyError({ caFile: tls.caFile, certFile: tls.clientCert, keyFile: tls.clientKey });
  assert.equal(ok.err, undefined);

  // Consensus holding another member's CA: the signer's certificate is not one it trusts.
  const other = await generateCa({ commonName: 'btcfed m1 CA' });
  const otherCa = path.join(world.dir, 'other-ca.pem');
  await fs.writeFile(otherCa, other.cert);
  const untrusted = await readyError({ caFile: otherCa, certFile: tls.clientCert, keyFile: tls.clientKey });
  assert.ok(isFedError(untrusted.err, 'RPC_TLS_SERVER_UNTRUSTED'), String(untrusted.err));
  assert.match((untrusted.err as Error).message, /presents a certificate \(.*\) not signed by the CA this client trusts \(\S+other-ca.pem/);
  assert.ok(untrusted.ms < 2500, `${untrusted.ms} ms`);

  // Consensus presenting a certificate of another CA: the signer refuses it in the handshake.
  const rejected = await readyError({ caFile: tls.caFile, certFile: tls.otherClientCert, keyFile: tls.otherClientKey });
  assert.ok(isFedError(rejected.err, 'RPC_TLS_CLIENT_REJECTED'), String(rejected.err));
  assert.ok(rejected.ms < 2500, `${rejected.ms} ms`);

  // The signer dialled under a name its certificate does not carry.
  const named = await readyError({ caFile: tls.caFile, certFile: tls.clientCert, keyFile: tls.clientKey, serverName: 'signer.elsewhere.example' });
  assert.ok(isFedError(named.err, 'RPC_TLS_NAME_MISMATCH'), String(named.err));
});
