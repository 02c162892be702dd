// `npm run byzantine`: every Byzantine scenario (test/byzantine/) against one real 4-member
// federation; ends with exactly one summary line and exits non-zero when any scenario failed.
//   BYZ_ONLY=name,name   run only these scenarios      KEEP_BYZ=1   keep the federation's files

import { runScenarios, summary, table } from '../test/byzantine/run.ts';

const only = process.env.BYZ_ONLY?.split(',').filter(Boolean);
const t0 = Date.now();
const outcomes = await runScenarios((s) => !only || only.includes(s.name));
for (const row of table(outcomes)) console.log(row);
console.log(`# byzantine: ${((Date.now() - t0) / 1000).toFixed(0)} s in all`);
console.log(summary(outcomes));
process.exit(outcomes.some((o) => !o.defeated) ? 1 : 0);
