// The server over real grpc-js on 127.0.0.1: plaintext only on loopback, health and
// reflection, graceful shutdown that lets an in-flight call finish and then forces.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { isFedError } from '#libs/errors/index.ts';
import { call, createClient, createServer, loadBtcfedProtos, waitForReady, type RpcServer } from './index.ts';
import {
  ECHO_SERVICE_NAME, EchoClient, EchoService, checkHealth, echoImpl, echoPackage, echoRequest,
  healthClient, listServicesByReflection, silentLog, type HealthStatus,
} from './testdata/echo.ts';

async function startInsecure(): Promise<{ server: RpcServer; address: string }> {
  const server = createServer({ security: { mode: 'insecure' }, log: silentLog, reflection: echoPackage });
  server.addService(EchoService, echoImpl());
  const port = await server.bind('127.0.0.1:0');
  return { server, address: `127.0.0.1:${port}` };
}

test('insecure on loopback works end to end', { timeout: 15_000 }, async () => {
  const { server, address } = await startInsecure();
  const client = createClient(EchoClient, address, { security: { mode: 'insecure' } });
  try {
    await waitForReady(client, 2000);
    const res = await call(client.say.bind(client), echoRequest({ text: 'hello' }), { deadlineMs: 2000 });
    assert.equal(res.text, 'hello');
    assert.equal(res.peerSubject, '', 'no client certificate over plaintext');
  } finally {
    client.close();
    await server.shutdown({ graceMs: 100 });
  }
});

test('insecure on a non-loopback host is refused, for servers and clients', { timeout: 15_000 }, async () => {
  const server = createServer({ security: { mode: 'insecure' }, log: silentLog });
  for (const address of ['0.0.0.0:0', '10.1.2.3:50051', '[::]:0', 'example.com:443']) {
    await assert.rejects(server.bind(address), (err) => isFedError(err, 'RPC_INSECURE_NON_LOOPBACK'), address);
  }
  // A client given a wildcard listen address dials this host's loopback (libs/rpc dialTarget), so
  // only real non-loopback targets are refused in plaintext.
  for (const address of ['10.1.2.3:50051', 'example.com:443']) {
    assert.throws(() => createClient(EchoClient, address, { security: { mode: 'insecure' } }),
      (err) => isFedError(err, 'RPC_INSECURE_NON_LOOPBACK'), address);
  }
  for (const address of ['0.0.0.0:1', '[::]:1']) createClient(EchoClient, address, { security: { mode: 'insecure' } }).close();
  await server.shutdown({ graceMs: 10 });
});

test('health reports SERVING, then NOT_SERVING once shutdown starts', { timeout: 15_000 }, async () => {
  const { server, address } = await startInsecure();
  const health = healthClient(address);
  try {
    assert.equal(await checkHealth(health, ''), 'SERVING');
    assert.equal(await checkHealth(health, ECHO_SERVICE_NAME), 'SERVING');
    server.setServing(ECHO_SERVICE_NAME, false);
    assert.equal(await checkHealth(health, ECHO_SERVICE_NAME), 'NOT_SERVING');
    server.setServing(ECHO_SERVICE_NAME, true);
    assert.throws(() => server.setServing('no.such.Service', true), (err) => isFedError(err, 'RPC_SERVICE_UNKNOWN'));

    // A watch opened before shutdown sees the change; new calls are refused once draining.
    const watch = health.watch({ service: '' });
    const seen: HealthStatus[] = [];
    const notServing = new Promise<void>((resolve) => {
      watch.on('data', (msg: { status: HealthStatus }) => {
        seen.push(msg.status);
        if (msg.status === 'NOT_SERVING') resolve();
      });
    });
    watch.on('error', () => {}); // cancelled when the server forces shutdown
    await new Promise((r) => setTimeout(r, 50));
    const stopping = server.shutdown({ graceMs: 300 });
    await notServing;
    assert.deepEqual(seen, ['SERVING', 'NOT_SERVING']);
    await stopping;
  } finally {
    health.close();
  }
});

test('reflection lists the registered service and no other contract of the package', { timeout: 15_000 }, async () => {
  // The reflection package holds every btcfed contract too; only Echo is served here.
  const server = createServer({ security: { mode: 'insecure' }, log: silentLog, reflection: { ...loadBtcfedProtos(), ...echoPackage } });
  server.addService(EchoService, echoImpl());
  const address = `127.0.0.1:${await server.bind('127.0.0.1:0')}`;
  try {
    const services = await listServicesByReflection(address);
    assert.ok(services.includes(ECHO_SERVICE_NAME), `listed: ${services.join(', ')}`);
    assert.deepEqual(services.filter((s) => s.startsWith('btcfed.')), [], 'contracts this server does not serve are not advertised');
  } finally {
    await server.shutdown({ graceMs: 100 });
  }
});

test('graceful shutdown lets an in-flight call finish', { timeout: 15_000 }, async () => {
  const { server, address } = await startInsecure();
  const client = createClient(EchoClient, address, { security: { mode: 'insecure' } });
  try {
    await waitForReady(client, 2000);
    const inFlight = call(client.say.bind(client), echoRequest({ text: 'slow', delayMs: 300 }), { deadlineMs: 5000 });
    await new Promise((r) => setTimeout(r, 50));
    const started = Date.now();
    await server.shutdown({ graceMs: 3000 });
    const res = await inFlight;
    assert.equal(res.text, 'slow');
    assert.ok(Date.now() - started < 2500, 'shutdown ended when the call did, not at the grace limit');
  } finally {
    client.close();
  }
});

test('shutdown cancels calls still running after the grace period', { timeout: 15_000 }, async () => {
  const { server, address } = await startInsecure();
  const client = createClient(EchoClient, address, { security: { mode: 'insecure' } });
  try {
    await waitForReady(client, 2000);
    const stuck = call(client.say.bind(client), echoRequest({ text: 'stuck', delayMs: 5000 }), { deadlineMs: 10_000 });
    await new Promise((r) => setTimeout(r, 50));
    const started = Date.now();
    await server.shutdown({ graceMs: 200 });
    assert.ok(Date.now() - started < 2000, 'forced at the grace limit');
    await assert.rejects(stuck, (err: grpc.ServiceError) => err.code === grpc.status.UNAVAILABLE || err.code === grpc.status.CANCELLED
      || err.code === grpc.status.INTERNAL);
  } finally {
    client.close();
  }
});
