// The metric interfaces libraries depend on. Kept free of prom-client so that pure
// libraries (hotstuff, crypto, events) can count things without choosing a backend.
// Must never import an implementation.

/** Label values by label name; the names must be the ones declared at creation. */
export type Labels = Readonly<Record<string, string | number>>;

export interface Counter {
  /** Adds `n` (default 1, never negative) to the series selected by `labels`. */
  inc(labels?: Labels, n?: number): void;
  /** Drops the series selected by `labels` (one whose label no longer names anything: a validator index an epoch has no more). */
  remove(labels: Labels): void;
}

export interface Gauge {
  set(value: number): void;
  set(labels: Labels, value: number): void;
  inc(labels?: Labels, n?: number): void;
  dec(labels?: Labels, n?: number): void;
}

export interface Histogram {
  observe(value: number): void;
  observe(labels: Labels, value: number): void;
  /** Starts a timer; calling the result observes the elapsed seconds and returns them. */
  startTimer(labels?: Labels): () => number;
}

/**
 * Creates metrics. Asking twice for the same name with the same kind and labels returns
 * the same metric (several modules may share one); a conflicting definition throws.
 */
export interface Metrics {
  counter(name: string, help: string, labelNames?: readonly string[]): Counter;
  gauge(name: string, help: string, labelNames?: readonly string[]): Gauge;
  histogram(name: string, help: string, labelNames?: readonly string[], buckets?: readonly number[]): Histogram;
}
