// Checks a quorum certificate against the validator set of the signer's OWN config: structure
// (phase, view, 32-byte hash, strictly increasing signer indices, a quorum, one signature per
// signer), then every signature, in parallel on the libuv pool. Valid QCs are remembered by
// (phase, view, block) so a justify QC seen with a proposal is not verified again for the vote.
// Must never accept a QC whose signatures it has not seen verify (genesis is the one exception)
// and never take a public key from anywhere but the configured set.

import { voteSigningBytes, type SlhDsa } from '#libs/crypto/index.ts';
import { isGenesisQC, qcStructureError, toHex, type QuorumCert } from '#libs/hotstuff/index.ts';
import type { ValidatorSet } from '#libs/validators/index.ts';

const CACHE_LIMIT = 256;

export interface QcCheckerOptions {
  chainId: string;
  /** The signer's own validator set (signer.yaml): the keys and the quorum. */
  validators: ValidatorSet;
  /** The epoch's root (genesis, or the block that ended the epoch before): its QC has view 0 and no signatures. */
  rootHash: Uint8Array;
  slh: SlhDsa;
}

export interface QcChecker {
  /** null when valid, else the reason. Never rejects. */
  check(qc: QuorumCert): Promise<string | null>;
  /** The structure checks alone (no signatures). */
  structureError(qc: QuorumCert): string | null;
}


export function createQcChecker(opts: QcCheckerOptions): QcChecker {
  const { n, quorum } = opts.validators;
  const publicKeys = opts.validators.publicKeys();
  const valid = new Set<string>();

  // The one structure check (libs/hotstuff qc.ts), against the signer's own set.
  const structureError = (qc: QuorumCert): string | null => qcStructureError(qc, n, quorum);

  const check = async (qc: QuorumCert): Promise<string | null> => {
    if (isGenesisQC(qc, opts.rootHash)) return null;
    const structural = structureError(qc);
    if (structural) return structural;
    const key = `${qc.phase}:${qc.view}:${toHex(qc.blockHash)}`;
    if (valid.has(key)) return null;
    const message = voteSigningBytes({ chainId: opts.chainId, epoch: opts.validators.epoch, phase: qc.phase, view: qc.view, blockHash: qc.blockHash });
    const results = await Promise.all(qc.signers.map((s, i) => opts.slh.verify(publicKeys[s]!, message, qc.signatures[i]!)));
    const bad = results.findIndex((ok) => !ok);
    if (bad >= 0) return `bad signature of validator ${qc.signers[bad]}`;
    if (valid.size >= CACHE_LIMIT) valid.delete(valid.values().next().value!);
    valid.add(key);
    return null;
  };

  return { check, structureError };
}
