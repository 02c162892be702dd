import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CHAIN, FACTOR, firewallRules, hashlimitRate, type FirewallInput } from './firewall.ts';

const base: FirewallInput = {
  member: 'm0', family: 4, ports: [7105], validatorHosts: ['10.0.0.2', '10.0.0.3', '10.0.0.2'],
  perHost: { rate: 1, burst: 8 }, maxPerSource: 32,
};
const rulesOf = (fw: { restore: string }) => fw.restore.split('\n').filter((l) => l.startsWith('-A '));

test('validators\' hosts pass first, once each; every other source is held to twice the gate\'s per-host rate and burst, then to a count at once', () => {
  const fw = firewallRules(base);
  assert.deepEqual(rulesOf(fw), [
    `-A ${CHAIN} -s 10.0.0.2/32 -j RETURN`,
    `-A ${CHAIN} -s 10.0.0.3/32 -j RETURN`,
    `-A ${CHAIN} -p tcp -m hashlimit --hashlimit-name btcfed-gw --hashlimit-mode srcip --hashlimit-srcmask 32 --hashlimit-above ${FACTOR}/second --hashlimit-burst ${8 * FACTOR} --hashlimit-htable-max 65536 --hashlimit-htable-expire 60000 -j DROP`,
    `-A ${CHAIN} -p tcp -m connlimit --connlimit-above 32 --connlimit-mask 32 -j REJECT --reject-with tcp-reset`,
  ]);
  // iptables-restore input that replaces the chain only: declared, then COMMIT, no INPUT rule in it.
  assert.match(fw.restore, new RegExp(`^\\*filter\\n:${CHAIN} - \\[0:0\\]$`, 'm'));
  assert.match(fw.restore, /^COMMIT$/m);
  assert.doesNotMatch(fw.restore, /-A INPUT|-I INPUT|-F\b/);
  assert.deepEqual(fw.hook, ['INPUT', '-p', 'tcp', '-m', 'multiport', '--dports', '7105', '--syn', '-j', CHAIN]);
  assert.deepEqual(fw.notes, []);
});

test('IPv6: sources by /64 as the gate keys them, IPv4 validators left to the IPv4 rules, a DNS name reported and not exempted', () => {
  const fw = firewallRules({ ...base, family: 6, ports: [7105, 7106, 7105], validatorHosts: ['10.0.0.2', 'FD00::2', 'fe80::1%eth0', 'm3.example.org'] });
  const rules = rulesOf(fw);
  assert.deepEqual(rules.filter((r) => r.includes('RETURN')), [`-A ${CHAIN} -s fd00::2/128 -j RETURN`, `-A ${CHAIN} -s fe80::1/128 -j RETURN`]);
  assert.ok(rules.some((r) => r.includes('--hashlimit-name btcfed-gw6') && r.includes('--hashlimit-srcmask 64')));
  assert.ok(rules.some((r) => r.includes('--connlimit-mask 64')));
  assert.equal(fw.hook[6], '7105,7106', 'each port once, in order');
  assert.deepEqual(fw.notes, ['validator host m3.example.org is a DNS name: not exempted (list its address, or resolve it and run this again)']);
});

test('rates iptables cannot take per second are given per minute', () => {
  assert.equal(hashlimitRate(2), '2/second');
  assert.equal(hashlimitRate(0.5), '30/minute');
  assert.equal(hashlimitRate(2.5), '150/minute');
  assert.equal(hashlimitRate(0.001), '1/minute');
  const fw = firewallRules({ ...base, perHost: { rate: 0.25, burst: 2.5 } });
  assert.ok(rulesOf(fw).some((r) => r.includes('--hashlimit-above 30/minute --hashlimit-burst 5 ')));
});

test('what the rules cannot express is refused, saying why', () => {
  assert.throws(() => firewallRules({ ...base, ports: [] }), /no IPv4 TCP listen address/);
  assert.throws(() => firewallRules({ ...base, ports: Array.from({ length: 16 }, (_, i) => 7000 + i) }), /multiport takes at most 15/);
  assert.throws(() => firewallRules({ ...base, ports: [0] }), /1–65535/);
  assert.throws(() => firewallRules({ ...base, maxPerSource: 0 }), /whole number ≥ 1/);
});
