import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateIdentity, parseConfObject } from '#libs/config/index.ts';
import { isFedError } from '#libs/errors/index.ts';
import { diffSettings, maxFrameBytes, settingsFrom } from './settings.ts';

const me = await generateIdentity();
const other = await generateIdentity();

function conf(extra: Record<string, unknown> = {}) {
  return parseConfObject({
    node: { name: 'm0', private_key: me.privateKey },
    network: { addresses: ['/ip4/127.0.0.1/tcp/4001'] },
    validators: [
      { name: 'm1', peer_id: other.peerId, public_key: 'cd'.repeat(32) },
      { name: 'm0', peer_id: me.peerId, public_key: 'ab'.repeat(32) },
    ],
    ...extra,
  });
}

test('the frame limit fits a full block and two QCs of N signatures', () => {
  const n = 4;
  const limit = maxFrameBytes(4 * 1024 * 1024, n, 'slh-dsa-sha2-128f');
  assert.ok(limit >= 4 * 1024 * 1024 + 2 * n * 17_088, String(limit));
  assert.ok(limit < 4 * 1024 * 1024 + 2 * n * 17_088 + 128 * 1024, 'and not much more');
  assert.ok(maxFrameBytes(4 << 20, 100, 'slh-dsa-sha2-256f') > maxFrameBytes(4 << 20, 100, 'slh-dsa-sha2-128f'));
  assert.equal(maxFrameBytes(1024, 1, 'slh-dsa-sha2-128s'), 1024 * 1024, 'at least 1 MiB');
});

test('settings from a snapshot: self index, validators, peers without ourselves and unusable addresses', () => {
  const s = settingsFrom({ conf: conf(), peers: [
    { publicKey: other.publicKey, peerId: other.peerId, addresses: ['/ip4/10.0.0.1/tcp/1', `/ip4/10.0.0.1/tcp/2/p2p/${me.peerId}`], lastSeenMs: 0 },
    { publicKey: me.publicKey, peerId: me.peerId, addresses: ['/ip4/10.0.0.9/tcp/1'], lastSeenMs: 0 },
  ] });
  assert.equal(s.validators?.selfIndex, 1, 'this member found by its peer id');
  assert.equal(s.peerId, me.peerId);
  assert.deepEqual(s.validators?.members.map((v) => [v.index, v.peerId]), [[0, other.peerId], [1, me.peerId]]);
  assert.equal(s.validators?.quorum, 2);
  assert.deepEqual(s.peers.map((p) => [p.peerId, p.addresses]), [[other.peerId, ['/ip4/10.0.0.1/tcp/1']]]);
  assert.equal(s.exchangeIntervalMs, 30_000);
});

test('a config without the key is refused', () => {
  const c = conf();
  delete c.node.private_key;
  assert.throws(() => settingsFrom({ conf: c, peers: [] }), (e) => isFedError(e, 'GATEWAY_NO_KEY'));
});

test('diff: what applies live and what needs a restart', () => {
  const a = settingsFrom({ conf: conf(), peers: [] });
  const b = settingsFrom({ conf: conf({ network: { addresses: ['/ip4/127.0.0.1/tcp/4002'] }, peers: { exchange_interval: '5s' } }), peers: [] });
  const d = diffSettings(a, b);
  assert.deepEqual(d.addedListen, ['/ip4/127.0.0.1/tcp/4002']);
  assert.deepEqual(d.removedListen, ['/ip4/127.0.0.1/tcp/4001']);
  assert.deepEqual(d.needsRestart, ['network.addresses (removed)']);
  assert.equal(d.timersChanged, true);
  assert.equal(d.peersChanged, false);
  const none = diffSettings(a, settingsFrom({ conf: conf(), peers: [] }));
  assert.deepEqual([none.needsRestart, none.timersChanged, none.validatorsChanged, none.frameLimitChanged, none.inboundChanged], [[], false, false, false, false]);
  // The inbound connection rates apply live, with the defaults for what is left out.
  const c = settingsFrom({ conf: conf({ peers: { inbound_connections_per_host: { burst: 64 } } }), peers: [] });
  assert.deepEqual(c.inbound, { perHost: { rate: 1, burst: 64 }, unknownHosts: { rate: 5, burst: 64 } });
  assert.deepEqual([diffSettings(a, c).inboundChanged, diffSettings(a, c).needsRestart], [true, []]);
});

test('no validator set before a genesis is joined, and a member outside the set has no seat', () => {
  const before = settingsFrom({ conf: conf({ validators: [] }), peers: [] });
  assert.equal(before.validators, undefined);
  const outside = settingsFrom({ conf: conf({ validators: [{ name: 'm1', peer_id: other.peerId, public_key: 'cd'.repeat(32) }] }), peers: [] });
  assert.equal(outside.validators?.n, 1);
  assert.equal(outside.validators?.self, undefined);
  assert.equal(diffSettings(before, outside).validatorsChanged, true);
  const rekeyed = settingsFrom({ conf: conf({ validators: [{ name: 'm1', peer_id: other.peerId, public_key: 'ef'.repeat(32) }] }), peers: [] });
  assert.equal(diffSettings(outside, rekeyed).validatorsChanged, true, 'a new key is a new set');
});
