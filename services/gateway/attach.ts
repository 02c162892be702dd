// The Attach stream: the one consumer (the consensus service) of inbound frames and the source
// of outbound ones. A second Attach while one is open is refused with FAILED_PRECONDITION (two
// consensus processes driving one member would be a fault, not a failover). Inbound frames are
// written with grpc-js flow control, and at most MAX_IN_FLIGHT_BYTES (plus one frame) are written
// ahead of what HTTP/2 has sent: past that, or when write() returns false, the sink is busy and the
// inbound scheduler holds frames in its bounded per-peer queues (pausing a validator's stream
// when its queue is full) until they are sent. The bytes bound is what makes the scheduler's
// order count: grpc-js buffers 16 messages, 16 MiB of 1 MiB frames that a vote would wait behind. Outbound requests never block: they go to bounded per-peer queues.
// A MutePeer request mutes a peer at the edge; the consumer's mutes end when it detaches. A
// Participation request says the consumer is catching up through a block sync (it takes no part
// until it says otherwise, or detaches): presence.ts tells the validators.
// Must never buffer inbound frames itself, nor keep a detached consumer's state.

import * as grpc from '@grpc/grpc-js';
import type { Logger } from '#libs/log/index.ts';
import { errorMessage, isFedError } from '#libs/errors/index.ts';
import type { AttachRequest, AttachResponse, SetValidators } from '#libs/gen/btcfed/v1/gateway.pb.ts';
import type { ConsensusPath } from './consensus.ts';
import type { Delivery, InboundSink } from './inbound.ts';
import type { GatewayMetrics } from './metrics.ts';
import type { Validator } from '#libs/validators/index.ts';
import { attachRoleOf, type AttachRole } from '#libs/rpc/index.ts';

type AttachCall = grpc.ServerDuplexStream<AttachRequest, AttachResponse>;

/** Frame bytes written to the Attach stream and not yet sent by HTTP/2 before the sink is busy. */
export const MAX_IN_FLIGHT_BYTES = 1 << 20;

export interface AttachDeps {
  log: Logger;
  metrics: GatewayMetrics;
  /** Set once the path exists (the path needs the sink, the sink needs the path). */
  path: () => ConsensusPath;
  peerId: string;
  /** Takes the consumer's SetValidators (Gateway.adoptValidators); throws FedError to refuse it. */
  adoptValidators?: (req: SetValidators) => void;
  /** Whether a consumer takes part changed: one attached, detached, or began or ended catching up; an observer attaching says nothing new: the validators hear it (presence.ts). */
  onConsumer?: (takesPart: boolean) => void;
  /** Validators absent now (presence.ts): a consumer that attaches is told them after ready. */
  absent?: () => readonly string[];
  /** A frame from a validator arrived (presence.ts: a validator said detached that votes or proposes is back). */
  heard?: (peerId: string, frame: Uint8Array) => void;
}

export class AttachPoint implements InboundSink {
  #deps: AttachDeps;
  #call: AttachCall | undefined;
  /** What the attached consumer said it is (its call's metadata). */
  #role: AttachRole = 'validator';
  /** The attached validator consumer said it is catching up through a block sync (Participation). */
  #catchingUp = false;
  #full = false;
  /** Frame bytes of the current call written but not yet sent (grpc-js calls back once sent). */
  #inFlight = 0;
  #waiters: Array<() => void> = [];
  #badRequests = 0;

  constructor(deps: AttachDeps) {
    this.#deps = deps;
  }

  get attached(): boolean { return this.#call !== undefined; }
  /** A consumer is attached and takes part in consensus (not an observer): what presence tells the validators. */
  get takesPart(): boolean { return this.#call !== undefined && this.#role === 'validator' && !this.#catchingUp; }
  /** The attached engine is catching up: absent to the others, but its view timeouts still send NEW-VIEWs (presence.ts). */
  get catchingUp(): boolean { return this.#call !== undefined && this.#role === 'validator' && this.#catchingUp; }
  get busy(): boolean { return this.#full || this.#inFlight >= MAX_IN_FLIGHT_BYTES; }

  deliver(frame: Uint8Array, from: Validator | undefined, peerId: string): Delivery {
    if (from) this.#deps.heard?.(peerId, frame);
    const call = this.#call;
    if (!call) return 'no_consumer';
    const bytes = frame.length;
    this.#inFlight += bytes;
    const ok = call.write({ body: { $case: 'frame', value: { from: from?.index ?? 0, fromOutside: from === undefined, peerId, frame, receivedAtMs: Date.now() } } },
      () => this.#sent(call, bytes));
    if (!ok) this.#full = true;
    return this.busy ? 'full' : 'accepted';
  }

  /** A validator's consensus is gone or back (presence.ts): the consumer hears it, if one is attached. */
  presence(peerId: string, present: boolean): void {
    this.#call?.write({ body: { $case: 'presence', value: { peerId, present } } });
  }

  onReady(fn: () => void): void {
    if (!this.#call || !this.busy) queueMicrotask(fn);
    else this.#waiters.push(fn);
  }

  /** Ends the consumer's stream (shutdown). */
  close(): void {
    const call = this.#call;
    this.#detach();
    if (call && !call.cancelled) call.end();
  }

  readonly handler: grpc.handleBidiStreamingCall<AttachRequest, AttachResponse> = (call) => {
    const { log, metrics } = this.#deps;
    const said = attachRoleOf(call.metadata);
    if ('error' in said) {
      log.warn({ peer: call.getPeer(), why: said.error }, 'Attach refused: unknown role');
      call.emit('error', { code: grpc.status.INVALID_ARGUMENT, details: `Attach refused: ${said.error}`, metadata: new grpc.Metadata() });
      return;
    }
    if (this.#call) {
      log.warn({ peer: call.getPeer() }, 'second Attach refused: a consumer is already attached');
      call.emit('error', { code: grpc.status.FAILED_PRECONDITION, details: 'a consumer is already attached to this gateway', metadata: new grpc.Metadata() });
      return;
    }
    this.#call = call;
    this.#role = said.role;
    // Said in the metadata, so a validator restarted catching up is never said present first.
    this.#catchingUp = said.catchingUp;
    this.#full = false;
    this.#inFlight = 0;
    metrics.attached.set(1);
    const path = this.#deps.path();
    log.info({ peer: call.getPeer(), role: said.role, ...(said.catchingUp ? { catchingUp: true } : {}) }, said.catchingUp
      ? 'consumer attached, catching up through a block sync: the validators are told it takes no part meanwhile'
      : 'consumer attached');
    call.write({ body: { $case: 'ready', value: {
      selfIndex: path.selfIndex ?? 0, isValidator: path.selfIndex !== undefined, validators: path.validators?.n ?? 0,
      maxFrameBytes: path.maxFrameBytes, peerId: this.#deps.peerId,
    } } });
    for (const peerId of this.#deps.absent?.() ?? []) this.presence(peerId, false);
    // An observer changes nothing the validators were told: with no consumer, this member took no part.
    // A validator catching up is said to be so (presence.ts), as its participation request would.
    if (this.takesPart) this.#deps.onConsumer?.(true);
    else if (this.catchingUp) this.#deps.onConsumer?.(false);
    call.on('drain', () => this.#drained(call));
    call.on('data', (req: AttachRequest) => this.#request(req));
    const gone = (why: string) => () => {
      if (this.#call !== call) return;
      log.info({ why }, 'consumer detached');
      this.#detach();
    };
    call.on('end', () => { gone('end')(); if (!call.cancelled) call.end(); });
    call.on('cancelled', gone('cancelled'));
    call.on('error', (err: Error) => { log.debug({ err: errorMessage(err) }, 'attach stream error'); gone('error')(); });
    call.on('close', gone('close'));
  };

  #request(req: AttachRequest): void {
    const path = this.#deps.path();
    try {
      const body = req.body;
      switch (body?.$case) {
        case 'send':
          if (body.value.toPeer) path.sendToPeer(body.value.toPeer, body.value.frame);
          else path.send(body.value.to, body.value.frame);
          return;
        case 'broadcast': path.broadcast(body.value.frame); return;
        case 'mute': path.inbound.mute(body.value); return;
        case 'participation': this.#participation(body.value.catchingUp); return;
        case 'validators':
          if (!this.#deps.adoptValidators) throw Object.assign(new Error('this gateway takes no validator set from its consumer'), { code: 'REQUEST_UNSUPPORTED' });
          this.#deps.adoptValidators(body.value);
          return;
        case undefined: throw Object.assign(new Error('empty request'), { code: 'REQUEST_EMPTY' });
        default: { const never: never = body; throw new Error(`unknown request ${JSON.stringify(never)}`); }
      }
    } catch (err) {
      // One bad request must not end the member's only consensus stream: count, log, go on.
      this.#deps.metrics.framesRefused.inc({ reason: 'bad_request' });
      this.#badRequests++;
      const level = this.#badRequests <= 10 || this.#badRequests % 1000 === 0 ? 'warn' : 'debug';
      this.#deps.log[level]({ code: isFedError(err) ? err.code : 'REQUEST_INVALID', err: errorMessage(err), total: this.#badRequests },
        'attach request refused');
    }
  }

  /** The consumer says it is catching up (again: presence says it again, so the others know it still is), or that it is not. */
  #participation(catchingUp: boolean): void {
    if (this.#role !== 'validator') throw Object.assign(new Error('an observer takes no part: it cannot say it is catching up'), { code: 'REQUEST_UNSUPPORTED' });
    if (catchingUp === this.#catchingUp) {
      if (catchingUp) this.#deps.onConsumer?.(this.takesPart);
      return;
    }
    this.#catchingUp = catchingUp;
    this.#deps.log.info({ catchingUp }, catchingUp
      ? 'consumer catching up through a block sync: the validators are told it takes no part meanwhile'
      : 'consumer caught up: the validators are told it takes part');
    this.#deps.onConsumer?.(this.takesPart);
  }

  #drained(call: AttachCall): void {
    if (this.#call !== call) return;
    this.#full = false;
    if (!this.busy) this.#release();
  }

  /** HTTP/2 took a frame of `call` (a cancelled call never calls back: a new one starts at 0). */
  #sent(call: AttachCall, bytes: number): void {
    if (this.#call !== call) return;
    this.#inFlight -= bytes;
    if (this.#waiters.length > 0 && !this.busy) this.#release();
  }

  #detach(): void {
    const had = this.takesPart;
    this.#call = undefined;
    this.#role = 'validator';
    this.#catchingUp = false;
    this.#full = false;
    this.#inFlight = 0;
    this.#deps.metrics.attached.set(0);
    // Mutes are the consumer's: the next one (perhaps a restarted consensus with no record of the
    // offence) sends again those it means.
    this.#deps.path().inbound.clearMutes();
    // Paused streams resume; their frames now count as no_consumer.
    this.#release();
    if (had) this.#deps.onConsumer?.(false);
  }

  #release(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) {
      // A waiter resumes a libp2p stream; one whose peer is gone must not stop the others, nor
      // reach grpc-js's 'drain' emitter as an exception (that would end the process).
      try { w(); } catch (err) { this.#deps.log.error({ err: errorMessage(err) }, 'resuming a paused stream failed'); }
    }
  }
}
