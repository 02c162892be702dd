// A gateway in process (a real libp2p node on loopback, nobody else): the first set its consumer
// tells is no change, however many members were seated since conf.yaml's genesis set (a gateway
// restarted in a later epoch must not report them all absent); a later set's additions are
// absent until heard, also when the first set told was genesis's own.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateIdentity } from '#libs/config/index.ts';
import { createLogger } from '#libs/log/index.ts';
import { createPromMetrics } from '#libs/metrics/index.ts';
import { ValidatorSet } from '#libs/validators/index.ts';
import type { SetValidators } from '#libs/gen/btcfed/v1/gateway.pb.ts';
import { Gateway } from '../services/gateway/gateway.ts';
import { gatewayMetrics } from '../services/gateway/metrics.ts';
import { DEFAULT_BACKOFF } from '../services/gateway/peer-table.ts';
import type { Settings } from '../services/gateway/settings.ts';

const ids = await Promise.all(Array.from({ length: 6 }, () => generateIdentity()));
const member = (i: number) => ({ name: `m${i}`, peerId: ids[i]!.peerId, publicKey: `0${i}`.repeat(32), addresses: [] });
const told = (epoch: number, seats: number[]): SetValidators => ({ epoch, validators: seats.map(member) });

async function gateway(): Promise<Gateway> {
  const genesis = ValidatorSet.fromConfig([0, 1, 2, 3].map((i) => ({ name: `m${i}`, peer_id: ids[i]!.peerId, public_key: `0${i}`.repeat(32) })))
    .withSelf({ peerId: ids[0]!.peerId });
  const settings: Settings = {
    member: 'm0', peerId: ids[0]!.peerId, privateKey: ids[0]!.privateKey, listen: ['/ip4/127.0.0.1/tcp/0'], peers: [], validators: genesis,
    exchangeIntervalMs: 60_000, connectionTimeoutMs: 1000, maxFrameBytes: 1 << 20, paramSet: 'slh-dsa-sha2-128f', maxBlockBytes: 1 << 20,
    allowPrivate: true, learnedNetworks: [], maxLearnedPeers: 100, maxConnections: 100,
    inbound: { perHost: { rate: 4, burst: 16 }, unknownHosts: { rate: 20, burst: 64 } },
  };
  return Gateway.start(settings, { dropPrivate: false, backoff: DEFAULT_BACKOFF },
    { log: createLogger({ service: 'test', level: 'error' }), metrics: gatewayMetrics(createPromMetrics({ prefix: 't_' })), persist: async () => undefined });
}

test('gateway: the first set told after a restart in a later epoch reports nobody absent; a later one\'s additions are', async () => {
  const gw = await gateway();
  try {
    gw.adoptValidators(told(3, [0, 2, 3, 4, 5])); // m1 removed, m4 and m5 seated since genesis
    assert.deepEqual(gw.presence.absent(), [], 'members seated since genesis reported absent on the first set told');
    gw.adoptValidators(told(4, [0, 1, 2, 3, 4, 5])); // m1 seated again: a change
    assert.deepEqual(gw.presence.absent(), [ids[1]!.peerId]);
  } finally {
    await gw.stop();
  }
});

test('gateway: a first set equal to genesis\'s is still the first: the next one\'s additions are absent until heard', async () => {
  const gw = await gateway();
  try {
    gw.adoptValidators(told(0, [0, 1, 2, 3]));
    gw.adoptValidators(told(1, [0, 1, 2, 3, 4]));
    assert.deepEqual(gw.presence.absent(), [ids[4]!.peerId], 'the member seated at epoch 1 was not absent until heard');
  } finally {
    await gw.stop();
  }
});
