// The server over real grpc-js on 127.0.0.1: plaintext only on loopback, health and
// reflection, graceful shutdown that lets an in-flight call finish and then forces.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { isFedError } from '#libs/errors/index.ts';
import { call, createClient, createServer, loadBtcfedProtos, waitForReady, type RpcServer } from './index.ts';
import { setTimeout as sleep } from 'node:timers/promises';
import { rpcHandlers } from './status.ts';
import {
  ECHO_SERVICE_NAME, EchoClient, EchoService, checkHealth, echoImpl, echoPackage, echoRequest,
  askReflection, healthClient, listServicesByReflection, silentLog, type EchoRequest, type EchoResponse, type HealthStatus,
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
    const ended = new Promise<grpc.ServiceError>((resolve) => watch.on('error', resolve));
    await new Promise((r) => setTimeout(r, 50));
    const started = Date.now();
    const stopping = server.shutdown({ graceMs: 5000 });
    await notServing;
    assert.deepEqual(seen, ['SERVING', 'NOT_SERVING']);
    // Then the watch ends, told to connect again, without the server waiting out its grace.
    assert.equal((await ended).code, grpc.status.UNAVAILABLE);
    await stopping;
    assert.ok(Date.now() - started < 2500, `stopped in ${Date.now() - started} ms, not at the grace limit`);
  } finally {
    health.close();
  }
});

test('reflection lists the registered service and no other contract of the package, over v1 and v1alpha', { timeout: 15_000 }, async () => {
  // The reflection package holds every btcfed contract too; only Echo is served here.
  const server = createServer({ security: { mode: 'insecure' }, log: silentLog, reflection: { ...loadBtcfedProtos(), ...echoPackage } });
  server.addService(EchoService, echoImpl());
  const address = `127.0.0.1:${await server.bind('127.0.0.1:0')}`;
  try {
    for (const version of ['v1', 'v1alpha'] as const) {
      const services = await listServicesByReflection(address, version);
      assert.ok(services.includes(ECHO_SERVICE_NAME), `${version} listed: ${services.join(', ')}`);
      assert.deepEqual(services.filter((s) => s.startsWith('btcfed.')), [], 'contracts this server does not serve are not advertised');
    }
  } finally {
    await server.shutdown({ graceMs: 100 });
  }
});

test('reflection is loaded on its first call, once, and answers what the library answers', { timeout: 15_000 }, async () => {
  let loads = 0;
  const server = createServer({ security: { mode: 'insecure' }, log: silentLog, reflection: () => { loads++; return echoPackage; } });
  server.addService(EchoService, echoImpl());
  const address = `127.0.0.1:${await server.bind('127.0.0.1:0')}`;
  try {
    const health = healthClient(address);
    assert.equal(await checkHealth(health, ''), 'SERVING');
    health.close();
    assert.equal(loads, 0, 'nothing of reflection is loaded before a client asks');
    // Two streams opened at once, before anything is built, and several requests on each.
    const ask = [{ list_services: '' }, { file_containing_symbol: ECHO_SERVICE_NAME }, { file_containing_symbol: 'no.such.Symbol' }];
    const [a, b] = await Promise.all([askReflection(address, ask), askReflection(address, ask, 'v1alpha')]);
    assert.equal(loads, 1, 'built once for both versions and every call');
    for (const replies of [a!, b!]) {
      assert.equal(replies.length, 3);
      assert.ok(replies[0]!.list_services_response!.service.some((s) => s.name === ECHO_SERVICE_NAME));
      const files = replies[1]!.file_descriptor_response!.file_descriptor_proto;
      assert.ok(files.length > 0 && files.some((f) => f.toString('latin1').includes('Echo')), 'the descriptor of the file that holds Echo');
      assert.equal(replies[2]!.error_response!.error_code, grpc.status.NOT_FOUND, 'an unknown symbol is the library\'s NOT_FOUND');
    }
  } finally {
    await server.shutdown({ graceMs: 100 });
  }
});

test('a reflection request that is not one ends its stream with INVALID_ARGUMENT; the server goes on', { timeout: 15_000 }, async () => {
  const server = createServer({ security: { mode: 'insecure' }, log: silentLog, reflection: echoPackage });
  server.addService(EchoService, echoImpl());
  const address = `127.0.0.1:${await server.bind('127.0.0.1:0')}`;
  const raw = new grpc.Client(address, grpc.credentials.createInsecure());
  try {
    // Field 1 with wire type 7 does not exist in protobuf: no decoder takes it.
    const stream = raw.makeBidiStreamRequest('/grpc.reflection.v1.ServerReflection/ServerReflectionInfo', (b: Buffer) => b, (b: Buffer) => b);
    const status = new Promise<grpc.StatusObject>((resolveStatus) => stream.on('status', resolveStatus));
    stream.on('error', () => {});
    stream.on('data', () => {});
    stream.write(Buffer.from([0x0f, 0xff, 0xff]));
    const s = await status;
    assert.equal(s.code, grpc.status.INVALID_ARGUMENT, s.details);
    assert.match(s.details, /not a reflection request/);
    assert.ok((await listServicesByReflection(address)).includes(ECHO_SERVICE_NAME), 'reflection still answers');
  } finally {
    raw.close();
    await server.shutdown({ graceMs: 100 });
  }
});

test('reflection that cannot be built answers INTERNAL, is tried once, and leaves the server serving', { timeout: 15_000 }, async () => {
  let loads = 0;
  const server = createServer({ security: { mode: 'insecure' }, log: silentLog, reflection: () => { loads++; throw new Error('contracts unreadable'); } });
  server.addService(EchoService, echoImpl());
  const address = `127.0.0.1:${await server.bind('127.0.0.1:0')}`;
  const client = createClient(EchoClient, address, { security: { mode: 'insecure' } });
  try {
    for (let i = 0; i < 3; i++) {
      await assert.rejects(listServicesByReflection(address), (err: grpc.ServiceError) => err.code === grpc.status.INTERNAL && /contracts unreadable/.test(err.details));
    }
    assert.equal(loads, 1, 'a failed build is not tried again by every caller');
    assert.equal((await call(client.say.bind(client), echoRequest({ text: 'still here' }), { deadlineMs: 2000 })).text, 'still here');
  } finally {
    client.close();
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

/** Opens Repeat with a message a second for ~forever; resolves once the first message is in. */
async function openEndless(client: EchoClient): Promise<{ ended: Promise<grpc.ServiceError | 'ok'>; received: () => number }> {
  const stream = client.repeat(echoRequest({ text: 'w', count: 1_000, delayMs: 1000 }));
  let n = 0;
  const first = new Promise<void>((resolve) => stream.on('data', () => { n++; resolve(); }));
  const ended = new Promise<grpc.ServiceError | 'ok'>((resolve) => {
    stream.on('error', resolve);
    stream.on('end', () => resolve('ok'));
  });
  await first;
  return { ended, received: () => n };
}

test('shutdown ends open server streams at once with UNAVAILABLE, and their handlers stop', { timeout: 15_000 }, async () => {
  const handlers = rpcHandlers({ statusOf: () => undefined, log: silentLog });
  let aborted = 0;
  let yielded = 0;
  const impl = {
    ...echoImpl(handlers),
    repeat: handlers.serverStream<EchoRequest, EchoResponse>(async function* (req, _call, signal) {
      signal.addEventListener('abort', () => { aborted++; });
      for (let i = 0; i < req.count && !signal.aborted; i++) {
        yielded++;
        yield { text: `${req.text}#${i}`, peerSubject: '' };
        await sleep(req.delayMs, undefined, { signal }).catch(() => {});
      }
    }),
  };
  const server = createServer({ security: { mode: 'insecure' }, log: silentLog });
  server.addService(EchoService, impl);
  const address = `127.0.0.1:${await server.bind('127.0.0.1:0')}`;
  const client = createClient(EchoClient, address, { security: { mode: 'insecure' } });
  try {
    await waitForReady(client, 2000);
    const a = await openEndless(client);
    const b = await openEndless(client);
    const started = Date.now();
    await server.shutdown({ graceMs: 5000 });
    const elapsed = Date.now() - started;
    assert.ok(elapsed < 2500, `stopped in ${elapsed} ms, not at the 5 s grace limit`);
    for (const s of [a, b]) {
      const end = await s.ended;
      assert.notEqual(end, 'ok');
      assert.equal((end as grpc.ServiceError).code, grpc.status.UNAVAILABLE);
      assert.match((end as grpc.ServiceError).details, /shutting down/);
    }
    assert.equal(aborted, 2, 'each handler saw its call end');
    const after = yielded;
    await sleep(1200);
    assert.equal(yielded, after, 'no handler went on producing');
  } finally {
    client.close();
  }
});

test('a stream opened while the server announces its shutdown ends at once; a unary call is still answered', { timeout: 15_000 }, async () => {
  const { server, address } = await startInsecure();
  const client = createClient(EchoClient, address, { security: { mode: 'insecure' } });
  try {
    await waitForReady(client, 2000);
    const stopping = server.shutdown({ graceMs: 5000, announceMs: 800 });
    await sleep(100);
    const stream = client.repeat(echoRequest({ text: 'late', count: 3, delayMs: 10 }));
    const got: string[] = [];
    stream.on('data', (m: EchoResponse) => got.push(m.text));
    const end = await new Promise<grpc.ServiceError | 'ok'>((resolve) => { stream.on('error', resolve); stream.on('end', () => resolve('ok')); });
    assert.notEqual(end, 'ok');
    assert.equal((end as grpc.ServiceError).code, grpc.status.UNAVAILABLE);
    assert.deepEqual(got, []);
    const res = await call(client.say.bind(client), echoRequest({ text: 'still here' }), { deadlineMs: 2000 });
    assert.equal(res.text, 'still here');
    await stopping;
  } finally {
    client.close();
  }
});
