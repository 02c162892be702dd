// What a simulated run is made of: the members, their faults, the network and the checks.
// A Scenario is plain data (JSON-serialisable) so any failing run can be printed and
// replayed exactly. Must never hold functions or live objects.

import type { TimeoutConfig } from '../events.ts';
import type { NetworkSpec, OneWayCut, TimedPartition, TwinsRound } from './network.ts';

export type ByzantineKind = 'silent' | 'equivocator' | 'double-voter' | 'forking-leader' | 'stalling-leader';

export interface CrashSpec {
  instance: number;
  atMs: number;
  /** Omitted: stays down. */
  restartAtMs?: number;
  /**
   * The others hear of it (its gateway says its consensus is gone, or every connection to it
   * closes: a 'peer-absent' event PRESENCE_DELAY_MS on, and 'present' after its restart) unless
   * this is true — a member cut off without a word.
   */
  unannounced?: boolean;
}

export interface LivenessSpec {
  /** Every honest member that is up must commit this many blocks after the heal... */
  commits: number;
  /** ...before the highest honest view has moved this many views past the heal. */
  views: number;
}

export interface Scenario {
  n: number;
  seed: number;
  chainId?: string;
  /** Identities that run a second instance with the same key (instances n, n+1, … in order). */
  twins?: number[];
  byzantine?: Record<number, ByzantineKind>;
  network?: Partial<NetworkSpec>;
  partitions?: TimedPartition[];
  cuts?: OneWayCut[];
  /** Twins rounds: view r+1 uses rounds[r] (leader and partition); later views are healed. */
  rounds?: TwinsRound[];
  /**
   * 'round-robin': every engine runs plain view mod N (config.leaderOf) instead of the schedule
   * (schedule.ts) — a baseline to measure the schedule against, or a test of suspicion alone.
   */
  leaders?: 'round-robin';
  crashes?: CrashSpec[];
  timeouts?: TimeoutConfig;
  /** When drops, tails, partitions and cuts stop; defaults to the end of the last of them. */
  healAtMs?: number;
  liveness?: LivenessSpec | false;
  /** false: liveness only ends the run early, a miss is not a violation (mutation runs). */
  judgeLiveness?: boolean;
  maxTimeMs?: number;
  maxSteps?: number;
  /**
   * The mutation test, applied at the network edge of every honest member (the engine has no switch
   * for it): 'double-vote' — it also votes for every proposal and QC it hears of; 'no-lock' — it
   * also sends the PREPARE vote its engine refused because of its lock. The checkers still judge
   * these members honest, so a violation they cause must be caught.
   */
  mutation?: 'no-lock' | 'double-vote';
  /** Virtual cost of a signature and of building a payload. */
  signDelayMs?: number;
  /**
   * Idle views (waitForWork): a member has work only from a heartbeat `heartbeatMs` after its last
   * commit, or from `work` (a client's transaction reaching `instance` at `atMs`, handed to the
   * leaders of its current and next view as the service hands it on); a commit uses it up.
   */
  idle?: { heartbeatMs: number; work?: { atMs: number; instance: number }[] };
}

export const DEFAULT_TIMEOUTS: TimeoutConfig = { baseMs: 100, multiplier: 1.5, capMs: 2000 };

/** Instance ids → identity: 0..n-1 are themselves, then one instance per twin entry. */
export function identities(s: Scenario): number[] {
  const ids = Array.from({ length: s.n }, (_, i) => i);
  for (const t of s.twins ?? []) ids.push(t);
  return ids;
}

export function isHonestIdentity(s: Scenario, identity: number): boolean {
  return !(s.twins ?? []).includes(identity) && s.byzantine?.[identity] === undefined;
}

/** Default heal: once every timed fault is over. */
export function healTime(s: Scenario): number {
  if (s.healAtMs !== undefined) return s.healAtMs;
  let t = 0;
  for (const p of s.partitions ?? []) t = Math.max(t, p.toMs);
  for (const c of s.cuts ?? []) t = Math.max(t, c.toMs);
  for (const c of s.crashes ?? []) t = Math.max(t, c.restartAtMs ?? c.atMs);
  return t;
}
