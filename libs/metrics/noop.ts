// Metrics that go nowhere: the default when a library is built without a registry
// (tests, CLI tools). Names are still validated so a bad name fails in every test run.
// Must never keep state: it is shared by every caller.

import type { Counter, Gauge, Histogram, Metrics } from './types.ts';
import { validateMetricName } from './names.ts';

const counter: Counter = { inc() {}, remove() {} };
const gauge: Gauge = { set() {}, inc() {}, dec() {} };
const histogram: Histogram = { observe() {}, startTimer: () => () => 0 };

export const noopMetrics: Metrics = {
  counter(name, _help, labelNames) {
    validateMetricName('counter', name, labelNames);
    return counter;
  },
  gauge(name, _help, labelNames) {
    validateMetricName('gauge', name, labelNames);
    return gauge;
  },
  histogram(name, _help, labelNames) {
    validateMetricName('histogram', name, labelNames);
    return histogram;
  },
};
