// The one scheduler of inbound consensus frames onto the Attach stream. Each validator has its
// own bounded queue (frames and bytes); all non-validators share one, within their shared
// budget. Whenever the consumer is not busy, the queues are served by deficit round robin
// weighted by bytes, so a validator sending 4 MiB frames gets no more of the stream than one
// sending votes, and a busy validator cannot take the stream from the others (first come, first
// served did: each libp2p stream wrote straight to the sink).
// A muted peer's frames are dropped at the door (offer), and what it had queued is dropped when
// the mute arrives (purge): they never reach the consumer.
// A validator whose queue is full is told so ('full'): its reader keeps the frame and pauses
// the libp2p stream, and is called back once the queue is at most half full. Non-validators are
// never paused: their frames are dropped when their queue is full ('outside_busy') or over the
// budget ('outside_budget').
// Pure logic: no streams, no timers; the clock and the sink are passed in. Must never hold more
// than its limits per queue, and never decode a frame.

import type { InboundSink } from './inbound.ts';
import type { MuteTable } from './mutes.ts';
import type { Validator } from '#libs/validators/index.ts';

export interface InboundLimits { maxFrames: number; maxBytes: number }

export interface OutsideBudget { framesPerSecond: number; bytesPerSecond: number }

export interface InboundSchedulerOptions {
  /** Bytes a queue may deliver per turn (its deficit grows by this much each turn). */
  quantumBytes: number;
  /** Each validator's queue. */
  validatorQueue: InboundLimits;
  /** The one queue all non-validators share. */
  outsideQueue: InboundLimits;
  /** Frames and bytes per second taken from all non-validators together. */
  outsideBudget: OutsideBudget;
}

export type DropReason = 'muted' | 'outside_budget' | 'outside_busy' | 'no_consumer';

export interface Drop {
  reason: DropReason;
  peerId: string;
  from: Validator | undefined;
  frames: number;
  /** For 'muted': how many frames this mute has dropped so far (for a log at 1, 2, 4, 8, …). */
  nth?: number;
}

export interface InboundSchedulerDeps {
  sink: InboundSink;
  mutes: MuteTable;
  now(): number;
  /** Frames dropped instead of delivered, counted by the caller. Must not throw. */
  dropped(d: Drop): void;
}

/** 'queued': taken; 'full': a validator's queue has no room, keep the frame and wait (onRoom); 'dropped': gone (reported through deps.dropped). */
export type Offer = 'queued' | 'full' | 'dropped';

interface Item { frame: Uint8Array; from: Validator | undefined; peerId: string }

interface Queue {
  key: string;
  outside: boolean;
  items: Item[];
  head: number;
  bytes: number;
  /** Bytes this queue may still deliver in its current turn. */
  deficit: number;
  /** In the round (has frames). */
  active: boolean;
  /** Readers waiting for room (paused streams). */
  waiters: Array<() => void>;
}

/** The key of the queue all non-validators share (never a libp2p peer id). */
const OUTSIDE = 'outside';

export class InboundScheduler {
  #o: InboundSchedulerOptions;
  readonly #deps: InboundSchedulerDeps;
  readonly #queues = new Map<string, Queue>();
  /** Queues with frames, in serving order; the first one's turn is under way when #inTurn. */
  #round: Queue[] = [];
  #inTurn = false;
  #pumping = false;
  #waitingSink = false;
  #budget: { frames: number; bytes: number; at: number };
  #frames = 0;
  #bytes = 0;

  constructor(opts: InboundSchedulerOptions, deps: InboundSchedulerDeps) {
    this.#o = { ...opts };
    this.#deps = deps;
    this.#budget = { frames: opts.outsideBudget.framesPerSecond, bytes: opts.outsideBudget.bytesPerSecond, at: deps.now() };
  }

  /** New limits (the frame limit changed): they apply to the next frame offered. */
  set limits(l: { validatorQueue: InboundLimits; outsideQueue: InboundLimits }) {
    this.#o = { ...this.#o, ...l };
  }

  /** Frames and bytes queued over all queues. */
  get queuedFrames(): number { return this.#frames; }
  get queuedBytes(): number { return this.#bytes; }

  /** Frames queued from one validator (non-validators share one queue: 0 for them). */
  queuedFrom(peerId: string): number {
    const q = this.#queues.get(peerId);
    return q ? q.items.length - q.head : 0;
  }

  /** Takes a frame read from `peerId` (`from` undefined: not a validator), or says why not. */
  offer(frame: Uint8Array, from: Validator | undefined, peerId: string): Offer {
    const mute = this.#deps.mutes.get(peerId);
    if (mute) {
      mute.dropped++;
      this.#deps.dropped({ reason: 'muted', peerId, from, frames: 1, nth: mute.dropped });
      return 'dropped';
    }
    const q = this.#queue(from ? peerId : OUTSIDE, !from);
    if (!this.#fits(q, frame.length)) {
      if (from) return 'full';
      this.#deps.dropped({ reason: 'outside_busy', peerId, from, frames: 1 });
      return 'dropped';
    }
    if (!from && !this.#outsideAdmits(frame.length)) {
      this.#deps.dropped({ reason: 'outside_budget', peerId, from, frames: 1 });
      return 'dropped';
    }
    q.items.push({ frame, from, peerId });
    q.bytes += frame.length;
    this.#frames++;
    this.#bytes += frame.length;
    if (!q.active) { q.active = true; this.#round.push(q); }
    this.pump();
    return 'queued';
  }

  /** Calls `fn` once `peerId`'s queue is at most half full (at once, asynchronously, if it is now). */
  onRoom(peerId: string, fn: () => void): void {
    const q = this.#queues.get(peerId);
    if (!q || this.#hasRoom(q)) { queueMicrotask(fn); return; }
    q.waiters.push(fn);
  }

  /** Drops what `peerId` has queued (it was just muted); returns how many frames. */
  purge(peerId: string, from: Validator | undefined): number {
    const own = this.#queues.get(peerId);
    let n = 0;
    if (own) {
      n = own.items.length - own.head;
      this.#take(own, () => true);
    }
    const shared = this.#queues.get(OUTSIDE);
    if (shared) n += this.#take(shared, (it) => it.peerId === peerId);
    if (n > 0) this.#deps.dropped({ reason: 'muted', peerId, from, frames: n });
    return n;
  }

  /** Serves the queues into the sink until it is busy or they are empty. */
  pump(): void {
    if (this.#pumping) return; // an offer from a waiter we called: the loop below serves it
    this.#pumping = true;
    try {
      const { sink, dropped } = this.#deps;
      // Each pass either delivers a frame or ends a queue's turn (which adds a quantum to the
      // next one): a 4 MiB frame behind a 64 KiB quantum takes some 70 cheap passes per queue in the round.
      while (this.#round.length > 0) {
        if (sink.busy) { this.#waitForSink(); return; }
        const q = this.#round[0]!;
        if (!this.#inTurn) { q.deficit += this.#o.quantumBytes; this.#inTurn = true; }
        const item = q.items[q.head]!;
        if (item.frame.length > q.deficit) { this.#endTurn(q); continue; }
        q.deficit -= item.frame.length;
        this.#shift(q);
        if (q.head === q.items.length) this.#retire(q);
        const result = sink.deliver(item.frame, item.from, item.peerId);
        if (result === 'no_consumer') dropped({ reason: 'no_consumer', peerId: item.peerId, from: item.from, frames: 1 });
        if (q.waiters.length > 0 && this.#hasRoom(q)) this.#wake(q);
        // Written, and the consumer's buffer is full now: wait for it, as a stream writer does.
        if (result === 'full') { this.#waitForSink(); return; }
      }
    } finally {
      this.#pumping = false;
    }
  }

  #waitForSink(): void {
    if (this.#waitingSink) return;
    this.#waitingSink = true;
    this.#deps.sink.onReady(() => { this.#waitingSink = false; this.pump(); });
  }

  #queue(key: string, outside: boolean): Queue {
    let q = this.#queues.get(key);
    if (!q) {
      q = { key, outside, items: [], head: 0, bytes: 0, deficit: 0, active: false, waiters: [] };
      this.#queues.set(key, q);
    }
    return q;
  }

  #limitsOf(q: Queue): InboundLimits { return q.outside ? this.#o.outsideQueue : this.#o.validatorQueue; }

  /** An empty queue takes any frame (one within the frame limit, which may exceed a byte bound after a reload). */
  #fits(q: Queue, bytes: number): boolean {
    const n = q.items.length - q.head;
    if (n === 0) return true;
    const l = this.#limitsOf(q);
    return n + 1 <= l.maxFrames && q.bytes + bytes <= l.maxBytes;
  }

  #hasRoom(q: Queue): boolean {
    const l = this.#limitsOf(q);
    return (q.items.length - q.head) * 2 <= l.maxFrames && q.bytes * 2 <= l.maxBytes;
  }

  #shift(q: Queue): Item {
    const item = q.items[q.head]!;
    q.items[q.head] = undefined as unknown as Item; // let the frame go
    q.head++;
    q.bytes -= item.frame.length;
    this.#frames--;
    this.#bytes -= item.frame.length;
    if (q.head > 64 && q.head * 2 > q.items.length) { q.items = q.items.slice(q.head); q.head = 0; }
    return item;
  }

  /** The queue's turn ends with frames left: it goes last and keeps its deficit. */
  #endTurn(q: Queue): void {
    this.#round.shift();
    this.#round.push(q);
    this.#inTurn = false;
  }

  /** The queue is empty: out of the round, its deficit reset (DRR: an idle queue saves no credit). */
  #retire(q: Queue): void {
    const at = this.#round.indexOf(q);
    if (at === 0) this.#inTurn = false;
    if (at >= 0) this.#round.splice(at, 1);
    q.active = false;
    q.deficit = 0;
    q.items = [];
    q.head = 0;
    // Forgotten before its readers are woken: what they offer next goes into a fresh queue.
    this.#queues.delete(q.key);
    this.#wake(q);
  }

  /** Removes the queued items that match; returns how many. */
  #take(q: Queue, match: (it: Item) => boolean): number {
    let n = 0;
    const keep: Item[] = [];
    for (let i = q.head; i < q.items.length; i++) {
      const it = q.items[i]!;
      if (match(it)) { n++; this.#frames--; this.#bytes -= it.frame.length; q.bytes -= it.frame.length; } else keep.push(it);
    }
    q.items = keep;
    q.head = 0;
    if (keep.length === 0) this.#retire(q);
    else if (q.waiters.length > 0 && this.#hasRoom(q)) this.#wake(q);
    return n;
  }

  #wake(q: Queue): void {
    const waiters = q.waiters;
    q.waiters = [];
    for (const w of waiters) w();
  }

  /** Takes one outside frame from the shared budget (tokens refilled per second), or says it is over. */
  #outsideAdmits(bytes: number): boolean {
    const b = this.#budget;
    const { framesPerSecond, bytesPerSecond } = this.#o.outsideBudget;
    const now = this.#deps.now();
    const dt = Math.max(0, now - b.at) / 1000;
    b.at = now;
    b.frames = Math.min(framesPerSecond, b.frames + dt * framesPerSecond);
    b.bytes = Math.min(bytesPerSecond, b.bytes + dt * bytesPerSecond);
    if (b.frames < 1 || b.bytes < bytes) return false;
    b.frames -= 1;
    b.bytes -= bytes;
    return true;
  }
}
