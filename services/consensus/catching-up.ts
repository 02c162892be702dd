// Whether this member's engine is catching up through a long block sync, said to its gateway
// (AttachRequest.participation) so that the other validators give its views up at once, with no
// record against it, while it cannot propose (services/gateway/presence.ts). Without the word, a
// member restarted far behind fails each view it is given while it syncs, like a leader that stalls,
// and the others' suspicion keeps it from leading for up to 256 of its views after it caught up.
//
// Behind means the engine holds a commit QC whose block's ancestry it lacks (it is fetching it), or
// it has committed nothing since the process started. Missing one proposal does the first for a
// round trip; a restart far behind does it for as long as the sync lasts. So the word is said only
// once that has lasted ENTER_MS, and every word stands at least MIN_SAID_MS (the gateway's peers
// take a burst of eight, then one word every two seconds). A service starts saying it: until the
// first commit reaches it, it cannot know it is not far behind, and the others' first sign of it
// (a commit QC it lacks) may come only after a view or more — with its views failed meanwhile.
// That first word ends at the first commit, without the minimum: a restart of a member that is
// current costs the others a view or two of its given up, not three seconds of them.

import type { Logger } from 'pino';

/** Behind this long, continuously (as polled), before the word is said. */
export const CATCH_UP_ENTER_MS = 1000;
/** A word said stands at least this long: at most one word every 3 s. */
export const CATCH_UP_MIN_SAID_MS = 3000;
const POLL_MS = 250;
/** Said again this often while it lasts: the others take frames from it as a sign it is back only 30 s after its last word (services/gateway/presence.ts). */
export const CATCH_UP_REFRESH_MS = 10_000;

/** The word's hysteresis, pure: fed what the engine says at each poll, it answers the word to say, if any. */
export class CatchUpWord {
  /** When this stretch of being behind began (as polled). */
  #since: number | undefined;
  #saying: boolean;
  #saidAt: number;
  /** When the word was last said, or said again. */
  #refreshedAt: number;

  /**
   * `saying` at `at`: the word a service starts with (said before it attached). It need not stand
   * its minimum: a member restarted current says it takes part at the first commit that reaches it.
   */
  constructor(start: { saying: boolean; at: number } = { saying: false, at: Number.NEGATIVE_INFINITY }) {
    this.#saying = start.saying;
    this.#saidAt = Number.NEGATIVE_INFINITY;
    this.#refreshedAt = start.at;
  }

  get saying(): boolean { return this.#saying; }

  /**
   * What the engine says now; returns the word (true: catching up) when it is time to say one: a
   * new one, or `true` again every CATCH_UP_REFRESH_MS while it lasts.
   */
  observe(now: number, behind: boolean): boolean | undefined {
    if (!behind) this.#since = undefined;
    else this.#since ??= now;
    const want = behind && now - this.#since! >= CATCH_UP_ENTER_MS;
    if (now - this.#saidAt < CATCH_UP_MIN_SAID_MS || (this.#saying ? behind : !want)) {
      if (!this.#saying || now - this.#refreshedAt < CATCH_UP_REFRESH_MS) return undefined;
      this.#refreshedAt = now;
      return true;
    }
    this.#saying = !this.#saying;
    this.#saidAt = now;
    this.#refreshedAt = now;
    return this.#saying;
  }
}

export interface CatchUpWatch {
  /** Whether the engine is fetching what a commit QC it holds needs, or has committed nothing since the start. */
  behind(): boolean;
  /** Tell the gateway (GatewayLink.catchingUp). */
  say(catchingUp: boolean): void;
  log: Logger;
  now?(): number;
}

/**
 * Says the word (catching up) at once, then polls the engine and says it as it changes; returns the
 * stop, and `poke` to look at once (at a commit: the start's word ends then, not up to a poll later,
 * since an idle view whose leader is still said absent is given up by the member that saw it so,
 * and its NEW-VIEW brings the others along).
 */
export function watchCatchUp(w: CatchUpWatch): { stop(): void; poke(): void; readonly catchingUp: boolean } {
  const now = () => w.now?.() ?? Date.now();
  const word = new CatchUpWord({ saying: true, at: now() });
  w.log.info({ catchingUp: true }, 'started: catching up until a commit reaches this member (the validators give its views up meanwhile)');
  w.say(true);
  const look = () => {
    const was = word.saying;
    const said = word.observe(now(), w.behind());
    if (said === undefined) return;
    if (said === was) { w.say(true); return; } // said again: the others take frames from it as a sign it is back only once its word is stale
    w.log.info({ catchingUp: said }, said
      ? 'catching up through a block sync: the gateway tells the validators this member takes no part meanwhile (its views are given up at once)'
      : 'caught up: the gateway tells the validators this member takes part again');
    w.say(said);
  };
  const timer = setInterval(look, POLL_MS);
  timer.unref();
  return { stop: () => clearInterval(timer), poke: look, get catchingUp() { return word.saying; } };
}
