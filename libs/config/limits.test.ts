// services.consensus.limits in conf.yaml: the defaults parse and hold together, each limit can be
// set, and a limit that would contradict another is refused naming the field. Read CPU's defaults
// depend on node.role (a validator's, an observer's), and the checks hold for what applies.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { stringify } from 'yaml';
import { isFedError, type FedError } from '#libs/errors/index.ts';
import { parseConfText, readCpuLimits, type ConfigIssue, type Role } from '#libs/config/index.ts';

const base = (limits?: Record<string, unknown>, role?: Role) => stringify({
  node: { name: 'm0', ...(role ? { role } : {}) }, network: { addresses: ['/ip4/127.0.0.1/tcp/4001'] },
  ...(limits ? { services: { consensus: { limits } } } : {}),
});

function fieldsRefused(limits: Record<string, unknown>, role?: Role): ConfigIssue[] {
  try { parseConfText(base(limits, role)); } catch (err) {
    assert.ok(isFedError(err, 'CONFIG_INVALID'), String(err));
    return (err as FedError).details.issues as ConfigIssue[];
  }
  assert.fail('accepted');
}

test('the defaults: what docs/consensus.md and docs/store.md say', () => {
  const l = parseConfText(base()).services.consensus.limits;
  assert.deepEqual(l, {
    max_clients: 4096, http2_max_concurrent_streams: 100, streams_per_client: 16, streams_total: 128,
    reads_in_flight_per_client: 4, reads_in_flight_total: 64, stream_stall: 15_000, refusal_delay: 1000, stream_buffer_bytes: 65_536,
    read_per_client: { rate: 200, burst: 5000 }, read_total: { rate: 1000, burst: 20_000 },
    submit_per_client: { rate: 20_000, burst: 40_000 }, submit_total: { rate: 50_000, burst: 100_000 },
  }, 'read CPU is left to the role (below)');
  assert.deepEqual(readCpuLimits(l, 'validator'), { read_cpu_per_client: { rate: 15, burst: 600 }, read_cpu_total: { rate: 50, burst: 2000 } });
});

test('read CPU defaults by role: a validator\'s are tight, an observer\'s larger; what conf.yaml sets wins, field by field', () => {
  const applies = (limits: Record<string, unknown> | undefined, role?: Role) => {
    const conf = parseConfText(base(limits, role));
    return readCpuLimits(conf.services.consensus.limits, conf.node.role);
  };
  const validator = { read_cpu_per_client: { rate: 15, burst: 600 }, read_cpu_total: { rate: 50, burst: 2000 } };
  const observer = { read_cpu_per_client: { rate: 200, burst: 2000 }, read_cpu_total: { rate: 600, burst: 6000 } };
  assert.deepEqual(applies(undefined), validator, 'no role: a validator');
  assert.deepEqual(applies(undefined, 'validator'), validator);
  assert.deepEqual(applies(undefined, 'observer'), observer);
  assert.deepEqual(applies({}, 'observer'), observer, 'a limits section without them');
  const set = { read_cpu_per_client: { rate: 10, burst: 100 }, read_cpu_total: { rate: 20, burst: 300 } };
  assert.deepEqual(applies(set, 'observer'), set, 'explicit values win on an observer');
  assert.deepEqual(applies(set, 'validator'), set, 'and on a validator');
  assert.deepEqual(applies({ read_cpu_per_client: { rate: 100 } }, 'observer'),
    { read_cpu_per_client: { rate: 100, burst: 2000 }, read_cpu_total: { rate: 600, burst: 6000 } }, 'a field left out is the role\'s');
  assert.deepEqual(applies({ read_cpu_total: { burst: 800 } }, 'validator'),
    { read_cpu_per_client: { rate: 15, burst: 600 }, read_cpu_total: { rate: 50, burst: 800 } });
});

test('read CPU: the per-client limit is checked against the total that applies, set or the role\'s default', () => {
  const at = 'services.consensus.limits.read_cpu_per_client';
  // Within an observer's total of 600/6000, above a validator's 50/2000.
  const perClient = { read_cpu_per_client: { rate: 300, burst: 3000 } };
  assert.doesNotThrow(() => parseConfText(base(perClient, 'observer')));
  const onValidator = fieldsRefused(perClient, 'validator').find((i) => i.field === at);
  assert.match(onValidator?.reason ?? '', /^must not exceed read_cpu_total \(rate and burst\); read_cpu_total is not set: a validator's default, \{ rate: 50, burst: 2000 \}, applies$/);
  // A total set below the observer's per-client default: refused, naming the default that applies.
  const lowTotal = fieldsRefused({ read_cpu_total: { rate: 100, burst: 1000 } }, 'observer').find((i) => i.field === at);
  assert.match(lowTotal?.reason ?? '', /^must not exceed read_cpu_total \(rate and burst\); read_cpu_per_client is not set: an observer's default, \{ rate: 200, burst: 2000 \}, applies$/);
  assert.doesNotThrow(() => parseConfText(base({ read_cpu_total: { rate: 100, burst: 1000 } }, 'validator')), 'above a validator\'s per-client default of 15/600');
  // Both set: the values as written, whatever the role.
  const both = fieldsRefused({ read_cpu_per_client: { rate: 30, burst: 500 }, read_cpu_total: { rate: 20, burst: 900 } }, 'observer').find((i) => i.field === at);
  assert.equal(both?.reason, 'must not exceed read_cpu_total (rate and burst)');
});

const invalidOnBoth: Array<[string, Record<string, unknown>, string, RegExp]> = [
  ['a read CPU rate above one core', { read_cpu_per_client: { rate: 1001 } }, 'services.consensus.limits.read_cpu_per_client.rate', /at most 1000/],
  ['a read CPU burst of 0', { read_cpu_total: { burst: 0 } }, 'services.consensus.limits.read_cpu_total.burst', />=1|at least 1|too small/i],
  ['a read CPU bucket that is not one', { read_cpu_total: 500 }, 'services.consensus.limits.read_cpu_total', /object/],
  ['an unknown field of a read CPU bucket', { read_cpu_per_client: { rate: 10, brust: 100 } }, 'services.consensus.limits.read_cpu_per_client.brust', /unknown field/],
];
for (const role of ['validator', 'observer'] as const) {
  for (const [name, limits, field, reason] of invalidOnBoth) {
    test(`refused on ${role === 'observer' ? 'an observer' : 'a validator'} too: ${name} → ${field}`, () => {
      const issues = fieldsRefused(limits, role);
      const hit = issues.find((i) => i.field === field);
      assert.ok(hit, `no issue for ${field}; got ${JSON.stringify(issues)}`);
      assert.match(hit.reason, reason);
      assert.ok(!issues.some((i) => /must not exceed read_cpu_total/.test(i.reason)), 'no second issue from a value that did not parse');
    });
  }
}

test('each limit can be set; durations take units', () => {
  const l = parseConfText(base({ streams_per_client: 2, stream_stall: '2s', refusal_delay: 0, read_per_client: { rate: 5, burst: 150 } })).services.consensus.limits;
  assert.equal(l.streams_per_client, 2);
  assert.equal(l.stream_stall, 2000);
  assert.equal(l.refusal_delay, 0);
  assert.deepEqual(l.read_per_client, { rate: 5, burst: 150 });
  assert.equal(l.streams_total, 128, 'the rest keep their defaults');
});

const contradictions: Array<[string, Record<string, unknown>, string, RegExp]> = [
  ['a per-client stream limit above the total', { streams_per_client: 200 }, 'services.consensus.limits.streams_per_client', /must not exceed streams_total/],
  ['reads in flight per client above the total', { reads_in_flight_per_client: 100 }, 'services.consensus.limits.reads_in_flight_per_client', /must not exceed reads_in_flight_total/],
  ['a per-client read rate above the total', { read_per_client: { rate: 5000, burst: 5000 } }, 'services.consensus.limits.read_per_client', /must not exceed read_total/],
  ['a submit burst above the total', { submit_per_client: { rate: 10, burst: 200_000 } }, 'services.consensus.limits.submit_per_client', /must not exceed submit_total/],
  ['a per-client read CPU burst above the total', { read_cpu_per_client: { rate: 30, burst: 5000 } }, 'services.consensus.limits.read_cpu_per_client', /must not exceed read_cpu_total/],
  ['a read CPU rate above one core', { read_cpu_total: { rate: 1500, burst: 2000 } }, 'services.consensus.limits.read_cpu_total.rate', /at most 1000/],
  ['too few clients for the streams and reads they may hold', { max_clients: 100 }, 'services.consensus.limits.max_clients', /must exceed streams_total \+ reads_in_flight_total/],
  ['a read burst below the heaviest call', { read_per_client: { rate: 10, burst: 50 } }, 'services.consensus.limits.read_per_client.burst', /at least 101/],
  ['a stall time of 0', { stream_stall: 0 }, 'services.consensus.limits.stream_stall', /more than 0/],
  ['an unknown key (a typo)', { streams_per_clients: 3 }, 'services.consensus.limits.streams_per_clients', /unknown field/],
];

for (const [name, limits, field, reason] of contradictions) {
  test(`refused: ${name} → ${field}`, () => {
    const issues = fieldsRefused(limits);
    const hit = issues.find((i) => i.field === field);
    assert.ok(hit, `no issue for ${field}; got ${JSON.stringify(issues)}`);
    assert.match(hit.reason, reason);
  });
}
