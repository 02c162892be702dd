// What the driver (driver.ts) needs at the edges of an epoch, apart from running its engine: what
// an epoch's engine is built from (its config and the checks it applies), what a change submitted
// for the epoch must pass before this member proposes it, how the signer is shown an ended epoch's
// proof, and how a member still in an ended epoch is told how it ended.

import type { Logger } from 'pino';
import { blockEndsEpoch, blockError, type ValidityContext } from '#libs/blocks/index.ts';
import { toHex, txHash } from '#libs/crypto/index.ts';
import { FedError, errorMessage } from '#libs/errors/index.ts';
import { historyViews, type Block, type EngineConfig, type PersistedRecord, type TimeoutConfig } from '#libs/hotstuff/index.ts';
import { authorizeChange, decodeReconfigTx, nextValidatorSet, reconfigId, type ValidatorSet } from '#libs/validators/index.ts';
import type { EpochChangeProof } from '#libs/verify/index.ts';
import type { Frame } from '#libs/wire/index.ts';
import type { BlockStore } from './block-store.ts';
import type { ConsensusEpochs, Epoch } from './epochs.ts';
import { isOutside, type Clock, type SignerPort, type TransportPort } from './ports.ts';
import type { SignatureVerifier } from './verifier.ts';

/**
 * How a set change renumbers: validator `i` of `before` → its number in `after`, found by its peer
 * id (a removal moves those behind it down one); undefined for a member `after` no longer seats.
 * Outside peers keep their numbers. What every per-peer record numbered by validator index follows.
 */
export function renumbering(before: ValidatorSet, after: ValidatorSet): (i: number) => number | undefined {
  return (i) => (isOutside(i) ? i : before.has(i) ? after.indexOfPeer(before.byIndex(i).peerId) : undefined);
}

/**
 * Moves a record kept per peer number to each peer's new number (`to`, epoch-switch.ts renumbering),
 * in place (penalties, hand-off budgets, batch requests): a peer `to` has no number for is dropped,
 * and outside numbers stay.
 * A renumbering is one to one (by peer id), so no two land on one number; should they, the first stays.
 */
export function renumberPeers<V>(records: Map<number, V>, to: (peer: number) => number | undefined): void {
  const moved = new Map<number, V>();
  for (const [peer, v] of records) {
    const n = isOutside(peer) ? peer : to(peer);
    if (n !== undefined && !moved.has(n)) moved.set(n, v);
  }
  records.clear();
  for (const [n, v] of moved) records.set(n, v);
}

/**
 * The engine's config for epoch `e`: its set, seat, leader rule and root, and the consensus
 * parameters a committed change set for it (else `base`'s, conf.yaml's, which genesis gave). The
 * base timeout is the epoch's; the back-off's multiplier and cap stay this member's, read live (a
 * conf.yaml reload changes them at the next timer).
 */
export function epochEngineConfig(base: EngineConfig, e: Epoch, waitForWork: boolean, store: BlockStore): EngineConfig {
  const set = e.set;
  const local = base.timeouts;
  const baseMs = e.params?.baseTimeoutMs;
  const timeouts: TimeoutConfig = baseMs === undefined ? local
    : { baseMs, get multiplier() { return local.multiplier; }, get capMs() { return Math.max(local.capMs, baseMs); } };
  return { ...base, timeouts, waitForWork, epoch: e.number, validatorCount: set.n, self: set.selfIndex ?? 0,
    history: store.committedViews(e.number, historyViews(set.n)), ...(e.number > 0 ? { root: e.root } : {}) };
}

/**
 * The stored engine record if it is of the epoch that starts from `root`, else undefined (the
 * epoch starts afresh from its root, as at the switch). An epoch's safety state is locked on its
 * root or on a block of its own; one locked elsewhere is an earlier epoch's, left by a write that
 * raced the switch (the switch clears it, block-store.ts endEpoch): restored, it would run the new
 * epoch at the old one's view with the old one's lock, voting for nothing until the new epoch's
 * views passed the old one's.
 */
export function currentRecord(record: PersistedRecord | undefined, root: Block, epoch: number, store: BlockStore, log: Logger): PersistedRecord | undefined {
  if (!record) return undefined;
  const lock = record.safety.lockedQC;
  const lockedEpoch = lock.view === 0
    ? (Buffer.from(lock.blockHash).equals(Buffer.from(root.hash)) ? epoch : undefined)
    : store.blockByHash(lock.blockHash)?.header.epoch;
  // A lock on a block the store does not hold names no epoch: the record stays (the engine's own
  // checks judge it), never dropped on a guess.
  if (lockedEpoch === epoch || (lock.view !== 0 && lockedEpoch === undefined)) return record;
  log.warn({ epoch, lockedView: lock.view, lockedBlock: toHex(lock.blockHash).slice(0, 16), lockedEpoch: lockedEpoch ?? 'unknown' },
    `the stored safety state is not of epoch ${epoch} (locked on a block of another epoch): epoch ${epoch} starts afresh from its root`);
  return undefined;
}

/** The checks an engine of epoch `e` (none: the one epoch of a driver without epochs) applies to blocks and messages. */
export function epochEngineDeps(chainId: string, store: BlockStore, verifier: SignatureVerifier, e: Epoch | undefined) {
  const validity: ValidityContext = { chainId, hashBlock: store.hashBlock, isCommitted: (id: Uint8Array) => store.hasTx(id),
    ...(e ? { reconfig: { set: e.set, ...e.reconfig } } : {}) };
  return {
    hashBlock: store.hashBlock, verify: verifier.verifySync,
    checkBlock: (b: Block, parent: Block | undefined, ancestors: readonly Block[]) => blockError(b, parent, ancestors, validity),
    isCommittedBlock: (hash: Uint8Array, height: number) => store.isCommittedBlock(hash, height),
    ...(e ? { endsEpoch: blockEndsEpoch } : {}),
  };
}

/** A reconfiguration this member proposes when it leads, until its epoch ends. */
export interface PendingChange {
  tx: Uint8Array; hash: Uint8Array; epoch: number; id: string;
  /** How many operations the change makes. */
  ops: number;
  /** The validator that passed it on; absent when it was submitted to this member. */
  from?: number;
}

/**
 * An operator's reconfiguration transaction checked against epoch `e`'s set and quorum, as the
 * change this member is to propose. One change per epoch: another while `pending` (of this epoch)
 * is refused, the same one again is taken.
 */
export function checkedChange(e: Epoch, tx: Uint8Array, pending: PendingChange | undefined): PendingChange {
  const { change, approvals } = decodeReconfigTx(tx);
  nextValidatorSet(e.set, change, e.reconfig.rules);
  authorizeChange(e.set, change, approvals, e.reconfig.verify);
  const id = reconfigId(change);
  if (pending && pending.epoch === e.number && pending.id !== id) throw new FedError('RECONFIG_BUSY', `change ${pending.id.slice(0, 16)}… is already pending for epoch ${e.number}: one change per epoch`);
  return { tx, hash: txHash(tx), epoch: e.number, id, ops: change.ops.length };
}

/**
 * Shows the signer the proof that ended an epoch, again and again (0.2 s, then up to 5 s apart)
 * until it answers: nothing can be signed for the next epoch before. A signer that disagrees about
 * the next epoch is said loudly (this member will not sign in it). False when `stopped` first.
 */
export async function showSignerProof(signer: SignerPort, proof: EpochChangeProof, next: Epoch,
  o: { log: Logger; clock: Clock; stopped(): boolean }): Promise<boolean> {
  if (!signer.advanceEpoch) return true;
  const seated = next.set.self !== undefined;
  for (let delay = 200; ; delay = Math.min(delay * 2, 5000)) {
    if (o.stopped()) return false;
    try {
      const r = await signer.advanceEpoch(proof);
      if (r.epoch !== next.number || r.seated !== seated) {
        o.log.error({ signerEpoch: r.epoch, signerSeated: r.seated, epoch: next.number, seated }, 'the signer disagrees about the next epoch: this member will not sign in it');
      }
      return true;
    } catch (err) {
      o.log.warn({ err: errorMessage(err), epoch: next.number, retryMs: delay }, 'the signer did not take the epoch-change proof: trying again');
      await new Promise<void>((resolve) => o.clock.setTimeout(resolve, delay));
    }
  }
}

interface LaggardDeps { epochs: ConsensusEpochs | undefined; clock: Clock; log: Logger; transport: TransportPort; encode(frame: Frame): Uint8Array }

/** How often one peer still in an ended epoch is told how it ended. */
const LAGGARD_ANSWER_MS = 1000;
/** Answers to peers outside the set, all of them together, per LAGGARD_ANSWER_MS: each is a QC's signatures. */
const OUTSIDE_ANSWERS_PER_SECOND = 4;

/**
 * Tells a validator that sent a message of an epoch that has ended here how it ended: the epoch's
 * commit QC, as an announcement of that epoch. It verifies it with that epoch's keys, fetches the
 * blocks it certifies (we keep them) and commits the epoch's end as it would have, then starts the
 * next epoch itself. At most once a second per peer (a laggard times out and asks again); bounded
 * by the validators of the sets this member has seen and the gateway's outside slots.
 */
export class LaggardAnswers {
  readonly #told = new Map<number, number>();
  #outside = { since: -Infinity, count: 0 };
  readonly #d: LaggardDeps;
  constructor(d: LaggardDeps) { this.#d = d; }

  answer(peer: number, epoch: number): void {
    const { epochs, clock, log, transport } = this.#d;
    const qc = epochs?.endQcOf(epoch);
    if (!epochs || !qc) return;
    const now = clock.now();
    if (now - (this.#told.get(peer) ?? -Infinity) < LAGGARD_ANSWER_MS) return;
    if (isOutside(peer)) {
      // A member the change removed, still in the epoch that removed it, is told too, or it would
      // never learn it was removed (it follows as an observer once it does). Anyone may claim to
      // be one, and an outside number is cheap: such answers share one budget a second.
      if (now - this.#outside.since >= LAGGARD_ANSWER_MS) this.#outside = { since: now, count: 0 };
      if (this.#outside.count >= OUTSIDE_ANSWERS_PER_SECOND) return;
      this.#outside.count++;
    }
    this.#told.set(peer, now);
    const self = epochs.setOf(epoch)!.indexOfName(epochs.current.set.self?.name ?? '') ?? 0;
    log.info({ peer, epoch }, 'a member still in an ended epoch: told how it ended');
    transport.send(peer, this.#d.encode({ type: 'consensus', message: { type: 'qc', epoch, qc, sender: self } }));
  }
}
