#!/usr/bin/env bash
# Generates TypeScript from proto/ into libs/gen (ts-proto through buf, offline).
# The output is committed; `npm test` fails when it is stale. Never edit libs/gen by hand.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/node_modules/.bin:$PATH"
buf lint
rm -rf libs/gen
buf generate
