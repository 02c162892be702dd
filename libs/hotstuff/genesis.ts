// The fixed genesis block and its QC, derived from the chain id alone so that every member
// agrees on them without exchanging anything. Must never depend on keys or time.

import { ZERO_HASH, bytesEqual } from './bytes.ts';
import { Phase, type Block, type BlockHeader, type Hash, type QuorumCert } from './types.ts';

export function genesisHeader(chainId: string): BlockHeader {
  return {
    chainId,
    epoch: 0,
    height: 0,
    view: 0,
    parentHash: ZERO_HASH,
    proposer: 0,
    timestampMs: 0,
    txRoot: ZERO_HASH,
    stateHash: ZERO_HASH,
  };
}

export function genesisBlock(chainId: string, hashBlock: (h: BlockHeader) => Hash): Block {
  const header = genesisHeader(chainId);
  return { header, hash: hashBlock(header), txs: [] };
}

/** The QC every member accepts without signatures: a PREPARE QC of view 0 on genesis. */
export function genesisQC(genesis: Block): QuorumCert {
  return { phase: Phase.PREPARE, view: 0, blockHash: genesis.hash, signers: [], signatures: [] };
}

/**
 * The QC an epoch after the first starts from: like genesis's, a PREPARE QC of view 0 on its root
 * block (the last block of the epoch before), accepted without signatures by that epoch's engine.
 */
export const rootQC = genesisQC;

export function isGenesisQC(qc: QuorumCert, genesisHash: Hash): boolean {
  return qc.view === 0 && qc.signers.length === 0 && qc.signatures.length === 0 && bytesEqual(qc.blockHash, genesisHash);
}
