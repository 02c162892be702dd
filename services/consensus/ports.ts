// The consensus driver's narrow view of the world outside it: a signer that may refuse, a
// transport to the other validators, the things that want to hear about commits, and a clock.
// The service's main.ts plugs in the gRPC signer and the gateway stream; tests plug in
// in-process implementations through the same interfaces.

import type { EpochChangeProof } from '#libs/verify/index.ts';
import type { Block, ConsensusMessage, Equivocation, QuorumCert, SignRequest } from '#libs/hotstuff/index.ts';
import type { ValidatorSet } from '#libs/validators/index.ts';

export interface SignerPort {
  /** The signature, or a rejection: FedError('SIGNER_REFUSED') when the signer's rules say no. */
  sign(request: SignRequest): Promise<Uint8Array>;
  /**
   * Shows the signer the proof that its epoch ended (AdvanceEpoch); it signs for the next epoch
   * only once this resolved. Whether this member's key is seated in the next epoch.
   */
  advanceEpoch?(proof: EpochChangeProof): Promise<{ epoch: number; seated: boolean }>;
}

/**
 * Peers that are not validators (observers, or anyone that connected) are numbered from here by
 * the gateway link, in a bounded set of slots (MAX_OUTSIDE_PEERS) reused oldest first: every
 * per-peer map keyed by these numbers (penalties, serving budgets) stays bounded.
 */
export const OUTSIDE_BASE = 1 << 20;
export const MAX_OUTSIDE_PEERS = 1024;
export const isOutside = (peer: number | null | undefined): boolean => peer !== null && peer !== undefined && peer >= OUTSIDE_BASE;

export interface TransportPort {
  /** Best effort: consensus tolerates loss, its pacemaker recovers. */
  send(to: number, frame: Uint8Array): void;
  broadcast(frame: Uint8Array): void;
  /** The largest frame the transport carries (the gateway reports it when attached); undefined until known. */
  readonly maxFrameBytes?: number | undefined;
  /**
   * Drop a peer's frames at the transport's edge for `ms` (0: lift the mute): the gateway then
   * stops reading them, so a muted peer costs nothing on the way here.
   */
  mute?(peer: number, ms: number, reason: string): void;
}

export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): { cancel(): void };
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout(fn, ms) {
    const t = setTimeout(fn, ms);
    return { cancel: () => clearTimeout(t) };
  },
};

/** What the driver reports, for the API, events and metrics. Every method must not throw. */
export interface DriverObserver {
  committed?(blocks: readonly Block[], qc: QuorumCert): void;
  /** Epoch `epoch` started from `root` (the last block of the epoch before) with `set`; `seated`: this member votes in it. */
  epochStarted?(epoch: number, set: ValidatorSet, root: Block, seated: boolean): void;
  viewChanged?(view: number, leader: number, cause: string): void;
  evidence?(e: Equivocation): void;
  rejected?(from: number | null, reason: string, detail: string): void;
  /** A peer answered a block request of ours: it keeps blocks from `oldestHeight` only (pruned what we lack). */
  prunedAnswer?(from: number, oldestHeight: number): void;
  /** A message of `epoch` from validator `from` of that epoch's set failed its signature check (the epoch may have ended since). */
  invalidSignature?(from: number, what: string, view: number, epoch: number): void;
  halted?(height: number, detail: string): void;
  /** Every message this member sends (for timing: proposal → QC formation when leading). */
  sent?(message: ConsensusMessage): void;
  /** The view timer was armed: the engine's back-off with its timer level. */
  timerSet?(view: number, ms: number, level: number): void;
  /** A validator's frames are dropped unread for the next `ms` (services/consensus/penalties.ts). */
  muted?(peer: number, ms: number): void;
  /** The view was given up on entering it: its leader is suspected (libs/hotstuff suspicion.ts). */
  viewSkipped?(view: number, leader: number, reason: string): void;
  /** The members the leader schedule leaves out of the rotation changed (libs/hotstuff schedule.ts): now `skipped`. */
  leadersSkipped?(view: number, skipped: readonly number[]): void;
  /** This member built a block as leader: `named` of its transactions travel in batches it names, `inline` in the proposal. */
  proposed?(named: number, inline: number): void;
}
