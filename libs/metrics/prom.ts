// The prom-client implementation of Metrics, one Registry per service (never the global
// one, so tests and several services in one process do not collide), with Node's default
// process metrics under their standard names (process_*, nodejs_*: stock Node dashboards work)
// and `<prefix>build_info{version,node}`. Must never be imported by a library: libraries take
// the Metrics interface; only a composition root builds this.

import * as prom from 'prom-client';
import { VERSION } from '#libs/version/index.ts';
import { FedError } from '#libs/errors/index.ts';
import type { Counter, Gauge, Histogram, Labels, Metrics } from './types.ts';
import { validateMetricName, type MetricKind } from './names.ts';

/**
 * How often the event loop's delay is sampled (prom-client's default is every 10 ms). Each sample
 * wakes the process: at 10 ms that cost about 5.8 CPU-ms a second per idle process here, paid by
 * every service of every member (84 processes at N = 21, a quarter of two cores). Every 100 ms
 * costs about 1; a stall still shows in full when it is longer than the period. The lag gauges
 * (`nodejs_eventloop_lag_*`) include the period: an idle loop reads about 0.1 s.
 */
export const EVENT_LOOP_SAMPLE_MS = 100;

export interface PromMetricsOptions {
  /** Namespace put before every name, e.g. 'btcfed_'. Default: none. */
  prefix?: string;
  /** Labels on every series, e.g. { member: 'm0', service: 'store' }. */
  defaultLabels?: Record<string, string>;
  /** Collect Node's process metrics (CPU, memory, event loop, GC). Default true. */
  processMetrics?: boolean;
}

export interface PromMetrics extends Metrics {
  readonly registry: prom.Registry;
  /** The registry in Prometheus text format. */
  text(): Promise<string>;
}

interface BaseConfig { name: string; help: string; labelNames: string[]; registers: prom.Registry[] }
type AnyPromMetric = prom.Counter | prom.Gauge | prom.Histogram;
interface Entry { kind: MetricKind; labels: string; api: Counter | Gauge | Histogram; metric: AnyPromMetric }

// prom-client treats `undefined` labels differently from `{}` in some calls; pass only what is set.
function labelValues(labels: Labels | undefined): prom.LabelValues<string> {
  return (labels ?? {}) as prom.LabelValues<string>;
}

function wrapCounter(c: prom.Counter): Counter {
  return { inc: (labels, n = 1) => c.inc(labelValues(labels), n), remove: (labels) => c.remove(labelValues(labels)) };
}

function wrapGauge(g: prom.Gauge): Gauge {
  return {
    set(a: Labels | number, b?: number) {
      if (typeof a === 'number') g.set(a);
      else g.set(labelValues(a), b ?? 0);
    },
    inc: (labels, n = 1) => g.inc(labelValues(labels), n),
    dec: (labels, n = 1) => g.dec(labelValues(labels), n),
  };
}

function wrapHistogram(h: prom.Histogram): Histogram {
  return {
    observe(a: Labels | number, b?: number) {
      if (typeof a === 'number') h.observe(a);
      else h.observe(labelValues(a), b ?? 0);
    },
    startTimer(labels) {
      const end = h.startTimer(labelValues(labels));
      return () => end();
    },
  };
}

export function createPromMetrics(opts: PromMetricsOptions = {}): PromMetrics {
  const prefix = opts.prefix ?? '';
  const registry = new prom.Registry();
  if (opts.defaultLabels) registry.setDefaultLabels(opts.defaultLabels);
  if (opts.processMetrics ?? true) {
    prom.collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS });
    const build = new prom.Gauge({ name: `${prefix}build_info`, help: 'The running build: its version and Node.js version (always 1)',
      labelNames: ['version', 'node'], registers: [registry] });
    build.set({ version: VERSION, node: process.version }, 1);
  }
  const entries = new Map<string, Entry>();

  function create(kind: MetricKind, name: string, help: string, labelNames: readonly string[],
    build: (config: BaseConfig) => Omit<Entry, 'kind' | 'labels'>): Counter | Gauge | Histogram {
    validateMetricName(kind, name, labelNames);
    const full = prefix + name;
    const labels = labelNames.join(',');
    const existing = entries.get(full);
    if (existing) {
      if (existing.kind !== kind || existing.labels !== labels) {
        throw new FedError('METRIC_CONFLICT',
          `metric ${full} already exists as a ${existing.kind} with labels [${existing.labels}]`,
          { name: full, kind, labels });
      }
      return existing.api;
    }
    const made = build({ name: full, help, labelNames: [...labelNames], registers: [registry] });
    entries.set(full, { kind, labels, ...made });
    return made.api;
  }

  return {
    registry,
    text: () => registry.metrics(),
    counter(name, help, labelNames = []) {
      return create('counter', name, help, labelNames, (config) => {
        const metric = new prom.Counter(config);
        return { metric, api: wrapCounter(metric) };
      }) as Counter;
    },
    gauge(name, help, labelNames = []) {
      return create('gauge', name, help, labelNames, (config) => {
        const metric = new prom.Gauge(config);
        return { metric, api: wrapGauge(metric) };
      }) as Gauge;
    },
    histogram(name, help, labelNames = [], buckets) {
      return create('histogram', name, help, labelNames, (config) => {
        const metric = new prom.Histogram({ ...config, ...(buckets ? { buckets: [...buckets] } : {}) });
        return { metric, api: wrapHistogram(metric) };
      }) as Histogram;
    },
  };
}
