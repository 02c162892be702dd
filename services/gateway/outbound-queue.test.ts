import { test } from 'node:test';
import assert from 'node:assert/strict';
import { OutboundQueue } from './outbound-queue.ts';

const f = (n: number, tag: number) => new Uint8Array(n).fill(tag);

test('a full queue drops its oldest frames and counts them; limits hold in frames and bytes', () => {
  const q = new OutboundQueue({ maxFrames: 3, maxBytes: 100 });
  assert.equal(q.push(f(10, 1)), 0);
  assert.equal(q.push(f(10, 2)), 0);
  assert.equal(q.push(f(10, 3)), 0);
  assert.equal(q.push(f(10, 4)), 1);
  assert.deepEqual([q.length, q.bytes, q.dropped], [3, 30, 1]);
  assert.equal(q.push(f(90, 5)), 2, 'bytes limit: two more dropped');
  assert.deepEqual([q.length, q.bytes], [2, 100]);
  assert.equal(q.shift()![0], 4);
  assert.equal(q.shift()![0], 5);
  assert.equal(q.shift(), undefined);
  assert.equal(q.bytes, 0);
});

test('clear counts as dropped; wait resolves on push', async () => {
  const q = new OutboundQueue({ maxFrames: 10, maxBytes: 1000 });
  let woke = false;
  const w = q.wait().then(() => { woke = true; });
  await Promise.resolve();
  assert.equal(woke, false);
  q.push(f(1, 1));
  await w;
  assert.equal(woke, true);
  q.push(f(1, 2));
  assert.equal(q.clear(), 2);
  assert.equal(q.dropped, 2);
  assert.equal(q.length, 0);
});

test('many pushes and shifts keep memory compacted and order intact', () => {
  const q = new OutboundQueue({ maxFrames: 5000, maxBytes: 1e9 });
  for (let i = 0; i < 20_000; i++) {
    q.push(Uint8Array.of(i & 0xff));
    if (i % 2 === 1) { q.shift(); q.shift(); }
  }
  assert.equal(q.length, 0);
});
