import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DELINQUENT_AFTER, FORGOTTEN_MS, MAX_FORGOTTEN, PeerTable, UNPROVEN_DIALS, type PeerTransition } from './peer-table.ts';

function table(random = () => 0.5) {
  let now = 1_000;
  const seen: PeerTransition[] = [];
  const t = new PeerTable({ now: () => now, random, backoff: { baseMs: 100, maxMs: 1000, jitter: 0.2 }, onTransition: (x) => seen.push(x) });
  return { t, seen, advance: (ms: number) => { now += ms; }, now: () => now };
}

test('15 consecutive failures make a peer delinquent; one success recovers it', () => {
  const { t, seen } = table();
  t.upsertKnown('p', ['/ip4/127.0.0.1/tcp/1']);
  for (let i = 1; i < DELINQUENT_AFTER; i++) t.failure('p', i % 3 === 0 ? 'ping' : 'dial', 'refused');
  assert.equal(t.get('p')!.delinquent, false);
  t.failure('p', 'send', 'reset');
  assert.equal(t.get('p')!.delinquent, true);
  assert.deepEqual(seen.map((s) => s.type), ['delinquent']);
  t.failure('p', 'dial', 'again');
  assert.equal(seen.length, 1, 'delinquent is reported once');
  t.success('p', 3.5);
  assert.deepEqual(seen.map((s) => s.type), ['delinquent', 'recovered']);
  assert.deepEqual([t.get('p')!.consecutiveFailures, t.get('p')!.latencyMs], [0, 3.5]);
});

test('a success in between resets the count', () => {
  const { t } = table();
  t.upsertKnown('p', ['/ip4/127.0.0.1/tcp/1']);
  for (let i = 0; i < 14; i++) t.failure('p', 'dial', 'x');
  t.success('p');
  for (let i = 0; i < 14; i++) t.failure('p', 'dial', 'x');
  assert.equal(t.get('p')!.delinquent, false);
});

test('redials back off exponentially with jitter, capped', () => {
  const lo = table(() => 0);
  const hi = table(() => 1);
  for (const { t } of [lo, hi]) t.upsertKnown('p', ['/ip4/127.0.0.1/tcp/1']);
  const delays = (x: ReturnType<typeof table>) => Array.from({ length: 6 }, () => { x.t.failure('p', 'dial', 'x'); return x.t.get('p')!.backoffMs; });
  assert.deepEqual(delays(lo), [80, 160, 320, 640, 800, 800]);
  assert.deepEqual(delays(hi), [120, 240, 480, 960, 1200, 1200]);
  const { t, advance } = table();
  t.upsertKnown('p', ['/ip4/127.0.0.1/tcp/1']);
  assert.equal(t.due().length, 1);
  t.connecting('p');
  t.failure('p', 'dial', 'x');
  assert.equal(t.due().length, 0, 'not due during its backoff');
  advance(101);
  assert.equal(t.due().length, 1);
});

test('connect and disconnect are reported once; unknown inbound peers leave the table on disconnect', () => {
  const { t, seen } = table();
  t.connected('in', '/ip4/1.2.3.4/tcp/5');
  t.connected('in', '/ip4/1.2.3.4/tcp/5');
  assert.equal(t.get('in')!.known, false);
  t.disconnected('in', 'closed');
  assert.equal(t.get('in'), undefined);
  assert.deepEqual(seen.map((s) => s.type), ['connected', 'disconnected']);
});

test('setKnown replaces the known set and keeps connected peers it dropped', () => {
  const { t } = table();
  t.setKnown([{ peerId: 'a', addresses: ['x'] }, { peerId: 'b', addresses: ['y'] }]);
  t.connected('b', 'y');
  const r = t.setKnown([{ peerId: 'c', addresses: ['z'] }]);
  assert.deepEqual(r, { added: ['c'], removed: ['a', 'b'] });
  assert.equal(t.get('a'), undefined);
  assert.equal(t.get('b')!.phase, 'connected');
  assert.deepEqual(t.all().map((e) => e.peerId).sort(), ['b', 'c']);
});

test('learned addresses never go before configured ones; a failed address is demoted', () => {
  const { t } = table();
  t.setKnown([{ peerId: 'v', addresses: ['/ip4/10.0.0.1/tcp/1'] }]);
  t.upsertKnown('v', ['/ip4/192.0.2.1/tcp/9'], 8);
  assert.deepEqual(t.get('v')!.addresses, ['/ip4/10.0.0.1/tcp/1', '/ip4/192.0.2.1/tcp/9']);
  t.demote('v', '/ip4/10.0.0.1/tcp/1');
  assert.deepEqual(t.get('v')!.addresses, ['/ip4/192.0.2.1/tcp/9', '/ip4/10.0.0.1/tcp/1']);
  t.upsertKnown('x', Array.from({ length: 20 }, (_, i) => `/ip4/8.8.8.${i}/tcp/1`), 8);
  assert.equal(t.get('x')!.addresses.length, 8);
});

test('learned peers are evicted least recently useful first; configured, connected and kept ones never', () => {
  const { t, advance } = table();
  t.setKnown([{ peerId: 'conf', addresses: ['/ip4/10.0.0.1/tcp/1'] }]);
  for (const id of ['a', 'b', 'c', 'd', 'keep']) { t.upsertKnown(id, ['/ip4/8.8.8.8/tcp/1']); advance(10); }
  t.success('a'); // a was useful most recently
  t.connected('b', '/ip4/8.8.8.8/tcp/1');
  const evicted = t.evictLearned(3, (id) => id === 'keep');
  assert.deepEqual(evicted.sort(), ['c', 'd']);
  assert.ok(t.get('conf') && t.get('a') && t.get('b') && t.get('keep'));
  assert.equal(t.learnedCount(), 3);
  assert.deepEqual(t.evictLearned(0, (id) => id === 'keep'), ['a'], 'connected and kept peers stay even past the bound');
  t.upsertKnown('old', ['/ip4/8.8.8.8/tcp/1']);
  advance(10);
  t.upsertKnown('failing', ['/ip4/192.0.2.1/tcp/1']);
  t.failure('failing', 'dial', 'timeout');
  assert.deepEqual(t.evictLearned(3, (id) => id === 'keep'), ['failing'], 'a peer whose dial failed goes before an older one');
});

test('a held-off peer is not due before its time, whatever its backoff says', () => {
  const { t, advance } = table();
  t.upsertKnown('p', ['/ip4/127.0.0.1/tcp/1']);
  t.connected('p', '/ip4/127.0.0.1/tcp/1');
  t.holdOff('p', 1_000 + 60_000);
  t.disconnected('p', 'penalised: hung up');
  advance(5_000);
  assert.deepEqual(t.due().map((e) => e.peerId), [], 'its backoff is over, its hold is not');
  advance(55_000);
  assert.deepEqual(t.due().map((e) => e.peerId), ['p']);
  t.holdOff('nobody', 10); // a peer not in the table: nothing to hold
  assert.equal(t.get('nobody'), undefined);
});

test('a learned peer that never connected is forgotten after UNPROVEN_DIALS failed dials, and not learned again for a while', () => {
  const { t, advance } = table();
  t.setKnown([{ peerId: 'conf', addresses: ['/ip4/10.0.0.1/tcp/1'] }]);
  for (const id of ['fake', 'real']) t.upsertKnown(id, ['/ip4/127.77.0.1/tcp/1']);
  t.connected('real', '/ip4/127.77.0.1/tcp/1');
  t.disconnected('real', 'closed');
  for (let k = 1; k <= UNPROVEN_DIALS; k++) {
    assert.equal(t.forgetUnproven('fake'), false, `not before ${UNPROVEN_DIALS} failed dials (${k - 1} so far)`);
    for (const id of ['fake', 'real', 'conf']) t.failure(id, 'dial', 'refused');
  }
  assert.equal(t.forgetUnproven('fake'), true);
  assert.equal(t.get('fake'), undefined, 'gone from the table: never dialled again');
  assert.equal(t.forgotten('fake'), true);
  for (let k = 0; k < 10; k++) { t.failure('real', 'dial', 'refused'); t.failure('conf', 'dial', 'refused'); }
  assert.equal(t.forgetUnproven('real'), false, 'a peer that once connected is kept (backoff only)');
  assert.equal(t.forgetUnproven('conf'), false, 'a peer in peers.yaml is the operator\'s');
  assert.ok(t.get('real') && t.get('conf'));
  advance(FORGOTTEN_MS + 1);
  assert.equal(t.forgotten('fake'), false, 'may be learned again after FORGOTTEN_MS');

  // Connecting clears it at once; the memory of forgotten peers is bounded.
  t.upsertKnown('back', ['/ip4/127.77.0.2/tcp/1']);
  for (let k = 0; k < UNPROVEN_DIALS; k++) t.failure('back', 'dial', 'refused');
  assert.equal(t.forgetUnproven('back'), true);
  t.connected('back', '/ip4/127.77.0.2/tcp/5');
  assert.equal(t.forgotten('back'), false, 'a forgotten peer that connects is real');
  for (let k = 0; k < MAX_FORGOTTEN + 10; k++) {
    const id = `junk-${k}`;
    t.upsertKnown(id, ['/ip4/127.77.0.3/tcp/1']);
    for (let j = 0; j < UNPROVEN_DIALS; j++) t.failure(id, 'dial', 'refused');
    t.forgetUnproven(id);
  }
  assert.equal(t.forgotten('junk-0'), false, 'the oldest forgotten peers go first past the bound');
  assert.equal(t.forgotten(`junk-${MAX_FORGOTTEN + 9}`), true);
});

test('an unseated validator not in peers.yaml is forgotten (kept only while connected); a peers.yaml entry stays', () => {
  const { t, advance } = table();
  t.setKnown([{ peerId: 'listed', addresses: ['/ip4/10.0.0.1/tcp/1'] }]);
  for (const id of ['listed', 'gone', 'rotated', 'still-up']) t.upsertKnown(id, ['/ip4/10.0.0.9/tcp/1'], 8); // their cards
  for (const id of ['gone', 'rotated', 'still-up']) t.connected(id, '/ip4/10.0.0.9/tcp/1');
  for (const id of ['gone', 'rotated']) t.disconnected(id, 'closed');
  // Once connected, a card-only peer is never forgotten for its failed dials: only unseating ends its redials.
  for (let k = 0; k < 10; k++) t.failure('gone', 'dial', 'refused');
  assert.equal(t.forgetUnproven('gone'), false);
  advance(60_000);
  assert.ok(t.due().some((e) => e.peerId === 'gone'), 'redialled on backoff');

  assert.deepEqual(['listed', 'gone', 'rotated', 'still-up', 'absent'].map((id) => t.unseat(id)), [false, true, true, true, false], 'whether it was dialled until now');
  assert.deepEqual(t.due().map((e) => e.peerId), ['listed'], 'only the peers.yaml entry is still dialled');
  assert.equal(t.get('gone'), undefined);
  assert.equal(t.get('rotated'), undefined);
  assert.ok(t.get('listed')!.configured && t.get('listed')!.known, 'the operator\'s entry stays');
  assert.equal(t.forgotten('listed'), false);
  assert.equal(t.get('still-up')!.phase, 'connected', 'a set change closes no connection');
  assert.equal(t.get('still-up')!.known, false);
  assert.equal(t.forgotten('gone'), true, 'not learned straight back from others\' lists');
  t.disconnected('still-up', 'closed');
  assert.equal(t.get('still-up'), undefined, 'leaves the table once disconnected: never redialled');
  assert.equal(t.learnedCount(), 0);
  advance(FORGOTTEN_MS + 1);
  assert.equal(t.forgotten('gone'), false);
});

test('a seated peer is due at once, whatever its hold-off or backoff; its failures stay', () => {
  const { t, advance } = table();
  t.upsertKnown('p', ['/ip4/10.0.0.9/tcp/1']);
  for (let k = 0; k < DELINQUENT_AFTER; k++) t.failure('p', 'dial', 'refused');
  t.holdOff('p', 1_000 + 10 * 60_000); // penalised by the peer exchange as a stranger
  advance(5_000);
  assert.deepEqual(t.due(), []);
  t.seated('p');
  assert.deepEqual(t.due().map((e) => e.peerId), ['p']);
  assert.equal(t.get('p')!.delinquent, true, 'a seat is no success');
  t.upsertKnown('q', ['/ip4/10.0.0.8/tcp/1']);
  for (let k = 0; k < UNPROVEN_DIALS; k++) t.failure('q', 'dial', 'refused');
  assert.equal(t.forgetUnproven('q'), true);
  t.seated('q');
  assert.equal(t.forgotten('q'), false, 'a seated peer is no longer one forgotten');
  t.seated('nobody');
  assert.equal(t.get('nobody'), undefined);
});
