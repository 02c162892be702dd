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
# their ~110 s on two cores. The files of services/, test/ and scripts/ mostly start a process or
# two and wait on them (a signer's timeout, a gateway's redial): they run two at a time too, which
# took 104 of them from about 10 to 6 minutes on 2026-12-01 with none failing. The files below keep
# both cores busy on their own (a federation of 4 to 16 processes, the Quint checks) or measure
# rates and timings a neighbour would skew: they run one at a time, last.
heavy="test/byzantine.test.ts test/testbed.test.ts test/reconfig-process.test.ts test/reconfig-scale.test.ts
  test/federation.test.ts test/gateway-resilience.test.ts test/observer.test.ts test/accepted-durability.test.ts
  test/multi-host-setup.test.ts test/spec-mbt.test.ts test/spec.test.ts test/release.test.ts test/idle.test.ts
  test/signer-pkcs11-federation.test.ts"
pure=$(find libs -name '*.test.ts' -not -path '*/node_modules/*' | sort)
light=$(for f in $(find services test scripts -name '*.test.ts' -not -path '*/node_modules/*' | sort); do
  case " $(echo $heavy) " in *" $f "*) ;; *) echo "$f" ;; esac
done)
for f in $heavy; do [ -f "$f" ] || { echo "test: $f is listed as heavy in scripts/test.sh but does not exist" >&2; exit 1; }; done
# Each runs whatever the one before gives; any failing fails the command. (Not --test-force-exit:
# it ends a file before any test it declares after a top-level await: the libs/ run lost five.)
status=0
# shellcheck disable=SC2086
node --test --test-reporter=spec --test-timeout=600000 --test-concurrency=2 $pure "$@" || status=$?
# shellcheck disable=SC2086
node --test --test-reporter=spec --test-timeout=600000 --test-concurrency=2 $light "$@" || status=$?
# shellcheck disable=SC2086
node --test --test-reporter=spec --test-timeout=600000 $heavy "$@" || status=$?
exit "$status"
