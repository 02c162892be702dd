import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isFedError } from '#libs/errors/index.ts';
import { fromHex, toHex, txHash } from '#libs/crypto/index.ts';
import { encodeReconfigTx } from '#libs/validators/index.ts';
import { Mempool, NO_IDS, REMOTE_SHARE, type IdSet } from './mempool.ts';
import { OUTSIDE_BASE } from './ports.ts';

const tx = (s: string) => new TextEncoder().encode(s);
const none = () => false;
/** These ids, as the in-flight set a block is built against. */
const idsOf = (...ids: Uint8Array[]): IdSet => ({ has: (id) => ids.some((x) => toHex(x) === toHex(id)) });

test('adds, dedupes, batches oldest first within limits and removes committed', () => {
  const pool = new Mempool({ maxTxs: 10, maxBytes: 1000, maxTxBytes: 100 });
  assert.equal(pool.add(tx('a'), 1, none).status, 'added');
  assert.equal(pool.add(tx('a'), 2, none).status, 'duplicate');
  pool.add(tx('bb'), 3, none);
  pool.add(tx('ccc'), 4, none);
  assert.equal(pool.size, 3);
  assert.equal(pool.bytes, 6);
  const inFlight = idsOf(txHash(tx('bb')));
  assert.deepEqual(pool.batch(10, 1000, inFlight).map((p) => new TextDecoder().decode(p.tx)), ['a', 'ccc']);
  assert.deepEqual(pool.batch(1, 1000, NO_IDS).map((p) => new TextDecoder().decode(p.tx)), ['a']);
  assert.deepEqual(pool.batch(10, 3, NO_IDS).map((p) => new TextDecoder().decode(p.tx)), ['a', 'bb']);
  assert.equal(pool.removeCommitted([txHash(tx('a')), new Uint8Array(32).fill(0xff)]), 1);
  assert.equal(pool.size, 2);
  assert.equal(pool.bytes, 5);
});

test('a committed transaction is a duplicate, not pending again', () => {
  const pool = new Mempool({ maxTxs: 10, maxBytes: 1000, maxTxBytes: 100 });
  const h = toHex(txHash(tx('x')));
  assert.equal(pool.add(tx('x'), 1, (k) => toHex(k) === h).status, 'duplicate');
  assert.equal(pool.size, 0);
});

test('refuses empty, oversized and overflowing transactions with codes', () => {
  const pool = new Mempool({ maxTxs: 2, maxBytes: 10, maxTxBytes: 6 });
  assert.throws(() => pool.add(new Uint8Array(), 1, none), (e) => isFedError(e, 'TX_EMPTY'));
  assert.throws(() => pool.add(tx('1234567'), 1, none), (e) => isFedError(e, 'TX_TOO_LARGE'));
  pool.add(tx('123456'), 1, none);
  assert.throws(() => pool.add(tx('abcde'), 1, none), (e) => isFedError(e, 'MEMPOOL_FULL'), 'bytes');
  pool.add(tx('ab'), 1, none);
  assert.throws(() => pool.add(tx('z'), 1, none), (e) => isFedError(e, 'MEMPOOL_FULL'), 'count');
  assert.equal(pool.size, 2);
});

test('one validator\'s hand-offs hold at most REMOTE_SHARE of the pool; clients and others still get in', () => {
  const pool = new Mempool({ maxTxs: 40, maxBytes: 100_000, maxTxBytes: 100 });
  let taken = 0;
  let quota = 0;
  for (let i = 0; i < 100; i++) {
    const r = pool.offer(tx(`flood-${i}`), i, none, 3);
    if (r.status === 'added') taken++;
    else if (r.status === 'refused' && r.code === 'MEMPOOL_QUOTA') quota++;
  }
  assert.equal(taken, 40 * REMOTE_SHARE, 'validator 3 is capped at its share');
  assert.equal(quota, 100 - taken, 'the rest refused with MEMPOOL_QUOTA');
  assert.equal(pool.offer(tx('from-1'), 1, none, 1).status, 'added', 'another validator still has room');
  assert.equal(pool.add(tx('client'), 1, none).status, 'added', 'a client still has room');
  // Commits free the share again.
  pool.removeCommitted([txHash(tx('flood-0'))]);
  assert.equal(pool.offer(tx('flood-again'), 2, none, 3).status, 'added');
  assert.equal(pool.offer(tx('flood-again-2'), 2, none, 3).status, 'refused');
});

test('blocks are built fairly by source: one source\'s backlog cannot take a whole block while others wait', () => {
  const pool = new Mempool({ maxTxs: 10_000, maxBytes: 1 << 20, maxTxBytes: 100 });
  // Validator 3 handed over 100 first; then two clients' and validator 1's few.
  for (let k = 0; k < 100; k++) pool.offer(tx(`v3-${k}`), 1, none, 3);
  for (let k = 0; k < 5; k++) pool.offer(tx(`local-${k}`), 2, none);
  for (let k = 0; k < 5; k++) pool.offer(tx(`v1-${k}`), 3, none, 1);
  const picked = pool.batch(20, 1 << 20, NO_IDS).map((p) => new TextDecoder().decode(p.tx));
  assert.equal(picked.length, 20);
  assert.deepEqual(picked.filter((s) => s.startsWith('local-')), ['local-0', 'local-1', 'local-2', 'local-3', 'local-4'], 'every client transaction, oldest first');
  assert.equal(picked.filter((s) => s.startsWith('v1-')).length, 5);
  assert.deepEqual(picked.filter((s) => s.startsWith('v3-')), Array.from({ length: 10 }, (_, k) => `v3-${k}`), 'the flooder gets the rest, oldest first');
  // In flight ones are skipped; with room for all, all come.
  const inFlight = idsOf(txHash(tx('local-0')));
  assert.equal(pool.batch(1000, 1 << 20, inFlight).length, 109);
  // A source whose next transaction does not fit the bytes left is done; the others go on.
  const small = new Mempool({ maxTxs: 100, maxBytes: 1 << 20, maxTxBytes: 100 });
  small.offer(tx('x'.repeat(50)), 1, none, 2);
  small.offer(tx('a'), 1, none);
  small.offer(tx('b'), 1, none);
  assert.deepEqual(small.batch(10, 51, NO_IDS).map((p) => new TextDecoder().decode(p.tx)), ['a', 'x'.repeat(50)]);
  assert.deepEqual(small.batch(10, 49, NO_IDS).map((p) => new TextDecoder().decode(p.tx)), ['a', 'b'], 'the clients\' go on when validator 2\'s does not fit');
  // Committed ones leave their source too.
  assert.equal(pool.removeCommitted([...pool.batch(1000, 1 << 20, NO_IDS)].map((p) => p.hash)), 110);
  assert.equal(pool.batch(1000, 1 << 20, NO_IDS).length, 0);
});

test('a client transaction that begins with the reconfiguration tag is refused (TX_RESERVED), never proposed', () => {
  const pool = new Mempool({ maxTxs: 10, maxBytes: 10_000, maxTxBytes: 1000 });
  const change = { chainId: 'c', epoch: 0, ops: [{ kind: 'remove' as const, name: 'm1' }] };
  const r = pool.offer(encodeReconfigTx({ change, approvals: [] }), 1, none);
  assert.ok(r.status === 'refused' && r.code === 'TX_RESERVED', JSON.stringify(r));
  assert.equal(pool.size, 0);
  assert.equal(pool.offer(tx('btcfed/v1/reconfig-tx but not the field prefix'), 1, none).status, 'added');
});

test('clients\' transactions that waited are taken again for the leaders, oldest first, each once per wait; handed-off ones never', () => {
  const pool = new Mempool({ maxTxs: 100, maxBytes: 1 << 20, maxTxBytes: 1024 });
  const never = () => false;
  const tx = (s: string) => new TextEncoder().encode(s);
  pool.offer(tx('a'), 1_000, never);
  pool.offer(tx('b'), 2_000, never);
  pool.offer(tx('from-3'), 1_000, never, 3); // handed to us by validator 3: its own to offer
  pool.offer(tx('c'), 9_000, never);
  const names = (ps: { tx: Uint8Array }[]) => ps.map((p) => new TextDecoder().decode(p.tx));
  assert.deepEqual(names(pool.takeStaleLocal(7_000, 5_000, 10)), ['a', 'b'], 'older than 5 s, local only');
  assert.deepEqual(names(pool.takeStaleLocal(8_000, 5_000, 10)), [], 'not again before another wait');
  assert.deepEqual(names(pool.takeStaleLocal(14_000, 5_000, 1)), ['a'], 'at most max');
  assert.deepEqual(names(pool.takeStaleLocal(14_000, 5_000, 10)), ['b', 'c']);
  pool.removeCommitted([txHash(tx('a'))]);
  assert.deepEqual(names(pool.takeStaleLocal(30_000, 5_000, 10)), ['b', 'c'], 'a committed one is gone');
});

test('a whole batch is one turn of its source, taken in its order; a batch partly committed or in flight goes transaction by transaction', () => {
  const pool = new Mempool({ maxTxs: 100, maxBytes: 10_000, maxTxBytes: 100 });
  const offerBatch = (source: number, names: string[]) => {
    const t = names.map(tx);
    const ids = t.map(txHash);
    const b = { ids };
    t.forEach((x, k) => pool.offer(x, 0, none, source, { hash: ids[k]!, batch: b }));
    return b;
  };
  const a = offerBatch(1, ['a1', 'a2', 'a3']);
  offerBatch(2, ['b1', 'b2']);
  pool.add(tx('own'), 0, none);
  const names = (ps: { tx: Uint8Array }[]) => ps.map((p) => new TextDecoder().decode(p.tx));
  assert.deepEqual(names(pool.batch(100, 10_000, NO_IDS)), ['own', 'a1', 'a2', 'a3', 'b1', 'b2'], 'each batch whole, in turn');
  // A batch that does not fit what is left of the block waits whole for the next block; b2 fits alone.
  assert.deepEqual(names(pool.batch(3, 10_000, NO_IDS)), ['own', 'b1', 'b2']);
  // a2 is in an uncommitted ancestor: a is no whole batch here; its others go one by one.
  const picked = pool.batch(100, 10_000, idsOf(a.ids[1]!));
  assert.deepEqual(names(picked), ['own', 'a1', 'b1', 'b2', 'a3']);
  pool.removeCommitted([a.ids[0]!]);
  assert.deepEqual(names(pool.batch(100, 10_000, NO_IDS)), ['own', 'a2', 'b1', 'b2', 'a3']);
  // This member's own transactions form a batch once the batcher sent it (assign).
  const more = pool.add(tx('own2'), 0, none);
  pool.assign({ ids: [txHash(tx('own')), more.hash] });
  assert.deepEqual(names(pool.batch(100, 10_000, NO_IDS)).slice(0, 2), ['own', 'own2']);
});

test('each source keeps its insertion order through removals at its head, middle and tail, and empties and refills (against a model)', () => {
  let seed = 7;
  const next = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
  const pool = new Mempool({ maxTxs: 10_000, maxBytes: 10_000_000, maxTxBytes: 100 });
  const sources = [-1, 0, 2]; // LOCAL, validators 0 and 2
  /** The model: per source, the hex keys in the order they were added. */
  const model = new Map<number, string[]>(sources.map((s) => [s, []]));
  const text = new Map<string, string>();
  let n = 0;
  for (let round = 0; round < 300; round++) {
    for (let k = Math.floor(next() * 6); k > 0; k--) {
      const source = sources[Math.floor(next() * sources.length)]!;
      const body = `tx-${n++}`;
      const r = pool.offer(tx(body), round, none, source);
      assert.equal(r.status, 'added');
      const key = toHex(txHash(tx(body)));
      model.get(source)!.push(key);
      text.set(key, body);
    }
    // Remove a random few, from anywhere in any source's queue (all of one source now and then).
    const all = [...model.values()].flat();
    const gone = round % 37 === 0 ? [...model.get(sources[round % 3]!)!] : all.filter(() => next() < 0.3);
    assert.equal(pool.removeCommitted(gone.map(fromHex)), gone.length);
    for (const [s, keys] of model) model.set(s, keys.filter((key) => !gone.includes(key)));
    // One from each source in turn (this member's first), oldest first within each.
    const expected: string[] = [];
    const queues = sources.map((s) => [...model.get(s)!]);
    while (queues.some((q) => q.length > 0)) for (const q of queues) if (q.length > 0) expected.push(text.get(q.shift()!)!);
    assert.deepEqual(pool.batch(1_000_000, 1_000_000_000, NO_IDS).map((p) => new TextDecoder().decode(p.tx)), expected, `round ${round}`);
    assert.equal(pool.size, expected.length);
  }
  // This member's own, oldest first, is also what takeStaleLocal walks.
  assert.deepEqual(pool.takeStaleLocal(10_000, 0, 1_000_000).map((p) => new TextDecoder().decode(p.tx)), model.get(-1)!.map((key) => text.get(key)!));
});

test('a set change renumbers the sources: a member moved into a removed member\'s number has its own share and queue, and the removed one\'s stay pending as the outsiders\'', () => {
  const pool = new Mempool({ maxTxs: 40, maxBytes: 100_000, maxTxBytes: 100 });
  const names = (ps: { tx: Uint8Array }[]) => ps.map((p) => new TextDecoder().decode(p.tx));
  // Validator 1 fills its share; validator 2 and an outsider hand over a few; a client gives one.
  for (let k = 0; k < 10; k++) assert.equal(pool.offer(tx(`v1-${k}`), k, none, 1).status, 'added');
  for (let k = 0; k < 3; k++) pool.offer(tx(`v2-${k}`), k, none, 2);
  pool.offer(tx('out-0'), 4.5, none, OUTSIDE_BASE);
  pool.add(tx('local'), 0, none);
  // The epoch ends removing validator 1: validator 2 is number 1 now (and 3 would be 2).
  pool.renumber((s) => (s === 1 ? undefined : s > 1 ? s - 1 : s));
  assert.equal(pool.offer(tx('v2-3'), 20, none, 1).status, 'added', 'the member now numbered 1 is charged its own 4, not the removed member\'s 10');
  const r = pool.offer(tx('out-1'), 21, none, OUTSIDE_BASE);
  assert.ok(r.status === 'refused' && r.code === 'MEMPOOL_QUOTA', 'the removed member\'s 10 count towards the outsiders\' share');
  // Each moved queue keeps its order; the joined ones are taken oldest first between them.
  assert.deepEqual(names(pool.batch(100, 100_000, NO_IDS)), ['local', 'v2-0', 'v1-0', 'v2-1', 'v1-1', 'v2-2', 'v1-2', 'v2-3', 'v1-3',
    'v1-4', 'out-0', 'v1-5', 'v1-6', 'v1-7', 'v1-8', 'v1-9']);
  // Committed under their new sources, and the counts freed with them.
  assert.equal(pool.removeCommitted([...Array.from({ length: 10 }, (_, k) => txHash(tx(`v1-${k}`))), txHash(tx('v2-0'))]), 11);
  assert.equal(pool.offer(tx('out-2'), 22, none, OUTSIDE_BASE).status, 'added', 'the outsiders\' share is free again');
  assert.deepEqual(names(pool.batch(100, 100_000, NO_IDS)), ['local', 'v2-1', 'out-0', 'v2-2', 'out-2', 'v2-3']);
  assert.equal(pool.size, 6);
});
