import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateIdentity, networkList, parseCidr, type Cidr } from '#libs/config/index.ts';
import { DiscoveryBudget, MAX_RECORDS_PER_MESSAGE, STRIKE_REASONS, TokenBucket, addressProblem, filterRecords, isPrivateHost } from './exchange-filter.ts';

const self = await generateIdentity();
const x = await generateIdentity();
const y = await generateIdentity();
const ctx = (known: Record<string, string[]> = {}, dropPrivate = false, validators: Record<string, string[]> = {}) =>
  ({ selfPeerId: self.peerId, known: (id: string) => known[id], dropPrivate, validator: (id: string) => validators[id] });

test('self, bad keys, bad addresses and address-less records are filtered; duplicates merge', () => {
  const r = filterRecords([
    { publicKey: self.publicKey, addresses: ['/ip4/10.0.0.1/tcp/1'] },
    { publicKey: 'not-base64!', addresses: ['/ip4/10.0.0.1/tcp/1'] },
    { publicKey: x.publicKey, addresses: ['/ip4/0.0.0.0/tcp/1', '/ip6/::/tcp/1', 'garbage', '/ip4/1.2.3.4/udp/1', `/ip4/1.2.3.4/tcp/1/p2p/${y.peerId}`, '/dns4/a b/tcp/1'] },
    { publicKey: y.publicKey, addresses: ['/ip4/10.0.0.2/tcp/4001'] },
    { publicKey: y.publicKey, addresses: ['/dns6/m1.example.org/tcp/4001', `/ip4/10.0.0.3/tcp/1/p2p/${y.peerId}`] },
  ], ctx(), 5);
  assert.deepEqual(r.fresh.map((p) => [p.peerId, p.addresses, p.lastSeenMs]), [
    [y.peerId, ['/ip4/10.0.0.2/tcp/4001', '/dns6/m1.example.org/tcp/4001', `/ip4/10.0.0.3/tcp/1/p2p/${y.peerId}`], 5],
  ]);
  const reasons = r.rejected.map((j) => j.reason).sort();
  assert.deepEqual(reasons, ['bad_address', 'bad_address', 'bad_address', 'bad_address', 'bad_address', 'bad_address', 'bad_key', 'no_address']);
});

test('known peers only come back with new addresses; private ones go when asked', () => {
  const known = { [y.peerId]: ['/ip4/10.0.0.2/tcp/4001'] };
  assert.equal(filterRecords([{ publicKey: y.publicKey, addresses: ['/ip4/10.0.0.2/tcp/4001'] }], ctx(known), 0).fresh.length, 0);
  const r = filterRecords([{ publicKey: y.publicKey, addresses: ['/ip4/10.0.0.2/tcp/4001', '/ip4/8.8.8.8/tcp/1'] }], ctx(known), 0);
  assert.deepEqual(r.fresh[0]!.addresses, ['/ip4/10.0.0.2/tcp/4001', '/ip4/8.8.8.8/tcp/1'], 'learned addresses go after the known ones');
  const p = filterRecords([{ publicKey: x.publicKey, addresses: ['/ip4/127.0.0.1/tcp/1', '/ip4/192.168.1.1/tcp/1', '/ip4/8.8.8.8/tcp/2'] }], ctx({}, true), 0);
  assert.deepEqual(p.fresh[0]!.addresses, ['/ip4/8.8.8.8/tcp/2']);
  assert.equal(p.rejected.filter((j) => j.reason === 'private_address').length, 2);
});

test('learned_networks: only IP addresses inside the named networks are taken, private or not; DNS names are refused', () => {
  const cidr = (c: string): Cidr => { const r = parseCidr(c); assert.ok(r.ok, c); return r.value; };
  const networks = networkList([cidr('127.0.0.0/8'), cidr('fd00::/8')]);
  const addrs = ['/ip4/127.66.1.2/tcp/1', '/ip4/198.51.100.7/tcp/1', '/ip6/fd00::7/tcp/1', '/dns4/m1.example.org/tcp/1', '/ip4/10.0.0.1/tcp/1', '/ip6/2001:db8::1/tcp/1'];
  const r = filterRecords([{ publicKey: x.publicKey, addresses: addrs }], { ...ctx(), networks }, 0);
  assert.deepEqual(r.fresh[0]!.addresses, ['/ip4/127.66.1.2/tcp/1', '/ip6/fd00::7/tcp/1']);
  assert.deepEqual(r.rejected.map((j) => [j.reason, j.detail.split(': ')[1]]), [
    ['outside_networks', '/ip4/198.51.100.7/tcp/1'], ['outside_networks', '/dns4/m1.example.org/tcp/1'],
    ['outside_networks', '/ip4/10.0.0.1/tcp/1'], ['outside_networks', '/ip6/2001:db8::1/tcp/1'],
  ]);
  // Both rules apply: inside the networks and still private is refused where private is dropped.
  assert.equal(addressProblem('/ip4/127.0.0.1/tcp/1', 'p', true, networks), 'private_address');
  assert.equal(networkList([]), undefined, 'no networks: no restriction');
  for (const bad of ['10.0.0.0', '10.0.0.0/33', 'fd00::/129', 'host.example/8', '10.0.0.0/8/1', '']) assert.equal(parseCidr(bad).ok, false, bad);
});

test('too many records in one message are cut', () => {
  const many = Array.from({ length: MAX_RECORDS_PER_MESSAGE + 5 }, () => ({ publicKey: 'x', addresses: [] }));
  assert.ok(filterRecords(many, ctx(), 0).rejected.some((j) => j.reason === 'too_many'));
});

test('address checks and private ranges', () => {
  assert.equal(addressProblem('/ip4/1.2.3.4/tcp/0', 'p', false), 'bad_address');
  assert.equal(addressProblem('/dns4/host.example/tcp/1', 'p', false), undefined);
  assert.equal(addressProblem('/ip4/1.2.3.4/tcp/1/ws', 'p', false), 'bad_address');
  for (const h of ['127.0.0.1', '10.1.1.1', '172.16.0.1', '192.168.0.1', '169.254.1.1', '::1', 'fe80::1', 'fd00::1', 'localhost']) assert.ok(isPrivateHost(h), h);
  for (const h of ['8.8.8.8', '172.32.0.1', '2001:db8::1', 'example.org']) assert.ok(!isPrivateHost(h), h);
});

test('the token bucket allows a burst, then the refill rate', () => {
  const b = new TokenBucket(3, 2, 0);
  assert.deepEqual([b.take(0), b.take(0), b.take(0), b.take(0)], [true, true, true, false]);
  assert.equal(b.take(400), false);
  assert.equal(b.take(500), true);
});

test('the discovery budget caps new peers per interval', () => {
  const d = new DiscoveryBudget(10, 1000, 0);
  assert.equal(d.grant(7, 0), 7);
  assert.equal(d.grant(7, 500), 3);
  assert.equal(d.grant(7, 900), 0);
  assert.equal(d.grant(7, 1000), 7);
});

test('a validator\'s addresses are never taken from peer exchange; other ones are counted, not a strike', () => {
  const real = '/ip4/10.0.0.2/tcp/4001';
  const v = { [y.peerId]: [real] };
  const other = filterRecords([{ publicKey: y.publicKey, addresses: ['/ip4/203.0.113.1/tcp/9', real] }], ctx(v, false, v), 0);
  assert.equal(other.fresh.length, 0);
  assert.deepEqual(other.rejected.map((j) => j.reason), ['validator']);
  // The sender's set may be another epoch's, where this peer is not a validator.
  assert.ok(!other.rejected.some((j) => STRIKE_REASONS.has(j.reason)), 'a validator\'s record at other addresses is a strike');
  // An honest relay of the configured address is ignored silently.
  const relay = filterRecords([{ publicKey: y.publicKey, addresses: [real] }], ctx(v, false, v), 0);
  assert.deepEqual([relay.fresh.length, relay.rejected.length], [0, 0]);
});

test('a validator seated by a set change, not in peers.yaml (nothing configured), relayed by a peer of another epoch: dropped, no strike', () => {
  const seen = filterRecords([{ publicKey: x.publicKey, addresses: ['/ip4/198.51.100.9/tcp/4001'] }], ctx({}, false, { [x.peerId]: [] }), 0);
  assert.equal(seen.fresh.length, 0, 'a validator\'s address taken from peer exchange');
  assert.deepEqual(seen.rejected.map((j) => j.reason), ['validator']);
  assert.ok(!seen.rejected.some((j) => STRIKE_REASONS.has(j.reason)));
  // Broken records are still strikes, a validator's too.
  for (const reason of ['bad_key', 'bad_address', 'too_many', 'too_many_addresses'] as const) assert.ok(STRIKE_REASONS.has(reason), reason);
  const many = Array.from({ length: 9 }, (_, i) => `/ip4/198.51.100.${i + 1}/tcp/4001`);
  const flood = filterRecords([{ publicKey: x.publicKey, addresses: many }], ctx({}, false, { [x.peerId]: [] }), 0);
  assert.deepEqual(flood.rejected.map((j) => j.reason), ['too_many_addresses', 'validator']);
});

test('at most 8 addresses per peer, the known ones kept first; a full peer is not rewritten', () => {
  const many = Array.from({ length: 40 }, (_, i) => `/ip4/8.8.8.${i}/tcp/1`);
  const r = filterRecords([{ publicKey: x.publicKey, addresses: many }], ctx(), 0);
  assert.equal(r.fresh[0]!.addresses.length, 8);
  assert.ok(r.rejected.some((j) => j.reason === 'too_many_addresses'));
  const known = { [x.peerId]: many.slice(0, 8) };
  const again = filterRecords([{ publicKey: x.publicKey, addresses: ['/ip4/9.9.9.9/tcp/1'] }], ctx(known), 0);
  assert.equal(again.fresh.length, 0, 'known addresses are never pushed out by learned ones');
  const some = { [x.peerId]: ['/ip4/1.1.1.1/tcp/1'] };
  assert.deepEqual(filterRecords([{ publicKey: x.publicKey, addresses: ['/ip4/9.9.9.9/tcp/1'] }], ctx(some), 0).fresh[0]!.addresses,
    ['/ip4/1.1.1.1/tcp/1', '/ip4/9.9.9.9/tcp/1']);
});
