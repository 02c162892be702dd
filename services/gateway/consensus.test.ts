// The consensus path's inbound side with streams played in process: a validator whose queue is
// full has its stream paused (and no one else's); a stream whose connection closed while paused
// is not resumed into a throw (it was, as StreamStateError from yamux's window update, out of the
// Attach stream's 'drain' handler, and ended the gateway process); a muted validator's frames are
// dropped right after framing, counted for it, and read again once the mute is lifted; a muted
// peer's streams are paused (its bytes stop at the sender), new ones at once, until the mute ends.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Connection, Stream } from '@libp2p/interface';
import { createLogger } from '#libs/log/index.ts';
import { createPromMetrics } from '#libs/metrics/index.ts';
import { generateIdentity } from '#libs/config/index.ts';
import { ConsensusPath } from './consensus.ts';
import { INBOUND_QUEUE_FRAMES, type Delivery, type InboundSink } from './inbound.ts';
import { encodeFrame } from './framing.ts';
import { gatewayMetrics } from './metrics.ts';
import type { GatewayNode } from './node.ts';
import { PeerTable, DEFAULT_BACKOFF } from './peer-table.ts';
import { ValidatorSet } from '#libs/validators/index.ts';

/** A stream as yamux behaves: pause/resume; once its connection is gone they throw. */
class FakeStream extends EventTarget {
  status = 'open';
  readStatus = 'readable';
  maxReadBufferLength = 0;
  connectionClosed = false;
  /** What arrived while paused (yamux buffers it, within the window it granted), dispatched on resume. */
  buffered: Uint8Array[] = [];
  pause(): void { this.#check(); this.readStatus = 'paused'; }
  resume(): void {
    this.#check();
    this.readStatus = 'readable';
    const b = this.buffered;
    this.buffered = [];
    for (const chunk of b) this.#dispatch(chunk);
  }
  abort(): void { this.status = 'aborted'; }
  #check(): void {
    if (this.connectionClosed) throw Object.assign(new Error('Cannot write to a stream that is closed'), { name: 'StreamStateError' });
  }
  /** `n` frames of `size` bytes in one chunk, as one yamux data frame may carry them. */
  send(n: number, size: number): void {
    const one = encodeFrame(new Uint8Array(size), 1 << 20).subarray();
    const chunk = new Uint8Array(one.length * n);
    for (let i = 0; i < n; i++) chunk.set(one, i * one.length);
    if (this.readStatus === 'paused') { this.buffered.push(chunk); return; }
    this.#dispatch(chunk);
  }
  #dispatch(chunk: Uint8Array): void {
    const msg = new Event('message') as Event & { data: Uint8Array };
    msg.data = chunk;
    this.dispatchEvent(msg);
  }
}

/** A consumer like the Attach stream: busy after its first write until drained. */
class Sink implements InboundSink {
  delivered: string[] = [];
  busy = false;
  waiters: Array<() => void> = [];
  deliver(_frame: Uint8Array, _from: unknown, peerId: string): Delivery {
    this.delivered.push(peerId);
    this.busy = true;
    return 'full';
  }
  onReady(fn: () => void): void { if (!this.busy) queueMicrotask(fn); else this.waiters.push(fn); }
  /** The consumer drained its buffer; it will be full again after one frame. */
  drain(): void {
    this.busy = false;
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }
}

async function setup() {
  const [a, b] = [await generateIdentity(), await generateIdentity()];
  let handler: ((s: Stream, c: Connection) => void) | undefined;
  const node = { handle: async (_p: string, fn: typeof handler) => { handler = fn; } } as unknown as GatewayNode;
  const sink = new Sink();
  const metrics = createPromMetrics({ prefix: 't_' });
  const table = new PeerTable({ now: Date.now, random: Math.random, backoff: DEFAULT_BACKOFF, onTransition: () => undefined });
  const path = new ConsensusPath({ maxFrameBytes: 1 << 20, queue: { maxFrames: 8, maxBytes: 8192 }, streamWindowBytes: 4096, openTimeoutMs: 1000 },
    { node, table, log: createLogger({ service: 'test', level: 'error' }), metrics: gatewayMetrics(metrics), sink });
  path.setValidators(ValidatorSet.fromConfig([['v0', 'self'], ['v1', a.peerId], ['v2', b.peerId]].map(([name, peer_id], i) => ({ name: name!, peer_id: peer_id!, public_key: `0${i}`.repeat(32) })))
    .withSelf({ peerId: 'self' }));
  await path.start();
  const open = (peerId: string): FakeStream => {
    table.connected(peerId, '/ip4/127.0.0.1/tcp/1');
    const s = new FakeStream();
    handler!(s as unknown as Stream, { remotePeer: { toString: () => peerId }, remoteAddr: { toString: () => '/ip4/127.0.0.1/tcp/1' } } as unknown as Connection);
    return s;
  };
  const refused = async (reason: string): Promise<number> => {
    const text = await metrics.registry.metrics();
    return Number(new RegExp(`t_gateway_frames_refused_total\\{reason="${reason}"\\} (\\d+)`).exec(text)?.[1] ?? 0);
  };
  return { path, sink, table, open, refused, a: a.peerId, b: b.peerId };
}

test('a validator whose queue is full has its stream paused, and no one else\'s; it resumes once the queue is half empty', async () => {
  const { path, sink, open, a, b } = await setup();
  const sa = open(a);
  const sb = open(b);
  // A floods: one frame is delivered (the consumer is then busy), 64 queue, the rest wait unread.
  sa.send(INBOUND_QUEUE_FRAMES + 10, 20_000);
  assert.equal(sa.readStatus, 'paused');
  assert.equal(path.inbound.queuedFrom(a), INBOUND_QUEUE_FRAMES);
  assert.equal(path.inbound.depth.pausedStreams, 1);
  // B is not paused, and its frame goes ahead of most of A's backlog.
  sb.send(2, 20_000);
  assert.equal(sb.readStatus, 'readable');
  assert.equal(path.inbound.queuedFrom(b), 2);
  let drains = 0;
  while (sa.readStatus === 'paused' && drains < 1000) { sink.drain(); drains++; }
  assert.equal(sa.readStatus, 'readable', 'resumed');
  assert.ok(drains >= INBOUND_QUEUE_FRAMES / 2, `resumed after ${drains} frames, once the queue was half empty`);
  assert.ok(sink.delivered.slice(0, 10).includes(b), 'B\'s frames went out among the first, not after A\'s backlog');
  while (sink.waiters.length > 0) sink.drain();
  assert.equal(sink.delivered.filter((p) => p === a).length, INBOUND_QUEUE_FRAMES + 10, 'every frame A sent is delivered');
  assert.equal(path.inbound.depth.pausedStreams, 0);
});

test('a paused stream whose connection closed is not resumed into a throw', async () => {
  const { path, sink, open, a } = await setup();
  const stream = open(a);
  stream.send(INBOUND_QUEUE_FRAMES + 2, 10);
  assert.equal(stream.readStatus, 'paused', 'a full queue pauses the stream');
  // The connection closes under the paused stream (SIGSTOP of the peer, a reset)...
  stream.connectionClosed = true;
  // ...and the consumer drains: the release must not throw.
  assert.doesNotThrow(() => { for (let i = 0; i < INBOUND_QUEUE_FRAMES; i++) sink.drain(); });
  assert.ok(sink.delivered.length > INBOUND_QUEUE_FRAMES / 2, 'the frames already read are still delivered; the resume fails quietly');
  assert.equal(path.inbound.queuedFrom(a) >= 0, true);
});

test('a muted validator\'s frames are dropped after framing and counted for it; another\'s arrive; ms = 0 lifts the mute', async () => {
  const { path, sink, table, open, refused, a, b } = await setup();
  const sa = open(a);
  const sb = open(b);
  path.inbound.mute({ validator: 1, peerId: '', ms: 60_000, reason: 'test' });
  assert.ok(path.inbound.mutes.untilMs(a) > Date.now());
  sa.send(5, 100);
  sb.send(1, 100);
  assert.deepEqual(sink.delivered, [b]);
  assert.equal(table.get(a)!.counters.framesReceived, 0, 'not read: its stream is paused');
  path.inbound.mute({ validator: 1, peerId: '', ms: 0, reason: 'forgiven' });
  // Lifted: what it sent while muted (buffered by yamux) is read, and dropped.
  assert.equal(table.get(a)!.counters.framesMuted, 5);
  assert.equal(table.get(a)!.counters.framesReceived, 5, 'read (and counted as received), never delivered');
  assert.equal(await refused('muted'), 5);
  assert.equal(path.inbound.mutedDropped, 5);
  sink.drain();
  sa.send(1, 100);
  assert.deepEqual(sink.delivered, [b, a]);
  // Requests the envelope rules refuse: an unknown index, this member.
  assert.throws(() => path.inbound.mute({ validator: 7, peerId: '', ms: 1000, reason: 'x' }), { code: 'UNKNOWN_VALIDATOR' });
  assert.throws(() => path.inbound.mute({ validator: 0, peerId: '', ms: 1000, reason: 'x' }), { code: 'MUTE_SELF' });
  // The consumer detaches: its mutes go with it.
  path.inbound.mute({ validator: 2, peerId: '', ms: 60_000, reason: 'test' });
  path.inbound.clearMutes();
  assert.equal(path.inbound.mutes.untilMs(b), 0);
});

test('a mute that arrives while the validator\'s queue is full drops its queue and keeps its stream paused until the mute ends', async () => {
  const { path, sink, table, open, a } = await setup();
  const sa = open(a);
  sa.send(INBOUND_QUEUE_FRAMES + 10, 100);
  assert.equal(sa.readStatus, 'paused');
  path.inbound.mute({ validator: 1, peerId: '', ms: 60_000, reason: 'test' });
  await new Promise((r) => setImmediate(r));
  assert.equal(sa.readStatus, 'paused', 'a muted peer\'s stream stays paused: its bytes stop at the sender');
  assert.equal(path.inbound.queuedFrom(a), 0);
  assert.equal(path.inbound.depth.mutedStreams, 1);
  assert.equal(table.get(a)!.counters.framesMuted, INBOUND_QUEUE_FRAMES + 9);
  sink.drain();
  assert.deepEqual(sink.delivered, [a], 'only the frame delivered before the mute');
  path.inbound.mute({ validator: 1, peerId: '', ms: 0, reason: 'forgiven' });
  assert.equal(sa.readStatus, 'readable', 'lifted: read again');
  assert.equal(path.inbound.depth.mutedStreams, 0);
});

test('a muted peer\'s streams are paused, new ones at once; they resume when the mute ends, is lifted or the consumer detaches', async () => {
  const { path, sink, open, a, b } = await setup();
  const sa = open(a);
  const sb = open(b);
  path.inbound.mute({ validator: 1, peerId: '', ms: 60_000, reason: 'test' });
  assert.equal(sa.readStatus, 'paused', 'muted: no window granted');
  assert.equal(sb.readStatus, 'readable', 'another validator is read as before');
  const sa2 = open(a);
  assert.equal(sa2.readStatus, 'paused', 'a stream opened while muted is paused at once');
  assert.equal(path.inbound.depth.mutedStreams, 2);
  // Frames in flight (buffered by yamux while paused) are dropped when the stream resumes, never delivered.
  sa.send(3, 100);
  sb.send(1, 100);
  assert.deepEqual(sink.delivered, [b]);
  assert.equal(sa.buffered.length, 1);
  // The consumer detaches: its mutes end, the streams are read again.
  path.inbound.clearMutes();
  assert.equal(sa.readStatus, 'readable');
  assert.equal(sa2.readStatus, 'readable');
  assert.equal(path.inbound.mutedDropped, 3, 'what it sent while muted is dropped');
  sink.drain();
  sa.send(1, 100);
  assert.deepEqual(sink.delivered, [b, a], 'what it sends after the mute is delivered');
  // A short mute ends by itself: the streams resume after it.
  path.inbound.mute({ validator: 1, peerId: '', ms: 30, reason: 'test' });
  assert.equal(sa.readStatus, 'paused');
  await new Promise((r) => setTimeout(r, 80));
  assert.equal(sa.readStatus, 'readable', 'resumed when the mute ended');
  assert.equal(sa2.readStatus, 'readable');
  assert.equal(path.inbound.depth.mutedStreams, 0);
  // A stream whose connection closed while muted is not resumed into a throw.
  path.inbound.mute({ validator: 1, peerId: '', ms: 60_000, reason: 'test' });
  sa.connectionClosed = true;
  sa.status = 'closed';
  assert.doesNotThrow(() => path.inbound.mute({ validator: 1, peerId: '', ms: 0, reason: 'forgiven' }));
  path.stop();
});
