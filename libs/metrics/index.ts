// Public surface of libs/metrics: the small interfaces that libraries accept (so they never
// import prom-client), a no-op implementation for tests and tools, the prom-client one a
// service's composition root builds, and the HTTP endpoint Prometheus scrapes.
// Must never grow a global registry: every service owns exactly one, passed in.

export type { Labels, Counter, Gauge, Histogram, Metrics } from './types.ts';
export { METRIC_UNITS, validateMetricName } from './names.ts';
export type { MetricKind } from './names.ts';
export { noopMetrics } from './noop.ts';
export { EVENT_LOOP_SAMPLE_MS, createPromMetrics } from './prom.ts';
export type { PromMetrics, PromMetricsOptions } from './prom.ts';
export { serveMetrics } from './serve.ts';
export type { MetricsEndpoint, ServeMetricsOptions } from './serve.ts';
