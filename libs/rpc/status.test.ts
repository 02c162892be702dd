// FedError → gRPC status through a service's mapping, the generic INTERNAL for anything
// else (with the real error logged), deadlines, cancellation and the stream adapter.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { pino } from 'pino';
import { call, createClient, createServer, errorCodeOf, hasStatus, rpcHandlers, statusTable, type RpcServer } from './index.ts';
import { EchoClient, EchoService, echoImpl, echoRequest, type EchoResponse } from './testdata/echo.ts';

interface Harness { server: RpcServer; client: EchoClient; logs: Record<string, unknown>[]; stop(): Promise<void> }

async function start(): Promise<Harness> {
  const logs: Record<string, unknown>[] = [];
  const log = pino({ level: 'debug' }, { write: (line: string) => { logs.push(JSON.parse(line) as Record<string, unknown>); } });
  const handlers = rpcHandlers({
    log,
    statusOf: statusTable({ PEER_NOT_FOUND: grpc.status.NOT_FOUND, CONFIG_INVALID: grpc.status.INVALID_ARGUMENT }),
  });
  const server = createServer({ security: { mode: 'insecure' }, log });
  server.addService(EchoService, echoImpl(handlers));
  const port = await server.bind('127.0.0.1:0');
  const client = createClient(EchoClient, `127.0.0.1:${port}`, { security: { mode: 'insecure' } });
  return { server, client, logs, stop: async () => { client.close(); await server.shutdown({ graceMs: 200 }); } };
}

test('a FedError maps to the service-chosen status, with its message and code', { timeout: 15_000 }, async () => {
  const h = await start();
  try {
    const say = h.client.say.bind(h.client);
    await assert.rejects(call(say, echoRequest({ text: 'peer-7', failCode: 'PEER_NOT_FOUND' })), (err) => {
      assert.ok(hasStatus(err, grpc.status.NOT_FOUND));
      assert.equal(err.details, 'refused: peer-7');
      assert.equal(errorCodeOf(err), 'PEER_NOT_FOUND');
      return true;
    });
    await assert.rejects(call(say, echoRequest({ failCode: 'CONFIG_INVALID' })),
      (err) => hasStatus(err, grpc.status.INVALID_ARGUMENT) && errorCodeOf(err) === 'CONFIG_INVALID');
  } finally {
    await h.stop();
  }
});

test('other errors become INTERNAL with a generic message; the real one is logged', { timeout: 15_000 }, async () => {
  const h = await start();
  try {
    const say = h.client.say.bind(h.client);
    let ref = '';
    await assert.rejects(call(say, echoRequest({ failCode: 'PLAIN_ERROR' })), (err) => {
      assert.ok(hasStatus(err, grpc.status.INTERNAL));
      assert.doesNotMatch(err.details, /secret/);
      ref = /ref ([0-9a-f]+)/.exec(err.details)?.[1] ?? '';
      assert.equal(errorCodeOf(err), undefined);
      return true;
    });
    const logged = h.logs.find((l) => l.ref === ref);
    assert.ok(logged, 'the failure is logged under the reference the client saw');
    assert.match(JSON.stringify(logged.err), /secret internal detail/);
    // A FedError the service did not map is unexpected too.
    await assert.rejects(call(say, echoRequest({ failCode: 'SOMETHING_UNMAPPED' })), (err) => hasStatus(err, grpc.status.INTERNAL));
  } finally {
    await h.stop();
  }
});

test('deadlines expire with DEADLINE_EXCEEDED', { timeout: 15_000 }, async () => {
  const h = await start();
  try {
    const started = Date.now();
    await assert.rejects(call(h.client.say.bind(h.client), echoRequest({ delayMs: 2000 }), { deadlineMs: 150 }),
      (err) => hasStatus(err, grpc.status.DEADLINE_EXCEEDED));
    assert.ok(Date.now() - started < 1500);
    // No error is logged for a call the client gave up on.
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(h.logs.filter((l) => l.level === 50).length, 0);
  } finally {
    await h.stop();
  }
});

test('an aborted signal cancels the call', { timeout: 15_000 }, async () => {
  const h = await start();
  try {
    const abort = new AbortController();
    const pending = call(h.client.say.bind(h.client), echoRequest({ delayMs: 2000 }), { signal: abort.signal });
    setTimeout(() => abort.abort(), 50);
    await assert.rejects(pending, (err) => hasStatus(err, grpc.status.CANCELLED));
  } finally {
    await h.stop();
  }
});

async function collect(stream: grpc.ClientReadableStream<EchoResponse>): Promise<{ texts: string[]; error?: grpc.ServiceError }> {
  const texts: string[] = [];
  try {
    for await (const msg of stream) texts.push((msg as EchoResponse).text);
    return { texts };
  } catch (err) {
    return { texts, error: err as grpc.ServiceError };
  }
}

test('the stream adapter writes every value in order and maps a FedError mid-stream', { timeout: 15_000 }, async () => {
  const h = await start();
  try {
    const ok = await collect(h.client.repeat(echoRequest({ text: 'x', count: 3 })));
    assert.deepEqual(ok, { texts: ['x#0', 'x#1', 'x#2'] });
    const failed = await collect(h.client.repeat(echoRequest({ text: 'y', count: 3, failCode: 'PEER_NOT_FOUND' })));
    assert.deepEqual(failed.texts, ['y#0']);
    assert.ok(hasStatus(failed.error, grpc.status.NOT_FOUND));
    assert.equal(failed.error.details, 'stopped at 1');
  } finally {
    await h.stop();
  }
});
