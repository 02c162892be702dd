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
# libs/ is pure (no process, socket or clock-bound wait): its files run two at a time, which halves
# their ~110 s on two cores. Everything else starts real processes and runs one file at a time.
pure=$(find libs -name '*.test.ts' -not -path '*/node_modules/*' | sort)
rest=$(find services test scripts -name '*.test.ts' -not -path '*/node_modules/*' | sort)
# Both run whatever the first gives; either failing fails the command. (Not --test-force-exit:
# it ends a file before any test it declares after a top-level await: the libs/ run lost five.)
status=0
# shellcheck disable=SC2086
node --test --test-reporter=spec --test-timeout=600000 --test-concurrency=2 $pure "$@" || status=$?
# shellcheck disable=SC2086
node --test --test-reporter=spec --test-timeout=600000 $rest "$@" || status=$?
exit "$status"
