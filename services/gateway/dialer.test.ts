// The dialer's limits: validators are dialled first, and peers that are not validators (learned
// by peer exchange, perhaps announced by the thousand) take at most MAX_NON_VALIDATOR_DIALS
// dial slots at once, however many are due.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createLogger } from '#libs/log/index.ts';
import { createPromMetrics } from '#libs/metrics/index.ts';
import { Dialer, MAX_NON_VALIDATOR_DIALS } from './dialer.ts';
import { gatewayMetrics } from './metrics.ts';
import type { GatewayNode } from './node.ts';
import { PeerTable, DEFAULT_BACKOFF, UNPROVEN_DIALS } from './peer-table.ts';

test('announced strangers take at most MAX_NON_VALIDATOR_DIALS dial slots; validators are dialled whatever is due', async () => {
  const table = new PeerTable({ now: Date.now, random: Math.random, backoff: DEFAULT_BACKOFF, onTransition: () => undefined });
  const validators = ['v1', 'v2', 'v3'];
  for (let k = 0; k < 100; k++) table.upsertKnown(`stranger-${k}`, [`/ip4/198.51.100.${k + 1}/tcp/4001`]);
  for (const v of validators) table.upsertKnown(v, ['/ip4/127.0.0.1/tcp/4001']);
  const dialling = new Set<string>();
  // Dials that never end (a blackholed address, a peer that never answers the handshake).
  const node = {
    status: 'started',
    dial: (addr: { toString(): string }) => { dialling.add(addr.toString().split('/p2p/')[1]!); return new Promise(() => undefined); },
  } as unknown as GatewayNode;
  const dialer = new Dialer({ connectionTimeoutMs: 60_000, pingIntervalMs: 60_000, maxParallelDials: 32, tickMs: 100 },
    { node, table, log: createLogger({ service: 'test', level: 'error' }), metrics: gatewayMetrics(createPromMetrics({ prefix: 't_' })),
      selfPeerId: 'self', isValidator: (id) => validators.includes(id) });
  dialer.dialDue();
  dialer.dialDue();
  await new Promise((r) => setImmediate(r));
  const strangers = [...dialling].filter((id) => id.startsWith('stranger-'));
  assert.deepEqual([...dialling].filter((id) => validators.includes(id)).sort(), validators, 'every validator is dialled');
  assert.equal(strangers.length, MAX_NON_VALIDATOR_DIALS, `${strangers.length} strangers dialled at once`);
});

test('a learned peer whose dials keep failing is forgotten and counted; a validator never is', async () => {
  let now = 1_000_000;
  const table = new PeerTable({ now: () => now, random: () => 0.5, backoff: DEFAULT_BACKOFF, onTransition: () => undefined });
  table.upsertKnown('fake', ['/ip4/127.77.0.1/tcp/1']);
  table.upsertKnown('v1', ['/ip4/127.77.0.2/tcp/1']); // a validator the gateway knows only from a record
  const node = { status: 'started', dial: () => Promise.reject(new Error('connection refused')) } as unknown as GatewayNode;
  const prom = createPromMetrics({ prefix: 't_' });
  const dialer = new Dialer({ connectionTimeoutMs: 1000, pingIntervalMs: 60_000, maxParallelDials: 32, tickMs: 100 },
    { node, table, log: createLogger({ service: 'test', level: 'error' }), metrics: gatewayMetrics(prom), selfPeerId: 'self', isValidator: (id) => id === 'v1' });
  for (let k = 0; k < UNPROVEN_DIALS + 3; k++) {
    await Promise.all(['fake', 'v1'].filter((id) => table.get(id)).map((id) => dialer.dial(id, table.get(id)!.addresses)));
    now += 60_000;
  }
  assert.equal(table.get('fake'), undefined, 'forgotten');
  assert.equal(table.get('v1')?.counters.dialFailures, UNPROVEN_DIALS + 3, 'the validator is kept and redialled');
  assert.match(await prom.registry.metrics(), /t_gateway_peers_forgotten_total 1\b/);
});
