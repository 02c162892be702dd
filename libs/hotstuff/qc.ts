// Quorum-certificate validation with a cache. A QC is checked once per (phase, view, block):
// later copies are replaced by the already-verified object, so a forged copy of a known
// certificate is never relayed and no signature is verified twice. Must never accept a QC
// whose signatures it has not seen verify (the genesis QC is the one exception).

import { toHex } from './bytes.ts';
import { isGenesisQC } from './genesis.ts';
import { quorumSize } from './quorum.ts';
import { Phase, type Hash, type QuorumCert, type SignedMessage } from './types.ts';

const CACHE_LIMIT = 512;

export function qcKey(qc: QuorumCert): string {
  return `${qc.phase}:${qc.view}:${toHex(qc.blockHash)}`;
}

/**
 * A QC reference: a QC's phase, view and block without its signatures. A NEW-VIEW carries one
 * to every member but the target view's leader (synchronizer.ts): its signature covers exactly
 * these three fields, so the claim verifies, and only the leader needs the QC itself. Never valid
 * as a certificate: QcVerifier.check refuses it (no quorum of signers).
 */
export function qcRef(qc: QuorumCert): QuorumCert {
  return { phase: qc.phase, view: qc.view, blockHash: qc.blockHash, signers: [], signatures: [] };
}

/** Whether `qc` is a reference (no signers, no signatures) rather than a certificate. The genesis QC has view 0. */
export function isQcRef(qc: QuorumCert): boolean {
  return qc.signers.length === 0 && qc.signatures.length === 0 && qc.view > 0;
}

/**
 * What makes a QC well-formed for a set of `n` validators with quorum `quorum`, before any signature
 * is looked at: a phase, a positive view (only genesis has view 0), a 32-byte block hash, a quorum of
 * strictly increasing (so distinct) validator indices, one signature each. The one structure check:
 * the engine (QcVerifier), the consensus service's verifier, the signer and the light client use it.
 */
export function qcStructureError(qc: QuorumCert, n: number, quorum: number): string | null {
  if (qc.phase !== Phase.PREPARE && qc.phase !== Phase.PRE_COMMIT && qc.phase !== Phase.COMMIT) return 'bad phase';
  if (!Number.isSafeInteger(qc.view) || qc.view < 1) return `view ${qc.view} is not a positive integer (only genesis has view 0)`;
  if (!(qc.blockHash instanceof Uint8Array) || qc.blockHash.length !== 32) return 'block hash is not 32 bytes';
  if (qc.signers.length < quorum) return `${qc.signers.length} signers < quorum ${quorum} of ${n}`;
  if (qc.signatures.length !== qc.signers.length) return 'signers/signatures length mismatch';
  let prev = -1;
  for (const s of qc.signers) {
    if (!Number.isInteger(s) || s <= prev || s >= n) return 'signers are not strictly increasing validator indices';
    prev = s;
  }
  return null;
}

export class QcVerifier {
  readonly #n: number;
  readonly #quorum: number;
  readonly #genesisHash: Hash;
  readonly #verify: (m: SignedMessage) => boolean;
  readonly #epoch: number;
  readonly #cache = new Map<string, QuorumCert>();

  /** `epoch`: the QCs checked are of this epoch (their votes' signed bytes say so). */
  constructor(n: number, genesisHash: Hash, verify: (m: SignedMessage) => boolean, epoch = 0) {
    this.#epoch = epoch;
    this.#n = n;
    this.#quorum = quorumSize(n);
    this.#genesisHash = genesisHash;
    this.#verify = verify;
  }

  /** The verified QC to keep (possibly an earlier equal one), or a reason it is invalid. */
  check(qc: QuorumCert): { ok: true; qc: QuorumCert } | { ok: false; why: string } {
    if (isGenesisQC(qc, this.#genesisHash)) return { ok: true, qc };
    const key = qcKey(qc);
    const known = this.#cache.get(key);
    if (known) return { ok: true, qc: known };
    const why = this.#structureError(qc) ?? this.#signatureError(qc);
    if (why) return { ok: false, why };
    this.#remember(key, qc);
    return { ok: true, qc };
  }

  /** Record a QC this engine assembled itself from votes it verified one by one. */
  adopt(qc: QuorumCert): void {
    this.#remember(qcKey(qc), qc);
  }

  #structureError(qc: QuorumCert): string | null {
    return qcStructureError(qc, this.#n, this.#quorum);
  }

  #signatureError(qc: QuorumCert): string | null {
    for (let i = 0; i < qc.signers.length; i++) {
      const vote = {
        type: 'vote' as const,
        epoch: this.#epoch,
        phase: qc.phase,
        view: qc.view,
        blockHash: qc.blockHash,
        sender: qc.signers[i]!,
        signature: qc.signatures[i]!,
      };
      if (!this.#verify(vote)) return `bad signature of ${vote.sender}`;
    }
    return null;
  }

  #remember(key: string, qc: QuorumCert): void {
    if (this.#cache.size >= CACHE_LIMIT) {
      // Evict the oldest entries: certificates of long-gone views are rarely seen again.
      const drop = this.#cache.keys();
      for (let i = 0; i < CACHE_LIMIT / 4; i++) this.#cache.delete(drop.next().value!);
    }
    this.#cache.set(key, qc);
  }
}
