// The engine's state and the few operations every role shares: the action buffer and the
// persist-before-send discipline, signature requests, view changes and rejections.
// What a persist carries is derived, not marked: flush compares the safety state with the
// last one persisted, so a role that changes a field cannot forget to persist it.
// The roles (replica.ts, leader.ts, synchronizer.ts, sync.ts) act on it; engine.ts
// dispatches events to them. Must never perform I/O or read a clock: it only appends actions.

import { bytesEqual, toHex } from './bytes.ts';
import { BlockTree } from './blocks.ts';
import type {
  EngineAction,
  EngineConfig,
  EngineDeps,
  RejectReason,
  SafetyState,
  SignRequest,
  ViewChangeCause,
  VoteMark,
} from './events.ts';
import { NewViewClaims, TimerLevel, viewTimeoutMs } from './pacemaker.ts';
import { QcVerifier } from './qc.ts';
import { faultBound, quorumSize } from './quorum.ts';
import { LeaderSchedule } from './schedule.ts';
import { LeaderSuspicion, type LeaderOutcome } from './suspicion.ts';
import { Phase, type Block, type Hash, type NewView, type Proposal, type QuorumCert, type Vote } from './types.ts';

/** Volatile state of the current view; dropped wholesale when the view changes. */
export interface ViewRound {
  view: number;
  /** Leader: a payload was requested (at most one proposal per view). */
  proposing: boolean;
  /** Leader: the QC the requested payload must extend. */
  justify: QuorumCert | null;
  ownProposal: Block | null;
  /** Leader: verified votes on ownProposal, per phase, per sender. */
  votes: Map<Phase, Map<number, Vote>>;
  qcFormed: Set<Phase>;
  /** First signed proposal / vote per sender, to detect equivocation. */
  seenProposals: Map<number, Proposal>;
  seenVotes: Map<string, Vote>;
  /** QC announcements already acted on in this view. */
  announced: Set<string>;
  /** A proposal waiting for missing ancestors. */
  waiting: Proposal | null;
  /** Our timer fired in this view (the timer level learns from it when the view ends). */
  timedOut: boolean;
  /** A QC of this view was seen: its leader performed (suspicion.ts learns from it). */
  certified: boolean;
  /** We gave this view up on entering it: its leader is suspected (suspicion.ts). */
  skipped: boolean;
  /** Its leader is suspected, but the view is quiet here (idle.ts): given up once it is not. */
  skipDeferred: boolean;
  /** Its leader was already judged failed in it (a proposal that broke a rule): not judged again at its end. */
  judged: boolean;
  /** Our timer fired in it while it was quiet and was re-armed instead (idle.ts). */
  idled: boolean;
}

export function newRound(view: number): ViewRound {
  return {
    view,
    proposing: false,
    justify: null,
    ownProposal: null,
    votes: new Map(),
    qcFormed: new Set(),
    seenProposals: new Map(),
    seenVotes: new Map(),
    announced: new Set(),
    waiting: null,
    timedOut: false,
    certified: false,
    skipped: false,
    skipDeferred: false,
    judged: false,
    idled: false,
  };
}

export interface WantedBlock {
  hash: Hash;
  from: number;
  attempts: number;
}

/**
 * What an ended view says of its leader: a QC of it formed; or the federation gave it up (a
 * quorum of NEW-VIEWs) without one reaching us, though we had not given it up ourselves; or
 * nothing (we were behind and jumped past it, or skipped it).
 */
function leaderOutcome(round: ViewRound, cause: ViewChangeCause): LeaderOutcome {
  if (round.certified) return 'certified';
  if (round.skipped || round.judged || cause !== 'new-view-quorum') return 'unknown';
  return 'failed';
}

export function voteAfter(a: VoteMark, view: number, phase: Phase): boolean {
  return view > a.view || (view === a.view && phase > a.phase);
}

/** Same certificate for the safety state: same phase, view and block (signer sets may differ). */
function sameQc(a: QuorumCert, b: QuorumCert): boolean {
  return a.phase === b.phase && a.view === b.view && bytesEqual(a.blockHash, b.blockHash);
}

const sameNumber = (a: number, b: number): boolean => a === b;

/**
 * One comparison per field of SafetyState: the mapped type makes a field added to SafetyState
 * without a comparison here a type error, so flush can never miss a change.
 */
const SAME_FIELD: { [K in keyof SafetyState]: (a: SafetyState[K], b: SafetyState[K]) => boolean } = {
  view: sameNumber,
  lockedQC: sameQc,
  prepareQC: sameQc,
  lastVoted: (a, b) => a.view === b.view && a.phase === b.phase,
  newViewTarget: sameNumber,
  lastCommitView: sameNumber,
  proposedView: sameNumber,
};

function safetyChanged(a: SafetyState, b: SafetyState): boolean {
  for (const k of Object.keys(SAME_FIELD) as (keyof SafetyState)[]) {
    const same = SAME_FIELD[k] as (x: unknown, y: unknown) => boolean; // a[k] and b[k] share k's type
    if (!same(a[k], b[k])) return true;
  }
  return false;
}

/** A copy later changes cannot reach (the roles replace lastVoted rather than edit it, but be sure). */
function snapshot(s: SafetyState): SafetyState {
  return { ...s, lastVoted: { ...s.lastVoted } };
}

export class EngineCore {
  readonly config: EngineConfig;
  readonly deps: EngineDeps;
  readonly n: number;
  readonly f: number;
  readonly quorum: number;
  readonly self: number;
  /** The epoch this engine runs (config.epoch, 0 by default). */
  readonly epoch: number;
  /** Genesis for epoch 0, otherwise the epoch's root block (config.root). */
  readonly genesis: Block;
  readonly qcs: QcVerifier;
  readonly tree: BlockTree;
  readonly claims: NewViewClaims;
  /** What recent views needed, added to the timer's back-off (volatile: a restart starts at 0). */
  readonly timerLevel: TimerLevel;
  /** Leaders whose views we give up at once (volatile, like the timer level). */
  readonly suspicion: LeaderSuspicion;
  /** Who leads which view, from the committed record (schedule.ts); config.leaderOf overrides it. */
  readonly schedule: LeaderSchedule;
  safety: SafetyState;
  round: ViewRound;
  out: EngineAction[] = [];
  readonly pendingSign = new Map<number, SignRequest>();
  nextRequestId = 1;
  signedNewView: NewView | null = null;
  readonly future = new Map<number, Proposal[]>();
  readonly wanted = new Map<string, WantedBlock>();
  /** Fetched blocks stored before their parent was known: parent hex → the child and who sent it, re-checked when it comes. */
  readonly uncheckedChild = new Map<string, { hex: string; from: number | null }>();
  pendingCommit: QuorumCert | null = null;
  halted = false;
  /** The block that ends this epoch is committed: nothing more happens in this engine. */
  ended = false;
  /** The driver's last `work` level (idle.ts). */
  workAvailable = false;
  /**
   * A block committed in this engine (volatile: a restart, or a new epoch's engine, starts false).
   * Before it, a failed view is no failure of its leader (advance): see there.
   */
  committedHere = false;
  /** Set by engine.ts: replays buffered proposals and lets a new leader propose. */
  onEnterView: (view: number) => void = () => {};
  /**
   * Set by engine.ts: a proposal that waited for its ancestors goes on (replica.ts considerProposal).
   * Through here so sync.ts (which fetches them) does not import replica.ts, which imports it.
   */
  resumeProposal: (p: Proposal) => void = () => {};
  /** The safety state as last persisted (or restored): flush persists whenever it differs. */
  #persisted: SafetyState;
  #newBlocks: Block[] = [];
  #newQcs: QuorumCert[] = [];
  #dropped: Hash[] = [];

  constructor(config: EngineConfig, deps: EngineDeps, genesis: Block, safety: SafetyState, committed: Block) {
    this.config = config;
    this.deps = deps;
    this.n = config.validatorCount;
    this.f = faultBound(this.n);
    this.timerLevel = new TimerLevel(this.f);
    this.suspicion = new LeaderSuspicion(this.n, this.f, config.self);
    this.schedule = new LeaderSchedule(this.n, config.history ?? []);
    this.quorum = quorumSize(this.n);
    this.self = config.self;
    this.epoch = config.epoch ?? 0;
    this.genesis = genesis;
    this.qcs = new QcVerifier(this.n, genesis.hash, (m) => deps.verify(m), this.epoch);
    this.tree = new BlockTree(committed);
    this.claims = new NewViewClaims(this.self);
    this.claims.setOwn(safety.newViewTarget);
    this.safety = safety;
    this.#persisted = snapshot(safety);
    this.round = newRound(safety.view);
  }

  get view(): number {
    return this.safety.view;
  }

  leaderOf(view: number): number {
    return this.config.leaderOf ? this.config.leaderOf(view) : this.schedule.leaderOf(view);
  }

  isValidator(i: number): boolean {
    return Number.isInteger(i) && i >= 0 && i < this.n;
  }

  reject(from: number | null, reason: RejectReason, detail: string): void {
    this.out.push({ type: 'rejected', from, reason, detail });
    this.deps.metrics?.increment(`rejected_${reason}`);
  }

  storeBlock(block: Block, hex: string = toHex(block.hash)): void {
    if (this.tree.add(block, hex)) this.#newBlocks.push(block);
  }

  /** Forget a stored block found invalid later: out of the tree now, off the disk with the next persist. */
  dropBlock(block: Block, hex: string = toHex(block.hash)): void {
    this.tree.remove(hex);
    this.#dropped.push(block.hash);
  }

  /** Keep a QC with the next persist (the driver stores it by block, to serve the block on certified). */
  storeQc(qc: QuorumCert): void {
    this.#newQcs.push(qc);
  }

  /**
   * Emit one persist action for everything changed since the last one: any field of the safety
   * state that differs from the last persisted one (derived here, so no change can be left
   * out), and the blocks, QCs and dropped blocks stored since.
   */
  flush(): void {
    const s = this.safety;
    const last = this.#persisted;
    const changed = safetyChanged(s, last);
    if (changed) {
      // A new lock or highQC (only a changed state has one) goes to the driver's QC store too.
      this.#storeIfNew(s.lockedQC, last.lockedQC);
      this.#storeIfNew(s.prepareQC, last.prepareQC);
    }
    if (!changed && this.#newBlocks.length === 0 && this.#newQcs.length === 0 && this.#dropped.length === 0) return;
    this.out.push({ type: 'persist', safety: snapshot(s), blocks: this.#newBlocks, qcs: this.#newQcs, dropped: this.#dropped });
    this.#persisted = snapshot(s);
    this.#newBlocks = [];
    this.#newQcs = [];
    this.#dropped = [];
  }

  #storeIfNew(qc: QuorumCert, persisted: QuorumCert): void {
    if (!sameQc(qc, persisted) && !this.#newQcs.includes(qc)) this.#newQcs.push(qc);
  }

  /** Actions that leave the process: everything they depend on is persisted first. */
  emitOutbound(action: EngineAction): void {
    this.flush();
    this.out.push(action);
  }

  requestSign(request: SignRequest): void {
    const requestId = this.nextRequestId++;
    this.pendingSign.set(requestId, request);
    this.emitOutbound({ type: 'sign', requestId, request });
  }

  /** Record the intent to vote; false if this (view, phase) is not above the last vote. */
  claimVote(view: number, phase: Phase): boolean {
    if (!voteAfter(this.safety.lastVoted, view, phase)) return false;
    this.safety.lastVoted = { view, phase }; // persisted by the flush before the sign request
    return true;
  }

  /** Keep the highest PREPARE QC (the highQC of NEW-VIEWs and proposals). */
  notePrepareQC(qc: QuorumCert): boolean {
    if (qc.phase !== Phase.PREPARE || qc.view <= this.safety.prepareQC.view) return false;
    this.safety.prepareQC = qc;
    // flush stores the highQC a step ends with; this keeps one replaced within the same step.
    this.storeQc(qc);
    return true;
  }

  timeoutMs(view: number): number {
    return viewTimeoutMs(this.config.timeouts, view, this.safety.lastCommitView, this.timerLevel.level);
  }

  armTimer(): void {
    this.out.push({ type: 'set-timer', view: this.view, ms: this.timeoutMs(this.view), level: this.timerLevel.level });
  }

  /** Move to a higher view (never back): per-view state is dropped, the timer re-armed. */
  advance(view: number, cause: ViewChangeCause): void {
    if (view <= this.safety.view) return;
    const round = this.round;
    const leader = this.leaderOf(round.view);
    // NEW-VIEWs for a view beyond the next say the views before it are over, not that ours
    // failed: we were behind (the others gave up a later view first), as when a QC pulls us on.
    const judged: ViewChangeCause = cause === 'new-view-quorum' && view > round.view + 1 ? 'qc' : cause;
    // A view we gave up ourselves says nothing of how long views need, unless it committed anyway.
    if (!round.skipped || cause === 'commit') {
      this.timerLevel.viewEnded({ cause: judged, timedOut: round.timedOut, voted: this.safety.lastVoted.view === round.view, leader });
    }
    // Before this engine's first commit, a view that failed says nothing of its leader: members
    // that start together say they catch up until their first commit, and not every member hears
    // every word before the views it concerns (nor is this member, if it restarted behind, a judge
    // of views it could not follow). The leader schedule's record ignores start-up views likewise.
    const outcome = leaderOutcome(round, judged);
    this.suspicion.viewEnded(round.view, leader, outcome === 'failed' && !this.committedHere ? 'unknown' : outcome);
    this.safety.view = view;
    this.round = newRound(view);
    for (const v of this.future.keys()) if (v < view) this.future.delete(v);
    this.out.push({ type: 'view-changed', view, cause });
    this.deps.metrics?.increment('view_changes');
    this.armTimer();
    this.onEnterView(view);
  }
}
