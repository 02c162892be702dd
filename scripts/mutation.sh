#!/usr/bin/env bash
# `npm run mutation`: Stryker mutates the safety rules (stryker/stryker.conf.mjs lists the
# functions) and runs their unit tests against each mutant. Not part of `npm test` or CI:
# it takes minutes. The report: reports/mutation/index.html and mutation.json; docs/testing.md
# says what the survivors are.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/node_modules/.bin:$PATH"
exec stryker run stryker/stryker.conf.mjs "$@"
