// Length-prefixed frames over a byte stream: an unsigned varint length, then that many bytes.
// The decoder checks the announced length against the limit *before* buffering the payload,
// so an oversized frame costs at most a few bytes of memory; it never decodes the payload.
// Must never buffer more than one frame plus one incoming chunk.

import type { Stream } from '@libp2p/interface';
import { Uint8ArrayList } from 'uint8arraylist';
import { FedError } from '#libs/errors/index.ts';

/** Five varint bytes carry up to 2^35; our limits are far below. */
const MAX_LENGTH_BYTES = 5;

export function encodeVarint(n: number): Uint8Array {
  const out: number[] = [];
  let v = n;
  while (v >= 0x80) {
    out.push((v & 0x7f) | 0x80);
    v = Math.floor(v / 128);
  }
  out.push(v);
  return Uint8Array.from(out);
}

/** One frame with its length prefix, as a list (no copy of the payload). */
export function encodeFrame(payload: Uint8Array, maxBytes: number): Uint8ArrayList {
  if (payload.length > maxBytes) {
    throw new FedError('FRAME_TOO_LARGE', `frame of ${payload.length} bytes exceeds the limit of ${maxBytes}`,
      { bytes: payload.length, limit: maxBytes });
  }
  return new Uint8ArrayList(encodeVarint(payload.length), payload);
}

/**
 * Incremental decoder: push chunks as they arrive, take whole frames out. Throws
 * FRAME_TOO_LARGE (or FRAME_INVALID for a bad prefix); the stream should then be reset.
 */
export class FrameDecoder {
  #buf = new Uint8ArrayList();
  #want: number | undefined;
  #maxBytes: number;

  constructor(maxBytes: number) {
    this.#maxBytes = maxBytes;
  }

  set maxBytes(n: number) { this.#maxBytes = n; }

  get bufferedBytes(): number { return this.#buf.byteLength; }

  /** Appends a chunk and returns every frame it completes, in order. */
  push(chunk: Uint8Array | Uint8ArrayList): Uint8Array[] {
    this.#buf.append(chunk);
    const frames: Uint8Array[] = [];
    for (;;) {
      if (this.#want === undefined) {
        const len = this.#readLength();
        if (len === undefined) return frames;
        this.#want = len;
      }
      if (this.#buf.byteLength < this.#want) return frames;
      frames.push(this.#buf.subarray(0, this.#want));
      this.#buf.consume(this.#want);
      this.#want = undefined;
    }
  }

  #readLength(): number | undefined {
    let value = 0;
    let scale = 1;
    for (let i = 0; i < MAX_LENGTH_BYTES; i++) {
      if (i >= this.#buf.byteLength) return undefined;
      const b = this.#buf.get(i);
      value += (b & 0x7f) * scale;
      scale *= 128;
      if ((b & 0x80) === 0) {
        if (value > this.#maxBytes) {
          throw new FedError('FRAME_TOO_LARGE', `peer announced a frame of ${value} bytes; the limit is ${this.#maxBytes}`,
            { bytes: value, limit: this.#maxBytes });
        }
        this.#buf.consume(i + 1);
        return value;
      }
    }
    throw new FedError('FRAME_INVALID', `frame length prefix longer than ${MAX_LENGTH_BYTES} bytes`);
  }
}

/** Reads exactly one length-prefixed message from a libp2p stream, size-checked before it is buffered. */
export function readOne<T>(stream: Stream, timeoutMs: number, maxBytes: number, decode: (bytes: Uint8Array) => T): Promise<T> {
  return new Promise((resolve, reject) => {
    const decoder = new FrameDecoder(maxBytes);
    const done = (err: Error | undefined, msg?: T) => {
      clearTimeout(timer);
      stream.removeEventListener('message', onMessage);
      stream.removeEventListener('close', onClose);
      if (err) reject(err); else resolve(msg!);
    };
    const onMessage = (evt: { data: Parameters<FrameDecoder['push']>[0] }) => {
      try {
        const [frame] = decoder.push(evt.data);
        if (frame) done(undefined, decode(frame));
      } catch (err) {
        done(err instanceof Error ? err : new Error(String(err)));
      }
    };
    const onClose = () => done(new Error('stream closed before a message arrived'));
    const timer = setTimeout(() => done(new Error(`no message within ${timeoutMs} ms`)), timeoutMs);
    stream.addEventListener('message', onMessage);
    stream.addEventListener('close', onClose);
  });
}
