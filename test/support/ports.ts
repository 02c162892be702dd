// Ports for test federations: a random block of consecutive ports (members at base + 10·i, say),
// checked free on 127.0.0.1 before it is handed out. Other software on a machine holds ports in
// the range the tests use — RabbitMQ's Erlang distribution listens on 25672 on some hosts, and a
// member given it failed to start (EADDRINUSE) in a CI run of 2026-11-27 — so a block with a port
// in use is passed over, not discovered when a service cannot bind.
//
// Every port handed out lies below the kernel's range for the local ports of outbound connections
// (ip_local_port_range, 32768–60999 by default). A port inside it may be free when it is checked
// and taken by some connection's local end before the service binds it: a gateway test given a
// port by the OS (listen on port 0, which picks from that range) failed to start with EADDRINUSE
// on 2026-11-28 while the test's other processes were connecting.

import fs from 'node:fs';
import net from 'node:net';

/** The kernel's range of local ports for outbound connections, [low, high]. */
export function ephemeralRange(): [number, number] {
  try {
    const [low, high] = fs.readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (Number.isInteger(low) && Number.isInteger(high)) return [low!, high!];
  } catch { /* not Linux: the default below */ }
  return [32_768, 60_999];
}

/** A test's single ports come from [SINGLE_PORTS_FROM, SINGLE_PORTS_TO): above every block (freePortBlock refuses one that reaches here), below the ephemeral range. */
export const SINGLE_PORTS_FROM = 32_000;
export const SINGLE_PORTS_TO = 32_768;

function free(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen({ port, host: '127.0.0.1', exclusive: true }, () => server.close(() => resolve(true)));
  });
}

/**
 * A base port `from + step·k` (k random below `slots`) whose `span` ports from it are all free now.
 * Tries the slots in a random order; throws when none is wholly free.
 */
export async function freePortBlock(from: number, slots: number, opts: { step?: number; span?: number } = {}): Promise<number> {
  const step = opts.step ?? 100;
  const span = opts.span ?? step;
  const [low, high] = ephemeralRange();
  const last = from + step * (slots - 1) + span - 1;
  if (last >= low && from <= high) throw new Error(`ports ${from}–${last} reach into the ephemeral range ${low}–${high}: a port there may be taken by an outbound connection before a service binds it`);
  if (last >= SINGLE_PORTS_FROM && from < SINGLE_PORTS_TO) throw new Error(`ports ${from}–${last} reach into ${SINGLE_PORTS_FROM}–${SINGLE_PORTS_TO - 1}, where freePort hands out single ports`);
  const order = Array.from({ length: slots }, (_, k) => k);
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  for (const k of order) {
    const base = from + step * k;
    let ok = true;
    for (let p = base; p < base + span && ok; p++) ok = await free(p);
    if (ok) return base;
  }
  throw new Error(`no block of ${span} free ports from ${from} (${slots} slots of ${step})`);
}

const handedOut = new Set<number>();

/**
 * One port free right now on 127.0.0.1, from SINGLE_PORTS_FROM up to the ephemeral range, never the
 * same one twice in a process. Throws when none is free.
 */
export async function freePort(): Promise<number> {
  const [low] = ephemeralRange();
  const top = Math.min(low, SINGLE_PORTS_TO);
  const count = top - SINGLE_PORTS_FROM;
  const start = Math.floor(Math.random() * count);
  for (let i = 0; i < count; i++) {
    const port = SINGLE_PORTS_FROM + ((start + i) % count);
    if (handedOut.has(port) || !(await free(port))) continue;
    handedOut.add(port);
    return port;
  }
  throw new Error(`no free port in ${SINGLE_PORTS_FROM}–${top - 1}`);
}
