// The engine's whole contract with its driver: the events it accepts, the actions it
// returns, what must be persisted and how the engine is configured. The driver (the
// consensus service, or the simulator) is the only place that turns actions into I/O.
// Must never import anything with I/O: this file is types only.

import type { Block, BlockHeader, ConsensusMessage, Equivocation, Hash, Phase, QuorumCert, SignedMessage } from './types.ts';
import type { SuspicionReason } from './suspicion.ts';
import type { CommittedView } from './schedule.ts';

// ---------------------------------------------------------------- events (driver → engine)

export type EngineEvent =
  /** Once, right after createEngine/restoreEngine: arms the view timer; a leader may propose. */
  | { type: 'start' }
  /** A decoded message from the network. The engine checks its signature itself (deps.verify). */
  | { type: 'message'; message: ConsensusMessage }
  /**
   * The timer set by the last `set-timer` action fired. Stale views are ignored. `force`: an
   * operator gives the view up (a quiet view, idle.ts, would otherwise outlive its timer).
   */
  | { type: 'timer-fired'; view: number; force?: boolean }
  | { type: 'signature-ready'; requestId: number; signature: Uint8Array }
  | { type: 'signature-refused'; requestId: number; reason: string }
  /** Answer to `request-payload`: a full block built by the driver. */
  | { type: 'payload-ready'; view: number; block: Block }
  /**
   * Answer to `fetch`: blocks (any order) and, optionally, QCs that certify them. `from` is the
   * validator that sent them, blamed for any that fail their checks (absent: nobody is blamed).
   */
  | { type: 'blocks-fetched'; blocks: Block[]; qcs: QuorumCert[]; from?: number }
  /**
   * Whether the driver has work for a block, as a level (only matters with config.waitForWork):
   * transactions in its mempool, a change to propose, or a heartbeat due. idle.ts says what it does.
   */
  | { type: 'work'; available: boolean }
  /**
   * The driver muted (or let go) a validator for offences: while muted, views it leads are given
   * up at once (suspicion.ts). Informational otherwise: the engine never drops messages for it.
   */
  | { type: 'peer-muted'; peer: number; muted: boolean }
  /**
   * The transport says a validator's consensus is gone (its gateway said its consensus detached,
   * or every connection to it closed) or back: while absent, views it leads are given up at once,
   * like a muted one's (suspicion.ts). Only about that validator itself: no one reports another.
   */
  | { type: 'peer-absent'; peer: number; absent: boolean }
  /** An operator vouched for a validator: its suspicion record is cleared. */
  | { type: 'forgive'; peer: number }
  /**
   * The driver refused, before the engine saw it, a proposal of `peer` for `view` that its
   * leader should never have sent (a bad block time, an invalid signature): if `peer` leads our
   * current view, the view is given up at once (suspicion.ts).
   */
  | { type: 'leader-offence'; peer: number; view: number }
  /**
   * The driver's clock: view `view` committed and took `ms` here, from entering it to leaving it.
   * A leader whose views keep taking far longer than the others' is suspected (suspicion.ts).
   */
  | { type: 'view-timed'; view: number; ms: number };

// ---------------------------------------------------------------- actions (engine → driver)

/**
 * What the remote signer is asked to sign. Each request carries what the signer needs to
 * re-check the voting rules on its own: the block header and justify QC for a PREPARE
 * vote, the prepareQC for a PRE_COMMIT vote, the precommitQC for a COMMIT vote.
 */
export type SignRequest =
  | { kind: 'proposal'; epoch: number; view: number; block: Block; justify: QuorumCert }
  | { kind: 'vote'; epoch: number; phase: typeof Phase.PREPARE; view: number; blockHash: Hash; header: BlockHeader; justify: QuorumCert }
  | { kind: 'vote'; epoch: number; phase: typeof Phase.PRE_COMMIT; view: number; blockHash: Hash; prepareQC: QuorumCert }
  | { kind: 'vote'; epoch: number; phase: typeof Phase.COMMIT; view: number; blockHash: Hash; precommitQC: QuorumCert }
  | { kind: 'new-view'; epoch: number; view: number; highQC: QuorumCert };

export type RejectReason =
  | 'wrong_view' // for a view too far ahead to buffer
  | 'stale' // for a view already left, or nothing new
  | 'unknown_sender'
  | 'not_leader'
  | 'invalid_signature'
  | 'invalid_qc'
  | 'invalid_block'
  | 'unknown_block' // a vote for a block this leader did not propose
  | 'duplicate'
  | 'equivocation'
  | 'unsafe' // fails safeNode / the lock
  | 'unsolicited' // fetched block nobody asked for
  | 'signature_refused'
  | 'wrong_epoch' // of another epoch than this engine's (the driver routes by epoch)
  | 'epoch_ended' // this engine's epoch is over: its last block is committed
  | 'halted';

/**
 * Execution contract: the driver carries out the actions of one step IN ORDER, and a
 * `persist` must be durable before any later action of the same step is carried out
 * (a signature request or a send may depend on it). `commit` is durable by definition:
 * the driver appends the blocks to its committed log before the next step.
 */
export type EngineAction =
  /** `dropped`: blocks persisted earlier and found invalid since (their parent came later): forget them. */
  | { type: 'persist'; safety: SafetyState; blocks: Block[]; qcs: QuorumCert[]; dropped: Hash[] }
  | { type: 'sign'; requestId: number; request: SignRequest }
  /** To one validator (never to self). */
  | { type: 'send'; to: number; message: ConsensusMessage }
  /** To every other validator. */
  | { type: 'broadcast'; message: ConsensusMessage }
  /** Blocks newly final, parents first, each exactly once; `qc` certifies the last one. */
  | { type: 'commit'; blocks: Block[]; qc: QuorumCert }
  /** Replaces any previous timer. */
  | { type: 'set-timer'; view: number; ms: number; /** The timer level it includes (pacemaker.ts TimerLevel). */ level: number }
  /** Ask `from` for the block `hash` and its ancestors above `aboveHeight`. */
  | { type: 'fetch'; hash: Hash; from: number; aboveHeight: number }
  /** Leader only: build a block on this parent and answer with `payload-ready`. */
  | {
      type: 'request-payload';
      /** The header's epoch. */
      epoch: number;
      view: number;
      parentHash: Hash;
      parentHeight: number;
      parentStateHash: Hash;
      /** The block's time must be later. */
      parentTimestampMs: number;
      /** Build it without transactions: it extends a block that ends the epoch (deps.endsEpoch), so it will never be committed. */
      empty: boolean;
    }
  | { type: 'rejected'; from: number | null; reason: RejectReason; detail: string }
  | { type: 'evidence'; evidence: Equivocation }
  /** Informational: the current view changed (for logs and metrics). */
  | { type: 'view-changed'; view: number; cause: ViewChangeCause }
  /** Informational: the current view was given up on entering it, its leader being suspected. */
  | { type: 'view-skipped'; view: number; leader: number; reason: SuspicionReason }
  /** Two conflicting commits: more than f members are faulty. The engine stops. */
  | { type: 'halted'; height: number; committed: Hash; conflicting: Hash }
  /**
   * The block that ends this epoch is committed (it is the last block of the `commit` before
   * this action). The engine does nothing more; the driver starts epoch `epoch + 1` from `last`
   * and keeps `qc` (the commitQC of `last` or of an empty block above it, with `suffix`, the
   * blocks between them, lowest first): the epoch-change proof a lagging member is answered with.
   */
  | { type: 'epoch-ended'; epoch: number; last: Block; qc: QuorumCert; suffix: Block[] };

export type ViewChangeCause = 'qc' | 'commit' | 'new-view-quorum';

// ---------------------------------------------------------------- persistence

export interface VoteMark {
  view: number;
  phase: Phase;
}

/** What must survive a crash so that a restarted engine never votes against its past. */
export interface SafetyState {
  view: number;
  lockedQC: QuorumCert;
  prepareQC: QuorumCert;
  /** Highest (view, phase) a vote signature was requested for; votes only go up from here. */
  lastVoted: VoteMark;
  /** Highest view a NEW-VIEW was requested for. */
  newViewTarget: number;
  /** View of the commitQC of the last commit (drives the pacemaker's back-off). */
  lastCommitView: number;
  /** Highest view this member proposed in: a restarted leader never proposes twice. */
  proposedView: number;
}

/** Everything `restoreEngine` needs, read back from the driver's durable store. */
export interface PersistedRecord {
  safety: SafetyState;
  /** The last block of the committed log (the genesis block if none). */
  committed: Block;
  /** Stored blocks above the committed one (extra blocks are harmless). */
  blocks: Block[];
}

// ---------------------------------------------------------------- configuration

export interface TimeoutConfig {
  baseMs: number;
  multiplier: number;
  capMs: number;
}

export interface EngineConfig {
  chainId: string;
  /** N: the whole validator set (quorums are counted over it, never over "active" peers). */
  validatorCount: number;
  /** This member's validator index. */
  self: number;
  timeouts: TimeoutConfig;
  /**
   * The epoch this engine runs: one engine per epoch, views restart at 1 in each (default 0,
   * genesis). Every message it signs and every block it builds carries it; a message of another
   * epoch is refused (`wrong_epoch`).
   */
  epoch?: number;
  /**
   * Epochs after the first: the block the epoch starts from — the last block of the epoch
   * before, committed there by its quorum (EpochHistory and the epoch-change proof say which).
   * It plays genesis's part: its root QC (PREPARE, view 0, no signers) is accepted without
   * signatures. Absent for epoch 0 (the genesis block of the chain id).
   */
  root?: Block;
  /**
   * A fixed leader rotation instead of the schedule (schedule.ts): the simulator's scripted
   * rounds and baselines. Every member must use the same one. Absent: the schedule chooses.
   */
  leaderOf?: (view: number) => number;
  /**
   * The committed blocks of this epoch the schedule reads (schedule.ts), oldest first: at least
   * those of the last historyViews(N) views before the committed tip. A fresh epoch has none.
   */
  history?: readonly CommittedView[];
  /**
   * Idle views (idle.ts): a leader proposes only when the driver says it has work (`work`
   * events), and a member without work lets a view in which nothing happens outlive its timer.
   * Default: every leader proposes at once, a block every view.
   */
  waitForWork?: boolean;
}

export interface EngineMetrics {
  increment(name: string, by?: number): void;
}

export interface EngineDeps {
  /** Pure and deterministic; the service passes SHA-256 over the canonical header bytes. */
  hashBlock(header: BlockHeader): Hash;
  /** Checks one signature against the sender's public key. */
  verify(message: SignedMessage): boolean;
  /**
   * Block content validity (tx root, state hash, exactly-once), injected so the engine stays
   * pure: why `block` is invalid, or null. `parent` undefined when not known yet (the engine
   * calls again once it is); `ancestors` are the uncommitted blocks from the parent down to
   * the committed tip. The service passes libs/blocks `blockError`; absent, content is not checked.
   */
  checkBlock?(block: Block, parent: Block | undefined, ancestors: readonly Block[]): string | null;
  /**
   * Is this exact block in the committed log (at that height)? A block committed here since it
   * was asked for, or proposed, fails checkBlock on the log that holds its transactions; this
   * tells that from a forgery, so nobody is blamed for it. Absent, such a failure is blamed.
   */
  isCommittedBlock?(hash: Hash, height: number): boolean;
  /**
   * Does this block carry a reconfiguration (libs/validators)? Once committed it is the last
   * block of the epoch: the commit stops there, `epoch-ended` follows, and the blocks a leader
   * builds above it before that (the epoch's suffix) must carry no transactions — they are never
   * committed. Absent: no block ends an epoch.
   */
  endsEpoch?(block: Block): boolean;
  metrics?: EngineMetrics;
}
