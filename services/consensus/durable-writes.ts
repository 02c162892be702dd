// The driver's writes that the next actions depend on (a vote leaves only after its persist, a
// commit before what follows it, an epoch's proof before its next engine). When the store cannot
// be written (STORE_WRITE_FAILED: a full disk, an I/O error; LMDB wrote nothing), the same write
// is tried again, 0.2 s and then up to 5 s apart, while nothing else of the engine runs: the
// member does not vote or propose meanwhile (safe), says why in its health, and goes on where it
// stopped once the write succeeds. Any other failure is thrown: the driver stops.

import type { Logger } from 'pino';
import { errorMessage, isFedError } from '#libs/errors/index.ts';
import type { Clock } from './ports.ts';

export class DurableWrites {
  readonly #d: { log: Logger; clock: Clock; stopped(): boolean };
  #error: string | undefined;
  /** Events the driver dropped while stalled (counted by it, said here when the store is back). */
  dropped = 0;

  constructor(d: { log: Logger; clock: Clock; stopped(): boolean }) { this.#d = d; }

  /** Why the store cannot be written right now, while a write waits to be tried again. */
  get error(): string | undefined { return this.#error; }

  async run(what: string, write: () => Promise<void>): Promise<void> {
    const { log, clock } = this.#d;
    for (let delay = 200; ; delay = Math.min(delay * 2, 5000)) {
      try {
        await write();
        if (this.#error !== undefined) {
          log.warn({ what, dropped: this.dropped }, 'the store can be written again: consensus goes on');
          this.#error = undefined;
          this.dropped = 0;
        }
        return;
      } catch (err) {
        if (!isFedError(err, 'STORE_WRITE_FAILED') || this.#d.stopped()) throw err;
        if (this.#error === undefined) log.error({ what, err: errorMessage(err) }, 'the store cannot be written: not voting until it can (retrying)');
        this.#error = errorMessage(err);
        await new Promise<void>((resolve) => clock.setTimeout(resolve, delay));
      }
    }
  }

  /** run() for a write that returns a value. */
  async value<T>(what: string, write: () => Promise<T>): Promise<T> {
    let out: T | undefined;
    await this.run(what, async () => { out = await write(); });
    return out!;
  }
}
