// One peer's outbound consensus frames: bounded in frames and in bytes. When a new frame does
// not fit, the oldest frames are dropped (and counted) to make room: consensus tolerates loss and
// its pacemaker recovers, while a slow peer must never stall sends to the others or grow memory.
// Must never hold more than its limits, and never block the caller.

export interface QueueLimits {
  maxFrames: number;
  maxBytes: number;
}

export class OutboundQueue {
  #items: Uint8Array[] = [];
  #head = 0;
  #bytes = 0;
  #limits: QueueLimits;
  #waiter: (() => void) | undefined;
  dropped = 0;

  constructor(limits: QueueLimits) {
    this.#limits = limits;
  }

  get length(): number { return this.#items.length - this.#head; }
  get bytes(): number { return this.#bytes; }

  /** Adds a frame; returns how many old frames were dropped to make room for it. */
  push(frame: Uint8Array): number {
    let dropped = 0;
    while (this.length > 0 && (this.length + 1 > this.#limits.maxFrames || this.#bytes + frame.length > this.#limits.maxBytes)) {
      this.#shift();
      dropped++;
    }
    this.#items.push(frame);
    this.#bytes += frame.length;
    this.dropped += dropped;
    const w = this.#waiter;
    this.#waiter = undefined;
    w?.();
    return dropped;
  }

  shift(): Uint8Array | undefined {
    return this.length > 0 ? this.#shift() : undefined;
  }

  /** Drops everything queued (a delinquent peer is not sent to); returns how many. */
  clear(): number {
    const n = this.length;
    this.#items = [];
    this.#head = 0;
    this.#bytes = 0;
    this.dropped += n;
    return n;
  }

  /** Resolves when a frame is queued (at once if one is). */
  wait(): Promise<void> {
    if (this.length > 0) return Promise.resolve();
    return new Promise((resolve) => {
      const prev = this.#waiter;
      this.#waiter = () => { prev?.(); resolve(); };
    });
  }

  /** Wakes a waiter without a frame (shutdown, state change). */
  wake(): void {
    const w = this.#waiter;
    this.#waiter = undefined;
    w?.();
  }

  #shift(): Uint8Array {
    const item = this.#items[this.#head]!;
    this.#items[this.#head] = new Uint8Array(0);
    this.#head++;
    this.#bytes -= item.length;
    if (this.#head > 1024 && this.#head * 2 > this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
    return item;
  }
}
