// Where the nats-server binary is, for what starts NATS itself (the devnet, the namespace test
// bed). Order: $BTCFED_NATS_SERVER; the build scripts/ensure-nats.sh unpacks to /opt/btcfed
// (Debian 13's nats-server 2.10: Debian 12's 2.9.10 let a stream's replicas diverge under the
// fault campaign, docs/testing.md); then a system install.

import fs from 'node:fs';

/** Where scripts/ensure-nats.sh puts the nats-server it fetches. */
export const FETCHED_NATS_SERVER = '/opt/btcfed/nats-server/nats-server';

const SYSTEM = ['/usr/sbin/nats-server', '/usr/bin/nats-server', '/usr/local/bin/nats-server'];

/** The nats-server to run, or undefined when none is installed. */
export function natsServerBinary(env: NodeJS.ProcessEnv = process.env): string | undefined {
  return [env['BTCFED_NATS_SERVER'], FETCHED_NATS_SERVER, ...SYSTEM].find((b): b is string => !!b && fs.existsSync(b));
}
