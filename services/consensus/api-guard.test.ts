// Who a caller of the public API is: its certificate's fingerprint, or without TLS the host part
// of grpc-js's peer string (every port of one host is one client); the read CPU a read call is
// charged, counted by method; the read CPU limits a validator and an observer apply.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { consensusLimits } from '#libs/config/schema.ts';
import { clientIdentity, hostOf, publicApiLimits } from './api-guard.ts';

test('the host of a grpc-js peer string, whatever its form', () => {
  assert.equal(hostOf('127.0.0.1:51234'), '127.0.0.1');
  assert.equal(hostOf('ipv4:10.0.0.7:443'), '10.0.0.7');
  assert.equal(hostOf('::1:51234'), '::1');
  assert.equal(hostOf('[::1]:51234'), '::1');
  assert.equal(hostOf('ipv6:[fe80::1]:7'), 'fe80::1');
  assert.equal(hostOf('::ffff:127.0.0.1:8080'), '::ffff:127.0.0.1');
  assert.equal(hostOf('unknown'), 'unknown');
});

test('without a client certificate, two connections of one host are one client', () => {
  const call = (peer: string) => ({ getPeer: () => peer, getAuthContext: () => null });
  const a = clientIdentity(call('127.0.0.1:40001'));
  const b = clientIdentity(call('127.0.0.1:40002'));
  assert.equal(a.key, b.key);
  assert.equal(a.key, 'addr:127.0.0.1');
  assert.notEqual(clientIdentity(call('127.0.0.2:40001')).key, a.key);
});

const log = pino({ level: 'silent' });
const caller = (peer: string) => ({ getPeer: () => peer, getAuthContext: () => null });

test('a read call\'s CPU is counted by its method, every charge once, as much as it is charged', () => {
  const counted: Array<[string, number]> = [];
  const clock = { t: 1_000_000 };
  const api = publicApiLimits(consensusLimits.parse({ read_cpu_per_client: { rate: 1, burst: 10 }, read_cpu_total: { rate: 1, burst: 1000 } }),
    { log, now: () => clock.t, readCpu: (method, ms) => counted.push([method, ms]) });
  const cpu = api.guard.read(caller('127.0.0.1:5000'), 'ListBlocks', 1);
  cpu.time(() => { const t0 = performance.now(); while (performance.now() - t0 < 15) { /* 15 ms of work */ } });
  cpu.time(() => undefined); // a section that took (next to) nothing
  assert.equal(counted[0]?.[0], 'ListBlocks');
  assert.ok(counted[0]![1] >= 15, `${counted[0]![1]} ms counted`);
  assert.ok(counted.slice(1).every(([m, ms]) => m === 'ListBlocks' && ms > 0), 'nothing counted that was not charged (0 ms is neither)');
  // What was counted is what the bucket was charged: 15 ms and more overdrew a burst of 10.
  assert.throws(() => api.guard.read(caller('127.0.0.1:5000'), 'GetBlock', 2), /read_cpu_per_client/);
  assert.equal(counted.filter(([m]) => m === 'GetBlock').length, 0, 'a refused read is charged nothing, counted nothing');
  api.guard.read(caller('127.0.0.1:5000'), 'GetStatus', 1, true).time(() => { const t = performance.now(); while (performance.now() - t < 2) { /* 2 ms */ } });
  assert.ok(counted.some(([m, ms]) => m === 'GetStatus' && ms >= 2), 'a cheap call is counted under its own method');
});

test('read CPU limits by role: a validator\'s defaults, an observer\'s, conf.yaml\'s over both, kept across a reload', () => {
  const limits = (conf: Record<string, unknown>, role?: 'validator' | 'observer') => {
    const api = publicApiLimits(consensusLimits.parse(conf), { log, ...(role ? { role } : {}) });
    return { api, cpu: () => ({ perClient: api.guard.limits.options.readCpuPerClient, total: api.guard.limits.options.readCpuTotal }) };
  };
  assert.deepEqual(limits({}).cpu(), { perClient: { rate: 15, burst: 600 }, total: { rate: 50, burst: 2000 } }, 'no role given: a validator (main.ts)');
  assert.deepEqual(limits({}, 'validator').cpu(), { perClient: { rate: 15, burst: 600 }, total: { rate: 50, burst: 2000 } });
  assert.deepEqual(limits({}, 'observer').cpu(), { perClient: { rate: 200, burst: 2000 }, total: { rate: 600, burst: 6000 } });
  const set = limits({ read_cpu_per_client: { rate: 30 }, read_cpu_total: { rate: 40, burst: 900 } }, 'observer');
  assert.deepEqual(set.cpu(), { perClient: { rate: 30, burst: 2000 }, total: { rate: 40, burst: 900 } }, 'what conf.yaml sets wins, field by field');
  set.api.reload(consensusLimits.parse({ read_cpu_per_client: { burst: 100 } }));
  assert.deepEqual(set.cpu(), { perClient: { rate: 200, burst: 100 }, total: { rate: 600, burst: 6000 } }, 'a reload resolves by the same role');
});
