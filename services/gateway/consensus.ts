// The consensus message path on /btcfed/consensus/1.0.0: outbound frames routed to one peer
// sender per validator, inbound frames read from validators' streams and handed to the attached
// consumer. Envelope checks only — size (before buffering) and the sender's authenticated libp2p
// identity: a configured validator's frames are delivered as its; a non-validator's (an observer
// asking for blocks, or any peer that connected) are delivered marked as from outside, within a
// budget shared by all of them (streams, frames and bytes per second), and dropped — never
// paused for — when the consumer is busy, so outsiders can never slow the validators' frames.
// Inbound backpressure: when the consumer is full, a validator's libp2p stream is paused (yamux
// stops granting window, so the remote's queue fills and drops) instead of buffering here.
// Frames go to non-validators only in answer, to peers already connected (never dialled).
// Must never decode a consensus message or decide anything from its content.

import type { Connection, Stream } from '@libp2p/interface';
import type { Logger } from '#libs/log/index.ts';
import { FedError, errorMessage } from '#libs/errors/index.ts';
import { FrameDecoder } from './framing.ts';
import type { GatewayNode } from './node.ts';
import type { QueueLimits } from './outbound-queue.ts';
import type { PeerTable } from './peer-table.ts';
import { PeerSender } from './sender.ts';
import type { Validator } from './settings.ts';
import type { GatewayMetrics } from './metrics.ts';

export const CONSENSUS_PROTOCOL = '/btcfed/consensus/1.0.0';

/** Inbound consensus streams from non-validators open at once (all of them together). */
export const MAX_OUTSIDE_STREAMS = 64;
/** Non-validators answered at once: each has a bounded queue; past this the oldest is stopped. */
export const MAX_OUTSIDE_SENDERS = 64;
/** Frames and bytes per second taken from all non-validators together; more are dropped and counted. */
export const OUTSIDE_FRAMES_PER_SECOND = 200;
export const OUTSIDE_BYTES_PER_SECOND = 16 << 20;

/** Result of handing one frame to the consumer, like a stream write. */
export type Delivery = 'accepted' | 'full' | 'no_consumer';

export interface InboundSink {
  /** `from` is undefined for a sender that is not a configured validator. */
  deliver(frame: Uint8Array, from: Validator | undefined, peerId: string): Delivery;
  /** Runs `fn` once, when the consumer can take frames again. */
  onReady(fn: () => void): void;
  /** The consumer is not taking frames right now (the last write filled its buffer). */
  readonly busy: boolean;
}

export interface ConsensusPathOptions {
  maxFrameBytes: number;
  queue: QueueLimits;
  /** Receive window of one stream; paused streams buffer at most this much. */
  streamWindowBytes: number;
  openTimeoutMs: number;
}

export interface ConsensusPathDeps {
  node: GatewayNode;
  table: PeerTable;
  log: Logger;
  metrics: GatewayMetrics;
  sink: InboundSink;
}

export class ConsensusPath {
  #opts: ConsensusPathOptions;
  #deps: ConsensusPathDeps;
  #byPeer = new Map<string, Validator>();
  #validators: Validator[] = [];
  #selfIndex: number | undefined;
  #senders = new Map<string, PeerSender>();
  /** Senders to non-validators, oldest first (bounded by MAX_OUTSIDE_SENDERS). */
  #outsideSenders = new Map<string, PeerSender>();
  #inbound = new Set<Stream>();
  #outsideStreams = 0;
  /** The shared budget of outside frames: tokens in frames and bytes, refilled per second. */
  #outside = { frames: OUTSIDE_FRAMES_PER_SECOND, bytes: OUTSIDE_BYTES_PER_SECOND, at: Date.now() };
  /** Frames from non-validators dropped (over budget, or the consumer busy). */
  outsideDropped = 0;
  /** Oversized or malformed frames per validator peer id (bounded by the validator set). */
  #refusedBy = new Map<string, number>();
  refused = 0;

  constructor(opts: ConsensusPathOptions, deps: ConsensusPathDeps) {
    this.#opts = { ...opts };
    this.#deps = deps;
  }

  get maxFrameBytes(): number { return this.#opts.maxFrameBytes; }
  set maxFrameBytes(n: number) { this.#opts.maxFrameBytes = n; }
  set openTimeoutMs(n: number) { this.#opts.openTimeoutMs = n; }
  get validators(): readonly Validator[] { return this.#validators; }
  get selfIndex(): number | undefined { return this.#selfIndex; }

  setValidators(validators: readonly Validator[], selfIndex: number | undefined): void {
    this.#validators = [...validators];
    this.#selfIndex = selfIndex;
    this.#byPeer = new Map(validators.map((v) => [v.peerId, v]));
    for (const id of this.#refusedBy.keys()) if (!this.#byPeer.has(id)) this.#refusedBy.delete(id);
    for (const [peerId, sender] of this.#senders) {
      if (!this.#byPeer.has(peerId)) { this.#senders.delete(peerId); void sender.stop(); }
    }
  }

  validatorOf(peerId: string): Validator | undefined { return this.#byPeer.get(peerId); }

  /** Frames refused from one validator (too large or malformed). */
  refusedFrom(peerId: string): number { return this.#refusedBy.get(peerId) ?? 0; }

  async start(): Promise<void> {
    await this.#deps.node.handle(CONSENSUS_PROTOCOL, (stream, connection) => this.#onStream(stream, connection),
      { maxInboundStreams: 4, maxOutboundStreams: 4 });
  }

  async stop(): Promise<void> {
    for (const s of this.#inbound) abortQuietly(s, new Error('gateway stopping'));
    await Promise.all([...this.#senders.values(), ...this.#outsideSenders.values()].map((s) => s.stop()));
    this.#senders.clear();
    this.#outsideSenders.clear();
  }

  /** Queues a frame for validator `to`. Throws FedError for a request the envelope rules refuse. */
  send(to: number, frame: Uint8Array): void {
    this.#checkSize(frame);
    const v = this.#validators[to];
    if (!v) throw new FedError('UNKNOWN_VALIDATOR', `no validator with index ${to} (there are ${this.#validators.length})`, { to });
    if (to === this.#selfIndex) throw new FedError('SEND_TO_SELF', `validator ${to} is this member`, { to });
    this.#enqueue(v.peerId, frame);
  }

  /**
   * Queues a frame for a peer that is not a validator (an answer to its request). Only to a peer
   * connected now: a non-validator is never dialled for it.
   */
  sendToPeer(peerId: string, frame: Uint8Array): void {
    this.#checkSize(frame);
    const v = this.#byPeer.get(peerId);
    if (v) { this.send(v.index, frame); return; }
    if (this.#deps.table.get(peerId)?.phase !== 'connected') {
      this.#dropped(peerId, 1, 'outside_not_connected');
      return;
    }
    let s = this.#outsideSenders.get(peerId);
    if (!s) {
      if (this.#outsideSenders.size >= MAX_OUTSIDE_SENDERS) {
        const [oldId, old] = this.#outsideSenders.entries().next().value!;
        this.#outsideSenders.delete(oldId);
        void old.stop();
      }
      s = this.#newSender(peerId);
      this.#outsideSenders.set(peerId, s);
    }
    s.enqueue(frame);
  }

  /** Queues a frame for every validator but this member; returns how many it was queued for. */
  broadcast(frame: Uint8Array): number {
    this.#checkSize(frame);
    let n = 0;
    for (const v of this.#validators) {
      if (v.index === this.#selfIndex) continue;
      if (this.#enqueue(v.peerId, frame)) n++;
    }
    return n;
  }

  /** A connection to `peerId` opened: its sender may have frames waiting. */
  connected(peerId: string): void { this.#senders.get(peerId)?.connected(); }

  /** A connection to `peerId` closed: an outside peer's sender (and its queue) goes. */
  disconnected(peerId: string): void {
    const s = this.#outsideSenders.get(peerId);
    if (!s) return;
    this.#outsideSenders.delete(peerId);
    void s.stop();
  }

  queued(peerId: string): number { return (this.#senders.get(peerId) ?? this.#outsideSenders.get(peerId))?.queue.length ?? 0; }

  #checkSize(frame: Uint8Array): void {
    if (frame.length > this.#opts.maxFrameBytes) {
      throw new FedError('FRAME_TOO_LARGE', `frame of ${frame.length} bytes exceeds the limit of ${this.#opts.maxFrameBytes}`,
        { bytes: frame.length, limit: this.#opts.maxFrameBytes });
    }
  }

  #enqueue(peerId: string, frame: Uint8Array): boolean {
    const entry = this.#deps.table.get(peerId);
    if (entry?.delinquent) {
      // Delinquent peers are probed, not sent to; what was queued for them is stale anyway.
      const sender = this.#senders.get(peerId);
      const stale = sender ? sender.queue.clear() : 0;
      this.#dropped(peerId, stale + 1, 'delinquent');
      return false;
    }
    this.#sender(peerId).enqueue(frame);
    return true;
  }

  #sender(peerId: string): PeerSender {
    let s = this.#senders.get(peerId);
    if (s) return s;
    s = this.#newSender(peerId);
    this.#senders.set(peerId, s);
    return s;
  }

  #newSender(peerId: string): PeerSender {
    const { node, table, log, metrics } = this.#deps;
    return new PeerSender(peerId, this.#opts.queue, {
      node, protocol: CONSENSUS_PROTOCOL, log,
      maxFrameBytes: () => this.#opts.maxFrameBytes,
      openTimeoutMs: () => this.#opts.openTimeoutMs,
      isConnected: (id) => table.get(id)?.phase === 'connected',
      onSent: (id, bytes) => {
        const e = table.get(id);
        if (e) { e.counters.framesSent++; e.counters.bytesSent += bytes; }
        metrics.framesSent.inc();
        metrics.bytesSent.inc(undefined, bytes);
        table.success(id);
      },
      onDropped: (id, n, reason) => this.#dropped(id, n, reason),
      onFailure: (id, reason) => {
        log.warn({ peerId: id, reason }, 'consensus frame send failed');
        table.failure(id, 'send', reason);
      },
    });
  }

  #dropped(peerId: string, n: number, reason: string): void {
    if (n <= 0) return;
    const e = this.#deps.table.get(peerId);
    if (e) e.counters.framesDropped += n;
    this.#deps.metrics.framesDropped.inc({ reason }, n);
  }

  #onStream(stream: Stream, connection: Connection): void {
    const peerId = connection.remotePeer.toString();
    const from = this.#byPeer.get(peerId);
    const { log, metrics } = this.#deps;
    if (!from) {
      if (this.#outsideStreams >= MAX_OUTSIDE_STREAMS) {
        this.refused++;
        metrics.framesRefused.inc({ reason: 'outside_streams' });
        log.debug({ peerId, remote: connection.remoteAddr.toString(), open: this.#outsideStreams }, 'consensus stream of a non-validator refused: too many open');
        abortQuietly(stream, new Error('too many streams from non-validators'));
        return;
      }
      this.#outsideStreams++;
      stream.addEventListener('close', () => { this.#outsideStreams--; });
    }
    this.#inbound.add(stream);
    stream.addEventListener('close', () => this.#inbound.delete(stream));
    stream.maxReadBufferLength = this.#opts.streamWindowBytes + this.#opts.maxFrameBytes;
    this.#read(stream, from, peerId);
  }

  /** Takes one outside frame from the shared budget, or says it is over. */
  #outsideAdmits(bytes: number): boolean {
    const b = this.#outside;
    const now = Date.now();
    const dt = (now - b.at) / 1000;
    b.at = now;
    b.frames = Math.min(OUTSIDE_FRAMES_PER_SECOND, b.frames + dt * OUTSIDE_FRAMES_PER_SECOND);
    b.bytes = Math.min(OUTSIDE_BYTES_PER_SECOND, b.bytes + dt * OUTSIDE_BYTES_PER_SECOND);
    if (b.frames < 1 || b.bytes < bytes) return false;
    b.frames -= 1;
    b.bytes -= bytes;
    return true;
  }

  #outsideDrop(peerId: string, reason: string): void {
    this.outsideDropped++;
    this.#deps.metrics.framesRefused.inc({ reason });
    // Logged at 1, 2, 4, 8, … drops so a flood cannot flood the log.
    if ((this.outsideDropped & (this.outsideDropped - 1)) === 0) {
      this.#deps.log.warn({ peerId, reason, dropped: this.outsideDropped }, 'frame from a non-validator dropped');
    }
  }

  #read(stream: Stream, from: Validator | undefined, peerId: string): void {
    const { log, metrics, table, sink } = this.#deps;
    const decoder = new FrameDecoder(this.#opts.maxFrameBytes);
    const pending: Uint8Array[] = [];
    let waiting = false;
    const pump = (): void => {
      while (pending.length > 0 && !waiting) {
        const frame = pending.shift()!;
        const e = table.get(peerId);
        if (e) { e.counters.framesReceived++; e.counters.bytesReceived += frame.length; }
        table.heard(peerId);
        metrics.framesReceived.inc();
        metrics.bytesReceived.inc(undefined, frame.length);
        if (!from) {
          // The validators' frames come first: while the consumer is busy an outsider's frame is
          // dropped, and its stream is never paused (a pause would hold up nothing of ours).
          if (sink.busy) { this.#outsideDrop(peerId, 'outside_busy'); continue; }
          if (!this.#outsideAdmits(frame.length)) { this.#outsideDrop(peerId, 'outside_budget'); continue; }
        }
        const result = sink.deliver(frame, from, peerId);
        switch (result) {
          case 'accepted': break;
          case 'no_consumer': metrics.framesDropped.inc({ reason: 'no_consumer' }); break;
          case 'full':
            if (!from) break; // written; the next outside frame is dropped while the consumer is busy
            waiting = true;
            pauseSafely(stream, log, peerId);
            sink.onReady(() => {
              waiting = false;
              if (stream.status !== 'open') { pending.length = 0; return; } // its connection is gone: nothing to resume
              pump();
              if (!waiting && pending.length === 0) resumeSafely(stream, log, peerId);
            });
            break;
          default: { const never: never = result; throw new Error(`unknown delivery ${String(never)}`); }
        }
      }
    };
    stream.addEventListener('message', (evt) => {
      try {
        decoder.maxBytes = this.#opts.maxFrameBytes;
        pending.push(...decoder.push(evt.data));
      } catch (err) {
        metrics.framesRefused.inc({ reason: 'too_large' });
        const refused = (this.#refusedBy.get(peerId) ?? 0) + 1;
        if (from) this.#refusedBy.set(peerId, refused); // kept per validator only (bounded by the set)
        log.warn({ peerId, validator: from?.index ?? 'none (not a validator)', refused, err: errorMessage(err) }, 'consensus stream reset: bad frame');
        pending.length = 0;
        abortQuietly(stream, err);
        return;
      }
      pump();
    });
  }
}

/**
 * Pause and resume send yamux window updates; on a stream whose connection just closed they
 * throw (StreamStateError: Cannot write to a stream that is closed). A closed stream has
 * nothing left to pause or resume, so that is logged, never thrown into the caller.
 */
export function pauseSafely(stream: Stream, log: Logger, peerId: string): void {
  if (stream.status !== 'open' || stream.readStatus !== 'readable') return;
  try { stream.pause(); } catch (err) { log.debug({ peerId, err: errorMessage(err) }, 'pause of a closing stream skipped'); }
}

export function resumeSafely(stream: Stream, log: Logger, peerId: string): void {
  if (stream.status !== 'open' || stream.readStatus !== 'paused') return;
  try { stream.resume(); } catch (err) { log.debug({ peerId, err: errorMessage(err) }, 'resume of a closing stream skipped'); }
}

/** Resets a stream; one that is already closed has nothing left to reset (never throws). */
export function abortQuietly(stream: Pick<Stream, 'abort'>, err: unknown): void {
  try { stream.abort(err instanceof Error ? err : new Error(String(err))); } catch { /* already closed */ }
}
