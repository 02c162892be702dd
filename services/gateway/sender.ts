// Sends one peer's consensus frames: a bounded queue (oldest dropped when full) drained by one
// loop into one long-lived libp2p stream, honouring the stream's backpressure (at most ~1 MiB
// unsent in the stream; beyond it the loop waits). One slow peer fills only its own queue; the others keep flowing.
// Must never hold a frame for a peer outside its queue, nor retry a frame that failed (consensus
// resends what matters; a stale frame is worse than none).

import type { Stream } from '@libp2p/interface';
import { peerIdFromString } from '@libp2p/peer-id';
import type { Logger } from '#libs/log/index.ts';
import { errorMessage } from '#libs/errors/index.ts';
import { encodeFrame } from './framing.ts';
import type { GatewayNode } from './node.ts';
import { OutboundQueue, type QueueLimits } from './outbound-queue.ts';

/** Bytes a stream may hold unsent before the next frame waits (enough to keep the pipe full). */
const LOW_WATER_BYTES = 1024 * 1024;

export interface SenderDeps {
  node: GatewayNode;
  protocol: string;
  log: Logger;
  maxFrameBytes: () => number;
  /** Whether a connection to the peer is open now (otherwise frames wait, bounded). */
  isConnected: (peerId: string) => boolean;
  onSent: (peerId: string, bytes: number) => void;
  onDropped: (peerId: string, n: number, reason: 'queue_full' | 'send_failed') => void;
  onFailure: (peerId: string, reason: string) => void;
  openTimeoutMs: () => number;
}

export class PeerSender {
  readonly peerId: string;
  readonly queue: OutboundQueue;
  #deps: SenderDeps;
  #stream: Stream | undefined;
  #stopped = false;
  #loop: Promise<void>;

  constructor(peerId: string, limits: QueueLimits, deps: SenderDeps) {
    this.peerId = peerId;
    this.queue = new OutboundQueue(limits);
    this.#deps = deps;
    this.#loop = this.#run().catch((err: unknown) => deps.log.error({ peerId, err: errorMessage(err) }, 'sender loop failed'));
  }

  enqueue(frame: Uint8Array): void {
    const dropped = this.queue.push(frame);
    if (dropped > 0) this.#deps.onDropped(this.peerId, dropped, 'queue_full');
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.queue.wake();
    this.#nudge?.();
    try { this.#stream?.abort(new Error('gateway stopping')); } catch { /* already closed */ }
    await this.#loop;
  }

  async #run(): Promise<void> {
    while (!this.#stopped) {
      await this.queue.wait();
      if (this.#stopped) return;
      if (this.queue.length === 0) continue;
      if (!this.#deps.isConnected(this.peerId)) {
        // Frames wait (bounded) until the dialer reconnects; connected() ends the wait at once.
        await this.#sleep(1000);
        continue;
      }
      const frame = this.queue.shift();
      if (!frame) continue;
      await this.#write(frame);
    }
  }

  #nudge: (() => void) | undefined;

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => { clearTimeout(timer); this.#nudge = undefined; resolve(); };
      const timer = setTimeout(done, ms);
      this.#nudge = done;
    });
  }

  /** Called by the path when the peer connects, to end the wait for a connection at once. */
  connected(): void { this.#nudge?.(); }

  async #write(frame: Uint8Array): Promise<void> {
    try {
      const stream = await this.#open();
      stream.send(encodeFrame(frame, this.#deps.maxFrameBytes()));
      await this.#drained(stream);
      this.#deps.onSent(this.peerId, frame.length);
    } catch (err) {
      const reason = reasonOf(err);
      try { this.#stream?.abort(err instanceof Error ? err : new Error(reason)); } catch { /* already closed */ }
      this.#stream = undefined;
      this.#deps.onDropped(this.peerId, 1, 'send_failed');
      if (!this.#stopped) this.#deps.onFailure(this.peerId, reason);
    }
  }

  /**
   * Waits until the stream's own write buffer is back under the low-water mark. A stream's
   * 'drain' fires on every window update, not when its buffer is empty, and send() buffers
   * whatever it is given: without this wait the buffer, not our bounded queue, would grow.
   * A peer that reads nothing for the whole timeout counts as a failed send.
   */
  async #drained(stream: Stream): Promise<void> {
    const timeoutMs = Math.max(5_000, this.#deps.openTimeoutMs());
    const deadline = Date.now() + timeoutMs;
    while (stream.writeBufferLength > LOW_WATER_BYTES) {
      if (stream.status !== 'open' || this.#stopped) throw new Error(`stream ${stream.status} with ${stream.writeBufferLength} bytes unsent`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`peer read nothing for ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          for (const e of ['drain', 'idle', 'close'] as const) stream.removeEventListener(e, done);
          resolve();
        };
        const timer = setTimeout(done, Math.min(left, 250));
        for (const e of ['drain', 'idle', 'close'] as const) stream.addEventListener(e, done);
      });
    }
  }

  async #open(): Promise<Stream> {
    const s = this.#stream;
    if (s && s.writeStatus === 'writable' && s.status === 'open') return s;
    this.#stream = undefined;
    const stream = await this.#deps.node.dialProtocol(peerIdFromString(this.peerId), this.#deps.protocol, {
      signal: AbortSignal.timeout(this.#deps.openTimeoutMs()),
    });
    // A hard stop under the low-water wait: past this the stream resets rather than grow.
    stream.maxWriteBufferLength = LOW_WATER_BYTES + 2 * this.#deps.maxFrameBytes();
    stream.addEventListener('close', () => { if (this.#stream === stream) this.#stream = undefined; });
    this.#stream = stream;
    return stream;
  }
}

/**
 * What went wrong, in words. libp2p rejects some waits with the stream's close Event rather than
 * an Error (logged as "[object Event]" before): its `error`, or its type, is the reason.
 */
export function reasonOf(err: unknown): string {
  if (err instanceof Error) return err.message;
  if (typeof Event !== 'undefined' && err instanceof Event) {
    const inner = (err as Event & { error?: unknown }).error;
    return inner !== undefined ? `${err.type}: ${reasonOf(inner)}` : `stream ${err.type} event`;
  }
  return errorMessage(err);
}
