// What a Byzantine scenario is: an attack that starts, runs while the runner measures the honest
// commit rate, and stops; then the scenario's own checks (the attack was refused, counted, its
// sender muted, nothing stored that should not be). The runner (run.ts) owns the throughput bar
// and the memory check; a scenario throws, saying which honest behaviour is wrong, when it is
// not defeated.

import type { Federation } from './federation.ts';
import { HONEST, sleep } from './federation.ts';
import type { ByzantineMember } from './member.ts';
import type { AttackerBox } from './measure.ts';

export interface Context { fed: Federation; byz: ByzantineMember; box: AttackerBox; note(s: string): void }

export interface Attack {
  /** Ends the attack (the runner then restores m3's honest behaviour). */
  stop(): Promise<void>;
  /** The scenario's own checks, once the attack is over. */
  check?(): Promise<void>;
  /**
   * Waits, once the attack has stopped, until the honest members have worked off the backlog the
   * attack was allowed to leave them (transactions within its quota, still waiting for blocks),
   * and says what it saw. The runner judges memory after it: the backlog is bounded, and the
   * scenario checks that bound; memory still held once it is gone is held by the service.
   */
  drained?(): Promise<string>;
}

export interface Scenario {
  name: string;
  /** In the CI set (test/byzantine.test.ts); every scenario runs in `npm run byzantine`. */
  ci: boolean;
  /** The least time the attack runs while the rate is measured, when its checks need more than a short window. */
  duringMs?: number;
  /**
   * Changes the federation once, before its rate is first measured (a scenario that needs another
   * validator set): the rate before the attack is then the changed federation's.
   */
  prepare?(ctx: Context): Promise<void>;
  start(ctx: Context): Promise<Attack>;
  /** Undoes what prepare() or start() left running once the scenario is over, however it ended. */
  finish?(): Promise<void>;
}

export const check = (ok: boolean, why: string): void => { if (!ok) throw new Error(why); };

/** The health check every scenario ends with: honest members commit `k` more, none halted, logs agree. */
export async function healthy(fed: Federation, k = 3, ms = 60_000): Promise<string> {
  const r = await fed.keepsCommitting(k, ms);
  const top = await fed.logsAgree();
  return `heights ${r.from}→${r.to}, logs agree to ${top}`;
}

/** Runs `attack` repeatedly in the background until stop() (errors are the attacker's problem). */
export function background(attack: () => Promise<void>): Attack {
  let on = true;
  const loop = (async () => { while (on) { try { await attack(); } catch { /* keep attacking */ } await sleep(5); } })();
  return { stop: async () => { on = false; await loop; } };
}

/** A metric summed over the honest members' consensus services, one number per member. */
export function perHonest(fed: Federation, name: string, labels?: RegExp): Promise<number[]> {
  return Promise.all(HONEST.map((i) => fed.metric(i, 'consensus', name, labels)));
}

/** `now − before` member by member, as "a/b/c". */
export const deltas = (before: readonly number[], now: readonly number[]): string => now.map((x, k) => x - before[k]!).join('/');
