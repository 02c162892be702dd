// The inbound scheduler alone: fair shares in bytes between a flooding validator and one sending
// votes, a full queue that holds back only its own peer, bounded queues, the outsiders' shared
// queue and budget, and muted peers whose frames never reach the consumer.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Delivery, InboundSink } from './inbound.ts';
import { InboundScheduler, type Drop, type InboundLimits } from './inbound-scheduler.ts';
import { MuteTable } from './mutes.ts';
import type { Validator } from '#libs/validators/index.ts';

const MiB = 1024 * 1024;
const A: Validator = { index: 1, name: 'a', peerId: 'peer-a', publicKey: 'aa', addresses: [] };
const B: Validator = { index: 2, name: 'b', peerId: 'peer-b', publicKey: 'bb', addresses: [] };
const C: Validator = { index: 3, name: 'c', peerId: 'peer-c', publicKey: 'cc', addresses: [] };

/** A consumer like the Attach stream: takes `room` frames, then is busy until drained. */
class Sink implements InboundSink {
  delivered: Array<{ peerId: string; bytes: number; from: Validator | undefined }> = [];
  total = 0;
  busy = false;
  room: number;
  attached = true;
  #waiters: Array<() => void> = [];
  constructor(room = Infinity) { this.room = room; }
  deliver(frame: Uint8Array, from: Validator | undefined, peerId: string): Delivery {
    if (!this.attached) return 'no_consumer';
    this.delivered.push({ peerId, bytes: frame.length, from });
    this.total += frame.length;
    if (--this.room > 0) return 'accepted';
    this.busy = true;
    return 'full';
  }
  onReady(fn: () => void): void { if (!this.busy) queueMicrotask(fn); else this.#waiters.push(fn); }
  /** The consumer read everything: it takes `room` more frames. */
  drain(room: number): void {
    this.room = room;
    this.busy = false;
    const w = this.#waiters;
    this.#waiters = [];
    for (const f of w) f();
  }
  bytesFrom(peerId: string): number { return this.delivered.filter((d) => d.peerId === peerId).reduce((n, d) => n + d.bytes, 0); }
  framesFrom(peerId: string): number { return this.delivered.filter((d) => d.peerId === peerId).length; }
}

function setup(o: { sink?: Sink; queue?: InboundLimits; quantum?: number; budget?: { framesPerSecond: number; bytesPerSecond: number } } = {}) {
  let now = 1_000_000;
  const clock = { now: () => now, advance: (ms: number) => { now += ms; } };
  const sink = o.sink ?? new Sink();
  const mutes = new MuteTable(clock);
  const drops: Drop[] = [];
  const queue = o.queue ?? { maxFrames: 64, maxBytes: 8 * MiB };
  const s = new InboundScheduler({
    quantumBytes: o.quantum ?? 64 * 1024, validatorQueue: queue, outsideQueue: queue,
    outsideBudget: o.budget ?? { framesPerSecond: 1e9, bytesPerSecond: 1e12 },
  }, { sink, mutes, now: clock.now, dropped: (d) => drops.push(d) });
  return { s, sink, mutes, drops, clock };
}

const frames = new Map<number, Uint8Array>();
const frameOf = (size: number): Uint8Array => frames.get(size) ?? frames.set(size, new Uint8Array(size)).get(size)!;

/** Offers frames of `size` from `v` until its queue is full (at most 10,000); returns how many it took. */
function fill(s: InboundScheduler, v: Validator, size: number): number {
  let n = 0;
  while (n < 10_000 && s.offer(frameOf(size), v, v.peerId) === 'queued') n++;
  return n;
}

test('a validator flooding 1 MiB frames and one sending 16 KiB votes get the same share of bytes', { timeout: 10_000 }, () => {
  const sink = new Sink(1);
  const { s } = setup({ sink });
  const flood = 1 * MiB;
  const vote = 16 * 1024;
  // Both keep their queues full: the consumer is the bottleneck, taking one frame per drain.
  fill(s, A, flood);
  fill(s, B, vote);
  while (sink.total < 64 * MiB) {
    sink.drain(1);
    fill(s, A, flood);
    fill(s, B, vote);
  }
  const a = sink.bytesFrom(A.peerId);
  const b = sink.bytesFrom(B.peerId);
  const ratio = a / b;
  assert.ok(ratio > 0.9 && ratio < 1.1, `bytes delivered: flooder ${a}, voter ${b} (ratio ${ratio.toFixed(3)})`);
  assert.ok(sink.framesFrom(B.peerId) > 50 * sink.framesFrom(A.peerId), 'the voter gets many more frames through');
});

test('three validators backlogged at once share the bytes evenly whatever their frame sizes', { timeout: 10_000 }, () => {
  const sink = new Sink(1);
  const { s } = setup({ sink });
  const sizes = new Map([[A, 4 * MiB], [B, 17_088], [C, 300 * 1024]]);
  for (const [v, size] of sizes) fill(s, v, size);
  while (sink.total < 192 * MiB) {
    sink.drain(1);
    for (const [v, size] of sizes) fill(s, v, size);
  }
  const shares = [A, B, C].map((v) => sink.bytesFrom(v.peerId));
  const mean = shares.reduce((x, y) => x + y) / 3;
  for (const x of shares) assert.ok(Math.abs(x - mean) / mean < 0.1, `shares ${shares.join(', ')}`);
});

test('a full queue holds back only its own peer; it is told when the queue is half empty', async () => {
  const sink = new Sink(1);
  const { s } = setup({ sink, queue: { maxFrames: 64, maxBytes: 8 * MiB } });
  // The first frame goes straight to the consumer, which is then busy; 64 more fill A's queue.
  assert.equal(fill(s, A, 1000), 65);
  assert.equal(s.queuedFrom(A.peerId), 64);
  assert.equal(s.offer(new Uint8Array(1000), A, A.peerId), 'full');
  // B is not held back by A's full queue.
  assert.equal(s.offer(new Uint8Array(1000), B, B.peerId), 'queued');
  let roomForA = 0;
  s.onRoom(A.peerId, () => { roomForA++; });
  // The consumer takes 20 frames (all A's: its turn of 64 KiB is under way): A is still over half full.
  sink.drain(20);
  assert.equal(s.queuedFrom(A.peerId), 44);
  assert.equal(roomForA, 0, 'not yet: A is still more than half full');
  sink.drain(12);
  assert.equal(s.queuedFrom(A.peerId), 32);
  assert.equal(roomForA, 1, 'A is told once its queue is at most half full');
  await Promise.resolve();
  assert.equal(roomForA, 1);
  sink.drain(Infinity);
  assert.equal(sink.framesFrom(B.peerId), 1);
  assert.equal(sink.framesFrom(A.peerId), 65);
});

test('queues are bounded in frames and in bytes; an empty queue still takes one frame of any size', () => {
  const sink = new Sink(1);
  const { s } = setup({ sink, queue: { maxFrames: 8, maxBytes: 100_000 } });
  s.offer(new Uint8Array(1), C, C.peerId); // the consumer is busy from here on
  assert.equal(fill(s, A, 10), 8, 'eight small frames, then full');
  assert.equal(fill(s, B, 30_000), 3, 'three 30 KB frames (a fourth would pass 100 KB), then full');
  assert.equal(s.queuedBytes, 8 * 10 + 3 * 30_000);
  assert.equal(s.queuedFrames, 11);
  // A frame larger than the byte bound (the frame limit went up on a reload) fits an empty queue only.
  assert.equal(s.offer(new Uint8Array(150_000), C, C.peerId), 'queued');
  assert.equal(s.offer(new Uint8Array(10), C, C.peerId), 'full');
});

test('non-validators share one queue: never held back, dropped when it is full or over their budget', () => {
  const sink = new Sink(1);
  const { s, drops, clock } = setup({ sink, queue: { maxFrames: 4, maxBytes: 1 * MiB }, budget: { framesPerSecond: 10, bytesPerSecond: 1 * MiB } });
  const results = Array.from({ length: 8 }, (_, i) => s.offer(new Uint8Array(100), undefined, `stranger-${i % 3}`));
  // One delivered (the consumer is then busy), four queued together, three dropped: never 'full'.
  assert.deepEqual(results, ['queued', 'queued', 'queued', 'queued', 'queued', 'dropped', 'dropped', 'dropped']);
  assert.deepEqual(drops.map((d) => d.reason), ['outside_busy', 'outside_busy', 'outside_busy']);
  // The budget: 10 frames a second from all of them together.
  sink.drain(Infinity);
  drops.length = 0;
  let taken = 0;
  for (let i = 0; i < 30; i++) if (s.offer(new Uint8Array(100), undefined, 'stranger-9') === 'queued') taken++;
  assert.equal(taken, 5, 'the budget had 5 frames left after the first 5');
  assert.equal(drops.filter((d) => d.reason === 'outside_budget').length, 25);
  clock.advance(1000);
  assert.equal(s.offer(new Uint8Array(100), undefined, 'stranger-9'), 'queued', 'refilled a second later');
  // The shared queue takes its turn with the validators' (an observer is served under load too).
  sink.delivered = [];
  sink.drain(1);
  fill(s, A, 1000);
  for (let i = 0; i < 3; i++) s.offer(new Uint8Array(1000), undefined, 'stranger-1');
  for (let i = 0; i < 20; i++) sink.drain(1);
  assert.ok(sink.delivered.filter((d) => d.from === undefined).length >= 3, 'the outside queue was served between A\'s frames');
});

test('a muted peer\'s frames never reach the consumer: dropped at the door, and what it had queued goes when the mute arrives', () => {
  const sink = new Sink(1);
  const { s, mutes, drops, clock } = setup({ sink });
  s.offer(new Uint8Array(10), B, B.peerId); // delivered; the consumer is busy now
  for (let i = 0; i < 5; i++) s.offer(new Uint8Array(100), A, A.peerId);
  s.offer(new Uint8Array(100), undefined, 'stranger');
  assert.equal(s.queuedFrom(A.peerId), 5);
  mutes.set(A.peerId, true, 10_000, 'offences');
  assert.equal(s.purge(A.peerId, A), 5, 'its queued frames are dropped');
  assert.equal(s.queuedFrom(A.peerId), 0);
  for (let i = 0; i < 4; i++) assert.equal(s.offer(new Uint8Array(100), A, A.peerId), 'dropped');
  assert.deepEqual(drops.map((d) => [d.reason, d.frames, d.nth]), [['muted', 5, undefined], ['muted', 1, 1], ['muted', 1, 2], ['muted', 1, 3], ['muted', 1, 4]]);
  // A muted non-validator's frames in the shared queue go too, the others' stay.
  s.offer(new Uint8Array(100), undefined, 'noisy');
  mutes.set('noisy', false, 10_000, 'offences');
  assert.equal(s.purge('noisy', undefined), 1);
  sink.drain(Infinity);
  assert.equal(sink.framesFrom(A.peerId), 0, 'nothing of the muted validator reached the consumer');
  assert.equal(sink.framesFrom('noisy'), 0);
  assert.equal(sink.framesFrom('stranger'), 1);
  // The mute ends by itself…
  clock.advance(10_000);
  assert.equal(s.offer(new Uint8Array(100), A, A.peerId), 'queued');
  assert.equal(sink.framesFrom(A.peerId), 1);
  // …or when lifted (ms = 0).
  mutes.set(A.peerId, true, 60_000, 'offences');
  assert.equal(s.offer(new Uint8Array(100), A, A.peerId), 'dropped');
  mutes.set(A.peerId, true, 0, 'forgiven');
  assert.equal(s.offer(new Uint8Array(100), A, A.peerId), 'queued');
  assert.equal(sink.framesFrom(A.peerId), 2);
});

test('a muted validator\'s full queue wakes its paused reader (its stream is read and dropped, not held)', () => {
  const sink = new Sink(1);
  const { s, mutes } = setup({ sink, queue: { maxFrames: 4, maxBytes: MiB } });
  fill(s, A, 100);
  let woken = 0;
  s.onRoom(A.peerId, () => { woken++; });
  mutes.set(A.peerId, true, 1000, 'offences');
  s.purge(A.peerId, A);
  assert.equal(woken, 1);
});

test('without a consumer frames are dropped as no_consumer and nothing is held back', () => {
  const sink = new Sink();
  sink.attached = false;
  const { s, drops } = setup({ sink, queue: { maxFrames: 2, maxBytes: MiB } });
  for (let i = 0; i < 10; i++) assert.equal(s.offer(new Uint8Array(10), A, A.peerId), 'queued');
  assert.equal(drops.filter((d) => d.reason === 'no_consumer').length, 10);
  assert.equal(s.queuedFrames, 0);
});
