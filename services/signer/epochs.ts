// The epochs a signer has been shown: signer.yaml's validators are genesis's set (epoch 0), and
// every later epoch's set comes from an epoch-change proof (libs/verify followEpoch: the block
// that ended the epoch with its change and the change's approvals, its empty suffix, and a COMMIT
// QC of the old epoch), checked against the keys of the epoch it ends before it is believed. What
// a proof taught is kept in one checksummed file — per epoch, the change's transaction, the height
// that committed it and the hash of that block (the next epoch's root) — replaced atomically, and
// checked again (every approval) when the signer opens it. The signer signs only for the newest
// epoch it knows, and only while its key is in that epoch's set.
// Must never extend the history with a proof that does not verify against the current epoch's
// keys, nor save a history it could not replay, nor open a file it cannot trust.

import { FedError } from '#libs/errors/index.ts';
import type { SlhDsa } from '#libs/crypto/index.ts';
import { readIfExists, writeFileAtomic } from '#libs/files/index.ts';
import { EpochHistory, isReconfigTx, type ValidatorSet } from '#libs/validators/index.ts';
import { decodeEndedEpochs, encodeEndedEpochs, followEpoch, replayEndedEpochs, type EndedEpoch, type EpochChangeProof } from '#libs/verify/index.ts';

export type { EndedEpoch };

export const EPOCHS_FILE = 'epochs.json';
const FORMAT = 'btcfed-signer-epochs';

function corrupt(file: string, why: string): FedError {
  return new FedError('SIGNER_EPOCHS_CORRUPT',
    `epoch history ${file} cannot be trusted: ${why}. The signer will not start; restore the file from a backup, or remove it and show the signer the epoch-change proofs again (AdvanceEpoch)`,
    { file, why });
}

/** The history file's text (libs/verify ended-epochs.ts): format, version, checksum, one row per ended epoch. */
export function encodeEpochs(ended: readonly EndedEpoch[]): string {
  return encodeEndedEpochs(FORMAT, ended);
}

/** Parses and checks a history file's text (format, checksum); SIGNER_EPOCHS_CORRUPT names `file` and what failed. */
export function decodeEpochs(text: string, file: string): EndedEpoch[] {
  const d = decodeEndedEpochs(text, FORMAT);
  if (!d.ok) throw corrupt(file, d.why);
  return d.ended;
}

export type Advance =
  | { kind: 'advanced'; set: ValidatorSet; ended: EndedEpoch }
  | { kind: 'known'; epoch: number }
  | { kind: 'refused'; reason: string };

export interface EpochsOptions { chainId: string; genesisHash: Uint8Array; dsa: Pick<SlhDsa, 'verifySync' | 'publicKeyBytes'> }

export class SignerEpochs {
  readonly #file: string;
  readonly #history: EpochHistory;
  readonly #ended: EndedEpoch[];
  readonly #genesisHash: Uint8Array;
  readonly #chainId: string;

  private constructor(file: string, history: EpochHistory, ended: EndedEpoch[], genesisHash: Uint8Array, chainId: string) {
    this.#file = file;
    this.#history = history;
    this.#ended = ended;
    this.#genesisHash = genesisHash;
    this.#chainId = chainId;
  }

  /**
   * Genesis's set plus what `file` records (none when it does not exist), each change checked
   * again against the set it changed. SIGNER_EPOCHS_CORRUPT names the file and what failed.
   */
  static async open(file: string, genesis: ValidatorSet, o: EpochsOptions): Promise<SignerEpochs> {
    const text = await readIfExists(file);
    return SignerEpochs.replay(file, text === undefined ? [] : decodeEpochs(text, file), genesis, o);
  }

  /** Genesis's set plus `ended`, each change checked again against the set it changed (SIGNER_EPOCHS_CORRUPT naming `file`). */
  static replay(file: string, ended: EndedEpoch[], genesis: ValidatorSet, o: EpochsOptions): SignerEpochs {
    const history = EpochHistory.fromGenesis(genesis, { chainId: o.chainId, publicKeyBytes: o.dsa.publicKeyBytes }, (pk, m, s) => o.dsa.verifySync(pk, m, s));
    const replayed = replayEndedEpochs(history, ended);
    if (!replayed.ok) throw corrupt(file, replayed.why);
    return new SignerEpochs(file, history, ended, o.genesisHash, o.chainId);
  }

  get file(): string { return this.#file; }

  /** Every ended epoch, oldest first. */
  get ended(): readonly EndedEpoch[] { return this.#ended; }

  /** The newest epoch's set (self unresolved). */
  get current(): ValidatorSet { return this.#history.current; }

  /** The root of the newest epoch: genesis for epoch 0, else the block that ended the epoch before. */
  get root(): Uint8Array {
    return this.#ended.at(-1)?.root ?? this.#genesisHash;
  }

  /**
   * Shows the signer a proof. One that ends the newest epoch is checked (followEpoch) and, when it
   * holds, saved durably before this resolves; one of an epoch already ended is 'known' (nothing to
   * learn, and nothing is believed of it); one of a later epoch is refused, naming the gap. A save
   * that fails throws: the history in memory is then ahead of the file, so the caller must stop.
   */
  async advance(proof: EpochChangeProof, dsa: Pick<SlhDsa, 'verifySync'>): Promise<Advance> {
    const at = this.current.epoch;
    const epoch = proof.last.header.epoch;
    if (epoch < at) return { kind: 'known', epoch: at };
    if (epoch > at) return { kind: 'refused', reason: `the proof ends epoch ${epoch}, this signer knows epochs up to ${at}: show it the proofs of epochs ${at}..${epoch - 1} first` };
    const v = followEpoch(this.#history, this.#chainId, proof, dsa);
    if (!v.ok) return { kind: 'refused', reason: v.reason };
    // followEpoch found exactly one change in the block, and decodes only canonical bytes.
    const tx = proof.last.txs.find((t) => isReconfigTx(t))!;
    const ended: EndedEpoch = { height: v.height, root: proof.last.hash, tx };
    this.#ended.push(ended);
    await writeFileAtomic(this.#file, encodeEpochs(this.#ended), { mode: 0o600 });
    return { kind: 'advanced', set: v.set, ended };
  }
}
