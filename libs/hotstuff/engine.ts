// The HotStuff engine: one object per member, `step(event)` in, actions out. It dispatches
// each event to the role that owns it and, after every step, lets a leader propose if it
// now can. Deterministic: the same events in the same order give the same actions.
// Must never perform I/O, read a clock or use randomness — the driver does all of that.

import { EngineCore } from './core.ts';
import type { EngineAction, EngineConfig, EngineDeps, EngineEvent, PersistedRecord, SafetyState } from './events.ts';
import { genesisBlock, genesisQC } from './genesis.ts';
import { onPayloadReady, onProposalSigned, onVote, tryPropose } from './leader.ts';
import { considerProposal, onProposal, onQcAnnounce } from './replica.ts';
import { onBlocksFetched } from './sync.ts';
import { giveUpIfSuspected, leaderMisbehaved, onNewView, onNewViewSigned, onTimer, wakeFromIdle } from './synchronizer.ts';
import { Phase, type Block, type ConsensusMessage, type QuorumCert } from './types.ts';
import { FedError } from '#libs/errors/index.ts';

export interface HotStuffEngine {
  step(event: EngineEvent): EngineAction[];
  /** Read-only views for drivers, metrics and tests. */
  readonly view: number;
  readonly safety: Readonly<SafetyState>;
  readonly committed: Block;
  /** What block sync is waiting for: the blocks asked for (hex hashes), and the commit QC waiting on them. */
  readonly fetching: { wanted: string[]; pendingCommit: QuorumCert | null };
  readonly halted: boolean;
  /** The epoch this engine runs (config.epoch). */
  readonly epoch: number;
  /** Its epoch's last block is committed (an `epoch-ended` action said so): it does nothing more. */
  readonly ended: boolean;
  /** A block this engine holds (for serving fetches in tests; drivers serve from their store). */
  block(hashHex: string): Block | undefined;
  /** The leaders whose views this member gives up at once now (at most f; suspicion.ts). */
  readonly suspectedLeaders: number[];
  /** The leader of a view as this engine judges it (config.leaderOf, else the schedule: schedule.ts). */
  leaderOf(view: number): number;
  /**
   * The leader of `view` when this member's record settles it (schedule.ts `settles`: every member
   * that committed as far computes the same), else undefined: a message from another sender for
   * it is then no honest member's.
   */
  settledLeaderOf(view: number): number | undefined;
  /** The members the schedule skips in a view (at most f; none under config.leaderOf). */
  skippedLeaders(view: number): readonly number[];
}

/**
 * A fresh member at genesis, or at the start of a later epoch (config.epoch, config.root) — or,
 * with `checkpoint`, one whose committed log already ends at a block of this epoch above its root
 * (a join from a checkpoint: it never voted in this epoch, or its safety state ended with an
 * earlier epoch). Its lock is the root's, so only a proposal justified by a QC of this epoch is
 * safe for it; its votes start above the checkpoint's view (what it signed before is its
 * signer's to refuse).
 */
export function createEngine(config: EngineConfig, deps: EngineDeps, checkpoint?: Block): HotStuffEngine {
  validateConfig(config);
  const genesis = startBlock(config, deps);
  const committed = checkpoint ?? genesis;
  if (checkpoint && (checkpoint.header.chainId !== config.chainId || checkpoint.header.epoch !== (config.epoch ?? 0) || checkpoint.header.height <= genesis.header.height)) {
    throw new FedError('HOTSTUFF_BAD_CONFIG', `a checkpoint must be a block of epoch ${config.epoch ?? 0} of this chain above its root`,
      { epoch: checkpoint.header.epoch, height: checkpoint.header.height, rootHeight: genesis.header.height });
  }
  const gqc = genesisQC(genesis);
  const start = checkpoint ? checkpoint.header.view : 0;
  const safety: SafetyState = {
    view: start + 1,
    lockedQC: gqc,
    prepareQC: gqc,
    lastVoted: { view: start, phase: Phase.COMMIT },
    newViewTarget: start,
    lastCommitView: start,
    proposedView: start,
  };
  return new Engine(new EngineCore(config, deps, genesis, safety, committed), []);
}

/** A member rebuilt from what it persisted before a crash. */
export function restoreEngine(config: EngineConfig, deps: EngineDeps, record: PersistedRecord): HotStuffEngine {
  validateConfig(config);
  const genesis = startBlock(config, deps);
  const core = new EngineCore(config, deps, genesis, { ...record.safety }, record.committed);
  return new Engine(core, record.blocks);
}

/** The block an epoch starts from: genesis for epoch 0, the root the driver names otherwise. */
function startBlock(config: EngineConfig, deps: EngineDeps): Block {
  return config.root ?? genesisBlock(config.chainId, deps.hashBlock);
}

function validateConfig(c: EngineConfig): void {
  const epoch = c.epoch ?? 0;
  if (!Number.isSafeInteger(epoch) || epoch < 0) throw new FedError('HOTSTUFF_BAD_CONFIG', 'epoch must be a non-negative integer', { epoch });
  if ((epoch === 0) !== (c.root === undefined)) {
    throw new FedError('HOTSTUFF_BAD_CONFIG', 'a root block is given exactly for epochs after the first', { epoch });
  }
  if (c.root && (c.root.header.epoch !== epoch - 1 || c.root.header.chainId !== c.chainId)) {
    throw new FedError('HOTSTUFF_BAD_CONFIG', `the root of epoch ${epoch} must be a block of epoch ${epoch - 1} of this chain`, {
      epoch,
      rootEpoch: c.root.header.epoch,
    });
  }
  if (!Number.isInteger(c.validatorCount) || c.validatorCount < 1) {
    throw new FedError('HOTSTUFF_BAD_CONFIG', 'validatorCount must be a positive integer', { validatorCount: c.validatorCount });
  }
  if (!Number.isInteger(c.self) || c.self < 0 || c.self >= c.validatorCount) {
    throw new FedError('HOTSTUFF_BAD_CONFIG', 'self must be a validator index', { self: c.self });
  }
  const t = c.timeouts;
  if (!(t.baseMs > 0 && t.multiplier >= 1 && t.capMs >= t.baseMs)) {
    throw new FedError('HOTSTUFF_BAD_CONFIG', 'timeouts need baseMs > 0, multiplier ≥ 1, capMs ≥ baseMs', { timeouts: t });
  }
}

class Engine implements HotStuffEngine {
  readonly #core: EngineCore;

  constructor(core: EngineCore, blocks: Block[]) {
    this.#core = core;
    for (const b of blocks) if (b.header.height > core.tree.committed.header.height) core.tree.add(b);
    core.onEnterView = (view) => {
      // Give a suspected leader's view up first; a proposal it buffered still gets our vote.
      giveUpIfSuspected(core);
      const buffered = core.future.get(view);
      core.future.delete(view);
      if (buffered) for (const p of buffered) onProposal(core, p);
    };
    core.resumeProposal = (p) => considerProposal(core, p);
  }

  get view(): number {
    return this.#core.view;
  }
  get safety(): Readonly<SafetyState> {
    return this.#core.safety;
  }
  get committed(): Block {
    return this.#core.tree.committed;
  }
  get halted(): boolean {
    return this.#core.halted;
  }
  get epoch(): number {
    return this.#core.epoch;
  }
  get ended(): boolean {
    return this.#core.ended;
  }
  get fetching(): { wanted: string[]; pendingCommit: QuorumCert | null } {
    return { wanted: [...this.#core.wanted.keys()], pendingCommit: this.#core.pendingCommit };
  }
  block(hashHex: string): Block | undefined {
    return this.#core.tree.full(hashHex);
  }
  get suspectedLeaders(): number[] {
    return this.#core.suspicion.suspected(this.#core.view);
  }
  leaderOf(view: number): number {
    return this.#core.leaderOf(view);
  }
  settledLeaderOf(view: number): number | undefined {
    const core = this.#core;
    return core.config.leaderOf || core.schedule.settles(view) ? core.leaderOf(view) : undefined;
  }
  skippedLeaders(view: number): readonly number[] {
    return this.#core.config.leaderOf ? [] : this.#core.schedule.skippedIn(view);
  }

  step(event: EngineEvent): EngineAction[] {
    const core = this.#core;
    core.out = [];
    if (core.halted) {
      if (event.type === 'message') core.reject(event.message.sender, 'halted', 'engine halted after conflicting commits');
      return core.out;
    }
    if (core.ended) {
      if (event.type === 'message') core.reject(null, 'epoch_ended', `epoch ${core.epoch} is over`);
      return core.out;
    }
    this.#dispatch(event);
    if (core.round.skipDeferred) giveUpIfSuspected(core);
    wakeFromIdle(core);
    tryPropose(core);
    core.flush();
    return core.out;
  }

  #dispatch(event: EngineEvent): void {
    const core = this.#core;
    switch (event.type) {
      case 'start':
        return core.armTimer();
      case 'message':
        return this.#onMessage(event.message);
      case 'timer-fired':
        return onTimer(core, event.view, event.force === true);
      case 'signature-ready':
        return this.#onSignature(event.requestId, event.signature);
      case 'signature-refused':
        if (core.pendingSign.delete(event.requestId)) core.reject(core.self, 'signature_refused', event.reason);
        return;
      case 'payload-ready':
        return onPayloadReady(core, event.view, event.block);
      case 'blocks-fetched':
        return onBlocksFetched(core, event.blocks, event.qcs, event.from);
      case 'work':
        core.workAvailable = event.available;
        return;
      case 'peer-muted':
        if (!core.isValidator(event.peer)) return;
        core.suspicion.setMuted(event.peer, event.muted);
        return giveUpIfSuspected(core);
      case 'peer-absent':
        if (!core.isValidator(event.peer)) return;
        core.suspicion.setAbsent(event.peer, event.absent);
        return giveUpIfSuspected(core);
      case 'forgive':
        return core.suspicion.forgive(event.peer);
      case 'leader-offence':
        return leaderMisbehaved(core, event.view, event.peer);
      case 'view-timed':
        if (event.view >= core.view) return; // only views already left are judged
        if (core.suspicion.viewTimed(event.view, core.leaderOf(event.view), event.ms)) core.deps.metrics?.increment('slow_views');
        return giveUpIfSuspected(core);
    }
  }

  #onMessage(m: ConsensusMessage): void {
    const core = this.#core;
    const epoch = m.type === 'proposal' ? m.block.header.epoch : m.epoch;
    // Not this engine's to judge: the driver routes by epoch, and a sender index means nothing across epochs.
    if (epoch !== core.epoch) return core.reject(null, 'wrong_epoch', `${m.type} of epoch ${epoch}, this engine runs ${core.epoch}`);
    switch (m.type) {
      case 'proposal':
        return onProposal(core, m);
      case 'vote':
        return onVote(core, m);
      case 'new-view':
        return onNewView(core, m);
      case 'qc':
        return onQcAnnounce(core, m);
    }
  }

  /** A signature came back; one for a view already left is dropped (stale). */
  #onSignature(requestId: number, signature: Uint8Array): void {
    const core = this.#core;
    const req = core.pendingSign.get(requestId);
    if (!req) return;
    core.pendingSign.delete(requestId);
    switch (req.kind) {
      case 'proposal':
        return onProposalSigned(core, req.view, req.block, req.justify, signature);
      case 'new-view':
        return onNewViewSigned(core, req.view, req.highQC, signature);
      case 'vote': {
        if (req.view !== core.view) return;
        const vote = { type: 'vote' as const, epoch: core.epoch, phase: req.phase, view: req.view, blockHash: req.blockHash, sender: core.self, signature };
        const leader = core.leaderOf(req.view);
        if (leader === core.self) return onVote(core, vote, true);
        return core.emitOutbound({ type: 'send', to: leader, message: vote });
      }
    }
  }
}
