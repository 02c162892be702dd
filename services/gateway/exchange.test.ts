// Peer exchange (exchange.ts) with a real peer table and no network: a validator seated by a set
// change is known only from its member card, and an honest peer whose set is another epoch's
// relays it as an ordinary peer. Its card's addresses are where we dial it (no rejection); other
// ones are dropped and counted; neither costs the relaying peer a strike.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateIdentity } from '#libs/config/index.ts';
import { createLogger } from '#libs/log/index.ts';
import { createPromMetrics } from '#libs/metrics/index.ts';
import { PeerExchange, STRIKES } from './exchange.ts';
import { gatewayMetrics } from './metrics.ts';
import type { GatewayNode } from './node.ts';
import { DEFAULT_BACKOFF, PeerTable } from './peer-table.ts';

test('exchange: a peer relaying a validator seated by a set change (known from its card only) is not penalised', async () => {
  const [self, seated, relayer] = await Promise.all([generateIdentity(), generateIdentity(), generateIdentity()]);
  const card = '/ip4/198.51.100.7/tcp/4001';
  const table = new PeerTable({ now: Date.now, random: Math.random, backoff: DEFAULT_BACKOFF, onTransition: () => undefined });
  table.upsertKnown(seated.peerId, [card]); // what Gateway.adoptValidators does with the change's card
  const prom = createPromMetrics({ prefix: 't_' });
  const hungUp: string[] = [];
  const exchange = new PeerExchange(
    { intervalMs: 60_000, timeoutMs: 1000, dropPrivate: false, maxNewPerInterval: 64, maxLearnedPeers: 100, bucket: { capacity: 10, perSecond: 1 } },
    {
      node: {} as GatewayNode, table, log: createLogger({ service: 'test', level: 'error' }), metrics: gatewayMetrics(prom),
      selfPeerId: self.peerId, selfPublicKey: self.publicKey, persist: async () => undefined,
      stored: () => undefined, // peers.yaml does not list it yet
      storedLearned: () => 0, isValidator: (id) => id === seated.peerId,
      hangUp: async (id) => { hungUp.push(id); },
    });
  const rejected = async (reason: string) => Number(new RegExp(`t_gateway_peer_records_rejected_total\\{reason="${reason}"\\} (\\d+)`).exec(await prom.registry.metrics())?.[1] ?? 0);

  // Its card's address, relayed back: where we dial it, so nothing is refused.
  exchange.learn([{ publicKey: seated.publicKey, addresses: [card] }], relayer.peerId, 'exchange');
  assert.equal(await rejected('validator'), 0, 'the address its card carries was taken as foreign');
  // The addresses the relayer knows it at (its identify listen addresses, say): dropped and counted.
  for (let i = 0; i < STRIKES; i++) {
    exchange.learn([{ publicKey: seated.publicKey, addresses: ['/ip4/203.0.113.5/tcp/4001'] }], relayer.peerId, 'exchange');
  }
  assert.equal(await rejected('validator'), STRIKES);
  assert.equal(exchange.penalised(relayer.peerId), false, 'an honest relayer of another epoch\'s set was penalised');
  assert.deepEqual(hungUp, []);
  assert.deepEqual(table.get(seated.peerId)?.addresses, [card], 'a validator\'s address was taken from peer exchange');
  await exchange.stop();
});
