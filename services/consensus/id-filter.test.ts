// The filter of transaction ids (id-filter.ts): never "no" for an id added, rarely "maybe" for
// one not added, at the load it is sized for and at twice it.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { FILTER_BITS_PER_ID, IdFilter } from './id-filter.ts';

test('an added id is always "maybe"; others are "maybe" under 1 % at the sized load and under 5 % at its capacity', () => {
  const ids = 65_536;
  const f = new IdFilter(ids * FILTER_BITS_PER_ID, [0x12345678, 0x9abcdef0]);
  assert.equal(f.bytes * 8, ids * FILTER_BITS_PER_ID, 'exactly the bits asked for (a power of two)');
  assert.ok(IdFilter.sizedFor(ids, 1 << 30, [1, 2]).bytes * 8 >= 2 * ids * FILTER_BITS_PER_ID, 'sized for as many ids again to come');
  assert.equal(IdFilter.sizedFor(10 ** 9, 1 << 20, [1, 2]).bytes, 1 << 20, 'never past its bound');
  /** `n` random ids, cut from one buffer. */
  const random = (n: number) => { const b = new Uint8Array(randomBytes(32 * n)); return Array.from({ length: n }, (_, i) => b.subarray(32 * i, 32 * i + 32)); };
  const added = random(ids);
  for (const id of added) f.add(id);
  for (const id of added) assert.equal(f.mayHave(id), true);
  const rate = () => random(100_000).filter((id) => f.mayHave(id)).length / 100_000;
  const atLoad = rate();
  assert.ok(atLoad < 0.01, `false "maybe" ${(100 * atLoad).toFixed(2)} % at ${FILTER_BITS_PER_ID} bits an id`);
  for (const id of random(f.capacity - f.count)) f.add(id);
  const atCapacity = rate();
  assert.ok(atCapacity < 0.05 && atCapacity > atLoad, `false "maybe" ${(100 * atCapacity).toFixed(2)} % at its capacity`);
});

test('ids that share their first eight bytes but one land apart; a wrong length is always "maybe"', () => {
  const f = new IdFilter(1 << 20, [1, 2]);
  const base = new Uint8Array(32);
  f.add(base);
  let maybe = 0;
  for (let i = 1; i < 256; i++) { const id = base.slice(); id[7] = i; if (f.mayHave(id)) maybe++; }
  assert.ok(maybe <= 2, `${maybe} of 255 neighbours "maybe"`);
  assert.equal(f.mayHave(new Uint8Array(31)), true);
});

test('addAll of ids one after another sets what add of each sets, and counts each', () => {
  const ids = Array.from({ length: 500 }, () => randomBytes(32));
  const one = new IdFilter(1 << 14, [3, 4]);
  const all = new IdFilter(1 << 14, [3, 4]);
  for (const id of ids) one.add(id);
  all.addAll(Buffer.concat(ids));
  assert.equal(all.count, 500);
  for (const id of ids) assert.equal(all.mayHave(id), true);
  // The same bits: every probe answers alike, ids added or not.
  for (const id of Array.from({ length: 5_000 }, () => randomBytes(32))) assert.equal(all.mayHave(id), one.mayHave(id));
});
