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

import { z } from 'zod';
import { FedError, errorMessage } from '#libs/errors/index.ts';
import { sha256Hex, toHex, type SlhDsa } from '#libs/crypto/index.ts';
import { readIfExists, writeFileAtomic } from '#libs/files/index.ts';
import { EpochHistory, decodeReconfigTx, isReconfigTx, type ValidatorSet } from '#libs/validators/index.ts';
import { followEpoch, type EpochChangeProof } from '#libs/verify/index.ts';

export const EPOCHS_FILE = 'epochs.json';
const FORMAT = 'btcfed-signer-epochs';
const VERSION = 1;

/** One ended epoch, as shown: the change (with approvals) that ended it and where. */
export interface EndedEpoch {
  /** Height of the block that committed the change: the last block of its epoch. */
  height: number;
  /** That block's hash: the root of the next epoch (its locks start there). */
  root: Uint8Array;
  /** The change's transaction as the block carried it (encodeReconfigTx). */
  tx: Uint8Array;
}

const hex32 = z.string().regex(/^[0-9a-f]{64}$/, 'must be 32 bytes of lower-case hex');
const fileSchema = z.strictObject({
  format: z.literal(FORMAT),
  version: z.literal(VERSION),
  sha256: hex32,
  ended: z.array(z.strictObject({ height: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER), root: hex32, tx: z.base64().min(1) })),
});

function corrupt(file: string, why: string): FedError {
  return new FedError('SIGNER_EPOCHS_CORRUPT',
    `epoch history ${file} cannot be trusted: ${why}. The signer will not start; restore the file from a backup, or remove it and show the signer the epoch-change proofs again (AdvanceEpoch)`,
    { file, why });
}

/** The history file's text: format, version, checksum, one row per ended epoch. */
export function encodeEpochs(ended: readonly EndedEpoch[]): string {
  const rows = ended.map((e) => ({ height: e.height, root: toHex(e.root), tx: Buffer.from(e.tx).toString('base64') }));
  return `${JSON.stringify({ format: FORMAT, version: VERSION, sha256: sha256Hex(JSON.stringify(rows)), ended: rows }, null, 1)}\n`;
}

/** Parses and checks a history file's text (format, checksum); SIGNER_EPOCHS_CORRUPT names `file` and what failed. */
export function decodeEpochs(text: string, file: string): EndedEpoch[] {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw corrupt(file, `not valid JSON, probably truncated (${errorMessage(err)})`);
  }
  const parsed = fileSchema.safeParse(raw);
  if (!parsed.success) {
    const first = parsed.error.issues[0];
    throw corrupt(file, `field ${first?.path.join('.') || '(file)'}: ${first?.message}`);
  }
  if (sha256Hex(JSON.stringify(parsed.data.ended)) !== parsed.data.sha256) throw corrupt(file, 'checksum mismatch (the content was changed or damaged)');
  return parsed.data.ended.map((e) => ({ height: e.height, root: Uint8Array.from(Buffer.from(e.root, 'hex')), tx: new Uint8Array(Buffer.from(e.tx, 'base64')) }));
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
    for (const [i, e] of ended.entries()) {
      try {
        const { change, approvals } = decodeReconfigTx(e.tx);
        history.apply({ change, approvals, height: e.height });
      } catch (err) {
        throw corrupt(file, `ended[${i}] (the end of epoch ${i}) does not follow from the epochs before it: ${errorMessage(err)}`);
      }
    }
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
