// A small bounded least-recently-used map, used by the node backend to keep imported KeyObjects
// so that verifying many messages from the same validator does not re-import its key each time.
// Must never grow past its capacity: a peer sending garbage keys must not be able to fill memory.

export class BoundedLru<K, V> {
  readonly capacity: number;
  readonly #entries = new Map<K, V>();

  constructor(capacity: number) {
    if (!Number.isSafeInteger(capacity) || capacity < 1) {
      throw new RangeError(`cache capacity must be a positive integer, got ${capacity}`);
    }
    this.capacity = capacity;
  }

  get size(): number {
    return this.#entries.size;
  }

  /** The cached value (marking it most recently used) or, on a miss, `make()` stored and returned. */
  getOrCreate(key: K, make: () => V): V {
    const entries = this.#entries;
    if (entries.has(key)) {
      const hit = entries.get(key) as V;
      // Map keeps insertion order: re-inserting moves the entry to the "newest" end.
      entries.delete(key);
      entries.set(key, hit);
      return hit;
    }
    // make() may throw (a malformed key): nothing is stored then.
    const value = make();
    entries.set(key, value);
    if (entries.size > this.capacity) {
      const oldest = entries.keys().next();
      if (oldest.done !== true) entries.delete(oldest.value);
    }
    return value;
  }

  has(key: K): boolean {
    return this.#entries.has(key);
  }

  clear(): void {
    this.#entries.clear();
  }
}
