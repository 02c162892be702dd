// Ports for test federations: a random block of consecutive ports (members at base + 10·i, say),
// checked free on 127.0.0.1 before it is handed out. Other software on a machine holds ports in
// the range the tests use — RabbitMQ's Erlang distribution listens on 25672 on some hosts, and a
// member given it failed to start (EADDRINUSE) in a CI run of 2026-11-27 — so a block with a port
// in use is passed over, not discovered when a service cannot bind.

import net from 'node:net';

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
