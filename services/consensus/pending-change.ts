// The reconfiguration a member holds until its epoch ends (docs/reconfiguration.md, "A change
// travels to every validator"): taken from an operator (SubmitReconfiguration), from another
// validator that passed it on (change-intake.ts), or from the disk at a restart; proposed in the
// next block this member leads; passed on to every validator by the member it was submitted to,
// at once and every FORWARD_AGAIN_MS while it is pending; forgotten when the epoch ends.
//
// One change at a time, of the current epoch only: another while one is pending is refused
// (checkedChange). The driver owns when an epoch ends (`switching`) and what is proposed; this
// owns the change's life and its copy on disk.

import type { Logger } from 'pino';
import { FedError, errorMessage } from '#libs/errors/index.ts';
import type { Frame } from '#libs/wire/index.ts';
import type { BlockStore } from './block-store.ts';
import { checkedChange, type PendingChange } from './epoch-switch.ts';
import type { ConsensusEpochs, Epoch } from './epochs.ts';
import type { Clock, TransportPort } from './ports.ts';

/** How often a change submitted here is passed on to every validator again while it is pending. */
const FORWARD_AGAIN_MS = 10_000;

export interface PendingChangeDeps {
  epochs: ConsensusEpochs | undefined;
  store: Pick<BlockStore, 'setPendingChange' | 'pendingChange'>;
  transport: Pick<TransportPort, 'broadcast'>;
  clock: Clock;
  log: Logger;
  encode: (frame: Frame) => Uint8Array;
  /** Why no change may be taken now (the epoch has ended and the next has not started), or undefined. */
  switching: () => string | undefined;
  stopped: () => boolean;
  /** A change became pending (work for an idle member: a block to propose). */
  changed: () => void;
}

export class PendingChangeHolder {
  readonly #d: PendingChangeDeps;
  #change: PendingChange | undefined;
  /** While a change submitted here is pending: the timer that passes it on to every validator again. */
  #forwardTimer: { cancel(): void } | undefined;

  constructor(deps: PendingChangeDeps) {
    this.#d = deps;
  }

  /** The change pending here, proposed when this member leads. */
  get change(): PendingChange | undefined { return this.#change; }

  /** The change to propose in a block of `epoch`, if one is pending for it. */
  forEpoch(epoch: number): PendingChange | undefined {
    return this.#change?.epoch === epoch ? this.#change : undefined;
  }

  /**
   * An operator's reconfiguration transaction (btcfed reconfigure assemble), checked against the
   * current epoch's set and quorum, pending here and passed on to every validator. Returns the change.
   */
  submit(tx: Uint8Array): PendingChange {
    const change = this.#take(tx);
    this.#forward(change);
    return change;
  }

  /**
   * submit, and the change kept on disk before it is passed on and this returns (the admin API's
   * path): a restart proposes it again (resume). A write that fails takes the change back and says so.
   */
  async submitDurably(tx: Uint8Array): Promise<PendingChange> {
    // Passed on only once it is on disk: a call that fails has sent the change nowhere.
    const change = this.#take(tx);
    try {
      await this.#d.store.setPendingChange(tx);
    } catch (err) {
      if (this.#change?.id === change.id) this.#change = undefined;
      throw err;
    }
    if (this.#change === change) this.#forward(change);
    return change;
  }

  /**
   * A change another validator forwarded, checked by the inbound path (change-intake.ts): pending
   * here as if submitted here, and kept on disk (a write that fails is said; the submitter keeps it
   * and sends it again). Not passed on: the member it was submitted to does that (every holder
   * passing it on every 10 s would be N − 1 times the bytes, a quorum's signatures each).
   */
  adopt(change: PendingChange, from: number): void {
    if (this.#d.switching() || this.#d.epochs?.current.number !== change.epoch) return;
    this.#change = { ...change, from };
    this.#d.changed();
    this.#d.log.warn({ id: change.id, epoch: change.epoch, ops: change.ops, from }, 'reconfiguration forwarded by another validator: proposed in the next block this member leads');
    this.#d.store.setPendingChange(change.tx).catch((err: unknown) =>
      this.#d.log.warn({ err: errorMessage(err), id: change.id }, 'the forwarded reconfiguration could not be kept on disk (it is pending all the same)'));
  }

  /** At start: the change submitted before a restart is pending again, if it still applies; else it is dropped, said and forgotten. */
  resume(): void {
    if (!this.#d.epochs?.current) return;
    const { log } = this.#d;
    try {
      // Read inside: a value that is not hex (a damaged store) is dropped like a change that no longer applies.
      const tx = this.#d.store.pendingChange();
      if (!tx) return;
      const change = this.submit(tx);
      log.warn({ id: change.id }, 'the reconfiguration submitted before this restart is pending again');
    } catch (err) {
      log.warn({ err: errorMessage(err) }, 'the reconfiguration submitted before this restart no longer applies: dropped');
      this.#d.store.setPendingChange(undefined).catch((e: unknown) => log.warn({ err: errorMessage(e) }, 'the dropped reconfiguration could not be forgotten on disk (the next start checks it again)'));
    }
  }

  /** The epoch ended: whatever is pending is no more (the caller forgets it on disk, with its retried writes). */
  epochEnded(): void {
    this.#change = undefined;
    this.stop();
  }

  /** No more passing on (the driver stops). */
  stop(): void {
    this.#forwardTimer?.cancel();
    this.#forwardTimer = undefined;
  }

  /** submit but for passing it on. */
  #take(tx: Uint8Array): PendingChange {
    const e: Epoch | undefined = this.#d.epochs?.current;
    if (!e) throw new FedError('RECONFIG_UNAVAILABLE', 'this driver runs one epoch only');
    if (this.#d.switching()) throw new FedError('RECONFIG_BUSY', `epoch ${e.number} has ended; submit again once epoch ${e.number + 1} started`);
    const change = checkedChange(e, tx, this.#change);
    this.#change = change;
    this.#d.changed();
    this.#d.log.warn({ id: change.id, epoch: e.number, ops: change.ops }, 'reconfiguration submitted: passed on to every validator, proposed by whichever leads next');
    return change;
  }

  /**
   * Passes `change` on to every validator now and again every FORWARD_AGAIN_MS while it is pending
   * here (a validator that was unreachable, or restarted without it, gets it then). Receivers take
   * the same change again as a duplicate, one token.
   */
  #forward(change: PendingChange): void {
    this.stop();
    const send = (): void => {
      if (this.#d.stopped() || this.#d.switching() || this.#change !== change || this.#d.epochs?.current.number !== change.epoch) return;
      this.#d.transport.broadcast(this.#d.encode({ type: 'reconfig-forward', epoch: change.epoch, tx: change.tx }));
      this.#forwardTimer = this.#d.clock.setTimeout(send, FORWARD_AGAIN_MS);
    };
    send();
  }
}
