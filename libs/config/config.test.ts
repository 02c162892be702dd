import { test } from 'node:test';
import assert from 'node:assert/strict';
import { stringify } from 'yaml';
import { isFedError, type FedError } from '#libs/errors/index.ts';
import {
  generateIdentity, parseConfText, parsePeersText, parseDuration, parseTcpMultiaddr, parseHostPort,
  peersToData, type ConfigIssue,
} from '#libs/config/index.ts';

const me = await generateIdentity();
const other = await generateIdentity();
const pk = (b: number) => 'ab'.repeat(b);

function validConf(): Record<string, any> {
  return {
    node: { name: 'm0', private_key: me.privateKey },
    network: { addresses: ['/ip4/127.0.0.1/tcp/4001', '/ip6/::1/tcp/0'] },
    peers: { exchange_interval: '30s', connection_timeout: 5 },
    logging: { level: 'debug', format: 'text' },
    services: { store: { listen: '[::1]:7100', metrics: '127.0.0.1:9100' } },
    consensus: { chain_id: 'test-chain', base_timeout: '500ms', max_timeout: '1m' },
    validators: [
      { name: 'm0', peer_id: me.peerId, public_key: pk(32) },
      { name: 'm1', peer_id: other.peerId, public_key: pk(32).replace(/^ab/, 'cd') },
    ],
  };
}

function issuesOf(fn: () => unknown): ConfigIssue[] {
  try { fn(); } catch (err) {
    assert.ok(isFedError(err, 'CONFIG_INVALID'), `expected CONFIG_INVALID, got ${String(err)}`);
    return (err as FedError).details.issues as ConfigIssue[];
  }
  assert.fail('expected the file to be rejected');
}

test('the valid conf.yaml parses, with defaults filled and durations in ms', () => {
  const conf = parseConfText(stringify(validConf()));
  assert.equal(conf.node.name, 'm0');
  assert.equal(conf.peers.exchange_interval, 30_000);
  assert.equal(conf.peers.connection_timeout, 5_000);
  // Safe for public networks by default: no private addresses learned, bounded discovery and connections.
  assert.equal(conf.peers.allow_private_addresses, false);
  assert.equal(conf.peers.max_learned_peers, 256);
  assert.deepEqual(conf.peers.learned_networks, [], 'no restriction by default');
  assert.equal(conf.peers.max_connections, 512);
  assert.equal(conf.consensus.base_timeout, 500);
  assert.equal(conf.consensus.max_timeout, 60_000);
  assert.equal(conf.nats.url, 'nats://127.0.0.1:4222');
  assert.equal(conf.services.gateway.listen, '127.0.0.1:7200');
  assert.equal(conf.crypto.param_set, 'slh-dsa-sha2-128f');
  assert.equal(conf.validators.length, 2);
});

test('a minimal conf.yaml (name and one address) is valid and the key may be absent', () => {
  const conf = parseConfText('node: { name: solo }\nnetwork: { addresses: [/ip4/0.0.0.0/tcp/4001] }\n');
  assert.equal(conf.node.private_key, undefined);
  assert.equal(conf.logging.level, 'info');
  assert.equal(conf.logging.format, 'json');
});

const invalid: Array<[string, (c: Record<string, any>) => void, string, RegExp]> = [
  ['missing node.name', (c) => { delete c.node.name; }, 'node.name', /./],
  ['bad member name', (c) => { c.node.name = 'M 0'; }, 'node.name', /a-z/],
  ['garbage private key', (c) => { c.node.private_key = 'not-a-key'; }, 'node.private_key', /private key/],
  ['no listen address', (c) => { c.network.addresses = []; }, 'network.addresses', /at least one/],
  ['listen address not a multiaddr', (c) => { c.network.addresses = ['127.0.0.1:4001']; }, 'network.addresses.0', /multiaddr/],
  ['listen address over udp', (c) => { c.network.addresses = ['/ip4/127.0.0.1/udp/4001']; }, 'network.addresses.0', /tcp/],
  ['listen address with a peer id', (c) => { c.network.addresses = [`/ip4/127.0.0.1/tcp/1/p2p/${me.peerId}`]; }, 'network.addresses.0', /peer id/],
  ['bad exchange_interval', (c) => { c.peers.exchange_interval = 'soon'; }, 'peers.exchange_interval', /duration/],
  ['negative connection_timeout', (c) => { c.peers.connection_timeout = -1; }, 'peers.connection_timeout', /non-negative/],
  ['bad logging.level', (c) => { c.logging.level = 'verbose'; }, 'logging.level', /debug|info/],
  ['bad logging.format', (c) => { c.logging.format = 'xml'; }, 'logging.format', /json|text/],
  ['learned network without a prefix', (c) => { c.peers.learned_networks = ['127.0.0.0/8', '10.0.0.1']; }, 'peers.learned_networks.1', /not a network/],
  ['unknown field (typo)', (c) => { c.peers.exchange_intervall = '1s'; }, 'peers.exchange_intervall', /unknown field/],
  ['unknown top-level section', (c) => { c.extra = {}; }, 'extra', /unknown field/],
  ['bad endpoint', (c) => { c.services.store.listen = 'localhost'; }, 'services.store.listen', /host:port/],
  ['bad nats url', (c) => { c.nats = { url: 'http://x' }; }, 'nats.url', /nats:\/\//],
  ['max_timeout below base', (c) => { c.consensus.max_timeout = '100ms'; }, 'consensus.max_timeout', /base_timeout/],
  ['bad chain id', (c) => { c.consensus.chain_id = 'a b'; }, 'consensus.chain_id', /characters/],
  ['validator key of the wrong size', (c) => { c.validators[1].public_key = pk(48); }, 'validators.1.public_key', /32 bytes/],
  ['validator key not hex', (c) => { c.validators[1].public_key = 'zz'.repeat(32); }, 'validators.1.public_key', /hex/],
  ['duplicate validator name', (c) => { c.validators[1].name = 'm0'; }, 'validators.1.name', /duplicate/],
  ['garbage validator peer_id', (c) => { c.validators[1].peer_id = 'not-a-peer-id'; }, 'validators.1.peer_id', /not a libp2p peer id/],
  ['base_timeout of 0', (c) => { c.consensus.base_timeout = '0s'; }, 'consensus.base_timeout', /more than 0/],
  ['unknown param set', (c) => { c.crypto = { param_set: 'rsa' }; }, 'crypto.param_set', /slh-dsa/],
  ['unknown node.role', (c) => { c.node.role = 'reader'; }, 'node.role', /validator|observer/],
  ['an observer that is in validators', (c) => { c.node.role = 'observer'; }, 'node.role', /must not run as an observer/],
  ['follow on a validator', (c) => { c.consensus = { ...c.consensus, follow: [me.peerId] }; }, 'consensus.follow', /only an observer/],
  ['follow of a garbage peer id', (c) => { c.node.role = 'observer'; c.node.name = 'o9'; c.consensus = { ...c.consensus, follow: ['nope'] }; }, 'consensus.follow.0', /not a libp2p peer id/],
];

for (const [name, mutate, field, reason] of invalid) {
  test(`conf.yaml rejected: ${name} → ${field}`, () => {
    const c = validConf();
    mutate(c);
    const issues = issuesOf(() => parseConfText(stringify(c), '/data/m0/conf.yaml'));
    const hit = issues.find((i) => i.field === field);
    assert.ok(hit, `no issue for ${field}; got ${JSON.stringify(issues)}`);
    assert.match(hit.reason, reason);
    assert.equal(hit.file, '/data/m0/conf.yaml');
  });
}

test('YAML syntax errors and duplicate keys are rejected with the file named', () => {
  for (const text of ['node: [unclosed', 'node: {name: a}\nnode: {name: b}\n']) {
    try { parseConfText(text, 'conf.yaml'); assert.fail('accepted'); } catch (err) {
      assert.ok(isFedError(err, 'CONFIG_INVALID'));
      assert.match((err as Error).message, /^conf\.yaml: /);
    }
  }
});

test('all problems of a file are reported at once', () => {
  const c = validConf();
  c.logging.level = 'loud';
  c.peers.exchange_interval = 'never';
  const fields = issuesOf(() => parseConfText(stringify(c))).map((i) => i.field).sort();
  assert.deepEqual(fields, ['logging.level', 'peers.exchange_interval']);
});

test('peers.yaml: valid entries parse, duplicates merge, bad ones are named', () => {
  const text = stringify({ peers: [
    { public_key: other.publicKey, addresses: ['/dns4/a.example/tcp/4001'], last_seen: '2026-01-01T00:00:00Z' },
    { public_key: other.publicKey, addresses: ['/ip6/::1/tcp/4002', '/dns6/b.example/tcp/1'], last_seen: '2026-02-01T00:00:00Z' },
    { public_key: me.publicKey, addresses: [`/ip4/10.0.0.1/tcp/4001/p2p/${me.peerId}`] },
  ] });
  const peers = parsePeersText(text);
  assert.equal(peers.length, 2);
  const o = peers.find((p) => p.peerId === other.peerId)!;
  assert.deepEqual(o.addresses, ['/ip6/::1/tcp/4002', '/dns6/b.example/tcp/1', '/dns4/a.example/tcp/4001']);
  assert.equal(o.lastSeenMs, Date.parse('2026-02-01T00:00:00Z'));
  // the list round-trips through peersToData
  assert.deepEqual(parsePeersText(stringify(peersToData(peers))), [...peers].sort((a, b) => (a.peerId < b.peerId ? -1 : 1)));

  const bad = stringify({ peers: [{ public_key: 'Zm9v', addresses: ['/ip4/1.2.3.4/tcp/99999'] }] });
  const fields = issuesOf(() => parsePeersText(bad)).map((i) => i.field).sort();
  assert.deepEqual(fields, ['peers.0.addresses.0', 'peers.0.public_key']);
  assert.deepEqual(issuesOf(() => parsePeersText('peers: [{ public_key: x, address: [] }]')).map((i) => i.field).includes('peers.0.address'), true);
});

test('value parsers', () => {
  assert.deepEqual(parseDuration('1.5s'), { ok: true, value: 1500 });
  assert.deepEqual(parseDuration('2h'), { ok: true, value: 7_200_000 });
  assert.equal(parseDuration('5 days').ok, false);
  assert.deepEqual(parseDuration('1m30s'), { ok: true, value: 90_000 });
  assert.deepEqual(parseDuration('1h2m3.5s'), { ok: true, value: 3_723_500 });
  assert.deepEqual(parseDuration('1s500ms'), { ok: true, value: 1500 });
  for (const bad of ['', '1m30', 's', '1x', '1m 30s x', '-1s']) assert.equal(parseDuration(bad).ok, false, bad);
  assert.deepEqual(parseHostPort('[::1]:80'), { ok: true, value: { host: '::1', port: 80 } });
  assert.equal(parseHostPort('host:0').ok, false);
  assert.equal(parseHostPort('host:0', true).ok, true);
  assert.equal(parseTcpMultiaddr('/ip4/1.2.3.4/tcp/1/ws').ok, false);
  assert.equal(parseTcpMultiaddr('/dns/x.example/tcp/1').ok, false);
  assert.equal(parseTcpMultiaddr('/dns6/x.example/tcp/1').ok, true);
});

test('peers.yaml: an address whose /p2p is another peer is refused, naming the entry and the address', () => {
  const own = stringify({ peers: [{ public_key: other.publicKey, addresses: [`/ip4/10.0.0.2/tcp/4001/p2p/${other.peerId}`] }] });
  assert.equal(parsePeersText(own)[0]!.peerId, other.peerId, 'its own /p2p is fine');
  const wrong = stringify({ peers: [{ public_key: other.publicKey, addresses: ['/ip4/10.0.0.2/tcp/4001', `/ip4/10.0.0.3/tcp/4001/p2p/${me.peerId}`] }] });
  const issues = issuesOf(() => parsePeersText(wrong, 'p.yaml'));
  assert.deepEqual(issues.map((i) => i.field), ['peers.0.addresses.1']);
  assert.match(issues[0]!.reason, new RegExp(`/p2p/${me.peerId} is not this entry's peer`));
});

test('an observer: node.role observer, not in validators, following peers by id', () => {
  const c = validConf();
  c.node.name = 'o0';
  c.node.role = 'observer';
  c.consensus = { ...c.consensus, follow: [other.peerId] };
  const conf = parseConfText(stringify(c), '/data/o0/conf.yaml');
  assert.equal(conf.node.role, 'observer');
  assert.deepEqual(conf.consensus.follow, [other.peerId]);
  assert.equal(parseConfText(stringify(validConf()), '/data/m0/conf.yaml').node.role, 'validator', 'validator by default');
});

test('every problem at once: cross-field checks are reported beside field errors, and skip what did not parse', () => {
  const c = validConf();
  c.logging = { level: 'loud' };
  c.consensus = { ...c.consensus, base_timeout: '10s', max_timeout: '1s' };
  c.validators[1].name = c.validators[0].name;
  const issues = issuesOf(() => parseConfText(stringify(c), '/data/m0/conf.yaml'));
  const fields = issues.map((i) => i.field).sort();
  assert.deepEqual(fields, ['consensus.max_timeout', 'logging.level', 'validators.1.name'], JSON.stringify(issues));
  // A field that did not parse is not judged again by a cross-field check.
  const d = validConf();
  d.consensus = { ...d.consensus, base_timeout: 'soon', max_timeout: '1s' };
  assert.deepEqual(issuesOf(() => parseConfText(stringify(d), '/data/m0/conf.yaml')).map((i) => i.field), ['consensus.base_timeout']);
});

test('consensus.idle_heartbeat: 0 by default (a block every view), sub-second refused', () => {
  const withIdle = (v?: string) => {
    const c = validConf() as Record<string, Record<string, unknown>>;
    if (v !== undefined) c.consensus = { ...(c.consensus ?? {}), idle_heartbeat: v };
    return parseConfText(stringify(c));
  };
  assert.equal(withIdle().consensus.idle_heartbeat, 0);
  assert.equal(withIdle('10s').consensus.idle_heartbeat, 10_000);
  assert.throws(() => withIdle('200ms'), /idle_heartbeat.*1s to 30s/s);
  assert.throws(() => withIdle('1m'), /idle_heartbeat.*1s to 30s/s);
});

test('consensus.blocks_stream_max_age / _max_bytes: a week and no byte limit by default, 0 keeps all, under 10m refused', () => {
  const withRetention = (extra: Record<string, unknown>) => {
    const c = validConf() as Record<string, Record<string, unknown>>;
    c.consensus = { ...(c.consensus ?? {}), ...extra };
    return parseConfText(stringify(c)).consensus;
  };
  assert.equal(withRetention({}).blocks_stream_max_age, 168 * 3_600_000);
  assert.equal(withRetention({}).blocks_stream_max_bytes, 0);
  assert.equal(withRetention({ blocks_stream_max_age: '0s', blocks_stream_max_bytes: 0 }).blocks_stream_max_age, 0);
  assert.throws(() => withRetention({ blocks_stream_max_age: '5m' }), /blocks_stream_max_age.*at least 10m/s);
});

test('consensus.keep_blocks: 0 (every block) by default; 1 to 31 refused, naming the field', () => {
  const keep = (v: unknown) => {
    const c = validConf() as Record<string, Record<string, unknown>>;
    c.consensus = { ...(c.consensus ?? {}), keep_blocks: v };
    return parseConfText(stringify(c)).consensus.keep_blocks;
  };
  const c = validConf() as Record<string, Record<string, unknown>>;
  assert.equal(parseConfText(stringify(c)).consensus.keep_blocks, 0);
  assert.equal(keep(32), 32);
  assert.equal(keep(100_000), 100_000);
  assert.throws(() => keep(31), /keep_blocks.*at least 32/s);
  assert.throws(() => keep(-1), /keep_blocks/);
});
