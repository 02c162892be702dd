import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InboundGate, MAX_TRACKED_HOSTS, normaliseHost, type GateVerdict } from './inbound-gate.ts';

const limits = { perHost: { rate: 4, burst: 16 }, unknownHosts: { rate: 20, burst: 64 } };

const run = (gate: InboundGate, host: string, n: number, now: number): Record<GateVerdict, number> => {
  const out: Record<GateVerdict, number> = { admit: 0, host_rate: 0, unknown_hosts_rate: 0 };
  for (let i = 0; i < n; i++) out[gate.admit(host, now)]++;
  return out;
};

test('a host without a validator: its burst at once, then its rate; refused ones are not admitted later', () => {
  const gate = new InboundGate(limits, [], 0);
  assert.deepEqual(run(gate, '198.51.100.7', 100, 0), { admit: 16, host_rate: 84, unknown_hosts_rate: 0 });
  // 4 a second: one more after 250 ms, not two.
  assert.deepEqual(run(gate, '198.51.100.7', 5, 250), { admit: 1, host_rate: 4, unknown_hosts_rate: 0 });
  assert.deepEqual(run(gate, '198.51.100.7', 10, 1250), { admit: 4, host_rate: 6, unknown_hosts_rate: 0 });
});

test('a host with validators gets one share more for each; it is not charged to the hosts without one', () => {
  const gate = new InboundGate(limits, ['10.0.0.1', '10.0.0.1', '10.0.0.2'], 0);
  assert.equal(run(gate, '10.0.0.1', 100, 0).admit, 48);
  assert.equal(run(gate, '10.0.0.2', 100, 0).admit, 32);
  assert.equal(run(gate, '10.0.0.1', 100, 1000).admit, 12);
  // The shared bucket of hosts without a validator is untouched: a stranger still gets its burst.
  assert.equal(run(gate, '198.51.100.7', 100, 1000).admit, 16);
});

test('hosts without a validator share one bucket: many addresses do not multiply it; validators\' hosts pass when it is empty', () => {
  const gate = new InboundGate(limits, ['10.0.0.1'], 0);
  let admitted = 0;
  let shared = 0;
  for (let h = 0; h < 200; h++) {
    const v = gate.admit(`203.0.113.${h}`, 0);
    if (v === 'admit') admitted++;
    if (v === 'unknown_hosts_rate') shared++;
  }
  assert.equal(admitted, 64);
  assert.equal(shared, 136);
  assert.equal(gate.admit('10.0.0.1', 0), 'admit');
  // A host refused by its own bucket spends nothing of the shared one.
  const g2 = new InboundGate(limits, [], 0);
  run(g2, '198.51.100.7', 1000, 0);
  assert.equal(run(g2, '198.51.100.8', 100, 0).admit, 16);
});

test('the hosts tracked are bounded: the least recently seen is forgotten', () => {
  const gate = new InboundGate({ perHost: limits.perHost, unknownHosts: { rate: 1e9, burst: 1e9 } }, [], 0);
  for (let h = 0; h < MAX_TRACKED_HOSTS + 500; h++) gate.admit(`10.${h >> 8}.${h & 255}.1`, 0);
  assert.equal(gate.trackedHosts, MAX_TRACKED_HOSTS);
});

test('a change of where validators are resets only the hosts it changes', () => {
  const gate = new InboundGate(limits, ['10.0.0.1'], 0);
  run(gate, '10.0.0.1', 100, 0);
  run(gate, '10.0.0.2', 100, 0);
  gate.setValidatorHosts(['10.0.0.1', '10.0.0.3']);
  assert.equal(gate.admit('10.0.0.1', 0), 'host_rate', 'an unchanged host keeps its spent bucket');
  assert.equal(gate.admit('10.0.0.2', 0), 'host_rate');
  gate.setValidatorHosts(['10.0.0.1', '10.0.0.2']);
  assert.equal(run(gate, '10.0.0.2', 100, 0).admit, 32, 'a host that became a validator\'s starts again at its new size');
  gate.setLimits({ perHost: { rate: 1, burst: 2 }, unknownHosts: limits.unknownHosts }, 0);
  assert.equal(run(gate, '10.0.0.1', 100, 0).admit, 4);
});

test('hosts: IPv4-mapped IPv6 is the IPv4 host; IPv6 is counted by its /64', () => {
  assert.equal(normaliseHost('::FFFF:10.0.0.1'), '10.0.0.1');
  assert.equal(normaliseHost('198.51.100.7'), '198.51.100.7');
  assert.equal(normaliseHost('2001:DB8::1'), '2001:db8:0:0::/64');
  assert.equal(normaliseHost('2001:db8:0:0:ffff:1:2:3'), '2001:db8:0:0::/64');
  assert.equal(normaliseHost('2001:0db8:0000:0001::1'), '2001:db8:0:1::/64');
  assert.equal(normaliseHost('::1'), '0:0:0:0::/64');
  assert.equal(normaliseHost('fe80::1%eth0'), 'fe80:0:0:0::/64');
  assert.equal(normaliseHost('64:ff9b::192.0.2.1'), '64:ff9b:0:0::/64');
  assert.equal(normaliseHost('1:2:3:4:5:6:7'), '1:2:3:4:5:6:7', 'not an address: kept as it is');
  assert.equal(normaliseHost('1::2::3'), '1::2::3');
  // One machine with a /64 is one host: its addresses share a bucket, and a validator's /64 is its host.
  const v6 = new InboundGate(limits, ['2001:db8:0:7::10'], 0);
  let admitted = 0;
  for (let k = 1; k <= 100; k++) if (v6.admit(`2001:db8:0:9::${k.toString(16)}`, 0) === 'admit') admitted++;
  assert.equal(admitted, 16);
  assert.equal(run(v6, '2001:db8:0:7::99', 100, 0).admit, 32);
  const gate = new InboundGate(limits, ['10.0.0.1'], 0);
  assert.equal(run(gate, '::ffff:10.0.0.1', 100, 0).admit, 32, 'a mapped address is its IPv4 host');
});
