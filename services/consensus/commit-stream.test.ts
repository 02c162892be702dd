// StreamCommits' flow control on a scripted call: the source is asked for a message only while
// fewer than the bound are written and untaken (one always may be), a stream whose writes stay
// untaken past the stall time ends 'stalled' and stops its source, and a cancel stops it too.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import type * as grpc from '@grpc/grpc-js';
import { pumpBounded } from './commit-stream.ts';

/** A server call whose writes are taken only when the test says so. */
function scriptedCall() {
  const untaken: Array<() => void> = [];
  const c = Object.assign(new EventEmitter(), {
    cancelled: false,
    write(_m: unknown, cb: () => void) { untaken.push(cb); return true; },
  });
  return { call: c as unknown as grpc.ServerWritableStream<unknown, number>, untaken, take: () => untaken.shift()?.() };
}

/** A source of `size`-byte messages that counts how many it was asked for and whether it was stopped. */
function source() {
  const s = { pulled: 0, stopped: false };
  async function* gen() {
    try { for (;;) { s.pulled++; yield 40; } } finally { s.stopped = true; }
  }
  return { s, it: gen() };
}

const tick = () => new Promise((r) => setImmediate(r));

test('the source is asked for more only while fewer than the bound are untaken', { timeout: 5000 }, async () => {
  const { call, take } = scriptedCall();
  const { s, it } = source();
  const abort = new AbortController();
  const done = pumpBounded(it, call, abort, { maxBufferedBytes: 100, stallMs: 60_000 }, { sizeOf: (n) => n });
  await tick();
  assert.equal(s.pulled, 3, '40 + 40 + 40 bytes written: the third passes the bound of 100, nothing more is read');
  take();
  await tick();
  assert.equal(s.pulled, 4, 'one taken (80 untaken): one more');
  await tick();
  assert.equal(s.pulled, 4, 'and no more until the next is taken');
  call.cancelled = true;
  call.emit('cancelled');
  assert.equal(await done, 'cancelled');
  await it.return(undefined);
  assert.ok(s.stopped);
});

test('one message larger than the bound still goes, alone', { timeout: 5000 }, async () => {
  const { call, take } = scriptedCall();
  const { s, it } = source();
  const done = pumpBounded(it, call, new AbortController(), { maxBufferedBytes: 10, stallMs: 60_000 }, { sizeOf: (n) => n });
  await tick();
  assert.equal(s.pulled, 1);
  take();
  await tick();
  assert.equal(s.pulled, 2);
  call.cancelled = true;
  call.emit('cancelled');
  assert.equal(await done, 'cancelled');
});

test('writes untaken past the stall time end the stream as stalled, reporting what waited, and abort the source\'s signal', { timeout: 5000 }, async () => {
  const { call } = scriptedCall();
  const { s, it } = source();
  const abort = new AbortController();
  let reported = -1;
  const t0 = Date.now();
  const end = await pumpBounded(it, call, abort, { maxBufferedBytes: 100, stallMs: 150 }, { sizeOf: (n) => n, stalled: (_c, bytes) => { reported = bytes; } });
  assert.equal(end, 'stalled');
  assert.ok(Date.now() - t0 >= 140, `stalled after ${Date.now() - t0} ms`);
  assert.equal(reported, 120);
  assert.ok(abort.signal.aborted, 'a source waiting for the next commit is told to stop');
  assert.equal(s.pulled, 3);
});

test('a client that keeps taking never stalls, however long the stream runs', { timeout: 5000 }, async () => {
  const { call, take } = scriptedCall();
  const { s, it } = source();
  const timer = setInterval(take, 10);
  const done = pumpBounded(it, call, new AbortController(), { maxBufferedBytes: 100, stallMs: 100 }, { sizeOf: (n) => n });
  await new Promise((r) => setTimeout(r, 400));
  clearInterval(timer);
  assert.ok(s.pulled > 20, `${s.pulled} messages`);
  call.cancelled = true;
  call.emit('cancelled');
  assert.equal(await done, 'cancelled');
});
