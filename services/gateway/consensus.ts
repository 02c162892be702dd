// The consensus message path on /btcfed/consensus/1.0.0: outbound frames routed to one peer
// sender per validator (and, in answer only, to non-validators already connected: never
// dialled); inbound streams handed to the inbound path (inbound.ts: framing, mutes, the per-peer
// queues and their fair scheduler onto the Attach stream). Envelope checks only — size and the
// sender's authenticated libp2p identity.
// Must never decode a consensus message or decide anything from its content.

import type { Logger } from '#libs/log/index.ts';
import { FedError } from '#libs/errors/index.ts';
import type { Validator, ValidatorSet } from '#libs/validators/index.ts';
import { InboundPath, type InboundSink } from './inbound.ts';
import type { GatewayNode } from './node.ts';
import type { QueueLimits } from './outbound-queue.ts';
import type { PeerTable } from './peer-table.ts';
import { PeerSender } from './sender.ts';
import type { GatewayMetrics } from './metrics.ts';

export const CONSENSUS_PROTOCOL = '/btcfed/consensus/1.0.0';

/** Non-validators answered at once: each has a bounded queue; past this the oldest is stopped. */
export const MAX_OUTSIDE_SENDERS = 64;

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
  now?: () => number;
}

export class ConsensusPath {
  #opts: ConsensusPathOptions;
  #deps: ConsensusPathDeps;
  /** The set frames are routed by (the gateway's, handed in by setValidators); none before a genesis. */
  #validators: ValidatorSet | undefined;
  #senders = new Map<string, PeerSender>();
  /** Senders to non-validators, oldest first (bounded by MAX_OUTSIDE_SENDERS). */
  #outsideSenders = new Map<string, PeerSender>();
  readonly inbound: InboundPath;

  constructor(opts: ConsensusPathOptions, deps: ConsensusPathDeps) {
    this.#opts = { ...opts };
    this.#deps = deps;
    this.inbound = new InboundPath({ maxFrameBytes: opts.maxFrameBytes, streamWindowBytes: opts.streamWindowBytes }, {
      table: deps.table, log: deps.log, metrics: deps.metrics, sink: deps.sink, ...(deps.now ? { now: deps.now } : {}),
      validatorOf: (id) => this.validatorOf(id), validatorAt: (i) => this.#validatorAt(i), selfIndex: () => this.selfIndex,
      validatorCount: () => this.#validators?.n ?? 0,
    });
  }

  get maxFrameBytes(): number { return this.#opts.maxFrameBytes; }
  set maxFrameBytes(n: number) { this.#opts.maxFrameBytes = n; this.inbound.maxFrameBytes = n; }
  set openTimeoutMs(n: number) { this.#opts.openTimeoutMs = n; }
  get validators(): ValidatorSet | undefined { return this.#validators; }
  get selfIndex(): number | undefined { return this.#validators?.selfIndex; }

  setValidators(validators: ValidatorSet | undefined): void {
    this.#validators = validators;
    this.inbound.validatorsChanged();
    for (const [peerId, sender] of this.#senders) {
      if (!validators?.hasPeer(peerId)) { this.#senders.delete(peerId); void sender.stop(); }
    }
  }

  validatorOf(peerId: string): Validator | undefined { return this.#validators?.byPeer(peerId); }

  #validatorAt(index: number): Validator | undefined { return this.#validators?.has(index) ? this.#validators.byIndex(index) : undefined; }

  async start(): Promise<void> {
    await this.#deps.node.handle(CONSENSUS_PROTOCOL, (stream, connection) => this.inbound.accept(stream, connection),
      { maxInboundStreams: 4, maxOutboundStreams: 4 });
  }

  async stop(): Promise<void> {
    this.inbound.stop();
    await Promise.all([...this.#senders.values(), ...this.#outsideSenders.values()].map((s) => s.stop()));
    this.#senders.clear();
    this.#outsideSenders.clear();
  }

  /** Queues a frame for validator `to`. Throws FedError for a request the envelope rules refuse. */
  send(to: number, frame: Uint8Array): void {
    this.#checkSize(frame);
    const v = this.#validatorAt(to);
    if (!v) throw new FedError('UNKNOWN_VALIDATOR', `no validator with index ${to} (there are ${this.#validators?.n ?? 0})`, { to });
    if (to === this.selfIndex) throw new FedError('SEND_TO_SELF', `validator ${to} is this member`, { to });
    this.#enqueue(v.peerId, frame);
  }

  /**
   * Queues a frame for a peer that is not a validator (an answer to its request). Only to a peer
   * connected now: a non-validator is never dialled for it.
   */
  sendToPeer(peerId: string, frame: Uint8Array): void {
    this.#checkSize(frame);
    const v = this.validatorOf(peerId);
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
    for (const v of this.#validators?.members ?? []) {
      if (v.index === this.selfIndex) continue;
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
}
