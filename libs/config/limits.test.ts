// services.consensus.limits in conf.yaml: the defaults parse and hold together, each limit can be
// set, and a limit that would contradict another is refused naming the field.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { stringify } from 'yaml';
import { isFedError, type FedError } from '#libs/errors/index.ts';
import { parseConfText, type ConfigIssue } from '#libs/config/index.ts';

const base = (limits?: Record<string, unknown>) => stringify({
  node: { name: 'm0' }, network: { addresses: ['/ip4/127.0.0.1/tcp/4001'] },
  ...(limits ? { services: { consensus: { limits } } } : {}),
});

function fieldsRefused(limits: Record<string, unknown>): ConfigIssue[] {
  try { parseConfText(base(limits)); } catch (err) {
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
    read_cpu_per_client: { rate: 15, burst: 600 }, read_cpu_total: { rate: 50, burst: 2000 },
    submit_per_client: { rate: 20_000, burst: 40_000 }, submit_total: { rate: 50_000, burst: 100_000 },
  });
});

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
