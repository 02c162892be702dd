// The consensus service's end of the gateway's Attach stream: the TransportPort the driver
// sends through, and the source of inbound frames. Reconnects with backoff when the gateway
// restarts. Outbound frames wait in a bounded buffer while the stream is not writable; past
// the bound the oldest frames are dropped and counted (consensus tolerates loss; its pacemaker
// recovers), so a stalled gateway can never make this process grow without limit. The set
// changes and mutes waiting among them are never dropped: a lost one would leave the gateway on
// the old set, or resolve a mute against a set it was not numbered by.
// Peers outside the validator set get numbers from OUTSIDE_BASE (see ports.ts): a bounded table
// of slots, the least recently heard-from reused first, so the driver's per-peer maps stay bounded.
// The validator set in force is this side's to say: the current epoch's set goes to the gateway
// (SetValidators) on every attach and at every epoch change, in order with the frames, so every
// frame of a new epoch is sent by the new epoch's indices. Inbound frames are attributed here, by
// the sender's peer id in that set: the gateway's index is never trusted across a change.
// The gateway says which validators are absent (their consensus detached, or every connection to
// them closed: services/gateway/presence.ts); they are kept here by peer id and told to the driver
// by index, again after a set change (renumbered) and cleared on each attach (the gateway tells the
// new stream who is absent then).
// Mutes go to the gateway (MutePeer), which drops a muted peer's frames at its edge. The gateway
// forgets them when this stream ends (and a restarted gateway never had them), so the mutes in
// force are kept here and sent again, with the time they have left, on every attach. So is the
// word that the engine is catching up (catching-up.ts): a new Attach starts taking part.

import type { ClientDuplexStream } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { errorMessage } from '#libs/errors/index.ts';
import { attachRoleMetadata, type AttachRole } from '#libs/rpc/index.ts';
import type { AttachRequest, AttachResponse, GatewayServiceClient, SetValidators } from '#libs/gen/btcfed/v1/gateway.pb.ts';
import type { ValidatorSet } from '#libs/validators/index.ts';
import { MAX_OUTSIDE_PEERS, OUTSIDE_BASE, type TransportPort } from './ports.ts';

/** Frames waiting in the buffer at most; the set changes and mutes among them come on top (#push). */
export const MAX_BUFFERED = 4096;

interface ActiveMute { untilMs: number; reason: string; peerId: string }
const MAX_BACKOFF_MS = 1000;

export interface GatewayLinkOptions {
  client: GatewayServiceClient;
  log: Logger;
  onFrame(from: number, frame: Uint8Array, peerId: string): void;
  onReady?(ready: { selfIndex: number; maxFrameBytes: number; peerId: string }): void;
  /** A validator (by its index in the set in force) is absent or present again, as the gateway says. */
  onPresence?(validator: number, present: boolean): void;
  /** What this consumer is (the Attach call's metadata): an observer does not take part, and the gateway tells the validators so. Default validator. */
  role?: AttachRole;
  now?(): number;
}

export class GatewayLink implements TransportPort {
  readonly #o: GatewayLinkOptions;
  #stream: ClientDuplexStream<AttachRequest, AttachResponse> | undefined;
  #writable = false;
  #buffer: AttachRequest[] = [];
  /** Of the buffered entries, the frames (send, broadcast): only they are dropped past MAX_BUFFERED. */
  #bufferedFrames = 0;
  #closed = false;
  #backoffMs = 100;
  dropped = 0;
  connected = false;
  /** Frames waiting here for the stream to take them (at most MAX_BUFFERED). */
  get bufferedFrames(): number { return this.#bufferedFrames; }
  /** The gateway's frame limit, from its ready message: block sync sizes its responses to it. */
  maxFrameBytes: number | undefined;
  /** Outside peers: peer id → number, least recently used first; and back. */
  readonly #outsideIds = new Map<string, number>();
  readonly #outsidePeers = new Map<number, string>();
  /** Mutes in force, by peer number: one per validator and per outside slot at most. */
  readonly #mutes = new Map<number, ActiveMute>();
  /** The set in force (told to the gateway), by which inbound frames are attributed. */
  #set: ValidatorSet | undefined;
  /**
   * The last set handed to a stream: the one the oldest buffered entry is numbered by. A new
   * stream is told it first, so frames buffered before a set change still buffered go to the
   * members they were addressed to; the change follows in its place.
   */
  #streamSet: ValidatorSet | undefined;
  /** The set each set change (buffered or written) tells. */
  readonly #sets = new WeakMap<AttachRequest, ValidatorSet>();
  /** Validators the gateway says are absent, by peer id (at most the set's size: the gateway tells of validators only). */
  readonly #absent = new Set<string>();
  /** The engine is catching up through a block sync (told to the gateway on every attach while it lasts). */
  #catchingUp = false;

  constructor(o: GatewayLinkOptions) {
    this.#o = o;
  }

  start(): void { this.#open(); }

  close(): void {
    this.#closed = true;
    this.#stream?.cancel();
  }

  send(to: number, frame: Uint8Array): void {
    if (to >= OUTSIDE_BASE) {
      const peer = this.#outsidePeers.get(to);
      if (peer === undefined) { this.dropped++; return; } // its slot was reused: the answer has nowhere to go
      this.#write({ body: { $case: 'send', value: { to: 0, toPeer: peer, frame } } });
      return;
    }
    this.#write({ body: { $case: 'send', value: { to, toPeer: '', frame } } });
  }

  /**
   * The set in force from now on: told to the gateway in order with the frames (those written
   * after it use its indices), and again on every attach. Mutes of validators are by index: they
   * are lifted here (the gateway forgets them with the old set), penalties mute again if needed.
   */
  setValidators(set: ValidatorSet): void {
    const before = this.#set;
    this.#set = set;
    this.#write(this.#setRequest(set));
    if (!before || (before.equals(set) && before.epoch === set.epoch)) return;
    // The absent by their new indices (a new epoch's engine has heard of none of them).
    for (const peerId of [...this.#absent]) {
      const now = set.indexOfPeer(peerId);
      if (now === undefined) this.#absent.delete(peerId);
      else this.#o.onPresence?.(now, false);
    }
    // Mutes follow the member: renumbered, or (a member no longer seated) kept by its peer id.
    let moved = false;
    for (const [peer, m] of [...this.#mutes]) {
      if (peer >= OUTSIDE_BASE || !before.has(peer)) continue;
      const peerId = before.byIndex(peer).peerId;
      const now = set.indexOfPeer(peerId);
      if (now === peer) continue;
      this.#mutes.delete(peer);
      if (now !== undefined) this.#mutes.set(now, m);
      else this.#mutes.set(this.outsideId(peerId), { ...m, peerId });
      moved = true;
    }
    // In order behind the set (a direct write could overtake it while frames are buffered).
    if (moved) for (const [peer, m] of this.#mutes) this.#sendMute(peer, Math.max(0, m.untilMs - this.#now()), m.reason, m.peerId);
  }

  /** The number of a peer outside the validator set (assigned on first use; slots reused oldest first). */
  outsideId(peerId: string): number {
    const known = this.#outsideIds.get(peerId);
    if (known !== undefined) {
      this.#outsideIds.delete(peerId);
      this.#outsideIds.set(peerId, known);
      return known;
    }
    let id: number;
    if (this.#outsideIds.size < MAX_OUTSIDE_PEERS) id = OUTSIDE_BASE + this.#outsideIds.size;
    else {
      const [oldPeer, oldId] = this.#outsideIds.entries().next().value!;
      this.#outsideIds.delete(oldPeer);
      id = oldId;
    }
    this.#outsideIds.set(peerId, id);
    this.#outsidePeers.set(id, peerId);
    return id;
  }

  /**
   * Mutes `peer` at the gateway for `ms` (0 lifts it). Sent now when attached, and again on every
   * attach while it lasts; never queued behind frames (a mute is small, and rare: penalties
   * double each one), so a lift reaches the gateway even while frames back up — nor ahead of a
   * set change still buffered, whose indices it uses (#writeControl).
   */
  mute(peer: number, ms: number, reason: string): void {
    const now = this.#now();
    for (const [p, m] of this.#mutes) if (m.untilMs <= now) this.#mutes.delete(p);
    let peerId = '';
    if (peer >= OUTSIDE_BASE) {
      const id = this.#outsidePeers.get(peer);
      if (id === undefined) return; // its slot was reused: we no longer know whom it meant
      peerId = id;
    }
    if (ms > 0) this.#mutes.set(peer, { untilMs: now + ms, reason, peerId });
    else this.#mutes.delete(peer);
    if (this.connected) this.#sendMute(peer, Math.max(0, ms), reason, peerId);
  }

  #sendMute(peer: number, ms: number, reason: string, peerId: string): void {
    this.#writeControl(this.#muteRequest(peer, ms, reason, peerId));
  }

  #muteRequest(peer: number, ms: number, reason: string, peerId: string): AttachRequest {
    return { body: { $case: 'mute', value: { validator: peerId ? 0 : peer, ms: Math.ceil(ms), reason, peerId } } };
  }

  /** A fresh attach: the gateway holds no mutes of ours, so every one in force goes again. */
  #resendMutes(): void {
    const now = this.#now();
    for (const [peer, m] of this.#mutes) {
      if (m.untilMs <= now) { this.#mutes.delete(peer); continue; }
      this.#sendMute(peer, m.untilMs - now, m.reason, m.peerId);
    }
    if (this.#mutes.size > 0) this.#o.log.info({ mutes: this.#mutes.size }, 'mutes sent again to the gateway');
  }

  #now(): number { return this.#o.now?.() ?? Date.now(); }

  #setRequest(set: ValidatorSet): AttachRequest {
    const req: AttachRequest = { body: { $case: 'validators', value: setValidatorsOf(set) } };
    this.#sets.set(req, set);
    return req;
  }

  /**
   * Whether the engine is catching up through a block sync: the gateway tells the validators this
   * member takes no part meanwhile. Sent now when attached (true again: the gateway says it again,
   * so the validators know it still is), and in every Attach call's metadata while it lasts; never queued behind
   * frames (one small message every few seconds at most).
   */
  catchingUp(catchingUp: boolean): void {
    if (!catchingUp && !this.#catchingUp) return;
    this.#catchingUp = catchingUp;
    if (this.connected) this.#stream?.write({ body: { $case: 'participation', value: { catchingUp } } });
  }

  broadcast(frame: Uint8Array): void {
    this.#write({ body: { $case: 'broadcast', value: { frame } } });
  }

  #write(req: AttachRequest): void {
    if (this.#stream && this.#writable && this.#buffer.length === 0) {
      this.#writeStream(this.#stream, req);
      return;
    }
    this.#push(this.#buffer.length, req);
  }

  /** Hands `req` to the stream (a set change noted as the stream's set); false past its high-water mark. */
  #writeStream(stream: ClientDuplexStream<AttachRequest, AttachResponse>, req: AttachRequest): boolean {
    if (req.body?.$case === 'validators') this.#streamSet = this.#sets.get(req);
    this.#writable = stream.write(req);
    return this.#writable;
  }

  /**
   * A mute names a validator by its index in the set the gateway holds when the mute arrives. While
   * a set change or a mute waits in the buffer it goes right behind the last of them (ahead of the
   * frames queued after them: a mute says nothing about what we send); otherwise straight to the
   * stream, past any frames buffered (write() past the high-water mark only buffers in grpc-js).
   */
  #writeControl(req: AttachRequest): void {
    let at = this.#buffer.length;
    while (at > 0 && isFrame(this.#buffer[at - 1]!)) at--;
    if (at === 0 && this.#stream) {
      this.#stream.write(req);
      return;
    }
    this.#push(at, req);
  }

  /**
   * Buffers `req` at `at`. Past MAX_BUFFERED frames the oldest frame goes; set changes and mutes
   * never do. They stay few: a set change comes with a committed block, which needs the network
   * this stream carries, and a mute replaces the one of the same peer behind the same set change.
   */
  #push(at: number, req: AttachRequest): void {
    if (req.body?.$case === 'mute') {
      const peer = muteTarget(req);
      for (let i = at - 1; i >= 0; i--) {
        const b = this.#buffer[i]!.body;
        if (b?.$case === 'validators') break;
        if (b?.$case === 'mute' && muteTarget(this.#buffer[i]!) === peer) { this.#buffer.splice(i, 1); at--; break; }
      }
    }
    this.#buffer.splice(at, 0, req);
    if (!isFrame(req) || ++this.#bufferedFrames <= MAX_BUFFERED) return;
    const oldest = this.#buffer.findIndex(isFrame);
    if (oldest === 0) this.#buffer.shift();
    else this.#buffer.splice(oldest, 1);
    this.#bufferedFrames--;
    this.dropped++;
  }

  #flush(): void {
    while (this.#stream && this.#buffer.length > 0) {
      const req = this.#buffer.shift()!;
      if (isFrame(req)) this.#bufferedFrames--;
      if (!this.#writeStream(this.#stream, req)) return;
    }
    this.#writable = true;
  }

  #tellPresence(peerId: string, present: boolean): void {
    const index = this.#set?.indexOfPeer(peerId);
    if (index === undefined) return;
    this.#o.log.info({ validator: index, peerId, present }, present ? 'validator present again (gateway)' : 'validator absent (gateway): its consensus is gone, its views are given up at once');
    this.#o.onPresence?.(index, present);
  }

  #open(): void {
    if (this.#closed) return;
    // Catching up is said in the call's metadata, so the gateway never says this member present
    // for the moment before a first request would say it.
    // (An observer takes no part: a gateway refuses the word from one.)
    const role = this.#o.role ?? 'validator';
    const saidCatchingUp = role === 'validator' && this.#catchingUp;
    const stream = this.#o.client.attach(attachRoleMetadata(role, saidCatchingUp));
    this.#stream = stream;
    stream.on('data', (res: AttachResponse) => {
      const body = res.body;
      if (body?.$case === 'ready') {
        this.connected = true;
        this.#backoffMs = 100;
        this.#writable = true;
        this.maxFrameBytes = body.value.maxFrameBytes;
        this.#o.log.info({ selfIndex: body.value.selfIndex, maxFrameBytes: body.value.maxFrameBytes, peerId: body.value.peerId }, 'attached to the gateway');
        // The set first: the frames that follow use its indices. That is the set the oldest buffered
        // entry was numbered by; a change buffered since follows in its place, and the mutes
        // (numbered by the newest set) go behind it (#writeControl).
        const head = this.#streamSet ?? (this.#buffer.some((r) => r.body?.$case === 'validators') ? undefined : this.#set);
        if (head) this.#writeStream(stream, this.#setRequest(head));
        this.#resendMutes();
        // Changed since the call's metadata said it (the word came or went while it connected).
        if (this.#catchingUp !== saidCatchingUp) this.#writable = stream.write({ body: { $case: 'participation', value: { catchingUp: this.#catchingUp } } });
        // The gateway tells this stream who is absent now: what an earlier stream said is void.
        for (const peerId of this.#absent) this.#tellPresence(peerId, true);
        this.#absent.clear();
        this.#o.onReady?.(body.value);
        this.#flush();
      } else if (body?.$case === 'frame') {
        const f = body.value;
        const index = this.#set ? this.#set.indexOfPeer(f.peerId) : (f.fromOutside ? undefined : f.from);
        this.#o.onFrame(index ?? this.outsideId(f.peerId), f.frame, f.peerId);
      } else if (body?.$case === 'presence') {
        const { peerId, present } = body.value;
        if (present === !this.#absent.has(peerId)) return;
        if (present) this.#absent.delete(peerId);
        else if (this.#set?.indexOfPeer(peerId) !== undefined) this.#absent.add(peerId);
        else return;
        this.#tellPresence(peerId, present);
      }
    });
    stream.on('drain', () => this.#flush());
    const retry = (why: string) => {
      if (this.#stream !== stream) return;
      this.#stream = undefined;
      this.#writable = false;
      this.connected = false;
      if (this.#closed) return;
      this.#o.log.warn({ why, retryInMs: this.#backoffMs }, 'gateway stream lost; reattaching');
      setTimeout(() => this.#open(), this.#backoffMs).unref();
      // At most a second: the gateway is this member's own service, and every second without
      // it is a second this member neither votes nor proposes.
      this.#backoffMs = Math.min(this.#backoffMs * 2, MAX_BACKOFF_MS);
    };
    stream.on('error', (err) => retry(errorMessage(err)));
    stream.on('end', () => retry('ended'));
  }
}

function isFrame(req: AttachRequest): boolean {
  return req.body?.$case === 'send' || req.body?.$case === 'broadcast';
}

/** Whom a mute names: a validator by index, or a peer by id. */
function muteTarget(req: AttachRequest): string {
  return req.body?.$case === 'mute' ? req.body.value.peerId || `#${req.body.value.validator}` : '';
}

function setValidatorsOf(set: ValidatorSet): SetValidators {
  return { epoch: set.epoch, validators: set.members.map((v) => ({ name: v.name, peerId: v.peerId, publicKey: v.publicKey, addresses: [...v.addresses] })) };
}
