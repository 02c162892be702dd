// Presence on /btcfed/presence/1.0.0: a gateway tells each connected validator whether its own
// consensus is attached and takes part — when its consumer attaches or detaches, and when it
// connects to one while none is — and tells its consumer which validators are absent: those whose
// gateway said their consensus detached, and those every connection to which closed after they had
// connected. A consumer attached as an observer (a member added to the set, still catching up
// before its epoch seats it) does not take part: its gateway says "detached", so the others give its
// views up at once instead of a timer each, and it leads again as soon as its engine attaches.
// An engine catching up through a long block sync (AttachRequest.participation) cannot lead: its
// gateway says "detached, catching up", and says it again every 10 s while it lasts. It may still
// vote, and its view timer sends NEW-VIEWs, so only its next word takes it back — or, should its
// "caught up" have been lost, a proposal or vote heard CATCHING_UP_STALE_MS after its last word.
// A validator the set gains is absent until it is heard taking part (its "attached", or a
// proposal, vote or new-view): what its gateway said before it was a validator here was refused
// unread, and an added member still catching up must not cost a timer per view it leads. What is
// held for a validator the set loses goes with the change: a member removed and seated again later
// starts afresh, not absent for a connection lost while it was a validator before.
// The consumer gives an absent leader's views up at once instead of waiting out its view timer
// (libs/hotstuff suspicion.ts): a consensus killed or restarting costs the others one NEW-VIEW round,
// not a timer per view it leads.
// A gateway speaks only for itself: the message carries no peer id, and the sender is the
// connection's authenticated identity. So a Byzantine member can make only its own views look
// dead — which it can do anyway, by not proposing. Messages from non-validators are refused
// unread; a validator's are rate-limited (PRESENCE_BUCKET); only changes reach the consumer. What
// this gateway says when its consumer changes (or says again that it catches up: one small request
// of the consumer's, for N − 1 dials) stays within the same bucket: past it, one word says the
// latest state once a token is back.
// Each word carries a sequence number (a hybrid clock, so a restarted gateway goes on above its
// predecessor): a word not above the last taken from that peer is dropped, so an older word sent
// on another stream a moment before can never undo a newer one.
// Must never report a validator absent on anyone's word but its own gateway's, or its connections'.

import type { Connection, Stream } from '@libp2p/interface';
import { peerIdFromString } from '@libp2p/peer-id';
import type { Logger } from '#libs/log/index.ts';
import { errorMessage } from '#libs/errors/index.ts';
import { PresenceMessage } from '#libs/gen/btcfed/v1/gateway.pb.ts';
import { peekFrame, type PeekKind } from '#libs/wire/index.ts';
import { TokenBucket } from './exchange-filter.ts';
import { encodeFrame, readOne } from './framing.ts';
import type { GatewayNode } from './node.ts';
import { abortQuietly } from './streams.ts';
import type { GatewayMetrics } from './metrics.ts';

export const PRESENCE_PROTOCOL = '/btcfed/presence/1.0.0';
export const MAX_PRESENCE_MESSAGE_BYTES = 64;
/** Per validator: a burst of presence messages, then one every two seconds. */
const PRESENCE_BUCKET = { capacity: 8, perSecond: 0.5 };
/** A message not delivered is tried again this many times, a second apart (it may be an 'attached' a peer must hear). */
const SEND_ATTEMPTS = 3;
/** A validator said detached whose consensus frames still arrive this long after is taken as back. */
const HEARD_AFTER_MS = 1000;
/**
 * The frames that say a validator's consensus takes part: an observer asks for blocks and batches
 * and hands transactions on, and must stay absent while it does.
 */
const TAKING_PART: ReadonlySet<PeekKind> = new Set(['proposal', 'vote', 'new-view']);
/** From a validator said catching up: its view timer sends NEW-VIEWs meanwhile. */
const TAKING_PART_AFTER_SYNC: ReadonlySet<PeekKind> = new Set(['proposal', 'vote']);
/**
 * A validator said catching up says it again every 10 s (CATCH_UP_REFRESH_MS in
 * services/consensus/catching-up.ts). Its frames count only this long after its last word: while
 * it syncs it may vote (it holds a proposal's parent) and yet cannot lead.
 */
export const CATCHING_UP_STALE_MS = 30_000;

export interface PresenceDeps {
  node: GatewayNode;
  log: Logger;
  metrics: GatewayMetrics;
  isValidator(peerId: string): boolean;
  /** Whether this gateway's consumer is attached now and takes part (an observer does not, nor an engine catching up). */
  attached(): boolean;
  /** Whether this gateway's consumer is an engine catching up through a block sync. */
  catchingUp(): boolean;
  /** A validator's presence changed: tell the consumer (if one is attached). */
  tell(peerId: string, present: boolean): void;
  timeoutMs: number;
  /** The clock (tests). */
  now?: () => number;
}

export class Presence {
  readonly #d: PresenceDeps;
  /** Validators every connection to which closed after they had connected. */
  readonly #lost = new Set<string>();
  /** Validators whose gateway said their consensus is detached. */
  readonly #detached = new Set<string>();
  /** When each was said detached: its consensus frames arriving later than HEARD_AFTER_MS say it is back. */
  readonly #detachedAt = new Map<string, number>();
  /** Of those, the ones whose gateway said their engine is catching up (heard() takes them back only after CATCHING_UP_STALE_MS). */
  readonly #catchingUp = new Set<string>();
  readonly #buckets = new Map<string, TokenBucket>();
  /** The sequence number of the last word taken from each validator (0: none, or only unordered ones). */
  readonly #lastSeq = new Map<string, number>();
  /** The last sequence number this gateway said. */
  #seq = 0;
  /** Rounds of words to every validator when our consumer changes: no more than a receiver takes. */
  readonly #outBucket = new TokenBucket(PRESENCE_BUCKET.capacity, PRESENCE_BUCKET.perSecond, Date.now());
  /** A round held back by #outBucket, due when a token is back: it says the state then. */
  #heldBack: NodeJS.Timeout | undefined;
  #stopped = false;

  constructor(d: PresenceDeps) {
    this.#d = d;
  }

  async start(): Promise<void> {
    await this.#d.node.handle(PRESENCE_PROTOCOL, (s, c) => { void this.#onStream(s, c); }, { maxInboundStreams: 4 });
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#heldBack);
  }

  /** Peers this module holds any record for (bounded by the validator set: a set change and absent() prune the rest). */
  get records(): number { return this.#held().size; }

  /** Every peer id any per-peer record here is kept under. */
  #held(): Set<string> {
    return new Set([...this.#lost, ...this.#detached, ...this.#detachedAt.keys(), ...this.#catchingUp, ...this.#lastSeq.keys(), ...this.#buckets.keys()]);
  }

  /** The validators absent now: told to a consumer when it attaches. */
  absent(): string[] {
    this.#prune();
    return [...this.#absentSet()];
  }

  /** Validators that left the set: everything held for them goes (every per-peer map here). */
  #prune(): void {
    for (const id of this.#held()) {
      if (this.#d.isValidator(id)) continue;
      this.#lost.delete(id); this.#undetach(id); this.#lastSeq.delete(id); this.#buckets.delete(id);
    }
  }

  #isAbsent(peerId: string): boolean {
    return this.#lost.has(peerId) || this.#detached.has(peerId);
  }

  #absentSet(): Set<string> {
    const out = new Set([...this.#lost, ...this.#detached]);
    this.#d.metrics.absent.set(out.size);
    return out;
  }

  /** A peer connected: a validator is back (as far as its connections say); if our consumer is away, it hears so. */
  connected(peerId: string): void {
    if (!this.#d.isValidator(peerId)) return;
    this.#change(peerId, () => this.#lost.delete(peerId));
    if (!this.#d.attached()) void this.#send(peerId);
  }

  /** Every connection to a peer closed: a validator is absent until it connects again. */
  disconnected(peerId: string): void {
    if (!this.#d.isValidator(peerId)) return;
    this.#change(peerId, () => {
      this.#lost.add(peerId);
      // What its gateway said is stale: when it connects again it says so if its consensus is away.
      this.#undetach(peerId);
      // No stream of those connections can still deliver a word: the order starts afresh.
      this.#lastSeq.delete(peerId);
    });
  }

  /**
   * A frame came from a validator: one said detached more than HEARD_AFTER_MS ago whose frame is a
   * proposal, vote or new-view is back (its "attached" may have been lost, refused by the rate
   * limit, or overtaken by an older word), so no stale word keeps its views given up. Frames sent
   * just before a detach are not taken so, nor an observer's requests and hand-offs. The frame is
   * glanced at (libs/wire peek) only for a validator said detached. One said catching up is never
   * taken back by its NEW-VIEWs (its view timer sends them), and by its proposals and votes only
   * CATCHING_UP_STALE_MS after its last word (it may vote before it can lead).
   */
  heard(peerId: string, frame: Uint8Array): void {
    const at = this.#detachedAt.get(peerId);
    const catchingUp = this.#catchingUp.has(peerId);
    if (at === undefined || this.#now() - at < (catchingUp ? CATCHING_UP_STALE_MS : HEARD_AFTER_MS)) return;
    const kind = peekFrame(frame)?.kind;
    if (kind === undefined || !(catchingUp ? TAKING_PART_AFTER_SYNC : TAKING_PART).has(kind)) return;
    this.#change(peerId, () => this.#undetach(peerId));
  }

  #undetach(peerId: string): void {
    this.#detached.delete(peerId); this.#detachedAt.delete(peerId); this.#catchingUp.delete(peerId);
  }

  /**
   * A new set is in force (isValidator says so already). What is held for the validators it lost
   * goes, told to nobody (the consumer drops whom its set does not hold). One held as lost that is
   * connected now is present: it connected while it was no validator here, which connected() does
   * not hear. The validators it gained (`added`: not this member, and none for the first set a
   * gateway is told, which is no change) are absent until heard taking part — their gateway's next
   * word, or after HEARD_AFTER_MS a proposal, vote or new-view.
   */
  validatorsChanged(added: readonly string[]): void {
    this.#prune();
    const connected = new Set(this.#d.node.getPeers().map((p) => p.toString()));
    for (const id of [...this.#lost]) if (connected.has(id)) this.#change(id, () => this.#lost.delete(id));
    this.#absentSet();
    for (const id of added) {
      if (!this.#d.isValidator(id) || this.#detached.has(id)) continue;
      this.#change(id, () => { this.#detached.add(id); this.#detachedAt.set(id, this.#now()); });
    }
  }

  /** Whether our consumer takes part changed (it attached, detached, or began or ended catching up), or it says again that it catches up: every connected validator hears it. */
  consumerChanged(): void {
    if (this.#heldBack !== undefined || this.#stopped) return; // the round held back says the state when it goes
    if (!this.#outBucket.take(Date.now())) {
      this.#d.metrics.presence.inc({ direction: 'out', result: 'held_back' });
      this.#heldBack = setTimeout(() => { this.#heldBack = undefined; this.consumerChanged(); }, 1000 / PRESENCE_BUCKET.perSecond);
      this.#heldBack.unref();
      return;
    }
    const seq = this.#nextSeq();
    for (const p of this.#d.node.getPeers()) {
      const id = p.toString();
      if (this.#d.isValidator(id)) void this.#send(id, seq);
    }
  }

  /** max(last + 1, now): strictly increasing here, and above what a predecessor said (clocks allowing). */
  #nextSeq(): number {
    this.#seq = Math.max(this.#seq + 1, Date.now());
    return this.#seq;
  }

  #now(): number { return this.#d.now?.() ?? Date.now(); }

  #change(peerId: string, fn: () => void): void {
    const was = this.#isAbsent(peerId);
    fn();
    const is = this.#isAbsent(peerId);
    if (was === is) return;
    this.#d.log.info({ peerId, present: !is, lost: this.#lost.has(peerId), detached: this.#detached.has(peerId), catchingUp: this.#catchingUp.has(peerId) },
      is ? 'validator absent: its consensus is gone (its views are given up at once)' : 'validator present again');
    this.#absentSet();
    this.#d.tell(peerId, !is);
  }

  /** Says what our consumer is now (attached, and if not whether catching up) to one validator. */
  async #send(peerId: string, seq = this.#nextSeq()): Promise<void> {
    const { node, metrics, log, timeoutMs } = this.#d;
    const attached = this.#d.attached();
    const catchingUp = !attached && this.#d.catchingUp();
    for (let attempt = 1; attempt <= SEND_ATTEMPTS && !this.#stopped; attempt++) {
      // Only the latest word counts: a change since this send began is sent by its own call.
      if (attached !== this.#d.attached() || catchingUp !== (!attached && this.#d.catchingUp())) return;
      try {
        const stream = await node.dialProtocol(peerIdFromString(peerId), PRESENCE_PROTOCOL, { signal: AbortSignal.timeout(timeoutMs) });
        stream.send(encodeFrame(PresenceMessage.encode({ consensusAttached: attached, seq, catchingUp }).finish(), MAX_PRESENCE_MESSAGE_BYTES));
        await stream.close({ signal: AbortSignal.timeout(timeoutMs) });
        metrics.presence.inc({ direction: 'out', result: 'ok' });
        return;
      } catch (err) {
        metrics.presence.inc({ direction: 'out', result: 'failed' });
        log.debug({ peerId, attached, catchingUp, attempt, err: errorMessage(err) }, 'presence message not delivered');
        if (node.getConnections(peerIdFromString(peerId)).length === 0) return; // it hears again when it connects
        await new Promise((r) => setTimeout(r, 1000).unref());
      }
    }
  }

  async #onStream(stream: Stream, connection: Connection): Promise<void> {
    const from = connection.remotePeer.toString();
    const { metrics, log } = this.#d;
    if (!this.#d.isValidator(from)) {
      metrics.presence.inc({ direction: 'in', result: 'not_validator' });
      abortQuietly(stream, new Error('presence is for validators'));
      return;
    }
    let bucket = this.#buckets.get(from);
    if (!bucket) this.#buckets.set(from, (bucket = new TokenBucket(PRESENCE_BUCKET.capacity, PRESENCE_BUCKET.perSecond, Date.now())));
    if (!bucket.take(Date.now())) {
      metrics.presence.inc({ direction: 'in', result: 'rate_limited' });
      log.debug({ from }, 'presence message refused: rate limited');
      abortQuietly(stream, new Error('rate limited'));
      return;
    }
    try {
      const msg = await readOne(stream, this.#d.timeoutMs, MAX_PRESENCE_MESSAGE_BYTES, PresenceMessage.decode);
      void stream.close().catch(() => undefined);
      const seq = msg.seq;
      if (seq !== 0) {
        const last = this.#lastSeq.get(from) ?? 0;
        if (seq <= last) {
          metrics.presence.inc({ direction: 'in', result: 'stale' });
          log.debug({ from, seq, last, attached: msg.consensusAttached }, 'presence message dropped: not newer than the last taken');
          return;
        }
        this.#lastSeq.set(from, seq);
      }
      metrics.presence.inc({ direction: 'in', result: 'ok' });
      this.#change(from, () => {
        if (msg.consensusAttached) { this.#undetach(from); return; }
        this.#detached.add(from); this.#detachedAt.set(from, this.#now());
        if (msg.catchingUp) this.#catchingUp.add(from); else this.#catchingUp.delete(from);
      });
    } catch (err) {
      metrics.presence.inc({ direction: 'in', result: 'invalid' });
      log.warn({ from, err: errorMessage(err) }, 'presence message refused');
      abortQuietly(stream, err);
    }
  }
}
