#!/usr/bin/env bash
# Installs the Debian tools the tests use, where missing (needs root and apt):
#   strace   — the durability tests trace a real process's system calls (write → fsync → send).
set -euo pipefail
missing=()
for tool in strace; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if [ "${#missing[@]}" -eq 0 ]; then echo "tools: all present"; exit 0; fi
echo "tools: installing ${missing[*]} from Debian's packages"
apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
echo "tools: installed ${missing[*]}"
