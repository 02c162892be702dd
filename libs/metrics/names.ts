// Metric name rules, checked when a metric is created so that a badly named metric fails
// the first test that builds the module, not a dashboard months later.
// Must never accept a name without a unit: `_total` for counters, a unit word otherwise.

import { FedError } from '#libs/errors/index.ts';

export type MetricKind = 'counter' | 'gauge' | 'histogram';

/**
 * Unit suffixes accepted for gauges and histograms. Base units first (Prometheus style),
 * then the countable things this project measures. Add a word here rather than bending a name.
 */
export const METRIC_UNITS: readonly string[] = [
  'seconds', 'bytes', 'ratio', 'info',
  'messages', 'transactions', 'blocks', 'votes', 'signatures', 'certificates',
  'peers', 'connections', 'streams', 'subscriptions', 'requests', 'entries', 'items',
  'members', 'validators', 'events',
  // Positions and versions rather than amounts (a gauge holding "which one", not "how many").
  'view', 'height', 'sequence', 'round', 'epoch', 'version',
  // A condition as 0 or 1 (e.g. consensus_halted_state).
  'state',
];

const NAME_RE = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_RE = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
// Suffixes Prometheus itself appends to histogram and counter series.
const RESERVED_SUFFIXES = ['_count', '_sum', '_bucket', '_created'];

/** Throws FedError('METRIC_NAME_INVALID') unless `name` fits the rules for `kind`. */
export function validateMetricName(kind: MetricKind, name: string, labelNames: readonly string[] = []): void {
  const bad = (why: string): never => {
    throw new FedError('METRIC_NAME_INVALID', `metric ${JSON.stringify(name)} (${kind}): ${why}`, { name, kind });
  };
  if (!NAME_RE.test(name)) bad('must match [a-zA-Z_:][a-zA-Z0-9_:]*');
  if (name.startsWith('__')) bad('names starting with "__" are reserved');
  for (const suffix of RESERVED_SUFFIXES) {
    if (name.endsWith(suffix)) bad(`the suffix ${suffix} is reserved by Prometheus`);
  }
  switch (kind) {
    case 'counter':
      if (!name.endsWith('_total')) bad('a counter name must end in _total');
      break;
    case 'gauge':
    case 'histogram': {
      if (name.endsWith('_total')) bad('_total is for counters only');
      const unit = name.slice(name.lastIndexOf('_') + 1);
      if (!name.includes('_') || !METRIC_UNITS.includes(unit)) {
        bad(`must end in a unit (_${METRIC_UNITS.join(', _')})`);
      }
      break;
    }
    default: {
      const never: never = kind;
      throw new FedError('METRIC_KIND_UNKNOWN', `unknown metric kind ${String(never)}`);
    }
  }
  for (const label of labelNames) {
    if (!LABEL_RE.test(label) || label.startsWith('__')) {
      bad(`label name ${JSON.stringify(label)} is invalid`);
    }
    if (kind === 'histogram' && label === 'le') bad('label "le" is reserved for histograms');
  }
  if (new Set(labelNames).size !== labelNames.length) bad('label names repeat');
}
