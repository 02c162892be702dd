// The bounded LRU behind the node backend's key cache: bounded, least recently used goes first,
// a failing constructor stores nothing.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BoundedLru } from './key-cache.ts';

describe('BoundedLru', () => {
  it('creates once per key and returns the cached value after', () => {
    const lru = new BoundedLru<string, number>(4);
    let made = 0;
    const make = () => ++made;
    assert.equal(lru.getOrCreate('a', make), 1);
    assert.equal(lru.getOrCreate('a', make), 1);
    assert.equal(made, 1);
  });

  it('never holds more than its capacity and evicts the least recently used', () => {
    const lru = new BoundedLru<string, string>(2);
    lru.getOrCreate('a', () => 'A');
    lru.getOrCreate('b', () => 'B');
    lru.getOrCreate('a', () => 'A2'); // touch a: b is now the oldest
    lru.getOrCreate('c', () => 'C');
    assert.equal(lru.size, 2);
    assert.equal(lru.has('b'), false);
    assert.equal(lru.has('a'), true);
    assert.equal(lru.getOrCreate('a', () => 'A3'), 'A');
    for (let i = 0; i < 100; i++) lru.getOrCreate(`k${i}`, () => 'x');
    assert.equal(lru.size, 2);
  });

  it('stores nothing when make() throws', () => {
    const lru = new BoundedLru<string, number>(2);
    assert.throws(() => lru.getOrCreate('bad', () => { throw new Error('malformed'); }), /malformed/);
    assert.equal(lru.has('bad'), false);
    assert.equal(lru.size, 0);
  });

  it('refuses a capacity below one', () => {
    assert.throws(() => new BoundedLru(0), RangeError);
    assert.throws(() => new BoundedLru(1.5), RangeError);
  });
});
