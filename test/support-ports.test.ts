// The tests' port blocks (test/support/ports.ts): a block with a port another process holds is
// never handed out — a member given such a port fails to start (EADDRINUSE), as one did in CI
// on a host where RabbitMQ listens on 25672.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { ephemeralRange, freePort, freePortBlock } from './support/ports.ts';

async function hold(port: number): Promise<net.Server> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => { server.once('error', reject); server.listen(port, '127.0.0.1', resolve); });
  return server;
}

test('a block holding a port in use is passed over; none free: a clear error', async () => {
  // Two blocks of ten, all twenty free now.
  const from = await freePortBlock(12_000, 100, { step: 20 });
  const held = await hold(from + 7);
  try {
    for (let i = 0; i < 20; i++) assert.equal(await freePortBlock(from, 2, { step: 10 }), from + 10, 'the first block holds a used port');
    const second = await hold(from + 12);
    try {
      await assert.rejects(freePortBlock(from, 2, { step: 10 }), /no block of 10 free ports/);
    } finally { second.close(); }
  } finally { held.close(); }
});

test('no port is handed out inside the ephemeral range, where an outbound connection may take it first', async () => {
  const [low] = ephemeralRange();
  await assert.rejects(freePortBlock(low - 500, 10), /reach into the ephemeral range/);
  const seen = new Set<number>();
  for (let i = 0; i < 50; i++) {
    const p = await freePort();
    assert.ok(p < low, `${p} is inside the ephemeral range from ${low}`);
    assert.ok(!seen.has(p), `${p} was handed out twice`);
    seen.add(p);
  }
  // A port in use is passed over.
  const held = await hold(await freePort());
  try {
    for (let i = 0; i < 20; i++) assert.notEqual(await freePort(), (held.address() as net.AddressInfo).port);
  } finally { held.close(); }
});
