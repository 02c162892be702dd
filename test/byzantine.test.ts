// The CI set of Byzantine scenarios (test/byzantine/): one real 4-member federation whose m3 is
// Byzantine — its real key, the real wire protocol through its real gateway — plus a keyless
// libp2p stranger. `npm run byzantine` runs the full set.

import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { runScenarios, summary, type Outcome } from './byzantine/run.ts';
import { SCENARIOS } from './byzantine/scenarios.ts';

describe('Byzantine member on real processes (CI set)', { timeout: 600_000 }, () => {
  let outcomes: Outcome[] = [];
  before(async () => {
    outcomes = await runScenarios((s) => s.ci, (line) => console.log(line));
    console.log(summary(outcomes));
  }, { timeout: 600_000 });
  for (const s of SCENARIOS.filter((x) => x.ci)) {
    test(`${s.name} is defeated`, () => {
      const o = outcomes.find((x) => x.name === s.name);
      assert.ok(o, `${s.name} did not run`);
      assert.ok(o.defeated, `${s.name}: ${o.error}`);
    });
  }
});
