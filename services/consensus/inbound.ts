// Frames from other validators, cheapest check first: a glance at the frame (its kind and view,
// libs/wire peekFrame) refuses what is stale, too far ahead or unasked for before it is decoded;
// then decoding (libs/wire), the checks that need no signature (who signed, who leads, a
// duplicate, the block's time), then signatures (the verifier, one fair queue for all senders),
// then protocol rules (the engine). A frame that fails a check is counted and logged with the
// sender and the reason; it never reaches the engine.
// Two kinds of refusal: an offence (undecodable, forged, misattributed, a bad block time) is a
// strike (a forged signature as many as its size calls for, below); a valid but useless message (stale, duplicate, too far ahead, unasked for, a stream of
// NEW-VIEW claims, beyond the sender's verification queue) is free at the rate honest members send such things and a strike
// beyond it (penalties.ts) — so replaying old, validly signed messages gets a sender muted too.
// Peers outside the validator set (observers, members being added) may only ask for blocks,
// checkpoints and history, and hand over transactions (all of them together hold at most one
// validator's share of the mempool); anything else from them is refused by its kind as a strike,
// before it is decoded.
// Transactions travel in batches sent once to every validator (batch-intake.ts); a proposal names
// the whole batches it carries, and its parts are resolved from the batches held here — waiting
// for or fetching those missing (batches.ts) — after its signature is checked and before the
// engine sees it.
// Useless refusals cost their size: one token per unit of the largest message an honest member
// sends besides proposals (a NEW-VIEW with a QC of every validator's signature, at least 64 KiB),
// so late votes and QC announcements are a token each and a 4 MiB proposal some fifty. A forged
// signature strikes by the same measure: a forged vote once, a forged 4 MiB proposal enough to
// mute at once. A message whose sender is muted while it waits for its check is dropped unread.

import type { Logger } from 'pino';
import { errorMessage, isFedError } from '#libs/errors/index.ts';
import { blockTimeError, rememberIds, type BlockPart, type BlockTimeBounds } from '#libs/blocks/index.ts';
import { mayLead, toHex, type ConsensusMessage } from '#libs/hotstuff/index.ts';
import { WIRE_MAX_VALIDATORS, decodeFrame, peekFrame, type FrameLimits, type FramePeek } from '#libs/wire/index.ts';
import type { ConsensusDriver } from './driver.ts';
import { FairQueue } from './fair-queue.ts';
import type { Mempool } from './mempool.ts';
import { isOutside, type Clock, type DriverObserver, type TransportPort } from './ports.ts';
import type { PeerPenalties } from './penalties.ts';
import { BatchIntake } from './batch-intake.ts';
import { BatchFetch } from './batches.ts';
import { ChangeIntake } from './change-intake.ts';

/** Messages a sender may have waiting for their signatures to be checked; beyond, they are refused (an honest peer resends on timeout). */
const MAX_VERIFYING_PER_PEER = 256;
/** …and their bytes: a queue of proposals is bounded by size, not only count. */
const MAX_VERIFYING_BYTES_PER_PEER = 16 << 20;
/** Messages verified at once, from all senders: the libuv pool's four threads, kept busy. */
const VERIFY_CONCURRENCY = 4;
/**
 * How far below our view a message may be and still be read. Honest late messages are a view or
 * two old (the vote that comes after its QC formed, the QC announcement that arrives after a
 * quorum of NEW-VIEWs moved us on); older ones change nothing: a commit they would carry is
 * made by the next commit QC too, which commits every uncommitted ancestor.
 */
export const STALE_VIEWS = 4;
/** How far ahead a proposal may be: the engine buffers two views ahead (libs/hotstuff replica.ts). */
const AHEAD_PROPOSAL_VIEWS = 2;
/** Message keys remembered per sender, to refuse an exact repeat before its signature is checked. */
const SEEN_PER_PEER = 512;
/**
 * NEW-VIEWs taken from one sender while we are in one view. An honest member sends one when its
 * timer fires and perhaps a higher one when it amplifies others'; a stream of ever higher claims
 * (each new, so no duplicate) is a verification each and moves nobody (f claims never do).
 */
const NEW_VIEWS_PER_VIEW = 4;
/** The least bytes a useless message costs a token for (see the file's header). */
export const USELESS_UNIT_MIN_BYTES = 64 << 10;

export interface InboundDeps {
  limits: FrameLimits;
  /** This member's seat, the leader rule and the signature verifier are the driver's current epoch's. */
  driver: ConsensusDriver;
  pool: Mempool;
  transport: TransportPort;
  clock: Clock;
  log: Logger;
  /** conf consensus.block_time_drift / block_time_max_delay: proposals outside them are refused. */
  blockTime?: BlockTimeBounds;
  /** conf consensus.handoff_txs_per_second: transactions taken from each validator a second (handoff.ts). */
  handoffTxsPerSecond?: number;
  observer?: DriverObserver & { frameRejected?(from: number, reason: string): void };
}

/** What a peer outside the validator set may send: requests for blocks, history and checkpoints, and transactions. */
const OUTSIDE_KINDS: ReadonlySet<string> = new Set(['block-request', 'tx-batch', 'checkpoint-request', 'history-request']);

export class Inbound {
  readonly #d: InboundDeps;
  readonly #verify = new FairQueue({ concurrency: VERIFY_CONCURRENCY, maxPerSender: MAX_VERIFYING_PER_PEER, maxBytesPerSender: MAX_VERIFYING_BYTES_PER_PEER });
  /**
   * Per sender, the keys of the messages of epoch #seenEpoch taken lately (oldest first), to refuse
   * exact repeats. Views start again at every epoch, so a key (a view, a phase) names a message of
   * one epoch only: the keys are forgotten when the epoch changes. Kept across epochs, an epoch's
   * votes were refused as repeats of the two before's in views of the same numbers, and a third
   * epoch begun within a minute of the first committed nothing until its views passed theirs.
   */
  readonly #seen = new Map<number, Set<string>>();
  #seenEpoch = -1;
  /** Per sender: NEW-VIEWs taken in our view `view` of epoch `epoch`. */
  readonly #claims = new Map<number, { epoch: number; view: number; count: number }>();
  readonly #batches: BatchIntake;
  readonly #fetch: BatchFetch;
  /** Reconfigurations other validators pass on (change-intake.ts). */
  readonly #changes: ChangeIntake;
  /** How frames are decoded: bitmaps of any set up to WIRE_MAX_VALIDATORS wide. */
  readonly #decodeLimits: FrameLimits;
  /** Hand-offs not sent because a peer's share was spent (they stay in our pool), and transactions refused beyond a sender's limit. */
  get handoffWithheld(): number { return this.#batches.withheld; }
  get handoffRefused(): number { return this.#batches.refused; }
  /** Batches asked for, received and served; proposals that waited for batches, and that gave up (the metrics). */
  get batchCounts(): Readonly<BatchFetch['counts']> { return this.#fetch.counts; }

  constructor(deps: InboundDeps) {
    this.#d = deps;
    // A frame of a neighbouring epoch may name validators this epoch lacks (a set that grew): decoded
    // all the same, it is refused by its epoch before any signature is checked (wrong_epoch), not
    // taken for garbage from an honest member that moved on first.
    this.#decodeLimits = { ...deps.limits, validatorCount: Math.max(deps.limits.validatorCount, WIRE_MAX_VALIDATORS) };
    const { limits, driver } = deps;
    const useless = (from: number, reason: string, detail: Record<string, unknown>, cost: number) => this.#useless(from, reason, detail, cost);
    this.#batches = new BatchIntake({ chainId: limits.chainId, maxBlockBytes: limits.maxBlockBytes, maxTxBytes: deps.pool.maxTxBytes, driver, pool: deps.pool,
      transport: deps.transport, clock: deps.clock, log: deps.log, useless, ...(deps.handoffTxsPerSecond ? { handoffTxsPerSecond: deps.handoffTxsPerSecond } : {}),
      counted: (from, reason) => this.#d.observer?.frameRejected?.(from, `refused:${reason}`) });
    this.#fetch = new BatchFetch({ store: driver.batches, chainId: limits.chainId, self: () => driver.self, clock: deps.clock, transport: deps.transport,
      // The gateway's frame limit is known once it is attached: read at each answer.
      limits: { maxBlockTxs: limits.maxBlockTxs, maxBlockBytes: limits.maxBlockBytes, get maxFrameBytes() { return deps.transport.maxFrameBytes ?? limits.maxFrameBytes; } },
      refuse: (from, reason, detail) => this.#refuse(from, reason, detail), useless });
    this.#changes = new ChangeIntake({ epoch: () => driver.currentEpoch, switching: () => driver.switching !== undefined, pending: () => driver.pendingChange,
      signatureBytes: limits.signatureBytes, adopt: (change, from) => driver.adoptChange(change, from),
      refuse: (from, reason, detail) => this.#refuse(from, reason, detail),
      useless: (from, reason, detail, bytes) => this.#useless(from, reason, detail, this.uselessCost(bytes)) });
  }

  /** A batch read back from disk at start (BatchIntake.restore): false when it was forgotten as committed. */
  restoreBatch(b: Parameters<BatchIntake['restore']>[0]): boolean {
    return this.#batches.restore(b);
  }

  /** Tokens of the useless budget a message of `bytes` costs. */
  uselessCost(bytes: number): number {
    const unit = Math.max(USELESS_UNIT_MIN_BYTES, (this.#d.driver.validatorCount + 1) * this.#d.limits.signatureBytes + 4096);
    return Math.max(1, Math.ceil(bytes / unit));
  }

  /** The driver's per-validator penalties (one ledger for the inbound path, sync and the engine's rejections). */
  get penalties(): PeerPenalties { return this.#d.driver.penalties; }

  /** Messages waiting for their signatures to be checked, over all senders. */
  get verifying(): number { return this.#verify.waiting + this.#verify.running; }

  /** A refusal that costs the sender: counted, logged (throttled), and a strike towards muting it. */
  #refuse(from: number, reason: string, detail: Record<string, unknown> = {}): void {
    this.#account(from, reason, detail, this.penalties.strike(from));
  }

  /** A valid but useless message of `cost` tokens: counted, logged (throttled), free within the sender's budget. */
  #useless(from: number, reason: string, detail: Record<string, unknown>, cost: number): void {
    this.#account(from, reason, detail, this.penalties.useless(from, cost));
  }

  #account(from: number, reason: string, detail: Record<string, unknown>, muted: number): void {
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
    const receivedMs = this.#d.clock.now();
    const peek = peekFrame(bytes);
    const early = peek ? this.#earlyRefusal(from, peek) : null;
    if (early) {
      const detail = { kind: peek!.kind, detail: early.detail, bytes: bytes.length };
      // Breaking a rule is a strike; a valid but useless frame costs its size.
      return early.offence ? this.#refuse(from, early.reason, detail) : this.#useless(from, early.reason, detail, this.uselessCost(bytes.length));
    }
    let frame;
    try {
      frame = decodeFrame(bytes, this.#decodeLimits);
    } catch (err) {
      this.#refuse(from, 'undecodable', { why: isFedError(err) ? err.message : errorMessage(err) });
      return;
    }
    if (isOutside(from) && !OUTSIDE_KINDS.has(frame.type)) {
      this.#refuse(from, 'not_validator', { type: frame.type });
      return;
    }
    switch (frame.type) {
      case 'consensus':
        this.#onMessage(from, frame.message, bytes.length, receivedMs, frame.parts);
        return;
      case 'batch-request':
        this.#fetch.onRequest(from, frame.requestId, frame.digests);
        return;
      case 'batch-response':
        this.#fetch.onResponse(from, frame.requestId, frame.batches);
        return;
      case 'block-request':
        this.#d.driver.sync.onRequest(from, frame.requestId, frame.hashes, frame.fromHeight, frame.maxBlocks);
        return;
      case 'block-response':
        void this.#d.driver.sync.onResponse(from, frame.requestId, frame.blocks, frame.oldestHeight);
        return;
      case 'checkpoint-request':
        this.#d.driver.sync.onCheckpointRequest(from, frame.requestId, frame.fromEpoch);
        return;
      case 'history-request':
        this.#d.driver.sync.onHistoryRequest(from, frame.requestId, frame.belowHeight, frame.max);
        return;
      case 'checkpoint-response':
      case 'history-response':
        // A validator joins from a checkpoint never (it asks nobody): an answer to nothing.
        this.#useless(from, 'unsolicited', { kind: frame.type }, this.uselessCost(bytes.length));
        return;
      case 'tx-batch':
        this.#batches.onBatch(from, frame.txs);
        return;
      case 'reconfig-forward':
        this.#changes.onForward(from, frame.epoch, frame.tx);
        return;
      default: {
        const never: never = frame;
        this.#d.log.warn({ from, frame: never }, 'unknown frame');
      }
    }
  }

  /** What makes a frame useless before it is decoded (by its kind and view, or request id), or null. */
  #earlyRefusal(from: number, p: FramePeek): { reason: string; detail: string; offence?: true } | null {
    // A peer outside the set (an observer, a removed member, a stranger) may only send OUTSIDE_KINDS:
    // anything else from it is refused by its kind, never decoded.
    if (isOutside(from) && !OUTSIDE_KINDS.has(p.kind)) {
      // Of another epoch, it may be a member of that epoch's set: one a change removed, still in
      // the epoch that removed it (told how it ended, or it would never learn), or one a change
      // seated while this member is behind. No use here, and no offence (a flood still mutes).
      return this.#otherEpoch(from, p) ?? { reason: 'not_validator', detail: `${p.kind} from a peer outside the validator set`, offence: true };
    }
    if (p.kind === 'checkpoint-response' || p.kind === 'history-response') return { reason: 'unsolicited', detail: `${p.kind}: a validator asks for none` };
    if (p.kind === 'block-response') {
      return this.#d.driver.sync.expects(from, p.requestId ?? 0) ? null : { reason: 'unsolicited', detail: `no request ${p.requestId} to it` };
    }
    if (p.kind === 'batch-response') {
      return this.#fetch.expects(from, p.requestId ?? 0) ? null : { reason: 'unsolicited', detail: `no batch request ${p.requestId} to it` };
    }
    if (p.kind === 'reconfig-forward') {
      const ours = this.#d.driver.engine.epoch;
      return p.epoch === ours ? null : { reason: 'wrong_epoch', detail: `${p.kind} of epoch ${p.epoch}, at epoch ${ours}` };
    }
    if (p.view === undefined) return null;
    const other = this.#otherEpoch(from, p);
    if (other) return other;
    const view = this.#d.driver.engine.view;
    if (p.view + STALE_VIEWS < view) return { reason: 'stale', detail: `${p.kind} for view ${p.view}, at ${view}` };
    const ahead = p.kind === 'proposal' ? AHEAD_PROPOSAL_VIEWS : p.kind === 'vote' ? 1 : Infinity;
    if (p.view > view + ahead) return { reason: 'far_future', detail: `${p.kind} for view ${p.view}, at ${view}` };
    return null;
  }

  /**
   * Another epoch's message is no use to this engine (its views say nothing against ours): refused
   * undecoded. A member still in an epoch that ended here is told how it ended (at most once a
   * second per peer: what it says of itself is not verified, and this answer is bounded).
   */
  #otherEpoch(from: number, p: FramePeek): { reason: string; detail: string } | null {
    const ours = this.#d.driver.engine.epoch;
    if (p.epoch === undefined || p.epoch === ours) return null;
    if (p.epoch < ours) this.#d.driver.answerLaggard(from, p.epoch);
    return { reason: 'wrong_epoch', detail: `${p.kind} of epoch ${p.epoch}, at epoch ${ours}` };
  }

  #onMessage(from: number, message: ConsensusMessage, bytes: number, receivedMs: number, parts?: BlockPart[]): void {
    const { observer } = this.#d;
    // Another epoch's message is no use to this engine (it would refuse it as wrong_epoch): refused
    // before its signatures are checked, as a useless token of the sender's.
    const epoch = message.type === 'proposal' ? message.block.header.epoch : message.epoch;
    if (epoch !== this.#d.driver.engine.epoch) {
      this.#useless(from, 'wrong_epoch', { type: message.type, epoch, at: this.#d.driver.engine.epoch }, this.uselessCost(bytes));
      // A member still in an epoch that ended here: tell it how it ended, so it can follow.
      if (epoch < this.#d.driver.engine.epoch) this.#d.driver.answerLaggard(from, epoch);
      return;
    }
    // Cheap checks first, no signature yet: who signed it, who leads that view, its block's time.
    const why = this.#cheapCheck(from, message, receivedMs);
    if (why) {
      this.#refuse(from, why.reason, { type: message.type, detail: why.detail });
      // A leader's own proposal that broke a rule: its view is lost here, give it up now.
      if (message.type === 'proposal' && why.reason === 'bad_block_time') this.#d.driver.enqueue({ type: 'leader-offence', peer: from, view: message.view });
      return;
    }
    // Within what mayLead allows, a proposal from (or a vote to us as) a member that does not lead
    // a view our record settles is no use, before any signature is checked: a useless token, not
    // a strike — a proposer whose own record lags may honestly think it leads.
    if (message.type === 'proposal' || message.type === 'vote') {
      const leader = this.#d.driver.engine.settledLeaderOf(message.view);
      if (leader !== undefined && leader !== (message.type === 'proposal' ? message.sender : this.#d.driver.self)) {
        this.#useless(from, 'not_leader', { type: message.type, view: message.view, leader }, this.uselessCost(bytes));
        return;
      }
    }
    if (!this.#firstSeen(from, message)) {
      this.#useless(from, 'duplicate', { type: message.type, view: message.type === 'qc' ? message.qc.view : message.view }, this.uselessCost(bytes));
      return;
    }
    if (message.type === 'new-view' && !this.#claimAllowed(from)) {
      this.#useless(from, 'new_view_churn', { view: message.view, at: this.#d.driver.engine.view }, this.uselessCost(bytes));
      return;
    }
    const queued = this.#verify.push(from, bytes, () => {
      // Muted while it waited (an earlier message of its failed): dropped unread, as at the door.
      if (this.penalties.muted(from)) {
        observer?.frameRejected?.(from, 'refused:muted');
        return Promise.resolve();
      }
      // Its epoch ended while it waited: checked now, it would be checked with the next epoch's
      // keys (another key at its sender's number after a rotation or a removal, another quorum
      // after any change of size) and strike an honest sender; the next engine refuses it anyway.
      if (epoch !== this.#d.driver.engine.epoch) {
        observer?.frameRejected?.(from, 'refused:epoch_ended_in_queue');
        return Promise.resolve();
      }
      return this.#verifyQueued(from, message, bytes, parts);
    });
    if (!queued) this.#useless(from, 'verification_backlog', { waiting: this.#verify.waitingFrom(from) }, this.uselessCost(bytes));
  }

  /** Checks the signatures of a message that passed every cheap check, and hands it on (or strikes its sender). */
  #verifyQueued(from: number, message: ConsensusMessage, bytes: number, parts?: BlockPart[]): Promise<void> {
    const { log, observer, driver } = this.#d;
    // The epoch it is checked in (its keys, and the set `from` numbers the sender by): the check
    // runs on the thread pool, and the epoch may end before it answers.
    const epoch = driver.engine.epoch;
    return driver.verifier.verifyMessage(message).then((r) => {
      if (!r.ok) {
        const view = message.type === 'qc' ? message.qc.view : message.view;
        // Struck under the numbers in force now: after a removal `from` names whoever moved into
        // it, so the sender is found again by its peer id (nobody, if it is seated no more).
        const sender = driver.indexNow(epoch, from);
        // A signature that fails is the sender's own doing (the channel is authenticated, nobody
        // relays another's message), so it strikes as a useless message costs: by its size. A
        // forged vote is one strike; a forged 4 MiB proposal mutes at once, where sixteen of them
        // (64 MiB read, forwarded and decoded by this member) took a mute before.
        const muted = sender === undefined ? 0 : this.penalties.strike(sender, this.uselessCost(bytes));
        const count = sender === undefined ? 1 : this.penalties.logCount(sender, 'invalid_signature');
        if (count > 0 || muted) log.warn({ from, epoch, what: r.what, signer: r.sender, view, count, ...(muted ? { mutedForMs: muted } : {}) }, 'invalid signature: message dropped');
        observer?.invalidSignature?.(from, r.what, view, epoch);
        // The view given up is the epoch's own: the next engine's views and leaders are others.
        if (message.type === 'proposal' && epoch === driver.engine.epoch) driver.enqueue({ type: 'leader-offence', peer: from, view });
        return;
      }
      // The block's contents (transaction root, state hash, exactly-once) are checked by the engine
      // through libs/blocks once the parent is known — after the signatures, never twice.
      // Not awaited: a proposal waiting for its batches must not hold a verification slot.
      if (message.type === 'proposal' && parts) return void this.#resolve(from, message, parts);
      this.#d.driver.enqueue({ type: 'message', message });
    }, (err: unknown) => {
      log.error({ from, err: errorMessage(err) }, 'verification failed');
    });
  }

  /**
   * A verified proposal that names batches: its block gets the transactions they resolve to, then
   * goes to the engine. Parts that do not add up (a batch of another size than named, a block over
   * its limits) are the proposer's offence; batches nobody served in time cost the view only.
   */
  async #resolve(from: number, message: Extract<ConsensusMessage, { type: 'proposal' }>, parts: BlockPart[]): Promise<void> {
    const { driver, log, observer } = this.#d;
    const r = await this.#fetch.resolve(from, parts, () => driver.engine.epoch === message.block.header.epoch && driver.engine.view <= message.view);
    if (r.ok) {
      rememberIds(r.txs, r.ids, r.leaves);
      driver.batches.noteBlock(toHex(message.block.hash), parts.flatMap((p) => ('batch' in p ? [toHex(p.batch.digest)] : [])));
      driver.enqueue({ type: 'message', message: { ...message, block: { ...message.block, txs: r.txs } } });
      return;
    }
    if ('error' in r) {
      this.#refuse(from, 'bad_parts', { view: message.view, detail: r.error });
      driver.enqueue({ type: 'leader-offence', peer: from, view: message.view });
      return;
    }
    const missing = 'unavailable' in r ? r.unavailable.length : undefined;
    log.warn({ from, view: message.view, ...(missing === undefined ? { busy: true } : { missing }) }, 'proposal dropped: its batches did not arrive');
    observer?.frameRejected?.(from, 'refused:batches_unavailable');
  }

  /** Why a message fails a check that needs no signature, or null. */
  #cheapCheck(from: number, m: ConsensusMessage, receivedMs: number): { reason: string; detail: string } | null {
    // QC announcements carry no sender signature of their own: their votes are what count.
    if (m.type === 'qc') return null;
    // Validators send their own messages; nobody relays another's, so a mismatch is a forgery.
    if (m.sender !== from) return { reason: 'wrong_sender', detail: `signed as validator ${m.sender}` };
    if (m.type === 'proposal') {
      // Only who could lead the view under any record (schedule.ts mayLead) is spared the strike: a
      // member whose record lags may judge the leader otherwise (the settled leader, below).
      if (!mayLead(m.view, m.sender, this.#d.driver.validatorCount)) return { reason: 'not_leader', detail: `validator ${m.sender} cannot lead view ${m.view}` };
      const late = this.#d.blockTime ? blockTimeError(m.block.header.timestampMs, receivedMs, this.#d.blockTime) : null;
      if (late) return { reason: 'bad_block_time', detail: `proposal for view ${m.view}: ${late}` };
    }
    // Votes go to the leader of their view, and nobody else.
    if (m.type === 'vote' && !mayLead(m.view, this.#d.driver.self, this.#d.driver.validatorCount)) return { reason: 'not_leader', detail: `vote for view ${m.view}, which we cannot lead` };
    return null;
  }

  /**
   * Whether this is the first time `from` sent this message (by what it says, not its signature
   * bytes: a re-signed repeat is as useless), and for a vote, one of the first two for its view
   * and phase. An honest member repeats only a NEW-VIEW, once per view timer, in case the first
   * was lost.
   */
  #firstSeen(from: number, m: ConsensusMessage): boolean {
    const epoch = this.#d.driver.engine.epoch;
    if (epoch !== this.#seenEpoch) {
      this.#seen.clear();
      this.#seenEpoch = epoch;
    }
    const key = messageKey(m);
    let seen = this.#seen.get(from);
    if (!seen) this.#seen.set(from, (seen = new Set()));
    if (seen.has(key)) return false;
    // A vote names its block, so votes for one (view, phase) with other blocks are each new by what
    // they say: an honest member sends one; a second is equivocation, checked once for its evidence
    // (kept once per view and kind, evidence.ts); a third and later prove nothing more. Without
    // this a flood of votes with random blocks cost a leader a verification each until the strikes
    // muted the sender (a CI run verified 121 of 2,100 such forged votes).
    if (m.type === 'vote') {
      const slot = `V${m.view}:${m.phase}`;
      if (seen.has(`${slot}#2`)) return false;
      seen.add(seen.has(`${slot}#1`) ? `${slot}#2` : `${slot}#1`);
    }
    seen.add(key);
    while (seen.size > SEEN_PER_PEER) seen.delete(seen.values().next().value!);
    return true;
  }

  /** Whether another NEW-VIEW of `from` may be taken in our current view (and counts it). */
  #claimAllowed(from: number): boolean {
    const { view, epoch } = this.#d.driver.engine;
    let c = this.#claims.get(from);
    if (!c || c.view !== view || c.epoch !== epoch) this.#claims.set(from, (c = { epoch, view, count: 0 }));
    return ++c.count <= NEW_VIEWS_PER_VIEW;
  }

  /** Sends this member's clients' stale transactions again (batch-intake.ts reofferStale). */
  reofferStale(nowMs: number): number {
    return this.#batches.reofferStale(nowMs);
  }

  /** A transaction a client gave us (with its id, hashed at intake): queued locally by the caller, then sent in a batch. */
  gossip(tx: Uint8Array, id?: Uint8Array): void {
    this.#batches.gossip(tx, id);
  }
}

/** What a message says, as a short key: two messages with one key are one message, twice. */
function messageKey(m: ConsensusMessage): string {
  switch (m.type) {
    case 'proposal': return `p${m.view}:${toHex(m.block.hash)}`;
    case 'vote': return `v${m.view}:${m.phase}:${toHex(m.blockHash)}`;
    case 'new-view': return `n${m.view}:${m.highQC.view}:${m.highQC.signers.length}:${toHex(m.highQC.blockHash)}`;
    case 'qc': return `q${m.qc.view}:${m.qc.phase}:${toHex(m.qc.blockHash)}`;
  }
}
