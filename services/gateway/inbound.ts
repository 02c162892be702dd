// The inbound half of the consensus path: streams on /btcfed/consensus/1.0.0 read, framed
// (the length checked before the payload is buffered) and handed to the one inbound scheduler
// (inbound-scheduler.ts), which serves every peer's queue onto the Attach stream fairly. A
// configured validator's frames go as its; a non-validator's (an observer asking for blocks, or
// any peer that connected) go marked as from outside, within a budget shared by all of them
// (streams, frames and bytes per second), and are dropped — never paused for — when their shared
// queue is full, so outsiders can never slow the validators' frames. Backpressure: a validator
// whose queue is full has its libp2p stream paused (yamux stops granting window, so the remote's
// queue fills and drops) until the queue is half empty. Mutes: the consumer may mute a peer
// (MutePeer on Attach); its consensus streams are then paused as a full queue's are (no window is
// granted, so its bytes stop at the sender: they no longer cross Noise and yamux here), streams it
// opens while muted are paused at once, and they resume when the mute ends, is lifted or the
// consumer detaches. Frames already in flight (what yamux had buffered, at most a window per
// stream) are dropped right after framing, counted and logged at a rate a flood cannot flood,
// before anything queues or delivers them.
// Must never decode a consensus message or decide anything from its content.

import type { Connection, Stream } from '@libp2p/interface';
import type { Logger } from '#libs/log/index.ts';
import { FedError, errorMessage } from '#libs/errors/index.ts';
import { FrameDecoder } from './framing.ts';
import { InboundScheduler, type Drop, type InboundLimits } from './inbound-scheduler.ts';
import type { GatewayMetrics } from './metrics.ts';
import { MuteTable } from './mutes.ts';
import type { PeerTable } from './peer-table.ts';
import type { Validator } from '#libs/validators/index.ts';
import { abortQuietly, pauseSafely, resumeSafely } from './streams.ts';

/** Inbound consensus streams from non-validators open at once (all of them together). */
export const MAX_OUTSIDE_STREAMS = 64;
/** Frames and bytes per second taken from all non-validators together; more are dropped and counted. */
export const OUTSIDE_FRAMES_PER_SECOND = 200;
export const OUTSIDE_BYTES_PER_SECOND = 16 << 20;
/**
 * Inbound, per validator: at most this many frames and two frame limits of bytes queued for the
 * consumer (a full proposal and a block-sync answer fit at once; the outbound queues keep
 * 2 × the frame limit too). Votes and NEW-VIEWs are a few a view, so 64 holds several views of a
 * validator's traffic; past either bound its stream is paused, and the sender drops its oldest.
 * Non-validators share one queue of the same size.
 */
export const INBOUND_QUEUE_FRAMES = 64;
export const INBOUND_QUEUE_FRAME_LIMITS = 2;
/**
 * Bytes a queue may deliver per turn of the round robin: one vote or NEW-VIEW of any parameter
 * set (17 KB at 128f, 50 KB at 256f) goes in one turn, and a flood of 4 MiB frames waits some 70
 * turns per frame, during which every other queue delivers its 64 KiB.
 */
export const INBOUND_QUANTUM_BYTES = 64 * 1024;

export const inboundLimits = (maxFrameBytes: number): { validatorQueue: InboundLimits; outsideQueue: InboundLimits } => {
  const q = { maxFrames: INBOUND_QUEUE_FRAMES, maxBytes: INBOUND_QUEUE_FRAME_LIMITS * maxFrameBytes };
  return { validatorQueue: q, outsideQueue: q };
};

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

/** The consumer's MutePeer request (gateway.proto). */
export interface MuteRequest { validator: number; peerId: string; ms: number; reason: string }

export interface InboundOptions {
  maxFrameBytes: number;
  /** Receive window of one stream; paused streams buffer at most this much. */
  streamWindowBytes: number;
}

export interface InboundDeps {
  table: PeerTable;
  log: Logger;
  metrics: GatewayMetrics;
  sink: InboundSink;
  now?: () => number;
  /** The validator set as the path knows it now. */
  validatorOf(peerId: string): Validator | undefined;
  validatorAt(index: number): Validator | undefined;
  selfIndex(): number | undefined;
  validatorCount(): number;
}

export class InboundPath {
  #opts: InboundOptions;
  readonly #deps: InboundDeps;
  readonly mutes: MuteTable;
  readonly #scheduler: InboundScheduler;
  /** Open inbound streams and the peer each one is from. */
  #streams = new Map<Stream, string>();
  /** Validators' streams paused because their queue is full. */
  #paused = new Set<Stream>();
  /** Streams paused because their peer is muted. */
  #mutePaused = new Set<Stream>();
  /** Set while a stream paused for a mute is resumed: the bytes it buffered meanwhile (dispatched at once by resume) are the muted peer's, and dropped. */
  #flushingMuted: Stream | undefined;
  /** Per muted peer with open streams: the timer that resumes them when its mute ends (bounded by the mute table). */
  #muteTimers = new Map<string, NodeJS.Timeout>();
  #outsideStreams = 0;
  /** Oversized or malformed frames per validator peer id (bounded by the validator set). */
  #refusedBy = new Map<string, number>();
  /** Streams refused (too many from outside) and frames refused (too large, malformed). */
  refused = 0;
  /** Frames from non-validators dropped (over budget, or their queue full). */
  outsideDropped = 0;
  /** Frames from muted peers dropped. */
  mutedDropped = 0;

  constructor(opts: InboundOptions, deps: InboundDeps) {
    this.#opts = { ...opts };
    this.#deps = deps;
    const now = deps.now ?? Date.now;
    this.mutes = new MuteTable({ now });
    this.#scheduler = new InboundScheduler({
      quantumBytes: INBOUND_QUANTUM_BYTES, ...inboundLimits(opts.maxFrameBytes),
      outsideBudget: { framesPerSecond: OUTSIDE_FRAMES_PER_SECOND, bytesPerSecond: OUTSIDE_BYTES_PER_SECOND },
    }, { sink: deps.sink, mutes: this.mutes, now, dropped: (d) => this.#onDrop(d) });
  }

  set maxFrameBytes(n: number) { this.#opts.maxFrameBytes = n; this.#scheduler.limits = inboundLimits(n); }

  /** Frames and bytes waiting for the consumer, validators' streams paused for room, and streams paused because their peer is muted. */
  get depth(): { frames: number; bytes: number; pausedStreams: number; mutedStreams: number } {
    return { frames: this.#scheduler.queuedFrames, bytes: this.#scheduler.queuedBytes, pausedStreams: this.#paused.size, mutedStreams: this.#mutePaused.size };
  }

  /** Frames from one validator waiting for the consumer. */
  queuedFrom(peerId: string): number { return this.#scheduler.queuedFrom(peerId); }

  /** Frames refused from one validator (too large or malformed). */
  refusedFrom(peerId: string): number { return this.#refusedBy.get(peerId) ?? 0; }

  /** The validator set changed: what is kept per validator goes for those that left it. */
  validatorsChanged(): void {
    for (const id of this.#refusedBy.keys()) if (!this.#deps.validatorOf(id)) this.#refusedBy.delete(id);
    this.mutes.retainValidators((id) => this.#deps.validatorOf(id) !== undefined);
  }

  /**
   * The consumer mutes a peer (a validator by index, or any peer by id) for `ms`, or lifts its
   * mute (ms = 0): its frames are dropped right after framing, and what it has queued goes now.
   * Throws FedError for a request naming no validator, or this member.
   */
  mute(req: MuteRequest): void {
    const v = req.peerId ? this.#deps.validatorOf(req.peerId) : this.#deps.validatorAt(req.validator);
    if (!req.peerId && !v) {
      throw new FedError('UNKNOWN_VALIDATOR', `no validator with index ${req.validator} (there are ${this.#deps.validatorCount()})`, { validator: req.validator });
    }
    if (v && v.index === this.#deps.selfIndex()) throw new FedError('MUTE_SELF', `validator ${v.index} is this member`, { validator: v.index });
    const peerId = v?.peerId ?? req.peerId;
    const m = this.mutes.set(peerId, v !== undefined, req.ms, req.reason);
    const who = { peerId, validator: v?.index ?? 'none (not a validator)', reason: req.reason };
    if (!m) {
      this.#muteChanged(peerId);
      this.#deps.log.info(who, 'peer unmuted: its frames are read again');
      return;
    }
    const purged = this.#scheduler.purge(peerId, v);
    const paused = this.#muteChanged(peerId);
    this.#deps.log.warn({ ...who, ms: req.ms, untilMs: m.untilMs, purged, pausedStreams: paused }, 'peer muted: its streams are paused and its frames dropped at the edge');
  }

  /** The consumer detached: its mutes end with it (the next one sends the mutes it means), and muted peers' streams are read again. */
  clearMutes(): void {
    this.mutes.clear();
    for (const peerId of new Set(this.#streams.values())) this.#muteChanged(peerId);
  }

  /**
   * `peerId`'s mute began, ended or changed: its streams are paused while it lasts and resumed
   * after (unless their queue is full), with a timer for its end. Returns how many are paused.
   */
  #muteChanged(peerId: string): number {
    clearTimeout(this.#muteTimers.get(peerId));
    this.#muteTimers.delete(peerId);
    let paused = 0;
    for (const [stream, id] of this.#streams) {
      if (id !== peerId) continue;
      this.#settle(stream, peerId);
      if (this.#mutePaused.has(stream)) paused++;
    }
    const until = this.mutes.untilMs(peerId);
    if (until > 0 && paused > 0) {
      const now = (this.#deps.now ?? Date.now)();
      const t = setTimeout(() => { this.#muteTimers.delete(peerId); this.#muteChanged(peerId); }, Math.max(0, until - now) + 1);
      t.unref?.();
      this.#muteTimers.set(peerId, t);
    }
    return paused;
  }

  /** Pauses a stream while its peer is muted or its queue is full, resumes it otherwise. */
  #settle(stream: Stream, peerId: string): void {
    const { log } = this.#deps;
    if (this.mutes.muted(peerId)) {
      this.#mutePaused.add(stream);
      pauseSafely(stream, log, peerId);
      return;
    }
    const wasMuted = this.#mutePaused.delete(stream);
    if (this.#paused.has(stream)) return;
    // What yamux buffered during the mute (within the window it had granted) is dispatched by
    // resume() at once: it was sent while the peer was muted, and is dropped as such.
    this.#flushingMuted = wasMuted ? stream : undefined;
    try { resumeSafely(stream, log, peerId); } finally { this.#flushingMuted = undefined; }
  }

  /** A peer opened a consensus stream to us. */
  accept(stream: Stream, connection: Connection): void {
    const peerId = connection.remotePeer.toString();
    const from = this.#deps.validatorOf(peerId);
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
    this.#streams.set(stream, peerId);
    stream.addEventListener('close', () => {
      this.#streams.delete(stream);
      this.#paused.delete(stream);
      this.#mutePaused.delete(stream);
    });
    stream.maxReadBufferLength = this.#opts.streamWindowBytes + this.#opts.maxFrameBytes;
    this.#read(stream, from, peerId);
    // A muted peer's new stream is paused at once: it gets the initial window, no more.
    if (this.mutes.muted(peerId)) this.#muteChanged(peerId);
  }

  stop(): void {
    for (const t of this.#muteTimers.values()) clearTimeout(t);
    this.#muteTimers.clear();
    for (const s of this.#streams.keys()) abortQuietly(s, new Error('gateway stopping'));
  }

  #read(stream: Stream, opened: Validator | undefined, peerId: string): void {
    const { log, metrics, table } = this.#deps;
    // Who the sender is, looked up again for every chunk read: an epoch change can seat, move or
    // remove a peer while its stream stays open (its frames then go to the queue its new place
    // gives it). A stream opened by a peer that is no longer a validator is not counted among the
    // outside streams: there are at most as many as the set had validators.
    let from = opened;
    const decoder = new FrameDecoder(this.#opts.maxFrameBytes);
    // Frames read but not yet taken, only while this validator's queue is full: the stream is
    // paused then, so this holds at most what yamux had buffered (its window) and one chunk.
    const pending: Uint8Array[] = [];
    let waiting = false;
    const drain = (): void => {
      while (pending.length > 0 && !waiting) {
        if (this.#scheduler.offer(pending[0]!, from, peerId) !== 'full') { pending.shift(); continue; }
        waiting = true;
        this.#paused.add(stream);
        pauseSafely(stream, log, peerId);
        this.#scheduler.onRoom(peerId, () => {
          waiting = false;
          if (stream.status !== 'open') { pending.length = 0; this.#paused.delete(stream); return; } // its connection is gone: nothing to resume
          drain();
          if (!waiting) { this.#paused.delete(stream); this.#settle(stream, peerId); }
        });
      }
    };
    stream.addEventListener('message', (evt) => {
      from = this.#deps.validatorOf(peerId);
      let frames: Uint8Array[];
      try {
        decoder.maxBytes = this.#opts.maxFrameBytes;
        frames = decoder.push(evt.data);
      } catch (err) {
        metrics.framesRefused.inc({ reason: 'too_large' });
        const refused = (this.#refusedBy.get(peerId) ?? 0) + 1;
        if (from) this.#refusedBy.set(peerId, refused); // kept per validator only (bounded by the set)
        log.warn({ peerId, validator: from?.index ?? 'none (not a validator)', refused, err: errorMessage(err) }, 'consensus stream reset: bad frame');
        pending.length = 0;
        abortQuietly(stream, err);
        return;
      }
      if (frames.length === 0) return;
      const e = table.get(peerId);
      let bytes = 0;
      for (const f of frames) bytes += f.length;
      if (e) { e.counters.framesReceived += frames.length; e.counters.bytesReceived += bytes; }
      table.heard(peerId);
      metrics.framesReceived.inc(undefined, frames.length);
      metrics.bytesReceived.inc(undefined, bytes);
      if (this.#flushingMuted === stream) {
        this.#onDrop({ reason: 'muted', peerId, from, frames: frames.length });
        log.warn({ peerId, validator: from?.index ?? 'none (not a validator)', dropped: frames.length }, 'frames a peer sent while muted dropped when its stream resumed');
        return;
      }
      pending.push(...frames);
      drain();
    });
  }

  /** Frames the scheduler dropped: counted per reason and per peer, logged so a flood cannot flood the log. */
  #onDrop(d: Drop): void {
    const { metrics, log, table } = this.#deps;
    switch (d.reason) {
      case 'no_consumer': metrics.framesDropped.inc({ reason: 'no_consumer' }, d.frames); return;
      case 'outside_budget':
      case 'outside_busy': {
        this.outsideDropped += d.frames;
        metrics.framesRefused.inc({ reason: d.reason }, d.frames);
        // Logged at 1, 2, 4, 8, … drops so a flood cannot flood the log.
        const n = this.outsideDropped;
        if ((n & (n - 1)) === 0) log.warn({ peerId: d.peerId, reason: d.reason, dropped: n }, 'frame from a non-validator dropped');
        return;
      }
      case 'muted': {
        this.mutedDropped += d.frames;
        metrics.framesRefused.inc({ reason: 'muted' }, d.frames);
        const e = table.get(d.peerId);
        if (e) e.counters.framesMuted += d.frames;
        // Logged at the 1st, 2nd, 4th, 8th, … frame of each mute (the purge at the mute is in its own line).
        const n = d.nth ?? 0;
        if (n > 0 && (n & (n - 1)) === 0) log.warn({ peerId: d.peerId, validator: d.from?.index ?? 'none (not a validator)', dropped: n }, 'frame from a muted peer dropped');
        return;
      }
      default: { const never: never = d.reason; throw new Error(`unknown drop ${String(never)}`); }
    }
  }
}
