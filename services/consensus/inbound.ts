// Frames from other validators, in the order DESIGN.md §6 asks: size and decoding (libs/wire),
// then signatures (the verifier), then protocol rules (the engine). A frame that fails a check
// is counted and logged with the sender and the reason; it never reaches the engine.
// Also the transaction hand-off: clients' transactions go, in batches, to the validators that lead
// the current and the next views, who propose them; the member that took them keeps them too and
// proposes them itself when it leads, so none is stranded by a faulty leader.

import type { Logger } from 'pino';
import { errorMessage, isFedError } from '#libs/errors/index.ts';
import { payloadError } from './payload.ts';
import { decodeFrame, encodeFrame, type FrameLimits } from '#libs/wire/index.ts';
import type { ConsensusDriver } from './driver.ts';
import type { Mempool } from './mempool.ts';
import type { Clock, DriverObserver, TransportPort } from './ports.ts';
import type { SignatureVerifier } from './verifier.ts';
import { toHex } from '#libs/crypto/index.ts';

/** Verifications in flight at once; beyond it frames are dropped (the peer resends on timeout). */
const MAX_VERIFYING = 2048;
const GOSSIP_MAX_TXS = 512;
/** How many upcoming leaders (other than us) receive a client's transactions. */
const GOSSIP_LEADERS = 2;
const GOSSIP_DELAY_MS = 5;

export interface InboundDeps {
  limits: FrameLimits;
  self: number;
  leaderOf(view: number): number;
  driver: ConsensusDriver;
  pool: Mempool;
  verifier: SignatureVerifier;
  transport: TransportPort;
  clock: Clock;
  log: Logger;
  observer?: DriverObserver & { frameRejected?(from: number, reason: string): void };
}

export class Inbound {
  readonly #d: InboundDeps;
  #verifying = 0;
  #gossip: Uint8Array[] = [];
  #gossipBytes = 0;
  #gossipTimer: { cancel(): void } | undefined;

  constructor(deps: InboundDeps) {
    this.#d = deps;
  }

  onFrame(from: number, bytes: Uint8Array): void {
    const { log, observer } = this.#d;
    let frame;
    try {
      frame = decodeFrame(bytes, this.#d.limits);
    } catch (err) {
      const reason = isFedError(err) ? err.message : errorMessage(err);
      log.warn({ from, reason }, 'frame rejected');
      observer?.frameRejected?.(from, reason);
      return;
    }
    switch (frame.type) {
      case 'consensus':
        this.#onMessage(from, frame.message);
        return;
      case 'block-request':
        this.#d.driver.sync.onRequest(from, frame.requestId, frame.hashes, frame.fromHeight, frame.maxBlocks);
        return;
      case 'block-response':
        void this.#d.driver.sync.onResponse(from, frame.requestId, frame.blocks);
        return;
      case 'tx-batch':
        for (const tx of frame.txs) {
          const r = this.#d.pool.offer(tx, this.#d.clock.now(), this.#d.driver.isCommitted);
          if (r.status === 'refused') log.debug({ from, code: r.code }, 'gossiped transaction not taken');
        }
        return;
      default: {
        const never: never = frame;
        log.warn({ from, frame: never }, 'unknown frame');
      }
    }
  }

  #onMessage(from: number, message: Parameters<SignatureVerifier['verifyMessage']>[0]): void {
    const { log, observer } = this.#d;
    if (message.type !== 'qc' && message.sender !== from) {
      log.warn({ from, claimed: message.sender, type: message.type }, 'message signed by another validator than the one that sent it');
    }
    if (message.type === 'proposal') {
      const parent = this.#d.driver.engine.block(toHex(message.block.header.parentHash));
      const why = payloadError(message.block, parent);
      if (why) {
        log.warn({ from, view: message.view, reason: why }, 'proposal rejected');
        observer?.rejected?.(from, 'invalid_block', why);
        return;
      }
    }
    if (this.#verifying >= MAX_VERIFYING) {
      observer?.frameRejected?.(from, 'verification backlog full');
      return;
    }
    this.#verifying++;
    this.#d.verifier.verifyMessage(message).then((r) => {
      this.#verifying--;
      if (r.ok) {
        this.#d.driver.enqueue({ type: 'message', message });
        return;
      }
      const view = message.type === 'qc' ? message.qc.view : message.view;
      log.warn({ from, what: r.what, signer: r.sender, view }, 'invalid signature: message dropped');
      observer?.invalidSignature?.(from, r.what, view);
    }, (err: unknown) => {
      this.#verifying--;
      log.error({ from, err: errorMessage(err) }, 'verification failed');
    });
  }

  /** A transaction a client gave us: queued locally by the caller, then gossiped in batches. */
  gossip(tx: Uint8Array): void {
    this.#gossip.push(tx);
    this.#gossipBytes += tx.length;
    if (this.#gossip.length >= GOSSIP_MAX_TXS || this.#gossipBytes >= this.#d.limits.maxBlockBytes / 2) {
      this.flushGossip();
      return;
    }
    this.#gossipTimer ??= this.#d.clock.setTimeout(() => this.flushGossip(), GOSSIP_DELAY_MS);
  }

  /** The leaders of the current and following views, other than us, in order (at most GOSSIP_LEADERS). */
  #upcomingLeaders(): number[] {
    const n = this.#d.limits.validatorCount;
    const self = this.#d.self;
    const out: number[] = [];
    for (let v = this.#d.driver.engine.view; out.length < Math.min(GOSSIP_LEADERS, n - 1); v++) {
      const leader = this.#d.leaderOf(v);
      if (leader !== self && !out.includes(leader)) out.push(leader);
    }
    return out;
  }

  flushGossip(): void {
    this.#gossipTimer?.cancel();
    this.#gossipTimer = undefined;
    if (this.#gossip.length === 0) return;
    const txs = this.#gossip;
    this.#gossip = [];
    this.#gossipBytes = 0;
    const frame = encodeFrame(this.#d.limits.chainId, { type: 'tx-batch', txs });
    for (const to of this.#upcomingLeaders()) this.#d.transport.send(to, frame);
  }
}
