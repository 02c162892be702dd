// The typed-array table of 32-byte ids (id-map.ts) against a Map of the same operations, seeded.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hash } from 'node:crypto';
import { isFedError } from '#libs/errors/index.ts';
import { IdMap, IdTable, randomIdSeed } from './id-map.ts';

const idOf = (n: number): Uint8Array => new Uint8Array(hash('sha256', `id-${n}`, 'buffer'));
const hexOf = (id: Uint8Array): string => Buffer.from(id).toString('hex');

/** mulberry32: a small seeded generator, so a failure names its seed. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A table of ids to values of type V, as IdMap and IdTable both are. */
interface Table<V> { set(id: Uint8Array, v: V): unknown; take(id: Uint8Array): V | undefined; get(id: Uint8Array): V | undefined; has(id: Uint8Array): boolean; readonly size: number }

/**
 * `steps` random operations on ids drawn from `universe`, each checked against `ref`, a Map by hex
 * id: sets, takes and lookups, and, for a quarter of the steps, `extra` (lookups without it).
 */
function churnAgainstMap<V>(label: string, table: Table<V>, ref: Map<string, V>, o: {
  steps: number; universe: number; next: () => number; value: (step: number) => V;
  extra?: (id: Uint8Array, k: string, step: number) => void;
}): void {
  for (let step = 0; step < o.steps; step++) {
    const id = idOf(Math.floor(o.next() * o.universe));
    const k = hexOf(id);
    const op = o.next();
    if (op < 0.3) {
      const v = o.value(step);
      table.set(id, v);
      ref.set(k, v);
    } else if (op < 0.5) {
      const had = ref.get(k);
      ref.delete(k);
      assert.equal(table.take(id), had, `${label} step ${step}: take`);
    } else if (op >= 0.75 && o.extra) {
      o.extra(id, k, step);
    } else {
      assert.equal(table.get(id), ref.get(k), `${label} step ${step}: get`);
      assert.equal(table.has(id), ref.has(k), `${label} step ${step}: has`);
    }
    assert.equal(table.size, ref.size, `${label} step ${step}: size`);
  }
}

test('random sets, adds, deletes and lookups agree with a Map at every step, through growth and deletions that shift ids back', () => {
  for (const seed of [1, 2, 3]) {
    const next = rng(seed);
    const table = new IdMap([seed, seed * 7]);
    const ref = new Map<string, number>();
    churnAgainstMap(`seed ${seed}`, table, ref, { steps: 40_000, universe: 3_000, next, value: () => Math.floor(next() * 2 ** 40),
      extra: (id, k, step) => {
        if (next() < 0.5) {
          // add: only where the id is absent; a present id keeps its value.
          const v = Math.floor(next() * 2 ** 40);
          assert.equal(table.add(id, v), !ref.has(k), `seed ${seed} step ${step}: add`);
          if (!ref.has(k)) ref.set(k, v);
        } else if (next() < 0.5) {
          assert.equal(table.delete(id), ref.delete(k), `seed ${seed} step ${step}: delete`);
        } else {
          // deleteAt: the id where it lies in a larger buffer.
          const at = 1 + Math.floor(next() * 8);
          const buf = new Uint8Array(at + 40);
          buf.set(id, at);
          assert.equal(table.deleteAt(buf, at), ref.delete(k), `seed ${seed} step ${step}: deleteAt`);
        }
      } });
    const seen = new Map<string, number>();
    table.forEach((id, v) => seen.set(hexOf(id), v));
    assert.deepEqual(new Map([...seen].sort()), new Map([...ref].sort()), `seed ${seed}: forEach`);
    // Churn at a steady size reuses the slots of deleted ids instead of growing for ever.
    assert.ok(table.capacity <= 4 * 4096, `seed ${seed}: capacity ${table.capacity}`);
  }
});

test('a small table kept near three quarters full: deletions shift ids back across the wrap and never cut a probe short', () => {
  // 16 slots and 12 ids at most: runs of full slots are long and wrap past the last slot, where a
  // deletion's shift must still find every id after it.
  for (const seed of [11, 12, 13, 14]) {
    const next = rng(seed);
    const table = new IdMap([seed, seed * 5], 16);
    churnAgainstMap(`seed ${seed}`, table, new Map(), { steps: 20_000, universe: 12, next, value: () => Math.floor(next() * 1000) });
    assert.equal(table.capacity, 16, `seed ${seed}: never grew`);
  }
});

test('ids that share their first eight bytes (what a peer grinding transactions aims at) are all kept apart', () => {
  const table = new IdMap(randomIdSeed());
  const ids = Array.from({ length: 300 }, (_, i) => {
    const id = new Uint8Array(32).fill(7);
    id[31] = i & 0xff;
    id[30] = i >> 8;
    return id;
  });
  ids.forEach((id, i) => table.set(id, i));
  ids.forEach((id, i) => assert.equal(table.get(id), i));
  for (let i = 0; i < ids.length; i += 2) assert.equal(table.delete(ids[i]!), true);
  ids.forEach((id, i) => assert.equal(table.get(id), i % 2 === 0 ? undefined : i));
  assert.equal(table.size, 150);
});

test('the table copies the id it is given, views into larger buffers included', () => {
  const table = new IdMap([5, 6]);
  const big = new Uint8Array(100).fill(9);
  const view = big.subarray(10, 42);
  table.set(view, 1);
  big.fill(0);
  assert.equal(table.has(new Uint8Array(32).fill(9)), true, 'kept its own copy');
  assert.equal(table.has(view), false, 'the changed bytes are another id');
});

test('clear empties it; an id that is not 32 bytes is refused with its length', () => {
  const table = new IdMap([1, 2]);
  for (let i = 0; i < 100; i++) table.set(idOf(i), i);
  table.clear();
  assert.equal(table.size, 0);
  assert.equal(table.has(idOf(5)), false);
  table.set(idOf(5), 5);
  assert.equal(table.get(idOf(5)), 5);
  assert.throws(() => table.has(new Uint8Array(31)), (e) => isFedError(e, 'CRYPTO_BAD_HASH') && /32 bytes/.test(e.message));
});

test('the seed moves where ids land: two seeds place the same ids differently', () => {
  const order = (seed: [number, number]) => {
    const t = new IdMap(seed, 1024);
    for (let i = 0; i < 64; i++) t.set(idOf(i), i);
    const out: number[] = [];
    t.forEach((_, v) => out.push(v));
    return out.join();
  };
  assert.equal(order([1, 2]), order([1, 2]), 'one seed, one layout');
  assert.notEqual(order([1, 2]), order([3, 4]));
});

test('the table keeps its arrays: churn at a steady size, and clear, allocate nothing more', () => {
  const table = new IdMap([8, 9]);
  for (let i = 0; i < 20_000; i++) table.set(idOf(i), i);
  const full = table.bytes;
  assert.ok(full >= (20_000 * 4 / 3) * 41 && full <= (20_000 * 8 / 3) * 41, `${full} bytes for 20,000 ids: between three eighths and three quarters full`);
  // A window of 20,000 ids moving over: a deletion leaves no marker to sweep, so the table keeps
  // its size (at most one doubling is allowed here), then stays as it is.
  const churn = (from: number) => {
    for (let i = from; i < from + 100_000; i++) {
      table.delete(idOf(i - 20_000));
      table.set(idOf(i), i);
    }
  };
  churn(20_000);
  const settled = table.bytes;
  assert.ok(settled <= 2 * full, `${settled} bytes after churn, ${full} before`);
  churn(120_000);
  assert.equal(table.size, 20_000);
  assert.equal(table.bytes, settled, 'no larger after more churn');
  for (let i = 200_000; i < 220_000; i++) assert.equal(table.get(idOf(i)), i, `id ${i} kept through the churn`);
  table.clear();
  assert.equal(table.size, 0);
  assert.equal(table.has(idOf(219_999)), false);
  for (let i = 0; i < 20_000; i++) table.set(idOf(i), i);
  assert.equal(table.bytes, settled, 'refilled after clear: the same arrays');
});

test('IdTable: ids to objects agree with a Map at every step; freed slots are reused, so churn does not grow it', () => {
  for (const seed of [4, 5]) {
    const table = new IdTable<{ n: number }>([seed, seed * 3]);
    churnAgainstMap(`seed ${seed}`, table, new Map(), { steps: 30_000, universe: 2_000, next: rng(seed), value: (step) => ({ n: step }) });
    // At most 2,000 ids at once: the objects' array never passed that (8 bytes a slot), whatever the churn.
    assert.ok(table.bytes <= new IdMap([0, 0], 2 * 2_048).bytes + 8 * 2_000, `seed ${seed}: ${table.bytes} bytes`);
  }
});
