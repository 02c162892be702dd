// The epochs of this member's chain: genesis's validator set (conf.yaml's validators) plus each
// ended epoch's proof, kept in the block store and checked again at every start with the walk every
// verifier uses (libs/verify followEpoch: the QC against the ending epoch's keys, the change against
// its set and quorum). Each epoch comes with what runs it: its set, with this member's seat found by
// name (a rotation keeps the name), its root block (genesis, or the last block of the epoch before),
// and a signature verifier over its keys and root.
// Must never believe an epoch whose proof does not verify against the epoch before it.

import { FedError } from '#libs/errors/index.ts';
import { genesisBlock, type Block, type QuorumCert } from '#libs/hotstuff/index.ts';
import { EpochHistory, type ConsensusParams, type ReconfigRules, type ValidatorSet, type Verify } from '#libs/validators/index.ts';
import { epochEndCommitted, followEpoch, type EpochChangeProof } from '#libs/verify/index.ts';
import { sha256Hex, type SlhDsa } from '#libs/crypto/index.ts';
import { epochProofBytes, type BlockStore } from './block-store.ts';
import { SignatureVerifier } from './verifier.ts';

export interface Epoch {
  readonly number: number;
  /** The epoch's validators, with this member as self when it is one of them. */
  readonly set: ValidatorSet;
  /** Genesis for epoch 0; otherwise the block that ended the epoch before (its root QC needs no signatures). */
  readonly root: Block;
  readonly verifier: SignatureVerifier;
  /** What a change in this epoch is held to (libs/blocks validity, SubmitReconfiguration). */
  readonly reconfig: { rules: ReconfigRules; verify: Verify };
  /** The consensus parameters a committed change set for this epoch; undefined: genesis's (conf.yaml's) apply. */
  readonly params: ConsensusParams | undefined;
}

/**
 * The consensus parameters epoch `e` runs: a committed change's, else genesis's (`fallback`,
 * conf.yaml's base_timeout and idle_heartbeat). The driver's timer and idle views and what
 * GetValidators reports.
 */
export function paramsInForce(e: Epoch, fallback: ConsensusParams): ConsensusParams & { committed: boolean } {
  return e.params ? { ...e.params, committed: true } : { ...fallback, committed: false };
}

export interface EpochsOptions {
  chainId: string;
  /** conf.yaml's validators: genesis's set (self is resolved per epoch, by `member`). */
  genesis: ValidatorSet;
  /** This member's name (conf.yaml node.name). */
  member: string;
  dsa: SlhDsa;
  store: BlockStore;
}

export class ConsensusEpochs {
  readonly #o: EpochsOptions;
  readonly #history: EpochHistory;
  #current: Epoch;
  /**
   * The next epoch's set, verified, while recording its proof has not succeeded yet (a full disk),
   * with the proof that gave it (the history has moved on: it cannot be walked again).
   */
  #verified: { set: ValidatorSet; by: EpochChangeProof } | undefined;
  /** Each ended epoch's commit QC (the proof's), what a member left behind in it is answered with. */
  readonly #endQcs: QuorumCert[];
  /**
   * What walk() verified, from epoch `from` on: each proof by the hash of its exact bytes, the set it
   * led to, and the history at the end of them. A join walks every proof it holds again with each
   * response; only those not walked yet are verified (each a quorum of SLH-DSA signatures twice).
   */
  #walked: { from: number; proofs: EpochChangeProof[]; keys: string[]; sets: ValidatorSet[]; history: EpochHistory } | undefined;

  private constructor(o: EpochsOptions, history: EpochHistory, current: Epoch, endQcs: QuorumCert[]) {
    this.#o = o;
    this.#history = history;
    this.#current = current;
    this.#endQcs = endQcs;
  }

  /** Genesis plus the store's ended epochs, each proof checked again; STORE_CORRUPT names the one that fails. */
  static open(o: EpochsOptions): ConsensusEpochs {
    const history = EpochHistory.fromGenesis(o.genesis.withSelf({ name: o.member }, { optional: true }), rulesOf(o), (pk, m, sig) => o.dsa.verifySync(pk, m, sig));
    let root = genesisBlock(o.chainId, o.store.hashBlock);
    const endQcs: QuorumCert[] = [];
    for (const [epoch, proof] of o.store.endedEpochs().entries()) {
      const v = followEpoch(history, o.chainId, proof, o.dsa);
      if (!v.ok) throw new FedError('STORE_CORRUPT', `the stored proof that epoch ${epoch} ended does not verify: ${v.reason}`, { epoch });
      root = proof.last;
      endQcs.push(proof.qc);
    }
    return new ConsensusEpochs(o, history, epochOf(o, history.current, root, history.paramsOf(history.current.epoch)), endQcs);
  }

  /** The commit QC epoch `epoch` ended with, or undefined for an epoch that has not ended. */
  endQcOf(epoch: number): QuorumCert | undefined { return this.#endQcs[epoch]; }

  get current(): Epoch { return this.#current; }

  /** The set of an epoch reached so far (self unresolved), or undefined. */
  setOf(epoch: number): ValidatorSet | undefined { return this.#history.setOf(epoch); }

  /**
   * Checks that `proof` ends the current epoch (followEpoch) and returns the next epoch's set, before
   * anything is stored: a follower commits the epoch's last blocks only once their end is proven.
   * Throws EPOCH_PROOF_INVALID, naming what failed. `end` then records it (checking nothing again
   * when given the very proof verified).
   */
  verify(proof: EpochChangeProof): ValidatorSet {
    const ending = this.#current.number;
    if (this.#verified) {
      if (Buffer.compare(this.#verified.by.last.hash, proof.last.hash) !== 0) {
        throw new FedError('EPOCH_PROOF_INVALID', `epoch ${ending} was shown ending at another block already`, { epoch: ending });
      }
      // The same last block carries the same change, so the same next set; but another proof of it
      // (a second source's, after a write failed) may carry any QC, suffix or transactions, and
      // `end` records what it is given: its commit is checked again against the ending epoch's keys.
      if (proof !== this.#verified.by) {
        const v = epochEndCommitted(this.#o.chainId, this.#history.setOf(ending)!, proof, this.#o.dsa);
        if (!v.ok) throw new FedError('EPOCH_PROOF_INVALID', `epoch ${ending} cannot end with this proof: ${v.reason}`, { epoch: ending });
      }
      return this.#verified.set;
    }
    const v = followEpoch(this.#history, this.#o.chainId, proof, this.#o.dsa);
    if (!v.ok) throw new FedError('EPOCH_PROOF_INVALID', `epoch ${ending} cannot end with this proof: ${v.reason}`, { epoch: ending });
    this.#verified = { set: v.set, by: proof };
    return v.set;
  }

  /**
   * Walks `proofs` on from the current epoch without recording anything (a join from a checkpoint
   * checks them all before it writes): the set of each epoch reached, in order. Throws
   * EPOCH_PROOF_INVALID naming the epoch whose proof fails.
   */
  walk(proofs: readonly EpochChangeProof[]): ValidatorSet[] {
    let w = this.#walked;
    // The very proof walked (the join hands the same ones again), else one of the same bytes.
    const same = (p: EpochChangeProof, i: number) => w!.proofs[i] === p || w!.keys[i] === proofKey(p);
    // Walked from an epoch since ended here, or another proof where one was walked: from the start.
    if (!w || w.from !== this.#current.number || !proofs.slice(0, w.keys.length).every(same)) {
      const history = EpochHistory.fromGenesis(this.#o.genesis.withSelf({ name: this.#o.member }, { optional: true }), rulesOf(this.#o), (pk, m, sig) => this.#o.dsa.verifySync(pk, m, sig));
      for (const proof of this.#o.store.endedEpochs()) {
        const v = followEpoch(history, this.#o.chainId, proof, this.#o.dsa);
        if (!v.ok) throw new FedError('STORE_CORRUPT', `a stored epoch proof does not verify: ${v.reason}`);
      }
      w = this.#walked = { from: this.#current.number, proofs: [], keys: [], sets: [], history };
    }
    // Those walked already stay walked when a later one fails (a refused proof changes nothing).
    for (let i = w.keys.length; i < proofs.length; i++) {
      const ending = w.history.current.epoch;
      const v = followEpoch(w.history, this.#o.chainId, proofs[i]!, this.#o.dsa);
      if (!v.ok) throw new FedError('EPOCH_PROOF_INVALID', `epoch ${ending} cannot end with this proof: ${v.reason}`, { epoch: ending });
      w.proofs.push(proofs[i]!);
      w.keys.push(proofKey(proofs[i]!));
      w.sets.push(v.set);
    }
    return w.sets.slice(0, proofs.length);
  }

  /**
   * The current epoch ended with `proof`: checked (followEpoch), recorded durably in the store, and
   * the next epoch returned (and made current). Throws EPOCH_PROOF_INVALID, naming what failed,
   * when the proof does not verify — nothing is recorded then.
   */
  async end(proof: EpochChangeProof): Promise<Epoch> {
    const ending = this.#current.number;
    const next = this.verify(proof);
    // A write that fails (STORE_WRITE_FAILED) is tried again by the caller with the same proof.
    await this.#o.store.endEpoch(ending, proof);
    this.#endQcs[ending] = proof.qc;
    this.#current = epochOf(this.#o, next, proof.last, this.#history.paramsOf(next.epoch));
    this.#verified = undefined;
    return this.#current;
  }
}

function epochOf(o: EpochsOptions, set: ValidatorSet, root: Block, params: ConsensusParams | undefined): Epoch {
  const seated = set.withSelf({ name: o.member }, { optional: true });
  return {
    number: set.epoch, set: seated, root,
    verifier: new SignatureVerifier({ chainId: o.chainId, publicKeys: seated.publicKeys(), dsa: o.dsa, genesisHash: root.hash }),
    reconfig: { rules: rulesOf(o), verify: (pk, m, sig) => o.dsa.verifySync(pk, m, sig) },
    params,
  };
}

/** A proof by the hash of its exact bytes (as stored and served). */
const proofKey = (p: EpochChangeProof): string => sha256Hex(epochProofBytes(p));

const rulesOf = (o: EpochsOptions): ReconfigRules => ({ chainId: o.chainId, publicKeyBytes: o.dsa.publicKeyBytes });
