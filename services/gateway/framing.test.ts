import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { isFedError } from '#libs/errors/index.ts';
import { FrameDecoder, encodeFrame, encodeVarint } from './framing.ts';

test('frames split at any byte boundary come out whole and in order', () => {
  fc.assert(fc.property(
    fc.array(fc.uint8Array({ maxLength: 3000 }), { maxLength: 20 }),
    fc.array(fc.integer({ min: 1, max: 500 }), { minLength: 1, maxLength: 30 }),
    (frames, cuts) => {
      const wire = Buffer.concat(frames.map((f) => encodeFrame(f, 1 << 20).subarray()));
      const d = new FrameDecoder(1 << 20);
      const out: Uint8Array[] = [];
      let at = 0;
      for (let i = 0; at < wire.length; i++) {
        const n = cuts[i % cuts.length]!;
        out.push(...d.push(wire.subarray(at, at + n)));
        at += n;
      }
      assert.deepEqual(out.map((f) => Buffer.from(f).toString('hex')), frames.map((f) => Buffer.from(f).toString('hex')));
      assert.equal(d.bufferedBytes, 0);
    }));
});

test('an announced length over the limit is refused before the payload arrives', () => {
  const d = new FrameDecoder(1000);
  assert.deepEqual(d.push(encodeVarint(1000)), []);
  const d2 = new FrameDecoder(1000);
  assert.throws(() => d2.push(encodeVarint(1001)), (e) => isFedError(e, 'FRAME_TOO_LARGE'));
  const d3 = new FrameDecoder(1000);
  assert.throws(() => d3.push(Uint8Array.from([0x80, 0x80, 0x80, 0x80, 0x80, 0x01])), (e) => isFedError(e, 'FRAME_INVALID'));
  assert.throws(() => encodeFrame(new Uint8Array(11), 10), (e) => isFedError(e, 'FRAME_TOO_LARGE'));
});

test('varints match the protobuf encoding', () => {
  assert.deepEqual([...encodeVarint(0)], [0]);
  assert.deepEqual([...encodeVarint(127)], [127]);
  assert.deepEqual([...encodeVarint(300)], [0xac, 0x02]);
  assert.deepEqual([...encodeVarint(2 ** 28)], [0x80, 0x80, 0x80, 0x80, 0x01]);
});
