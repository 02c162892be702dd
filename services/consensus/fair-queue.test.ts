// The fair queue behind signature checks: one sender's flood waits behind itself, not in front
// of everyone else; each sender's queue is bounded in jobs and bytes.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FairQueue } from './fair-queue.ts';

/** A job that finishes when the test says so, recording the order jobs started in. */
function gate(order: string[], name: string): { run: () => Promise<void>; done: () => void } {
  let release = () => {};
  const p = new Promise<void>((r) => { release = r; });
  return { run: () => { order.push(name); return p; }, done: () => release() };
}

test('a flooding sender does not delay another sender\'s job by more than one job of its own', async () => {
  const q = new FairQueue({ concurrency: 1, maxPerSender: 1000, maxBytesPerSender: 1 << 30 });
  const order: string[] = [];
  const jobs: Array<ReturnType<typeof gate>> = [];
  for (let k = 0; k < 100; k++) { const g = gate(order, `flood${k}`); jobs.push(g); assert.ok(q.push(3, 100, g.run)); }
  const honest = gate(order, 'honest');
  assert.ok(q.push(1, 100, honest.run));
  jobs.push(honest);
  // Let them run one at a time.
  for (let k = 0; k < 4; k++) { for (const g of jobs) g.done(); await new Promise((r) => setImmediate(r)); }
  assert.ok(order.indexOf('honest') <= 2, `the honest job ran ${order.indexOf('honest') + 1}th: ${order.slice(0, 5).join(', ')}`);
});

test('round-robin over every sender with work; concurrency bounds the jobs running', async () => {
  const q = new FairQueue({ concurrency: 2, maxPerSender: 10, maxBytesPerSender: 1 << 20 });
  const order: string[] = [];
  const blockers = [gate(order, 'b0'), gate(order, 'b1')];
  for (const b of blockers) q.push(9, 1, b.run); // both slots busy while the others queue up
  const gates: Array<ReturnType<typeof gate>> = [];
  for (const s of [5, 6, 7]) for (let k = 0; k < 3; k++) { const g = gate(order, `${s}.${k}`); gates.push(g); q.push(s, 1, g.run); }
  assert.equal(q.running, 2);
  assert.equal(q.waiting, 9);
  for (const b of blockers) b.done();
  while (order.length < 11) { await new Promise((r) => setImmediate(r)); assert.ok(q.running <= 2); for (const g of gates) g.done(); }
  assert.deepEqual(order.slice(2), ['5.0', '6.0', '7.0', '5.1', '6.1', '7.1', '5.2', '6.2', '7.2']);
});

test('each sender\'s queue is bounded in jobs and in bytes; a refused job is not queued', () => {
  const q = new FairQueue({ concurrency: 1, maxPerSender: 3, maxBytesPerSender: 1000 });
  const never = () => new Promise<void>(() => {});
  assert.ok(q.push(1, 10, never)); // runs at once
  for (let k = 0; k < 3; k++) assert.ok(q.push(1, 10, never));
  assert.equal(q.push(1, 10, never), false, 'a fourth waiting job is refused');
  assert.ok(q.push(2, 900, never));
  assert.equal(q.push(2, 200, never), false, 'bytes bound: 900 + 200 > 1000');
  assert.ok(q.push(2, 100, never), 'a job that fits is taken');
  assert.equal(q.waitingFrom(1), 3);
  assert.equal(q.waiting, 5);
});
