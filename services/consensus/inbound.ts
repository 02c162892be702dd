// Frames from other validators, cheapest check first: size and decoding (libs/wire),
// then signatures (the verifier), then protocol rules (the engine). A frame that fails a check
// is counted and logged with the sender and the reason; it never reaches the engine.
// Peers outside the validator set (observers) may only ask for blocks and hand over
// transactions (all of them together hold at most one validator's share of the mempool);
// anything else from them is refused as a strike, before it costs a signature check.
// Also the transaction hand-off: clients' transactions go, in batches, to the validators that lead
// the current and the next views, who propose them; the member that took them keeps them too and
// proposes them itself when it leads, so none is stranded by a faulty leader.

import type { Logger } from 'pino';
import { errorMessage, isFedError } from '#libs/errors/index.ts';
import { decodeFrame, type FrameLimits } from '#libs/wire/index.ts';
import type { ConsensusDriver } from './driver.ts';
import type { Mempool } from './mempool.ts';
import { OUTSIDE_BASE, isOutside, type Clock, type DriverObserver, type TransportPort } from './ports.ts';
import type { PeerPenalties } from './penalties.ts';
import type { SignatureVerifier } from './verifier.ts';
import { TxBatcher } from './tx-batcher.ts';

/**
 * Verifications in flight per sending validator; beyond it that validator's frames are dropped
 * (an honest peer resends on timeout). Per peer, so one validator's flood never gets another's
 * frames dropped.
 */
const MAX_VERIFYING_PER_PEER = 256;
/** How many upcoming leaders (other than us) receive a client's transactions. */
const GOSSIP_LEADERS = 2;

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
  readonly #verifying = new Map<number, number>();
  readonly #gossip: TxBatcher;

  constructor(deps: InboundDeps) {
    this.#d = deps;
    this.#gossip = new TxBatcher({ chainId: deps.limits.chainId, maxBlockBytes: deps.limits.maxBlockBytes, clock: deps.clock,
      send: (frame) => { for (const to of this.#upcomingLeaders()) deps.transport.send(to, frame); } });
  }

  /** The driver's per-validator penalties (one ledger for the inbound path, sync and the engine's rejections). */
  get penalties(): PeerPenalties { return this.#d.driver.penalties; }

  /** A refusal that costs the sender: counted, logged (throttled), and a strike towards muting it. */
  #refuse(from: number, reason: string, detail: Record<string, unknown> = {}): void {
    const muted = this.penalties.strike(from);
    const count = this.penalties.logCount(from, reason);
    if (count > 0 || muted) this.#d.log.warn({ from, reason, ...detail, count, ...(muted ? { mutedForMs: muted } : {}) }, 'frame refused');
    this.#d.observer?.frameRejected?.(from, `refused:${reason}`);
  }

  onFrame(from: number, bytes: Uint8Array): void {
    // A validator that keeps sending what fails its checks is not even decoded for a while.
    if (this.penalties.muted(from)) {
      this.#d.observer?.frameRejected?.(from, 'refused:muted');
      return;
    }
    let frame;
    try {
      frame = decodeFrame(bytes, this.#d.limits);
    } catch (err) {
      this.#refuse(from, 'undecodable', { why: isFedError(err) ? err.message : errorMessage(err) });
      return;
    }
    if (isOutside(from) && frame.type !== 'block-request' && frame.type !== 'tx-batch') {
      this.#refuse(from, 'not_validator', { type: frame.type });
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
      case 'tx-batch': {
        // Each validator's share of the mempool is capped (Mempool.offer with a source): a flood
        // from one of them cannot crowd out clients' or other validators' transactions.
        let refused = 0;
        let code = '';
        const source = isOutside(from) ? OUTSIDE_BASE : from;
        for (const tx of frame.txs) {
          const r = this.#d.pool.offer(tx, this.#d.clock.now(), this.#d.driver.isCommitted, source);
          if (r.status === 'refused') { refused++; code = r.code; }
        }
        if (refused > 0) this.#d.log.debug({ from, refused, of: frame.txs.length, code }, 'gossiped transactions not taken');
        return;
      }
      default: {
        const never: never = frame;
        this.#d.log.warn({ from, frame: never }, 'unknown frame');
      }
    }
  }

  #onMessage(from: number, message: Parameters<SignatureVerifier['verifyMessage']>[0]): void {
    const { log, observer } = this.#d;
    // Cheap checks first, no signature yet: who signed it, who leads that view, how far ahead.
    const why = this.#cheapCheck(from, message);
    if (why) {
      this.#refuse(from, why.reason, { type: message.type, detail: why.detail });
      return;
    }
    const inFlight = this.#verifying.get(from) ?? 0;
    if (inFlight >= MAX_VERIFYING_PER_PEER) {
      observer?.frameRejected?.(from, 'refused:verification_backlog');
      return;
    }
    this.#verifying.set(from, inFlight + 1);
    const done = () => this.#verifying.set(from, (this.#verifying.get(from) ?? 1) - 1);
    this.#d.verifier.verifyMessage(message).then((r) => {
      done();
      if (!r.ok) {
        const view = message.type === 'qc' ? message.qc.view : message.view;
        const muted = this.penalties.strike(from);
        const count = this.penalties.logCount(from, 'invalid_signature');
        if (count > 0 || muted) log.warn({ from, what: r.what, signer: r.sender, view, count, ...(muted ? { mutedForMs: muted } : {}) }, 'invalid signature: message dropped');
        observer?.invalidSignature?.(from, r.what, view);
        return;
      }
      // The block's contents (transaction root, state hash, exactly-once) are checked by the engine
      // through libs/blocks once the parent is known — after the signatures, never twice.
      this.#d.driver.enqueue({ type: 'message', message });
    }, (err: unknown) => {
      done();
      log.error({ from, err: errorMessage(err) }, 'verification failed');
    });
  }

  /** Why a message fails a check that needs no signature, or null. */
  #cheapCheck(from: number, m: Parameters<SignatureVerifier['verifyMessage']>[0]): { reason: string; detail: string } | null {
    // QC announcements carry no sender signature of their own: their votes are what count.
    if (m.type === 'qc') return null;
    // Validators send their own messages; nobody relays another's, so a mismatch is a forgery.
    if (m.sender !== from) return { reason: 'wrong_sender', detail: `signed as validator ${m.sender}` };
    if (m.type === 'proposal' && this.#d.leaderOf(m.view) !== m.sender) {
      return { reason: 'not_leader', detail: `validator ${m.sender} does not lead view ${m.view}` };
    }
    return null;
  }

  /** A transaction a client gave us: queued locally by the caller, then gossiped in batches. */
  gossip(tx: Uint8Array): void {
    this.#gossip.add(tx);
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
}
