#!/usr/bin/env bash
# Makes sure a NATS server with JetStream answers on 127.0.0.1:4222 (or $NATS_PORT):
# leaves a running one alone, otherwise installs Debian's nats-server if it is missing
# (needs root and apt) and starts it in the background with JetStream on.
#
# It also fetches Debian 13's nats-server 2.10 into /opt/btcfed/nats-server/ (checked against
# its pinned SHA-256; x86-64 only), which what starts NATS itself prefers (the devnet, the
# namespace test bed: libs/events/nats-binary.ts): Debian 12's 2.9.10 let the three replicas of a
# stream diverge under the NATS fault campaign (docs/testing.md). The binary is static; it runs
# on Debian 12. Without it (no network, another architecture) the system's nats-server is used.
set -euo pipefail
port="${NATS_PORT:-4222}"
NATS_DEB=nats-server_2.10.27-1+b2_amd64.deb
NATS_DEB_SHA256=6d913ac987b78734c08537c2adeb1526cf735f216173a9170d94b185fcfe6f8a
NATS_DIR=/opt/btcfed/nats-server

fetch_nats() {
  if [ -x "$NATS_DIR/nats-server" ]; then return 0; fi
  if [ "$(uname -m)" != x86_64 ]; then echo "nats: no pinned nats-server 2.10 for $(uname -m); using the system's"; return 0; fi
  local tmp; tmp=$(mktemp -d)
  if curl -fsS --max-time 120 -o "$tmp/$NATS_DEB" "http://deb.debian.org/debian/pool/main/n/nats-server/$NATS_DEB" \
    && echo "$NATS_DEB_SHA256  $tmp/$NATS_DEB" | sha256sum -c --quiet - \
    && dpkg-deb -x "$tmp/$NATS_DEB" "$tmp/x"; then
    mkdir -p "$NATS_DIR"
    install -m 0755 "$tmp/x/usr/sbin/nats-server" "$NATS_DIR/nats-server.new"
    mv "$NATS_DIR/nats-server.new" "$NATS_DIR/nats-server"
    echo "nats: $("$NATS_DIR/nats-server" --version) in $NATS_DIR"
  else
    echo "nats: could not fetch $NATS_DEB (or its SHA-256 did not match); using the system's nats-server" >&2
  fi
  rm -rf "$tmp"
}

fetch_nats
up() { (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; }
if up; then echo "nats: already up on 127.0.0.1:$port"; exit 0; fi
if [ -x "$NATS_DIR/nats-server" ]; then
  bin="$NATS_DIR/nats-server"
else
  if ! command -v nats-server >/dev/null 2>&1 && [ ! -x /usr/sbin/nats-server ]; then
    echo "nats: nats-server not installed; installing Debian's package"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nats-server >/dev/null
  fi
  bin=$(command -v nats-server || echo /usr/sbin/nats-server)
fi
mkdir -p /var/lib/nats-server /var/log
start-stop-daemon --start --oknodo --background --exec "$bin" -- \
  -a 127.0.0.1 -p "$port" -js -sd /var/lib/nats-server -l /var/log/nats-server.log
for _ in $(seq 1 50); do
  if up; then echo "nats: started on 127.0.0.1:$port"; exit 0; fi
  sleep 0.1
done
echo "nats: did not come up on 127.0.0.1:$port; see /var/log/nats-server.log" >&2
exit 1
