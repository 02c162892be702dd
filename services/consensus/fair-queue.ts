// Work from many senders, done a few at a time and fairly: one FIFO queue per sender, bounded in
// items and bytes, served round-robin — the next job comes from the next sender that has one —
// with at most `concurrency` jobs running. One sender's flood then waits behind itself: another
// sender's job waits for at most one job of each sender ahead of it in the round, never for the
// whole flood. The inbound path runs signature checks through it (they are what costs CPU here:
// SLH-DSA verifications on the libuv pool), so a validator that sends a thousand messages gets
// its share of the verifier, not the verifier.
// Bounded: a sender whose queue is full is refused (the caller counts it), and empty queues are
// dropped, so the map holds only senders with work waiting.

export interface FairQueueOptions {
  /** Jobs running at once (SLH-DSA checks run on the libuv thread pool: a few per core). */
  concurrency: number;
  /** Jobs one sender may have waiting. */
  maxPerSender: number;
  /** Bytes (of the messages the jobs carry) one sender may have waiting. */
  maxBytesPerSender: number;
}

interface Job { run(): Promise<void>; bytes: number }
interface Lane { jobs: Job[]; bytes: number }

export class FairQueue {
  readonly #o: FairQueueOptions;
  /** Senders with work waiting, in round-robin order (Map keeps insertion order). */
  readonly #lanes = new Map<number, Lane>();
  #running = 0;
  /** The sender served last: the round continues after it. */
  #last: number | undefined;

  constructor(o: FairQueueOptions) {
    this.#o = o;
  }

  get running(): number { return this.#running; }
  /** Jobs waiting, over all senders. */
  get waiting(): number { let n = 0; for (const l of this.#lanes.values()) n += l.jobs.length; return n; }
  waitingFrom(sender: number): number { return this.#lanes.get(sender)?.jobs.length ?? 0; }

  /** Queues a job of `sender`; false (nothing queued) when the sender's queue is full. */
  push(sender: number, bytes: number, run: () => Promise<void>): boolean {
    let lane = this.#lanes.get(sender);
    if (lane && (lane.jobs.length >= this.#o.maxPerSender || lane.bytes + bytes > this.#o.maxBytesPerSender)) return false;
    if (!lane) this.#lanes.set(sender, (lane = { jobs: [], bytes: 0 }));
    lane.jobs.push({ run, bytes });
    lane.bytes += bytes;
    this.#pump();
    return true;
  }

  #pump(): void {
    while (this.#running < this.#o.concurrency) {
      const job = this.#next();
      if (!job) return;
      this.#running++;
      void job.run().catch(() => { /* jobs handle their own errors */ }).finally(() => {
        this.#running--;
        this.#pump();
      });
    }
  }

  /** The next job in the round: from the first sender after the last one served that has work. */
  #next(): Job | undefined {
    if (this.#lanes.size === 0) return undefined;
    let pick: number | undefined;
    let passedLast = this.#last === undefined;
    for (const sender of this.#lanes.keys()) {
      if (passedLast) { pick = sender; break; }
      if (sender === this.#last) passedLast = true;
    }
    // Wrap around: the first sender in order (the last one served may have no work left).
    if (pick === undefined) pick = this.#lanes.keys().next().value!;
    const lane = this.#lanes.get(pick)!;
    const job = lane.jobs.shift()!;
    lane.bytes -= job.bytes;
    this.#last = pick;
    if (lane.jobs.length === 0) this.#lanes.delete(pick);
    return job;
  }
}
