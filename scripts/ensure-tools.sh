#!/usr/bin/env bash
# Installs the Debian tools the tests use, where missing (needs root and apt):
#   strace      — the durability tests trace a real process's system calls (write → fsync → send).
#   prometheus  — promtool unit-tests the shipped alert rules; the e2e test scrapes a federation
#                 with a real Prometheus (installed without its recommends; nothing is started).
#   iproute2, iptables — the namespace test bed (test/testbed/): hosts as network namespaces on a
#                 bridge (`ip netns`, veth), and partitions and packet loss as iptables rules.
#   protobuf-compiler, protobuf-compiler-grpc, python3-grpcio, python3-protobuf — the Python
#                 example client (examples/python/), generated from proto/ and run by the tests
#                 with Debian's /usr/bin/python3.
#   softhsm2    — a PKCS#11 token in software (softhsm2-util, /usr/lib/softhsm/libsofthsm2.so):
#                 the signer's key-custody tests each make a token directory of their own.
set -euo pipefail
missing=()
# command → the Debian package that provides it
for pair in strace:strace promtool:prometheus prometheus:prometheus ip:iproute2 iptables:iptables protoc:protobuf-compiler grpc_python_plugin:protobuf-compiler-grpc softhsm2-util:softhsm2; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || [ -x "/usr/sbin/${pair%%:*}" ] || missing+=("${pair##*:}")
done
# Python modules of Debian's python3 (not a pyenv or venv python that may come first on PATH)
for pair in grpc:python3-grpcio google.protobuf:python3-protobuf; do
  /usr/bin/python3 -c "import ${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair##*:}")
done
if [ "${#missing[@]}" -eq 0 ]; then echo "tools: all present"; exit 0; fi
mapfile -t packages < <(printf '%s\n' "${missing[@]}" | sort -u)
echo "tools: installing ${packages[*]} from Debian's packages"
apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
# Debian's package enables a Prometheus service; tests start their own on loopback only.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet prometheus 2>/dev/null; then systemctl disable --now prometheus >/dev/null 2>&1 || true; fi
echo "tools: installed ${packages[*]}"
