// Campaigns of many scenarios: the Twins campaign (scenarios rotate through the Twins
// families; exhaustive families walk their space from an offset derived from the seed) and
// the chaos campaign (chaos.ts). Scenario i of a campaign seeded with S is fully determined
// by (kind, S, i), so one failing scenario replays alone (`--seed S --only i`).
// Must never let one scenario's state leak into the next.

import { chaosScenario } from './chaos.ts';
import { deriveSeed } from './prng.ts';
import type { ViolationKind } from './checkers.ts';
import type { Scenario } from './scenario.ts';
import { runScenario, type SimResult } from './simulator.ts';
import { CAMPAIGN_FAMILIES, TwinsGenerator, type TwinsFamily } from './twins.ts';

export interface CampaignScenario {
  index: number;
  family: string;
  scenario: Scenario;
}

export interface CampaignFailure {
  index: number;
  family: string;
  scenario: Scenario;
  result: SimResult;
}

export interface CampaignReport {
  scenarios: number;
  violations: number;
  failures: CampaignFailure[];
  steps: number;
  byFamily: Record<string, number>;
  /** Most views past the heal any scenario needed before every honest member committed. */
  maxViewsAfterHeal: number;
  elapsedMs: number;
}

export type CampaignKind = 'twins' | 'chaos';

export interface CampaignOptions {
  /** 'twins' (default): the Twins families; 'chaos': random faults and Byzantine members. */
  kind?: CampaignKind;
  seed: number;
  /** Run indices [from, to). */
  from: number;
  to: number;
  families?: readonly TwinsFamily[];
  mutation?: Scenario['mutation'];
  /** Stop at the first violation (the mutation test). */
  stopOnViolation?: boolean;
  /** Only judge safety (liveness is not the point of the mutation test). */
  safetyOnly?: boolean;
  /** Count only these kinds of violation (default: all). */
  kinds?: ViolationKind[];
}

const generators = new Map<string, TwinsGenerator>();

function generatorFor(f: TwinsFamily): TwinsGenerator {
  let g = generators.get(f.name);
  if (!g) generators.set(f.name, (g = new TwinsGenerator(f)));
  return g;
}

export function campaignScenario(seed: number, index: number, families: readonly TwinsFamily[] = CAMPAIGN_FAMILIES): CampaignScenario {
  const family = families[index % families.length]!;
  const g = generatorFor(family);
  const local = Math.floor(index / families.length);
  const runSeed = deriveSeed(seed, index);
  const pick = family.mode === 'exhaustive' ? (local + (deriveSeed(seed, -1) % g.size)) % g.size : local;
  return { index, family: family.name, scenario: g.scenario(pick, runSeed) };
}

/** Scenario `index` of a campaign: what replays one failure. */
export function scenarioAt(kind: CampaignKind, seed: number, index: number, families?: readonly TwinsFamily[]): CampaignScenario {
  if (kind === 'twins') return campaignScenario(seed, index, families);
  const scenario = chaosScenario(seed, index);
  return { index, family: `chaos-n${scenario.n}`, scenario };
}

export function runCampaign(opts: CampaignOptions, now: () => number): CampaignReport {
  const t0 = now();
  const report: CampaignReport = { scenarios: 0, violations: 0, failures: [], steps: 0, byFamily: {}, maxViewsAfterHeal: 0, elapsedMs: 0 };
  for (let i = opts.from; i < opts.to; i++) {
    const { family, scenario } = scenarioAt(opts.kind ?? 'twins', opts.seed, i, opts.families);
    const s: Scenario = { ...scenario, ...(opts.mutation ? { mutation: opts.mutation } : {}), ...(opts.safetyOnly ? { judgeLiveness: false } : {}) };
    const result = runScenario(s);
    report.scenarios++;
    report.steps += result.steps;
    if (result.livenessMet) report.maxViewsAfterHeal = Math.max(report.maxViewsAfterHeal, result.viewsAfterHeal);
    report.byFamily[family] = (report.byFamily[family] ?? 0) + 1;
    const counted = opts.kinds ? result.violations.filter((v) => opts.kinds!.includes(v.kind)) : result.violations;
    if (counted.length > 0) {
      report.violations++;
      report.failures.push({ index: i, family, scenario: s, result });
      if (opts.stopOnViolation) break;
    }
  }
  report.elapsedMs = now() - t0;
  return report;
}
