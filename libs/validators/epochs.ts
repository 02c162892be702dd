// The epoch history: the validator set of every epoch, derived from genesis plus the committed
// reconfigurations in order, and which epoch a block height belongs to. The block that commits a
// change at height h is the last of epoch e; height h + 1 is the first of epoch e + 1. Anyone
// holding genesis and the committed changes with their approvals derives the same history — the
// walk a light client or a joining member makes from genesis (an epoch-change proof is this list).
// Pure: the signature check is passed in.
// Must never accept a change that nextValidatorSet or authorizeChange refuses, nor one committed
// at a height not above the previous change's.

import { FedError } from '#libs/errors/index.ts';
import { authorizeChange, nextValidatorSet, paramsOfChange, reconfigId, type Approval, type ConsensusParams, type ReconfigRules, type Reconfiguration } from './reconfig.ts';
import type { ValidatorSet } from './set.ts';

export interface CommittedChange {
  readonly change: Reconfiguration;
  readonly approvals: readonly Approval[];
  /** Height of the block that committed it: the last block of epoch change.epoch. */
  readonly height: number;
}

interface Epoch {
  readonly set: ValidatorSet;
  /** First height of the epoch (genesis: 0). */
  readonly from: number;
  /** The change that started it (undefined for genesis). */
  readonly id: string | undefined;
  /** The parameters the last change that set any gave (undefined: genesis's, conf.yaml's). */
  readonly params: ConsensusParams | undefined;
}

export type Verify = (publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array) => boolean;

export class EpochHistory {
  readonly #epochs: Epoch[];
  readonly #rules: ReconfigRules;
  readonly #verify: Verify;

  private constructor(epochs: Epoch[], rules: ReconfigRules, verify: Verify) {
    this.#epochs = epochs;
    this.#rules = rules;
    this.#verify = verify;
  }

  /** The history of a chain that has committed no change yet: epoch 0 is genesis's set. */
  static fromGenesis(genesis: ValidatorSet, rules: ReconfigRules, verify: Verify): EpochHistory {
    if (genesis.epoch !== 0) throw new FedError('RECONFIG_INVALID', `genesis must be epoch 0, not ${genesis.epoch}`, { field: 'epoch' });
    return new EpochHistory([{ set: genesis, from: 0, id: undefined, params: undefined }], rules, verify);
  }

  /** Genesis plus each committed change, checked in order (an epoch-change proof, walked). */
  static replay(genesis: ValidatorSet, changes: readonly CommittedChange[], rules: ReconfigRules, verify: Verify): EpochHistory {
    const h = EpochHistory.fromGenesis(genesis, rules, verify);
    for (const c of changes) h.apply(c);
    return h;
  }

  get current(): ValidatorSet { return this.#epochs[this.#epochs.length - 1]!.set; }

  /** The set of `epoch`, or undefined for an epoch not (yet) reached. */
  setOf(epoch: number): ValidatorSet | undefined { return this.#epochs[epoch]?.set; }

  /** The epoch a block at `height` belongs to (heights of the future belong to the current one). */
  epochAt(height: number): number {
    for (let e = this.#epochs.length - 1; e > 0; e--) if (height >= this.#epochs[e]!.from) return e;
    return 0;
  }

  /**
   * The consensus parameters of `epoch` set by a committed change (the latest at or before it), or
   * undefined where none has been: genesis's then apply.
   */
  paramsOf(epoch: number): ConsensusParams | undefined { return this.#epochs[epoch]?.params; }

  /** First height of `epoch`, or undefined. */
  firstHeight(epoch: number): number | undefined { return this.#epochs[epoch]?.from; }

  /**
   * A change committed at `height`: valid against the current set, authorised by a quorum of it,
   * committed above the last change. Returns the new epoch's set; on any refusal nothing changes.
   */
  apply(c: CommittedChange): ValidatorSet {
    const last = this.#epochs[this.#epochs.length - 1]!;
    if (!Number.isSafeInteger(c.height) || c.height < last.from) {
      throw new FedError('RECONFIG_INVALID', `height: a change committed at ${c.height} cannot end epoch ${last.set.epoch}, which starts at ${last.from}`, { field: 'height' });
    }
    const next = nextValidatorSet(last.set, c.change, this.#rules);
    authorizeChange(last.set, c.change, c.approvals, this.#verify);
    this.#epochs.push({ set: next, from: c.height + 1, id: reconfigId(c.change), params: paramsOfChange(c.change) ?? last.params });
    return next;
  }
}
