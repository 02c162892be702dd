#!/usr/bin/env bash
# The test command (`npm test`): contracts linted and generated code up to date, the whole
# tree type-checked, then every unit and integration test on Node's test runner. Integration
# tests need NATS with JetStream on 127.0.0.1:4222 (scripts/ensure-nats.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/node_modules/.bin:$PATH"

major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$major" -lt 24 ]; then echo "test: Node 24 is required, got $(node --version) (run npm install)" >&2; exit 1; fi

echo "== proto lint and generated code"
buf lint
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
buf generate -o "$tmp"
if ! diff -r "$tmp/libs/gen" libs/gen >/dev/null; then
  echo "test: libs/gen is stale; run 'npm run gen' and commit the result" >&2
  diff -r "$tmp/libs/gen" libs/gen | head -20 >&2
  exit 1
fi

echo "== type check"
tsc -p tsconfig.json

if ! (exec 3<>/dev/tcp/127.0.0.1/4222) 2>/dev/null; then
  echo "test: no NATS on 127.0.0.1:4222; run 'bash scripts/ensure-nats.sh'" >&2
  exit 1
fi

echo "== tests"
# Every process the tests start (the test files themselves, the CLI, the services) keeps V8's
# compiled code of the modules it loads in the one cache the services use (libs/service/node-flags.ts):
# loading a process's modules costs 0.3–0.5 s less CPU with it, and the tests start some thousands.
export NODE_COMPILE_CACHE="${NODE_COMPILE_CACHE:-$(pwd -P)/node_modules/.cache/btcfed-compile-cache}"
run() { node --test --test-reporter=spec --test-timeout=600000 "$@"; }
# Node runs one test file at a time here (its default: one fewer than the cores). Most of the time
# goes to the integration tests (test/: real processes, mostly waiting on views and timers), so they
# run in one lane while the unit and service tests run in another, their report printed after; the
# Byzantine set, which measures commit rates, runs last and alone. BTCFED_TEST_SERIAL=1: one lane.
all=$(find libs services test scripts -name '*.test.ts' -not -path '*/node_modules/*' | sort)
if [ -n "${BTCFED_TEST_SERIAL:-}" ]; then
  # shellcheck disable=SC2086
  exec node --test --test-reporter=spec --test-timeout=600000 $all "$@"
fi
solo=test/byzantine.test.ts
integration=$(find test -name '*.test.ts' | sort | grep -vx "$solo")
unit=$(find libs services scripts -name '*.test.ts' -not -path '*/node_modules/*' | sort)
report="$tmp/unit-report.txt"
# shellcheck disable=SC2086
(run $unit "$@" > "$report" 2>&1; echo $? > "$tmp/unit-rc") &
status=0
# shellcheck disable=SC2086
run $integration "$@" || status=$?
wait
echo "== unit and service tests (run beside the integration tests)"
cat "$report"
unit_rc=$(cat "$tmp/unit-rc")
echo "== the Byzantine set, alone"
run "$solo" "$@" || status=$?
if [ "$status" -ne 0 ] || [ "$unit_rc" -ne 0 ]; then
  echo "test: failed (integration or Byzantine lane exit $status, unit lane exit $unit_rc)" >&2
  exit 1
fi
