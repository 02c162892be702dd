// The Attach stream: the one consumer (the consensus service) of inbound frames and the source
// of outbound ones. A second Attach while one is open is refused with FAILED_PRECONDITION (two
// consensus processes driving one member would be a fault, not a failover). Inbound frames are
// written with grpc-js flow control: write() false → the sink reports 'full' and the libp2p
// streams pause until 'drain'. Outbound requests never block: they go to bounded per-peer queues.
// Must never buffer inbound frames itself, nor keep a detached consumer's state.

import * as grpc from '@grpc/grpc-js';
import type { Logger } from '#libs/log/index.ts';
import { errorMessage, isFedError } from '#libs/errors/index.ts';
import type { AttachRequest, AttachResponse } from '#libs/gen/btcfed/v1/gateway.pb.ts';
import type { ConsensusPath, Delivery, InboundSink } from './consensus.ts';
import type { GatewayMetrics } from './metrics.ts';
import type { Validator } from './settings.ts';

type AttachCall = grpc.ServerDuplexStream<AttachRequest, AttachResponse>;

export interface AttachDeps {
  log: Logger;
  metrics: GatewayMetrics;
  /** Set once the path exists (the path needs the sink, the sink needs the path). */
  path: () => ConsensusPath;
  peerId: string;
}

export class AttachPoint implements InboundSink {
  #deps: AttachDeps;
  #call: AttachCall | undefined;
  #full = false;
  #waiters: Array<() => void> = [];
  #badRequests = 0;

  constructor(deps: AttachDeps) {
    this.#deps = deps;
  }

  get attached(): boolean { return this.#call !== undefined; }
  get busy(): boolean { return this.#full; }

  deliver(frame: Uint8Array, from: Validator | undefined, peerId: string): Delivery {
    const call = this.#call;
    if (!call) return 'no_consumer';
    const ok = call.write({ body: { $case: 'frame', value: { from: from?.index ?? 0, fromOutside: from === undefined, peerId, frame, receivedAtMs: Date.now() } } });
    if (ok) return 'accepted';
    this.#full = true;
    return 'full';
  }

  onReady(fn: () => void): void {
    if (!this.#call || !this.#full) queueMicrotask(fn);
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
    if (this.#call) {
      log.warn({ peer: call.getPeer() }, 'second Attach refused: a consumer is already attached');
      call.emit('error', { code: grpc.status.FAILED_PRECONDITION, details: 'a consumer is already attached to this gateway', metadata: new grpc.Metadata() });
      return;
    }
    this.#call = call;
    this.#full = false;
    metrics.attached.set(1);
    const path = this.#deps.path();
    log.info({ peer: call.getPeer() }, 'consumer attached');
    call.write({ body: { $case: 'ready', value: {
      selfIndex: path.selfIndex ?? 0, isValidator: path.selfIndex !== undefined, validators: path.validators.length,
      maxFrameBytes: path.maxFrameBytes, peerId: this.#deps.peerId,
    } } });
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

  #drained(call: AttachCall): void {
    if (this.#call !== call) return;
    this.#full = false;
    this.#release();
  }

  #detach(): void {
    this.#call = undefined;
    this.#full = false;
    this.#deps.metrics.attached.set(0);
    // Paused streams resume; their frames now count as no_consumer.
    this.#release();
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
