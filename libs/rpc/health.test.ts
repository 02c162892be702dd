// The health service (health.ts) on a real grpc-js server on 127.0.0.1, asked by a client built
// from gRPC's own health.proto (testdata/echo.ts): Check, List and Watch as gRPC specifies them.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { Health, HEALTH_LIST_LIMIT } from './health.ts';
import { checkHealth, healthClient, type HealthClient, type HealthStatus } from './testdata/echo.ts';

async function serve(health: Health): Promise<{ client: HealthClient; stop: () => void }> {
  const server = new grpc.Server();
  health.addToServer(server);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
  const client = healthClient(`127.0.0.1:${port}`);
  return { client, stop: () => { client.close(); server.forceShutdown(); } };
}

const until = async (what: string, ok: () => boolean) => {
  for (let i = 0; i < 200 && !ok(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(ok(), what);
};

test('Check: the status set, NOT_FOUND for a service it does not know', async () => {
  const health = new Health({ '': 'NOT_SERVING' });
  const { client, stop } = await serve(health);
  try {
    assert.equal(await checkHealth(client, ''), 'NOT_SERVING');
    health.setStatus('', 'SERVING');
    health.setStatus('btcfed.v1.StoreService', 'SERVING');
    assert.equal(await checkHealth(client, ''), 'SERVING');
    assert.equal(await checkHealth(client, 'btcfed.v1.StoreService'), 'SERVING');
    await assert.rejects(checkHealth(client, 'btcfed.v1.Nope'), (err: grpc.ServiceError) => {
      assert.equal(err.code, grpc.status.NOT_FOUND);
      assert.match(err.details, /btcfed\.v1\.Nope/);
      return true;
    });
  } finally { stop(); }
});

test('List: every service and its status; RESOURCE_EXHAUSTED past the limit', async () => {
  const health = new Health({ '': 'SERVING', 'btcfed.v1.SignerService': 'NOT_SERVING' });
  const { client, stop } = await serve(health);
  const list = () => new Promise<Record<string, { status: HealthStatus }>>((resolve, reject) =>
    client.list({}, { deadline: Date.now() + 2000 }, (err, res) => (err ? reject(err) : resolve(res.statuses))));
  try {
    assert.deepEqual(await list(), { '': { status: 'SERVING' }, 'btcfed.v1.SignerService': { status: 'NOT_SERVING' } });
    for (let i = 0; i < HEALTH_LIST_LIMIT; i++) health.setStatus(`s${i}`, 'SERVING');
    await assert.rejects(list(), (err: grpc.ServiceError) => err.code === grpc.status.RESOURCE_EXHAUSTED);
  } finally { stop(); }
});

test('Watch: the status now (SERVICE_UNKNOWN for a name it does not know), each change, and nothing kept once the call ends', async () => {
  const health = new Health({ '': 'SERVING' });
  const { client, stop } = await serve(health);
  try {
    const seen: HealthStatus[] = [];
    const watch = client.watch({ service: 'btcfed.v1.ConsensusService' });
    watch.on('data', (m: { status: HealthStatus }) => seen.push(m.status));
    watch.on('error', () => {});
    await until('the first answer', () => seen.length === 1);
    assert.deepEqual(seen, ['SERVICE_UNKNOWN']);
    health.setStatus('btcfed.v1.ConsensusService', 'SERVING');
    health.setStatus('btcfed.v1.ConsensusService', 'NOT_SERVING');
    health.setStatus('', 'NOT_SERVING'); // another name: not this watch's
    await until('two changes', () => seen.length === 3);
    assert.deepEqual(seen, ['SERVICE_UNKNOWN', 'SERVING', 'NOT_SERVING']);
    assert.equal(health.watching, 1);
    // Watches of names a client makes up are forgotten with their calls: none outlives its call.
    const many = Array.from({ length: 20 }, (_, i) => client.watch({ service: `made-up-${i}` }));
    for (const w of many) w.on('error', () => {});
    await until('21 watches open', () => health.watching === 21);
    watch.cancel();
    for (const w of many) w.cancel();
    await until('every watch forgotten', () => health.watching === 0);
    assert.equal(health.watchedNames, 0);
  } finally { stop(); }
});
