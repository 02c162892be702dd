// The Attach point as the inbound scheduler's sink: busy once a megabyte of frames is written and
// not yet sent by HTTP/2 (grpc-js alone buffers 16 messages, 16 MiB of large frames that a vote
// would wait behind), ready again as they are sent; a new consumer starts with nothing in flight.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import * as grpc from '@grpc/grpc-js';
import { createLogger } from '#libs/log/index.ts';
import { createPromMetrics } from '#libs/metrics/index.ts';
import type { AttachRequest, AttachResponse } from '#libs/gen/btcfed/v1/gateway.pb.ts';
import { AttachPoint, MAX_IN_FLIGHT_BYTES } from './attach.ts';
import type { ConsensusPath } from './consensus.ts';
import { gatewayMetrics } from './metrics.ts';

/** A server stream whose writes are sent when the test says (write() itself never says full). */
class FakeCall extends EventEmitter {
  cancelled = false;
  metadata = new grpc.Metadata();
  unsent: Array<() => void> = [];
  written = 0;
  getPeer(): string { return 'test'; }
  write(_msg: AttachResponse, cb?: () => void): boolean { this.written++; if (cb) this.unsent.push(cb); return true; }
  end(): void { /* */ }
  /** HTTP/2 sends the oldest written frame. */
  sendOne(): void { this.unsent.shift()?.(); }
}

function attached() {
  const path = { selfIndex: 0, validators: [], maxFrameBytes: 1 << 22, inbound: { clearMutes: () => undefined } } as unknown as ConsensusPath;
  const point = new AttachPoint({ log: createLogger({ service: 'test', level: 'error' }), metrics: gatewayMetrics(createPromMetrics({ prefix: 't_' })), peerId: 'self', path: () => path });
  const call = new FakeCall();
  point.handler(call as unknown as grpc.ServerDuplexStream<AttachRequest, AttachResponse>);
  call.written = 0;
  return { point, call };
}

test('the sink is busy once a megabyte is written and not sent, and ready again as HTTP/2 sends it', async () => {
  const { point, call } = attached();
  const frame = new Uint8Array(300 * 1024);
  assert.equal(point.deliver(frame, undefined, 'p'), 'accepted');
  assert.equal(point.deliver(frame, undefined, 'p'), 'accepted');
  assert.equal(point.deliver(frame, undefined, 'p'), 'accepted');
  assert.equal(point.busy, false);
  assert.equal(point.deliver(frame, undefined, 'p'), 'full', `${4 * frame.length} bytes in flight ≥ ${MAX_IN_FLIGHT_BYTES}`);
  assert.equal(point.busy, true);
  let ready = 0;
  point.onReady(() => { ready++; });
  call.sendOne();
  assert.equal(ready, 1, 'released once under the bound');
  assert.equal(point.busy, false);
  // A new consumer starts with nothing in flight; the old one's late callbacks do not count.
  call.emit('end');
  const next = new FakeCall();
  point.handler(next as unknown as grpc.ServerDuplexStream<AttachRequest, AttachResponse>);
  for (let i = 0; i < 3; i++) call.sendOne();
  assert.equal(point.busy, false);
  assert.equal(point.deliver(new Uint8Array(MAX_IN_FLIGHT_BYTES - 1), undefined, 'p'), 'accepted');
  await Promise.resolve();
});
