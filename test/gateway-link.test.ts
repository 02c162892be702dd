// The consensus service's GatewayLink on a fake Attach stream whose writes report backpressure: a
// mute numbered by a new set never reaches the gateway ahead of that set, a full buffer drops
// frames but never the set change, and a mute with no set change waiting still overtakes frames.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { createLogger } from '#libs/log/index.ts';
import { ValidatorSet } from '#libs/validators/index.ts';
import type { AttachRequest, GatewayServiceClient } from '#libs/gen/btcfed/v1/gateway.pb.ts';
import { GatewayLink, MAX_BUFFERED } from '../services/consensus/gateway-link.ts';

/** An Attach stream that takes every write and answers false (backpressure) while `full`. */
class FakeStream extends EventEmitter {
  written: AttachRequest[] = [];
  full = false;
  write(req: AttachRequest): boolean { this.written.push(req); return !this.full; }
  cancel(): void {}
  /** The stream drains: the link writes what it buffered. */
  drain(): void { this.full = false; this.emit('drain'); }
}

const names = ['a', 'b', 'c', 'd'];
const entries = names.map((n, i) => ({ name: n, peer_id: `peer-${n}`, public_key: `0${i}`.repeat(32) }));
const epoch0 = ValidatorSet.fromConfig(entries);
/** b removed: c and d move down one. */
const epoch1 = ValidatorSet.fromConfig(entries.filter((e) => e.name !== 'b'), { epoch: 1 });

function attached(): { link: GatewayLink; stream: FakeStream } {
  const stream = new FakeStream();
  const client = { attach: () => stream } as unknown as GatewayServiceClient;
  const link = new GatewayLink({ client, log: createLogger({ service: 'test', level: 'error' }), onFrame: () => undefined });
  link.setValidators(epoch0);
  link.start();
  stream.emit('data', { body: { $case: 'ready', value: { selfIndex: 0, maxFrameBytes: 1 << 20, peerId: 'peer-a' } } });
  stream.written = [];
  return { link, stream };
}

const kinds = (w: AttachRequest[]) => w.map((r) => (r.body?.$case === 'validators' ? `validators@${r.body.value.epoch}`
  : r.body?.$case === 'mute' ? `mute ${r.body.value.validator} ${r.body.value.ms}` : r.body?.$case));

test('gateway link: a mute by the new set\'s index reaches the gateway behind the set change buffered before it', () => {
  const { link, stream } = attached();
  stream.full = true;
  link.broadcast(Uint8Array.of(1)); // the stream backs up: what follows waits here
  link.setValidators(epoch1);
  link.broadcast(Uint8Array.of(2));
  link.mute(1, 60_000, 'test'); // index 1 of epoch 1 is c; of epoch 0, b — an honest member
  stream.drain();
  assert.deepEqual(kinds(stream.written), ['broadcast', 'validators@1', 'mute 1 60000', 'broadcast'],
    'the mute went ahead of the set it is numbered by (the gateway would mute b), or behind the frames');
});

test('gateway link: a mute with no set change waiting overtakes the frames backed up', () => {
  const { link, stream } = attached();
  stream.full = true;
  link.broadcast(Uint8Array.of(1));
  link.broadcast(Uint8Array.of(2));
  link.mute(2, 0, 'lift');
  assert.deepEqual(kinds(stream.written), ['broadcast', 'mute 2 0'], 'a lift waited behind the frames');
});

test('gateway link: a full buffer drops the oldest frames, never the set change nor the mutes; mutes of one peer replace each other', () => {
  const { link, stream } = attached();
  stream.full = true;
  link.broadcast(Uint8Array.of(0));
  link.setValidators(epoch1);
  for (let i = 0; i < 50; i++) link.mute(1, 1000 + i, 'again'); // one peer muted again and again: one entry waits
  for (let i = 0; i < MAX_BUFFERED + 10; i++) link.send(2, Uint8Array.of(i & 0xff));
  assert.equal(link.bufferedFrames, MAX_BUFFERED);
  assert.equal(link.dropped, 10);
  stream.drain();
  const got = kinds(stream.written);
  assert.deepEqual(got.slice(0, 3), ['broadcast', 'validators@1', 'mute 1 1049'], 'the set change (or the mute behind it) was dropped for frames');
  assert.equal(got.length, 3 + MAX_BUFFERED);
  assert.equal(link.bufferedFrames, 0);
});

test('gateway link: on a new stream, frames buffered before a set change still buffered go out under the set they were numbered by', async () => {
  const streams: FakeStream[] = [];
  const client = { attach: () => { const s = new FakeStream(); streams.push(s); return s; } } as unknown as GatewayServiceClient;
  const link = new GatewayLink({ client, log: createLogger({ service: 'test', level: 'error' }), onFrame: () => undefined });
  const ready = (s: FakeStream) => s.emit('data', { body: { $case: 'ready', value: { selfIndex: 0, maxFrameBytes: 1 << 20, peerId: 'peer-a' } } });
  link.setValidators(epoch0);
  link.start();
  ready(streams[0]!);
  streams[0]!.full = true;
  link.broadcast(Uint8Array.of(1)); // taken by the stream, which backs up
  link.send(2, Uint8Array.of(2)); // validator 2 of epoch 0: c
  link.setValidators(epoch1);
  link.send(2, Uint8Array.of(3)); // validator 2 of epoch 1: d
  link.mute(1, 60_000, 'test'); // c, by epoch 1
  streams[0]!.emit('error', new Error('gateway restarted'));
  await new Promise((r) => setTimeout(r, 300)); // the link reattaches after its first backoff (100 ms)
  assert.equal(streams.length, 2, 'the link attached again');
  ready(streams[1]!);
  // (The mute is sent again with the time it has left.)
  const sends = (w: AttachRequest[]) => w.map((r) => (r.body?.$case === 'send' ? `send ${r.body.value.to}:${r.body.value.frame[0]}`
    : r.body?.$case === 'mute' ? `mute ${r.body.value.validator}` : kinds([r])[0]));
  assert.deepEqual(sends(streams[1]!.written), ['validators@0', 'send 2:2', 'validators@1', 'mute 1', 'send 2:3'],
    'a frame for c went out behind the newer set (to d), or the mute went ahead of the set it is numbered by');
  link.close();
});
