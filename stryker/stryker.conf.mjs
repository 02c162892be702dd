// Mutation testing of the safety rules (`npm run mutation`, which puts Node 24 first on PATH;
// not part of CI: minutes, not seconds).
// Stryker mutates exactly the functions listed in SAFETY below and runs the fast unit tests of
// those rules with Node's own test runner (the command runner: Node 24 runs the TypeScript by
// type stripping, so no test-runner plugin or build step is involved). A mutant survives when
// every one of those tests still passes with it; docs/testing.md lists the survivors and why.
//
// Functions are found by name at run time (the files keep changing), so a renamed function
// makes this config throw rather than silently mutate nothing.

import { existsSync, readFileSync } from 'node:fs';

/** file → the functions (or methods) whose bodies hold a safety rule; '*' = the whole file. */
const SAFETY = {
  'libs/hotstuff/replica.ts': ['safeNode', 'onPrecommitQC', 'onCommitQC', 'onProposal'],
  'libs/hotstuff/core.ts': ['voteAfter', 'claimVote', 'notePrepareQC', 'flush', 'safetyChanged'],
  'libs/hotstuff/qc.ts': ['check', '#structureError', '#signatureError'],
  'libs/hotstuff/quorum.ts': ['faultBound', 'quorumSize'],
  'libs/hotstuff/blocks.ts': ['extendsBlock', 'commitPath'],
  'libs/hotstuff/sync.ts': ['commitWith', 'applyCommit'],
  'services/signer/rules.ts': ['*'],
};

/** The 1-based line range of a top-level function or a class method: its header to the first
 * line after it that closes at the header's indentation. */
function rangeOf(file, name) {
  const lines = readFileSync(file, 'utf8').split('\n');
  const esc = name.replace(/[#$]/g, '\\$&');
  const header = new RegExp(`^(\\s*)(export )?(function )?${esc}\\s*\\(.*\\{$`);
  const start = lines.findIndex((l) => header.test(l));
  if (start < 0) throw new Error(`stryker.conf: ${name} not found in ${file}`);
  const indent = header.exec(lines[start])[1];
  const end = lines.findIndex((l, i) => i > start && l === `${indent}}`);
  if (end < 0) throw new Error(`stryker.conf: end of ${name} not found in ${file}`);
  return `${file}:${start + 1}-${end + 1}`;
}

/** STRYKER_ONLY=libs/hotstuff (a path prefix) mutates part of the list, for a quicker run. */
const only = process.env.STRYKER_ONLY ?? '';
const mutate = Object.entries(SAFETY).filter(([file]) => file.startsWith(only)).flatMap(([file, fns]) => (fns[0] === '*' ? [file] : fns.map((fn) => rangeOf(file, fn))));

/** The unit tests of these rules: fast, pure, no processes or network (those present). */
const TESTS = [
  'libs/hotstuff/safety.model.test.ts',
  'libs/hotstuff/safety.cases.test.ts',
  'libs/hotstuff/quorum.test.ts',
  'libs/hotstuff/engine-rules.test.ts',
  'libs/hotstuff/engine-validity.test.ts',
  'libs/hotstuff/engine-sync.test.ts',
  'libs/hotstuff/engine-persist.test.ts',
  'services/signer/rules.property.test.ts',
  'services/signer/rules.cases.test.ts',
].filter((f) => existsSync(f));

export default {
  testRunner: 'command',
  commandRunner: { command: `node --test --test-isolation=none --test-reporter=dot ${TESTS.join(' ')}` },
  mutate,
  // Only what the tests import is copied into the sandbox (node_modules is linked).
  ignorePatterns: ['/.devnet', '/data', '/reports', '/bench', '/test', '/cli', '/deploy', '/docs', '*.log'],
  concurrency: 2,
  timeoutMS: 20000,
  coverageAnalysis: 'off',
  reporters: ['clear-text', 'progress', 'html', 'json'],
  htmlReporter: { fileName: 'reports/mutation/index.html' },
  jsonReporter: { fileName: 'reports/mutation/mutation.json' },
  tempDirName: '.stryker-tmp',
  cleanTempDir: true,
};
