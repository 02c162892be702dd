// The consensus path's inbound back-pressure against a stream whose connection closed while it
// was paused: resuming it must not throw (it did, as StreamStateError from yamux's window update,
// out of the Attach stream's 'drain' handler, and ended the gateway process).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Connection, Stream } from '@libp2p/interface';
import { createLogger } from '#libs/log/index.ts';
import { createPromMetrics } from '#libs/metrics/index.ts';
import { generateIdentity } from '#libs/config/index.ts';
import { ConsensusPath, type InboundSink } from './consensus.ts';
import { encodeFrame } from './framing.ts';
import { gatewayMetrics } from './metrics.ts';
import type { GatewayNode } from './node.ts';
import { PeerTable, DEFAULT_BACKOFF } from './peer-table.ts';

/** A stream as yamux behaves once its connection is gone: resume() and pause() throw. */
class ClosingStream extends EventTarget {
  status = 'open';
  readStatus = 'readable';
  maxReadBufferLength = 0;
  pause(): void { this.#check(); this.readStatus = 'paused'; }
  resume(): void { this.#check(); this.readStatus = 'readable'; }
  abort(): void { this.status = 'aborted'; }
  #check(): void {
    if (this.connectionClosed) throw Object.assign(new Error('Cannot write to a stream that is closed'), { name: 'StreamStateError' });
  }
  connectionClosed = false;
}

test('a paused stream whose connection closed is not resumed into a throw', async () => {
  const validator = await generateIdentity();
  let handler: ((s: Stream, c: Connection) => void) | undefined;
  const node = { handle: async (_p: string, fn: typeof handler) => { handler = fn; } } as unknown as GatewayNode;
  const waiters: Array<() => void> = [];
  let delivered = 0;
  const sink: InboundSink = { deliver: () => (++delivered === 1 ? 'full' : 'accepted'), onReady: (fn) => { waiters.push(fn); }, busy: false };
  const table = new PeerTable({ now: Date.now, random: Math.random, backoff: DEFAULT_BACKOFF, onTransition: () => undefined });
  const path = new ConsensusPath({ maxFrameBytes: 1024, queue: { maxFrames: 8, maxBytes: 8192 }, streamWindowBytes: 4096, openTimeoutMs: 1000 },
    { node, table, log: createLogger({ service: 'test', level: 'error' }), metrics: gatewayMetrics(createPromMetrics({ prefix: 't_' })), sink });
  path.setValidators([{ index: 1, name: 'v1', peerId: validator.peerId }], 0);
  await path.start();
  const stream = new ClosingStream();
  handler!(stream as unknown as Stream, { remotePeer: { toString: () => validator.peerId }, remoteAddr: { toString: () => '/ip4/127.0.0.1/tcp/1' } } as unknown as Connection);
  const two = encodeFrame(new Uint8Array(10), 1024).subarray();
  const msg = new Event('message') as Event & { data: Uint8Array };
  msg.data = Uint8Array.from([...two, ...two]);
  stream.dispatchEvent(msg);
  assert.equal(delivered, 1);
  assert.equal(stream.readStatus, 'paused', 'a full consumer pauses the stream');
  assert.equal(waiters.length, 1);
  // The connection closes under the paused stream (SIGSTOP of the peer, a reset)...
  stream.connectionClosed = true;
  // ...and the consumer drains: the release must not throw.
  assert.doesNotThrow(() => waiters[0]!());
  assert.equal(delivered, 2, 'the frame already read is still delivered; the resume fails quietly');
});
