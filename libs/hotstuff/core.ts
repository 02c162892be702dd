// The engine's state and the few operations every role shares: the action buffer and the
// persist-before-send discipline, signature requests, view changes and rejections.
// The roles (replica.ts, leader.ts, synchronizer.ts, sync.ts) act on it; engine.ts
// dispatches events to them. Must never perform I/O or read a clock: it only appends actions.

import { toHex } from './bytes.ts';
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
import { NewViewClaims, viewTimeoutMs } from './pacemaker.ts';
import { QcVerifier } from './qc.ts';
import { faultBound, quorumSize } from './quorum.ts';
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
  };
}

export interface WantedBlock {
  hash: Hash;
  from: number;
  attempts: number;
}

export function voteAfter(a: VoteMark, view: number, phase: Phase): boolean {
  return view > a.view || (view === a.view && phase > a.phase);
}

export class EngineCore {
  readonly config: EngineConfig;
  readonly deps: EngineDeps;
  readonly n: number;
  readonly f: number;
  readonly quorum: number;
  readonly self: number;
  readonly genesis: Block;
  readonly qcs: QcVerifier;
  readonly tree: BlockTree;
  readonly claims: NewViewClaims;
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
  txsAvailable = false;
  /** Set by engine.ts: replays buffered proposals and lets a new leader propose. */
  onEnterView: (view: number) => void = () => {};
  #dirty = false;
  #newBlocks: Block[] = [];
  #newQcs: QuorumCert[] = [];
  #dropped: Hash[] = [];

  constructor(config: EngineConfig, deps: EngineDeps, genesis: Block, safety: SafetyState, committed: Block) {
    this.config = config;
    this.deps = deps;
    this.n = config.validatorCount;
    this.f = faultBound(this.n);
    this.quorum = quorumSize(this.n);
    this.self = config.self;
    this.genesis = genesis;
    this.qcs = new QcVerifier(this.n, genesis.hash, (m) => deps.verify(m));
    this.tree = new BlockTree(committed);
    this.claims = new NewViewClaims(this.self);
    this.claims.setOwn(safety.newViewTarget);
    this.safety = safety;
    this.round = newRound(safety.view);
  }

  get view(): number {
    return this.safety.view;
  }

  leaderOf(view: number): number {
    return this.config.leaderOf ? this.config.leaderOf(view) : view % this.n;
  }

  isValidator(i: number): boolean {
    return Number.isInteger(i) && i >= 0 && i < this.n;
  }

  reject(from: number | null, reason: RejectReason, detail: string): void {
    this.out.push({ type: 'rejected', from, reason, detail });
    this.deps.metrics?.increment(`rejected_${reason}`);
  }

  markDirty(): void {
    this.#dirty = true;
  }

  storeBlock(block: Block, hex: string = toHex(block.hash)): void {
    if (this.tree.add(block, hex)) this.#newBlocks.push(block);
  }

  /** Forget a stored block found invalid later: out of the tree now, off the disk with the next persist. */
  dropBlock(block: Block, hex: string = toHex(block.hash)): void {
    this.tree.remove(hex);
    this.#dropped.push(block.hash);
  }

  storeQc(qc: QuorumCert): void {
    this.#newQcs.push(qc);
  }

  /** Emit one persist action for everything changed since the last one. */
  flush(): void {
    if (!this.#dirty && this.#newBlocks.length === 0 && this.#newQcs.length === 0 && this.#dropped.length === 0) return;
    this.out.push({ type: 'persist', safety: { ...this.safety }, blocks: this.#newBlocks, qcs: this.#newQcs, dropped: this.#dropped });
    this.#dirty = false;
    this.#newBlocks = [];
    this.#newQcs = [];
    this.#dropped = [];
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
    if (!voteAfter(this.safety.lastVoted, view, phase)) {
      if (this.config.unsafeMutation !== 'double-vote') return false;
    } else {
      this.safety.lastVoted = { view, phase };
      this.markDirty();
    }
    return true;
  }

  /** Keep the highest PREPARE QC (the highQC of NEW-VIEWs and proposals). */
  notePrepareQC(qc: QuorumCert): boolean {
    if (qc.phase !== Phase.PREPARE || qc.view <= this.safety.prepareQC.view) return false;
    this.safety.prepareQC = qc;
    this.storeQc(qc);
    this.markDirty();
    return true;
  }

  timeoutMs(view: number): number {
    return viewTimeoutMs(this.config.timeouts, view, this.safety.lastCommitView);
  }

  armTimer(): void {
    this.out.push({ type: 'set-timer', view: this.view, ms: this.timeoutMs(this.view) });
  }

  /** Move to a higher view (never back): per-view state is dropped, the timer re-armed. */
  advance(view: number, cause: ViewChangeCause): void {
    if (view <= this.safety.view) return;
    this.safety.view = view;
    this.markDirty();
    this.round = newRound(view);
    for (const v of this.future.keys()) if (v < view) this.future.delete(v);
    this.out.push({ type: 'view-changed', view, cause });
    this.deps.metrics?.increment('view_changes');
    this.armTimer();
    this.onEnterView(view);
  }
}
