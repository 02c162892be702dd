// The data of basic HotStuff: blocks, quorum certificates and the four wire messages.
// Plain data only (no behaviour) so the engine, the simulator, the signer and the wire
// codecs can all share it. Must never carry anything that is not part of the protocol.

/** A 32-byte digest. Compare by bytes (see bytes.ts), never by reference. */
export type Hash = Uint8Array;

/** Phase numbers are part of the canonical signing bytes: never renumber them. */
export const Phase = { PREPARE: 1, PRE_COMMIT: 2, COMMIT: 3 } as const;
export type Phase = (typeof Phase)[keyof typeof Phase];

export interface BlockHeader {
  chainId: string;
  /** The epoch whose validators certify this block (reconfiguration.md): part of its hash. */
  epoch: number;
  height: number;
  view: number;
  parentHash: Hash;
  /** Validator index of the leader that built the block. */
  proposer: number;
  timestampMs: number;
  txRoot: Hash;
  stateHash: Hash;
}

export interface Block {
  header: BlockHeader;
  /** Must equal deps.hashBlock(header); the engine checks it. */
  hash: Hash;
  txs: Uint8Array[];
}

/**
 * A quorum of votes for (phase, view, blockHash). `signers` is a strictly increasing list
 * of validator indices; `signatures[i]` is the vote signature of `signers[i]`.
 * The genesis QC (view 0) has no signers and is accepted without signatures.
 */
export interface QuorumCert {
  phase: Phase;
  view: number;
  blockHash: Hash;
  signers: number[];
  signatures: Uint8Array[];
}

/** PREPARE from the leader: a new block extending `justify.blockHash` (the leader's highQC). */
export interface Proposal {
  type: 'proposal';
  view: number;
  block: Block;
  justify: QuorumCert;
  sender: number;
  signature: Uint8Array;
}

/** A replica's vote, sent to the leader of `view`. */
export interface Vote {
  type: 'vote';
  /** Part of the signed bytes: a vote of one epoch never counts in another. */
  epoch: number;
  phase: Phase;
  view: number;
  blockHash: Hash;
  sender: number;
  signature: Uint8Array;
}

/** "I am done with every view below `view`; here is my highest prepareQC." */
export interface NewView {
  type: 'new-view';
  /** Part of the signed bytes: views restart at 1 in every epoch. */
  epoch: number;
  view: number;
  highQC: QuorumCert;
  sender: number;
  signature: Uint8Array;
}

/**
 * The leader's PRE-COMMIT / COMMIT / DECIDE message: it carries a QC of phase
 * PREPARE / PRE_COMMIT / COMMIT respectively. Unsigned on purpose: the QC authenticates
 * itself, so anyone may relay it; `sender` only says whom to fetch missing blocks from.
 */
export interface QcAnnounce {
  type: 'qc';
  /** The epoch whose votes make `qc` (not signed: the QC's votes are). */
  epoch: number;
  qc: QuorumCert;
  sender: number;
}

/** The messages whose signature the injected verifier checks. */
export type SignedMessage = Proposal | Vote | NewView;
export type ConsensusMessage = SignedMessage | QcAnnounce;

/** Two signed messages of one member that conflict for the same (view, phase). */
export interface Equivocation {
  sender: number;
  view: number;
  /** 'proposal' for two proposals, otherwise the vote phase. */
  kind: 'proposal' | Phase;
  first: Proposal | Vote;
  second: Proposal | Vote;
}
