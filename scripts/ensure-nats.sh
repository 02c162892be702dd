#!/usr/bin/env bash
# Makes sure a NATS server with JetStream answers on 127.0.0.1:4222 (or $NATS_PORT):
# leaves a running one alone, otherwise installs Debian's nats-server if it is missing
# (needs root and apt) and starts it in the background with JetStream on.
set -euo pipefail
port="${NATS_PORT:-4222}"
up() { (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; }
if up; then echo "nats: already up on 127.0.0.1:$port"; exit 0; fi
if ! command -v nats-server >/dev/null 2>&1 && [ ! -x /usr/sbin/nats-server ]; then
  echo "nats: nats-server not installed; installing Debian's package"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nats-server >/dev/null
fi
bin=$(command -v nats-server || echo /usr/sbin/nats-server)
mkdir -p /var/lib/nats-server /var/log
start-stop-daemon --start --oknodo --background --exec "$bin" -- \
  -a 127.0.0.1 -p "$port" -js -sd /var/lib/nats-server -l /var/log/nats-server.log
for _ in $(seq 1 50); do
  if up; then echo "nats: started on 127.0.0.1:$port"; exit 0; fi
  sleep 0.1
done
echo "nats: did not come up on 127.0.0.1:$port; see /var/log/nats-server.log" >&2
exit 1
