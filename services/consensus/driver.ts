// The consensus driver: runs the pure HotStuff engine and carries out its actions — the only
// place where the engine's decisions become I/O. Events are stepped one at a time; the actions
// of a step run in order, and a `persist` or `commit` is durable before the next action runs
// (so nothing that depends on it can leave first). Signatures are requested from the signer
// and fed back as events; timers come from the injected clock.
// With `epochs` (the service), one engine runs per epoch: when the block carrying a change commits,
// the proof is recorded (the store), shown to the signer, and the next epoch's engine starts from
// that block with the next set — in that order, each done before the next. What an epoch's
// engine is built from, what a submitted change must pass and how the signer and laggards are
// told are in epoch-switch.ts; the retried writes (a full disk) in durable-writes.ts.

import type { Logger } from 'pino';
import { toHex } from '#libs/crypto/index.ts';
import { txHashesOf } from './tx-hashes.ts';
import type { BlockPart } from '#libs/blocks/index.ts';
import { FedError, errorMessage, isFedError } from '#libs/errors/index.ts';
import {
  historyViews, isProbeView, createEngine, restoreEngine, genesisBlock, type Block, type EngineAction, type EngineConfig, type EngineEvent,
  type ConsensusMessage, type HotStuffEngine, type SignedMessage, type TimeoutConfig,
} from '#libs/hotstuff/index.ts';
import { encodeFrame, type Frame } from '#libs/wire/index.ts';
import type { EpochChangeProof } from '#libs/verify/index.ts';
import type { ConsensusEpochs, Epoch } from './epochs.ts';
import type { BlockStore } from './block-store.ts';
import type { Mempool } from './mempool.ts';
import { BatchStore } from './batches.ts';
import { buildBlock, inFlightTxs, payloadError } from './payload.ts';
import { isOutside, type Clock, type DriverObserver, type SignerPort, type TransportPort } from './ports.ts';
import { PeerPenalties, REPEATED_REFUSAL_WEIGHT } from './penalties.ts';
import { worthLogging } from './client-limits.ts';
import { IdleWork } from './idle-work.ts';
import { SyncClient } from './sync.ts';
import { DurableWrites } from './durable-writes.ts';
import { currentRecord, epochEngineConfig, epochEngineDeps, LaggardAnswers, renumbering, showSignerProof, type PendingChange } from './epoch-switch.ts';
import { PendingChangeHolder } from './pending-change.ts';
import type { SignatureVerifier } from './verifier.ts';

export interface DriverOptions {
  engine: EngineConfig;
  maxBlockTxs: number;
  maxBlockBytes: number;
  /**
   * conf consensus.idle_heartbeat: above 0, idle views (libs/hotstuff idle.ts) — the engine is told
   * whether there is work (transactions in the pool, a change to propose, or this long since the
   * last commit here); 0 or absent, a block every view.
   */
  idleHeartbeatMs?: number;
}

export interface DriverDeps {
  store: BlockStore;
  pool: Mempool;
  /** Without `epochs`: the one verifier of the genesis set, and `opts.engine`'s set is the only one. */
  verifier?: SignatureVerifier;
  /** The chain's epochs (the service): each epoch's set, root and verifier; the driver moves them on. */
  epochs?: ConsensusEpochs;
  signer: SignerPort;
  transport: TransportPort;
  clock: Clock;
  log: Logger;
  observer?: DriverObserver;
}

/** Engine rejections of messages that verified but changed nothing: budgeted, not offences (penalties.ts). */
const USELESS: ReadonlySet<string> = new Set(['stale', 'duplicate', 'wrong_view', 'unknown_block']);

/** Events kept while the store cannot be written; more are dropped (peers resend, sync fills in). */
const STALLED_QUEUE_LIMIT = 10_000;

export class ConsensusDriver {
  #engine: HotStuffEngine;
  readonly sync: SyncClient;
  /** Strikes and mutes per validator: the inbound path drops a muted validator's frames unread. */
  readonly penalties: PeerPenalties;
  /** The batches this member holds, its own and other validators' (batches.ts); proposals name them. */
  readonly batches: BatchStore;
  /** This member's recent blocks that name batches (hex hash → their parts): how its proposals travel. */
  readonly #parts = new Map<string, BlockPart[]>();
  readonly #opts: DriverOptions;
  readonly #deps: DriverDeps;
  readonly #genesis: Block;
  readonly #queue: EngineEvent[] = [];
  #draining = false;
  /** The drain under way (or the last one): what stop() waits for. */
  #drainRun: Promise<void> | undefined;
  #timer: { cancel(): void } | undefined;
  #paused = false;
  #stopped = false;
  #failure: Error | undefined;
  /** Writes the next actions depend on, retried while the store cannot be written (a full disk). */
  readonly #writes: DurableWrites;
  /** The view we are in and when we entered it (clock.now()): how long views take (view-timed). */
  #entered: { view: number; at: number } | undefined;
  /** The verifier of the epoch the engine runs. */
  #verifier: SignatureVerifier;
  /** The engine's config for the epoch it runs. */
  #config: EngineConfig;
  /** The change this member proposes when it leads (SubmitReconfiguration, or forwarded by another validator), until its epoch ends. */
  readonly #change: PendingChangeHolder;
  /** Invalid blocks refused per sender (validator or outside peer), for the log's 1st, 2nd, 4th, … (bounded). */
  #invalidBlocks = new Map<number, number>();
  /** Between the end of an epoch and the start of the next: recorded, the signer not yet told. */
  #switching: string | undefined;
  /** This member is not in the current epoch's set (removed): it votes no more. */
  #retired = false;
  /** Members still in an epoch that ended here, told how it ended (answerLaggard). */
  readonly #laggards: LaggardAnswers;
  /** Idle views: whether this member has work, told to the engine (idle-work.ts); absent, a block every view. The epoch's heartbeat. */
  #idle: IdleWork | undefined;
  /**
   * The last block this driver committed: the parent the next commit checks its content against,
   * without reading the whole block (thousands of transactions) back from the store and decoding it.
   */
  #lastCommitted: Block | undefined;
  /** The leader schedule's skipped members last reported (#noteSkipped), joined by commas. */
  #skippedKey = '';

  constructor(opts: DriverOptions, deps: DriverDeps) {
    this.#opts = opts;
    this.#deps = deps;
    this.#writes = new DurableWrites({ log: deps.log, clock: deps.clock, stopped: () => this.#stopped });
    this.#change = new PendingChangeHolder({ epochs: deps.epochs, store: deps.store, transport: deps.transport, clock: deps.clock, log: deps.log,
      encode: (frame) => this.#encode(frame), switching: () => this.#switching, stopped: () => this.#stopped, changed: () => this.workChanged() });
    // Each sender's batches up to eight blocks' worth: a backlog that outgrows it travels inline.
    this.batches = new BatchStore({ maxBytesPerHolder: 8 * opts.maxBlockBytes, maxBatchesPerHolder: 4096, epoch: deps.epochs?.current.number ?? 0 });
    const epoch = deps.epochs?.current;
    if (!epoch && !deps.verifier) throw new FedError('DRIVER_CONFIG', 'the driver needs epochs or a verifier');
    this.#verifier = epoch?.verifier ?? deps.verifier!;
    this.#idleFor(epoch);
    this.#config = epoch ? epochEngineConfig(opts.engine, epoch, this.#idle !== undefined, deps.store)
      : { ...opts.engine, waitForWork: this.#idle !== undefined, history: deps.store.committedViews(0, historyViews(opts.engine.validatorCount)) };
    this.#genesis = genesisBlock(opts.engine.chainId, deps.store.hashBlock);
    const root = epoch?.root ?? this.#genesis;
    const record = currentRecord(deps.store.load(root), root, epoch?.number ?? 0, deps.store, deps.log);
    this.#engine = record ? restoreEngine(this.#config, this.#engineDeps(epoch), record) : createEngine(this.#config, this.#engineDeps(epoch), this.#checkpoint(root));
    this.#laggards = new LaggardAnswers({ epochs: deps.epochs, clock: deps.clock, log: deps.log, transport: deps.transport, encode: (f) => this.#encode(f) });
    this.#retired = epoch !== undefined && epoch.set.self === undefined;
    this.penalties = new PeerPenalties({ now: () => deps.clock.now(), onMute: (peer, ms) => this.#onMute(peer, ms) });
    this.sync = new SyncClient({ chainId: opts.engine.chainId, store: deps.store, engine: this.#engine, verifier: this.#verifier,
      transport: deps.transport, log: deps.log.child({ module: 'sync' }), deliver: (e) => this.enqueue(e),
      onRefused: (from, reason) => {
        deps.observer?.rejected?.(from, `sync_${reason}`, '');
        // Being over the serving budget is no offence once; a flood of requests is.
        if (reason !== 'halted') this.#penalize(from, `sync_${reason}`, this.penalties.refusal(from, reason === 'repeated' ? REPEATED_REFUSAL_WEIGHT : 1));
      },
      onPruned: (from, oldestHeight) => deps.observer?.prunedAnswer?.(from, oldestHeight),
      onOffence: (from, reason, detail) => {
        deps.observer?.rejected?.(from, reason, detail);
        this.#penalize(from, reason, this.penalties.strike(from), detail);
      } });
    deps.log.info({ epoch: this.#config.epoch ?? 0, view: this.engine.view, committed: this.engine.committed.header.height, restored: record !== undefined }, 'engine ready');
  }

  /**
   * With no safety state of this epoch, the block a fresh engine starts from when the committed log
   * ends above the epoch's root: a join from a checkpoint (main.ts catch-up) left it there.
   */
  #checkpoint(root: Block): Block | undefined {
    const { store } = this.#deps;
    const tip = store.committedHeight();
    if (tip <= root.header.height) return undefined;
    const block = store.blockAtHeight(tip);
    if (!block) throw new FedError('STORE_CORRUPT', `committed height ${tip} has no block`);
    return block;
  }

  /**
   * The leader schedule's skipped members in `view`, logged and reported when they change: who
   * lost its turns for want of committed blocks, and who got them back (a probe rotation is not a
   * change: the record is what it was).
   */
  #noteSkipped(view: number): void {
    if (isProbeView(view, this.validatorCount)) return;
    const skipped = this.engine.skippedLeaders(view);
    const key = skipped.join(',');
    if (key === this.#skippedKey) return;
    const before = this.#skippedKey;
    this.#skippedKey = key;
    if (skipped.length > 0 || before !== '') {
      this.#deps.log.warn({ view, skipped, before: before === '' ? [] : before.split(',').map(Number) },
        skipped.length > 0 ? 'leader schedule: validators without a committed block of their own in their recent views lead no views (their views go to the next in the ring)' : 'leader schedule: every validator leads its views again');
    }
    this.#deps.observer?.leadersSkipped?.(view, skipped);
  }

  /** The engine of the epoch this member runs (replaced when an epoch ends). */
  get engine(): HotStuffEngine { return this.#engine; }
  /** The engine holds a commit QC whose block's ancestry it is fetching: behind, for as long as a sync lasts (catching-up.ts). */
  get fetchingCommit(): boolean { return this.#engine.fetching.pendingCommit !== null; }
  /** This member's validator index in the current epoch. */
  get self(): number { return this.#config.self; }
  /** The current epoch's validator count. */
  get validatorCount(): number { return this.#config.validatorCount; }
  /** The current epoch (0 without epochs). */
  get epoch(): number { return this.#config.epoch ?? 0; }
  /** Why consensus is between two epochs right now, if it is. */
  get switching(): string | undefined { return this.#switching; }
  /** This member is not a validator of the current epoch. */
  get retired(): boolean { return this.#retired; }

  /** Idle views with epoch `e`'s heartbeat (a committed change's, else conf.yaml's): a new IdleWork when it changed. */
  #idleFor(e: Epoch | undefined): void {
    const ms = e?.params?.idleHeartbeatMs ?? this.#opts.idleHeartbeatMs ?? 0;
    if ((this.#idle?.heartbeatMs ?? 0) === ms) return;
    this.#idle?.stop();
    const { clock, pool } = this.#deps;
    this.#idle = ms > 0 ? new IdleWork(ms, { clock, pending: () => pool.size > 0 || this.#change.change !== undefined, tell: (available) => this.enqueue({ type: 'work', available }) }) : undefined;
  }

  /** The view timer this epoch runs (its base, this member's back-off) and its idle heartbeat (0: a block every view). */
  get timing(): { timeouts: TimeoutConfig; idleHeartbeatMs: number } {
    return { timeouts: this.#config.timeouts, idleHeartbeatMs: this.#idle?.heartbeatMs ?? 0 };
  }

  #engineDeps(e: Epoch | undefined) {
    return epochEngineDeps(this.#opts.engine.chainId, this.#deps.store, this.#verifier, e);
  }

  /**
   * `peer` sent a message of `epoch`, which has ended here: tell it how — the epoch's commit QC, as
   * an announcement of that epoch. It verifies it with that epoch's keys, fetches the blocks it
   * certifies (we keep them) and commits the epoch's end as it would have, then starts the next
   * epoch itself. At most once a second per peer (a laggard times out and asks again).
   */
  answerLaggard(peer: number, epoch: number): void {
    this.#laggards.answer(peer, epoch);
  }

  /**
   * An operator's reconfiguration transaction (btcfed reconfigure assemble), checked against the
   * current epoch's set and quorum: this member puts it in the next block it proposes, and passes
   * it on to every validator, which do the same when they lead. One change per epoch: another while
   * one is pending is refused. Returns the change's id (pending-change.ts).
   */
  submitChange(tx: Uint8Array): string {
    return this.#change.submit(tx).id;
  }

  /** submitChange, and the change kept on disk before it is passed on and this returns (the admin API's path). */
  async submitChangeDurably(tx: Uint8Array): Promise<string> {
    return (await this.#change.submitDurably(tx)).id;
  }

  /** A change another validator forwarded, checked by the inbound path (change-intake.ts): pending here and kept on disk. */
  adoptChange(change: PendingChange, from: number): void {
    this.#change.adopt(change, from);
  }

  /**
   * The number in the current epoch's set of the member that was validator `index` of `epoch`
   * (found by its peer id; outside peers keep theirs), or undefined when it is seated no more or
   * `epoch` is not known here.
   */
  indexNow(epoch: number, index: number): number | undefined {
    if (epoch === this.epoch) return index;
    const then = this.#deps.epochs?.setOf(epoch);
    const now = this.#deps.epochs?.setOf(this.epoch);
    return then && now ? renumbering(then, now)(index) : undefined;
  }

  /** The epoch this member runs (undefined: it runs one epoch only). */
  get currentEpoch(): Epoch | undefined { return this.#deps.epochs?.current; }
  /** The change pending here, proposed when this member leads. */
  get pendingChange(): PendingChange | undefined { return this.#change.change; }

  get paused(): boolean { return this.#paused; }
  get pool(): Mempool { return this.#deps.pool; }
  get verifier(): SignatureVerifier { return this.#verifier; }
  get failure(): Error | undefined { return this.#failure; }
  /** Set while a write of the block store fails and is retried (nothing is voted meanwhile). */
  get storageError(): string | undefined { return this.#writes.error; }
  get genesis(): Block { return this.#genesis; }

  /** The consensus fields of GetStatus (see api.ts ServedNode). */
  status(): { view: number; phase: string; leader: number; lockedQcView: number; highQcView: number; paused: boolean; halted: boolean; observer: boolean; sourceHeight: number; behind: number; epoch: number } {
    const e = this.engine;
    const s = e.safety;
    return {
      view: e.view, phase: s.lastVoted.view === e.view ? ['', 'prepare', 'pre-commit', 'commit'][s.lastVoted.phase] ?? 'idle' : 'idle',
      leader: e.leaderOf(e.view), lockedQcView: s.lockedQC.view, highQcView: s.prepareQC.view,
      paused: this.#paused, halted: e.halted || this.#failure !== undefined, observer: false, sourceHeight: 0, behind: 0, epoch: this.epoch,
    };
  }

  start(): void {
    this.#change.resume();
    this.enqueue({ type: 'start' });
    this.#idle?.check();
  }

  /** Idle views: a transaction or a change came (cheap unless the engine was told there is no work). */
  workChanged(): void {
    this.#idle?.changed();
  }

  /** Whether a transaction (by hash) is in the committed log. */
  isCommitted = (hash: Uint8Array): boolean => this.#deps.store.hasTx(hash);

  /**
   * Stops: no event is taken after the one being handled. Resolves once that one's actions are done,
   * so a write in flight ends before the caller closes the store (the store would cut it short).
   */
  stop(): Promise<void> {
    this.#stopped = true;
    this.#timer?.cancel();
    this.#change.stop();
    this.#idle?.stop();
    return this.#drainRun ?? Promise.resolve();
  }

  /** Operator control: refuse to sign anything (so no proposal, vote or new-view) until resumed. */
  setPaused(paused: boolean): void {
    this.#paused = paused;
    this.#deps.log.warn({ paused }, paused ? 'consensus paused by operator' : 'consensus resumed by operator');
  }

  /** Operator control: give up on the current view as if its timer had fired. */
  forceViewChange(): number {
    const view = this.engine.view;
    this.enqueue({ type: 'timer-fired', view, force: true });
    return view;
  }

  /**
   * A peer was muted: its gateway drops its frames at the edge for as long, and while a validator
   * is muted the views it leads are given up at once (libs/hotstuff suspicion.ts) — we could not
   * hear its proposal anyway. The engine is told again when the mute ends.
   */
  #onMute(peer: number, ms: number): void {
    const { transport, observer } = this.#deps;
    observer?.muted?.(peer, ms);
    transport.mute?.(peer, ms, 'offences');
    if (isOutside(peer)) return;
    this.#tellMuted(peer, ms);
  }

  /**
   * The engine gives a muted validator's views up at once (suspicion.ts) until the mute ends. Each
   * engine is told by its own epoch's numbers: a mute's end that comes after the epoch did names
   * nobody (the next engine was told again at the switch, under the member's new number).
   */
  #tellMuted(peer: number, ms: number): void {
    const engine = this.#engine;
    this.enqueue({ type: 'peer-muted', peer, muted: true });
    this.#deps.clock.setTimeout(() => { if (this.#engine === engine && !this.penalties.muted(peer)) this.enqueue({ type: 'peer-muted', peer, muted: false }); }, ms + 1);
  }

  /**
   * The gateway says a validator's consensus is gone (its gateway said it detached, or every
   * connection to it closed) or back: while absent, the views it leads are given up at once
   * (libs/hotstuff suspicion.ts) instead of after the view timer.
   */
  peerPresence(peer: number, present: boolean): void {
    if (peer === this.#config.self || isOutside(peer)) return;
    this.enqueue({ type: 'peer-absent', peer, absent: !present });
  }

  /**
   * Operator control (AdminService Unmute): forgive a peer — its mute lifted here and at the
   * gateway, its strikes and its leader-suspicion record cleared. True when it was muted.
   */
  forgive(peer: number): boolean {
    const was = this.penalties.forgive(peer);
    this.#deps.transport.mute?.(peer, 0, 'forgiven by the operator');
    if (!isOutside(peer)) {
      this.enqueue({ type: 'peer-muted', peer, muted: false });
      this.enqueue({ type: 'forgive', peer });
    }
    this.#deps.log.warn({ peer, wasMuted: was }, 'peer forgiven by the operator: mute and suspicion cleared');
    return was;
  }

  /** Says which offence muted a validator, so an operator can tell a Byzantine peer from a false alarm. */
  #penalize(from: number, reason: string, mutedForMs: number, detail?: string): void {
    if (mutedForMs > 0) this.#deps.log.warn({ from, reason, detail, mutedForMs }, 'validator muted');
  }

  enqueue(event: EngineEvent): void {
    if (this.#stopped || this.#failure) return;
    if ((this.#writes.error !== undefined || this.#switching !== undefined) && this.#queue.length >= STALLED_QUEUE_LIMIT) {
      // Stalled on the disk: what peers send meanwhile is dropped past a bound (it is sent again,
      // or fetched by sync, once we move on); counted and said once per stall.
      if (this.#writes.dropped++ === 0) this.#deps.log.warn({ queued: this.#queue.length }, 'events dropped while the store cannot be written');
      return;
    }
    this.#queue.push(event);
    if (!this.#draining) this.#drainRun = this.#drain();
  }

  async #drain(): Promise<void> {
    this.#draining = true;
    try {
      while (this.#queue.length > 0 && !this.#stopped && !this.#failure) {
        const event = this.#queue.shift()!;
        const engine = this.#engine;
        for (const action of engine.step(event)) {
          // The step that ended an epoch may hold more after its epoch-ended action: the ended
          // engine's safety state (its commit mark moved in that step), written after the switch
          // had cleared it, would bring a restart back at that epoch's view and lock. Nothing an
          // ended engine asks for is of use to the next one.
          if (this.#engine !== engine) break;
          await this.#execute(action);
        }
      }
    } catch (err) {
      if (this.#stopped) {
        // Stopping, and the store was closed under a write that stop() was not waited for: LMDB
        // wrote all of it or none, nothing that depended on it was sent, and the next start reads
        // the store as it is.
        this.#deps.log.warn({ err: errorMessage(err) }, 'consensus driver stopped during a write: the store was closed under it, and keeps what it wrote');
        return;
      }
      // A failed persist or commit means our disk state is unknown: stop rather than risk safety.
      this.#failure = err instanceof Error ? err : new Error(String(err));
      this.#timer?.cancel();
      this.#deps.log.error({ err: errorMessage(err) }, 'consensus driver stopped: it can no longer trust its state');
      this.#deps.observer?.halted?.(this.engine.committed.header.height, errorMessage(err));
    } finally {
      this.#draining = false;
    }
  }

  async #execute(a: EngineAction): Promise<void> {
    const { log, observer } = this.#deps;
    switch (a.type) {
      case 'persist':
        await this.#writes.run('persist', () => this.#deps.store.persist(a.safety, a.blocks, a.qcs, a.dropped));
        return;
      case 'sign':
        this.#sign(a.requestId, a.request);
        return;
      case 'send':
        this.#trustOwn(a.message);
        observer?.sent?.(a.message);
        this.#deps.transport.send(a.to, this.#encode({ type: 'consensus', message: a.message, parts: this.#partsOf(a.message) }));
        return;
      case 'broadcast':
        this.#trustOwn(a.message);
        observer?.sent?.(a.message);
        this.#deps.transport.broadcast(this.#encode({ type: 'consensus', message: a.message, parts: this.#partsOf(a.message) }));
        return;
      case 'commit': {
        await this.#commit(a.blocks, a.qc);
        // The engine cleared its work level with the commit: say again whether work remains.
        this.#idle?.committed();
        return;
      }
      case 'set-timer':
        this.#timer?.cancel();
        this.#timer = this.#deps.clock.setTimeout(() => this.enqueue({ type: 'timer-fired', view: a.view }), a.ms);
        this.#deps.observer?.timerSet?.(a.view, a.ms, a.level);
        return;
      case 'fetch':
        this.sync.fetch(a.hash, a.from, a.aboveHeight);
        return;
      case 'request-payload': {
        const inFlight = inFlightTxs(a.parentHash, this.engine.committed.header.height,
          (h) => this.engine.block(toHex(h)) ?? this.#deps.store.blockByHash(h));
        const change = this.#change.forEpoch(a.epoch);
        const { block, parts, named } = buildBlock(a, { chainId: this.#opts.engine.chainId, self: this.#config.self,
          maxBlockTxs: this.#opts.maxBlockTxs, maxBlockBytes: this.#opts.maxBlockBytes, hashBlock: this.#deps.store.hashBlock },
        this.#deps.pool, inFlight, this.#deps.clock.now(), change, this.batches);
        const inline = parts ? parts.filter((p) => 'tx' in p).length : block.txs.length;
        observer?.proposed?.(block.txs.length - inline, inline);
        if (parts) {
          const hex = toHex(block.hash);
          this.#parts.set(hex, parts);
          if (this.#parts.size > 4) this.#parts.delete(this.#parts.keys().next().value!);
          this.batches.noteBlock(hex, named);
        }
        this.enqueue({ type: 'payload-ready', view: a.view, block });
        return;
      }
      case 'rejected':
        log.debug({ from: a.from, reason: a.reason, detail: a.detail }, 'message rejected');
        observer?.rejected?.(a.from, a.reason, a.detail);
        if (a.from === null || a.from === this.#config.self) return;
        // A block that fails its content checks was signed (a proposal) or served (sync) by this
        // validator: an honest one never does either, so it is a strike.
        if (a.reason === 'invalid_block') {
          // An honest validator never signs or serves one: say why, for the 1st, 2nd, 4th, 8th, …
          // of each peer (a flood cannot flood the log; the metric counts them all).
          const nth = (this.#invalidBlocks.get(a.from) ?? 0) + 1;
          if (this.#invalidBlocks.size >= 1024 && !this.#invalidBlocks.has(a.from)) this.#invalidBlocks.clear();
          this.#invalidBlocks.set(a.from, nth);
          if (worthLogging(nth)) log.warn({ from: a.from, nth, detail: a.detail }, 'invalid block refused');
          this.#penalize(a.from, a.reason, this.penalties.strike(a.from), a.detail);
        }
        // Valid but useless (it changed nothing): free at the rate honest members send such
        // messages, a strike beyond it — so replaying old, validly signed messages gets a
        // validator muted like forging them does.
        else if (USELESS.has(a.reason)) this.#penalize(a.from, a.reason, this.penalties.useless(a.from), a.detail);
        return;
      case 'evidence':
        log.debug({ offender: a.evidence.sender, view: a.evidence.view, kind: a.evidence.kind }, 'equivocation seen');
        observer?.evidence?.(a.evidence);
        return;
      case 'view-changed': {
        // How long the view we leave took, when it committed and we had been in it from its
        // start: a leader whose views keep taking far longer than the others' is suspected. A step
        // of the wall clock makes at most one view look slow (or is ignored, running backwards),
        // and one slow view is no suspicion.
        const now = this.#deps.clock.now();
        const left = this.#entered;
        this.#entered = { view: a.view, at: now };
        // With idle views a view lasts as long as there is nothing to do: it is timed from when
        // this member had work, and not at all when it had none (it cannot tell a leader's wait).
        const from = this.#idle ? this.#idle.timedFrom(left?.at) : left?.at;
        if (a.cause === 'commit' && left && left.view === a.view - 1 && from !== undefined) this.enqueue({ type: 'view-timed', view: left.view, ms: now - from });
        const leader = this.engine.leaderOf(a.view);
        log.info({ view: a.view, leader, cause: a.cause }, 'view started');
        this.penalties.viewEntered();
        observer?.viewChanged?.(a.view, leader, a.cause);
        this.#noteSkipped(a.view);
        return;
      }
      case 'view-skipped':
        log.info({ view: a.view, leader: a.leader, reason: a.reason }, 'view given up at once: its leader is suspected');
        observer?.viewSkipped?.(a.view, a.leader, a.reason);
        return;
      case 'halted':
        log.error({ height: a.height, committed: toHex(a.committed), conflicting: toHex(a.conflicting) },
          'two conflicting commits: more than f members are faulty; consensus halted');
        observer?.halted?.(a.height, `conflicting commit at height ${a.height}`);
        return;
      case 'epoch-ended':
        await this.#endEpoch({ last: a.last, suffix: a.suffix.map((b) => b.header), qc: a.qc });
        return;
      default: {
        const never: never = a;
        throw new FedError('DRIVER_UNKNOWN_ACTION', `unknown action ${JSON.stringify(never)}`);
      }
    }
  }

  #sign(requestId: number, request: Parameters<SignerPort['sign']>[0]): void {
    if (this.#paused) {
      queueMicrotask(() => this.enqueue({ type: 'signature-refused', requestId, reason: 'paused by operator' }));
      return;
    }
    // Answers for this engine only: request ids start again with every epoch's engine.
    const verifier = this.#verifier;
    const engine = this.#engine;
    const self = this.#config.self;
    const answer = (e: EngineEvent) => { if (this.#engine === engine) this.enqueue(e); };
    this.#deps.signer.sign(request).then(
      async (signature) => {
        if (this.#engine !== engine) return;
        if (!(await verifier.verifyGrant(self, request, signature))) {
          this.#deps.log.error({ requestId, kind: request.kind, view: request.view }, 'the signer returned a signature that does not verify under our key: not sent');
          answer({ type: 'signature-refused', requestId, reason: 'invalid signature from the signer' });
          return;
        }
        answer({ type: 'signature-ready', requestId, signature });
      },
      (err: unknown) => {
        const reason = errorMessage(err);
        if (isFedError(err, 'SIGNER_REFUSED')) this.#deps.log.warn({ requestId, kind: request.kind, view: request.view, reason }, 'signer refused');
        else this.#deps.log.warn({ requestId, kind: request.kind, view: request.view, err: reason }, 'signer unavailable');
        answer({ type: 'signature-refused', requestId, reason });
      },
    );
  }

  async #commit(blocks: readonly Block[], qc: Parameters<BlockStore['commit']>[1]): Promise<void> {
    const below = blocks[0]!.header.height - 1;
    // A committed height holds one block for good, so the one this driver committed there is the store's.
    let parent = this.#lastCommitted?.header.height === below ? this.#lastCommitted
      : this.#deps.store.blockAtHeight(below) ?? (below === 0 ? this.#genesis : undefined);
    for (const b of blocks) {
      const why = payloadError(b, parent);
      if (why) {
        // A quorum certified a block whose content does not add up: stop before it enters the log.
        throw new FedError('DIVERGENCE', `block ${b.header.height} (${toHex(b.hash)}): ${why}`);
      }
      parent = b;
    }
    await this.#writes.run('commit', () => this.#deps.store.commit(blocks, qc));
    this.#lastCommitted = blocks.at(-1);
    this.#deps.pool.removeCommitted(blocks.flatMap((b) => txHashesOf(b)));
    for (const b of blocks) this.batches.committed(toHex(b.hash));
    this.#deps.observer?.committed?.(blocks, qc);
  }

  #trustOwn(m: Parameters<SignatureVerifier['verifyMessage']>[0]): void {
    if (m.type !== 'qc') this.#verifier.trust(m as SignedMessage);
  }

  /**
   * The block carrying the change committed: record the proof (durable), show it to the signer
   * (retried until it answers: nothing can be signed for the next epoch before), then start the
   * next epoch's engine from the epoch's last block. A member the change removed stops voting.
   */
  async #endEpoch(proof: EpochChangeProof): Promise<void> {
    const epochs = this.#deps.epochs;
    const { log, observer, signer, clock } = this.#deps;
    if (!epochs) {
      // Without epochs no block ends one (no endsEpoch is passed): should one, say so loudly.
      log.error({ height: proof.last.header.height }, 'epoch ended, but this driver runs one epoch only');
      observer?.halted?.(proof.last.header.height, 'epoch ended; this driver runs one epoch only');
      return;
    }
    const ending = epochs.current.number;
    const before = epochs.current.set;
    this.#switching = `epoch ${ending} ended at height ${proof.last.header.height}; recording its proof`;
    this.#timer?.cancel();
    const next = await this.#writes.value('epoch', () => epochs.end(proof));
    this.#change.epochEnded();
    // The change submitted here (this one, or another that ended its epoch first) is forgotten: one
    // small write an epoch, made whether or not one is stored (reading it first would decode it).
    await this.#writes.value('pending change', () => this.#deps.store.setPendingChange(undefined));
    const seated = next.set.self !== undefined;
    this.#switching = `epoch ${ending} ended; showing the signer its proof`;
    if (!(await showSignerProof(signer, proof, next, { log, clock, stopped: () => this.#stopped }))) return;
    // Penalties, the pool's sources and the batches' holders and authors follow the member, not its
    // number: a removal renumbers those behind it. Renumbered in the step that swaps the engine and
    // tells the gateway the new set (epochStarted below): what was read while the signer was shown
    // the proof came numbered by the ended set. The batches' renumber carries `to` on to what is
    // kept per peer around them: the batch requests outstanding and served, the hand-off budgets
    // and the disk's write budget per holder (BatchStore.onRenumber, BatchKeeper.renumber).
    const to = renumbering(before, next.set);
    this.penalties.renumber(to);
    this.#deps.pool.renumber(to);
    this.batches.renumber(to, next.number, next.set.selfIndex);
    this.#verifier = next.verifier;
    this.#idleFor(next);
    this.#config = epochEngineConfig(this.#opts.engine, next, this.#idle !== undefined, this.#deps.store);
    this.#engine = createEngine(this.#config, this.#engineDeps(next));
    // What was queued for the ended engine names its views, its signer requests and validators by
    // the ended set's numbers: a presence, a mute or a refused proposal would land on whoever holds
    // that number now, a signature on another request of the same id. Only the work level stays;
    // presence is told again by the gateway under the new set, mutes just below.
    const carried = this.#queue.filter((e) => e.type === 'work');
    this.#queue.splice(0, this.#queue.length, ...carried);
    this.sync.setEngine(this.#engine, this.#verifier);
    this.#retired = !seated;
    this.#switching = undefined;
    this.#entered = undefined;
    log.warn({ epoch: next.number, root: toHex(next.root.hash).slice(0, 16), height: next.root.header.height, validators: next.set.n, self: next.set.selfIndex ?? null,
      baseTimeoutMs: this.#config.timeouts.baseMs, idleHeartbeatMs: this.#idle?.heartbeatMs ?? 0, params: next.params ? 'committed' : 'conf.yaml' },
      seated ? 'epoch started' : 'epoch started without this member: it was removed and votes no more');
    observer?.epochStarted?.(next.number, next.set, next.root, seated);
    if (seated) this.#queue.unshift({ type: 'start' });
    for (const p of this.penalties.summary()) if (p.muted && !isOutside(p.peer)) this.#tellMuted(p.peer, this.penalties.mutedFor(p.peer));
    // The new engine knows nothing of work yet.
    this.#idle?.reset();
  }

  /** How this member's own proposal travels: the parts its block was built with, if it named batches. */
  #partsOf(m: ConsensusMessage): BlockPart[] | undefined {
    return m.type === 'proposal' && m.sender === this.#config.self ? this.#parts.get(toHex(m.block.hash)) : undefined;
  }

  #encode(frame: Frame): Uint8Array {
    return encodeFrame(this.#opts.engine.chainId, frame);
  }
}
