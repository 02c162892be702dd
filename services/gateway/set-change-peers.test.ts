// A gateway in process (a real libp2p node on loopback, nobody else; the cards' addresses refuse
// every dial): what a set change does to whom it dials. A member unseated — removed, or the old
// peer id of a rotated member — is no longer dialled unless peers.yaml lists it (its entry stays);
// a member seated is dialled at once even if the peer exchange held it off as a stranger.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateIdentity } from '#libs/config/index.ts';
import { createLogger } from '#libs/log/index.ts';
import { createPromMetrics } from '#libs/metrics/index.ts';
import { ValidatorSet } from '#libs/validators/index.ts';
import type { SetValidators } from '#libs/gen/btcfed/v1/gateway.pb.ts';
import { Gateway } from './gateway.ts';
import { gatewayMetrics } from './metrics.ts';
import { DEFAULT_BACKOFF } from './peer-table.ts';
import type { Settings } from './settings.ts';

const ids = await Promise.all(Array.from({ length: 6 }, () => generateIdentity()));
const CARD = '/ip4/127.0.0.1/tcp/1'; // nothing listens: a dial is refused at once
const LISTED = '/ip4/127.0.0.1/tcp/2';
const key = (i: number) => `0${i}`.repeat(32);
/** Seats as [name index, identity index]: a rotation keeps the name under another peer id. */
const told = (epoch: number, seats: Array<[number, number]>): SetValidators => ({
  epoch, validators: seats.map(([n, i]) => ({ name: `m${n}`, peerId: ids[i]!.peerId, publicKey: key(i), addresses: i === 0 ? [] : [CARD] })),
});

async function gateway(): Promise<Gateway> {
  const genesis = ValidatorSet.fromConfig([0, 1, 2, 3].map((i) => ({ name: `m${i}`, peer_id: ids[i]!.peerId, public_key: key(i) })))
    .withSelf({ peerId: ids[0]!.peerId });
  const settings: Settings = {
    member: 'm0', peerId: ids[0]!.peerId, privateKey: ids[0]!.privateKey, listen: ['/ip4/127.0.0.1/tcp/0'],
    // m2 is in peers.yaml too: an operator's entry, whatever the set says.
    peers: [{ publicKey: key(2), peerId: ids[2]!.peerId, addresses: [LISTED], lastSeenMs: 0 }], validators: genesis,
    exchangeIntervalMs: 60_000, connectionTimeoutMs: 1000, maxFrameBytes: 1 << 20, paramSet: 'slh-dsa-sha2-128f', maxBlockBytes: 1 << 20,
    allowPrivate: true, learnedNetworks: [], maxLearnedPeers: 100, maxConnections: 100,
    inbound: { perHost: { rate: 4, burst: 16 }, unknownHosts: { rate: 20, burst: 64 } },
  };
  return Gateway.start(settings, { dropPrivate: false, backoff: DEFAULT_BACKOFF },
    { log: createLogger({ service: 'test', level: 'error' }), metrics: gatewayMetrics(createPromMetrics({ prefix: 't_' })), persist: async () => undefined });
}

test('gateway: a set change stops dialling the members it unseated (peers.yaml\'s stay) and dials those it seated at once', async () => {
  const gw = await gateway();
  try {
    gw.adoptValidators(told(1, [[0, 0], [1, 1], [2, 2], [3, 3]]));
    for (const i of [1, 2, 3]) assert.ok(gw.table.get(ids[i]!.peerId)?.addresses.includes(CARD), `m${i} dialled at its card's address`);
    // ids[4] is a stranger the peer exchange penalised: held off for 10 minutes.
    gw.table.upsertKnown(ids[4]!.peerId, [CARD]);
    gw.table.holdOff(ids[4]!.peerId, Date.now() + 10 * 60_000);

    // Epoch 2: m1 removed, m3 rotated to ids[5], ids[4] seated as m4.
    gw.adoptValidators(told(2, [[0, 0], [2, 2], [3, 5], [4, 4]]));
    assert.equal(gw.table.get(ids[1]!.peerId), undefined, 'the removed member is not dialled any more');
    assert.equal(gw.table.get(ids[3]!.peerId), undefined, 'nor the rotated member\'s old peer id');
    const listed = gw.table.get(ids[2]!.peerId)!;
    assert.ok(listed.known && listed.configured && listed.addresses.includes(LISTED), 'peers.yaml\'s entry stays');
    const seated = gw.table.get(ids[4]!.peerId)!;
    assert.equal(seated.heldUntilMs, 0, 'the hold-off put on a stranger does not outlive its seat');
    assert.equal(seated.phase, 'connecting', 'dialled at once');
    assert.equal(gw.table.get(ids[5]!.peerId)?.phase, 'connecting', 'the rotated member\'s new peer id too');

    // Epoch 3: m2 removed too; it stays dialled as the operator's peer.
    gw.adoptValidators(told(3, [[0, 0], [3, 5], [4, 4]]));
    const still = gw.table.get(ids[2]!.peerId)!;
    assert.ok(still.known && still.configured, 'a departed member peers.yaml lists keeps its entry');
  } finally {
    await gw.stop();
  }
});
