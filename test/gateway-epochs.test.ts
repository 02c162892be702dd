// The gateway follows the validator set its consensus service tells it (SetValidators), as real
// processes: a real store and gateway for member 0 of four validators, validators 1–3 played by
// in-process libp2p nodes holding their keys, the consensus service played by its own GatewayLink.
// Told epoch 1's set without validator 2: validator 2 is no validator any more (not in ListPeers as
// one; its frames, even on the stream it opened as a validator, come as an outside peer's), and
// validator 3 moved up to index 2 (its frames, its peer entry, its mute). A set the gateway cannot
// take is refused and counted, and changes nothing; the told set outlives a reattach. A member a
// later set seats with the addresses of its card is dialled there, unknown to peers.yaml; a set
// seating this member under another peer id (a rotation it has not applied) is said at error level.

import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { multiaddr } from '@multiformats/multiaddr';
import type { Stream } from '@libp2p/interface';
import { createLogger } from '#libs/log/index.ts';
import { ValidatorSet } from '#libs/validators/index.ts';
import { GatewayServiceClient } from '#libs/gen/btcfed/v1/gateway.pb.ts';
import { CONSENSUS_PROTOCOL } from '../services/gateway/consensus.ts';
import { encodeFrame } from '../services/gateway/framing.ts';
import { GatewayLink } from '../services/consensus/gateway-link.ts';
import { OUTSIDE_BASE } from '../services/consensus/ports.ts';
import { PeerState, attach, bytes, freePort, gatewayCounter, listPeers, makeCluster, startMember, stopAll, strangerNode, waitPeer, type GatewayMember, type Node } from './support/gateway.ts';
import { parse } from 'yaml';
import { until } from './support/until.ts';
import fs from 'node:fs/promises';

type Libp2pNode = Awaited<ReturnType<typeof strangerNode>>;

describe('gateway: the validator set told by consensus', () => {
  const nodes: Array<Node | undefined> = [];
  let members: GatewayMember[] = [];
  const validators: Libp2pNode[] = [];
  let link: GatewayLink | undefined;
  after(async () => {
    link?.close();
    await Promise.allSettled(validators.map((v) => v.stop()));
    await stopAll(nodes, members);
  });

  test('removes a validator and renumbers the rest: frames, peer entries and mutes follow the member; a bad set is refused', async () => {
    members = await makeCluster(4);
    const [m0, m1, m2, m3] = members as [GatewayMember, GatewayMember, GatewayMember, GatewayMember];
    const grpcPort = await freePort();
    nodes[0] = await startMember(m0, ['--listen', `127.0.0.1:${grpcPort}`, '--metrics', '127.0.0.1:0']);
    const gw = nodes[0].gw;
    const conf = parse(await fs.readFile(m0.confPath, 'utf8')) as { validators: Array<{ name: string; peer_id: string; public_key: string }> };
    const epoch0 = ValidatorSet.fromConfig(conf.validators);
    const epoch1 = ValidatorSet.fromConfig(conf.validators.filter((_, i) => i !== 2), { epoch: 1 });
    validators.push(await strangerNode(m1.identity.privateKey), await strangerNode(m2.identity.privateKey), await strangerNode(m3.identity.privateKey));
    const dial = (v: Libp2pNode): Promise<Stream> => v.dialProtocol(multiaddr(`${m0.address}/p2p/${m0.identity.peerId}`), CONSENSUS_PROTOCOL);
    const got: Array<{ from: number; size: number; peerId: string }> = [];
    const client = new GatewayServiceClient(`127.0.0.1:${grpcPort}`, grpc.credentials.createInsecure());
    link = new GatewayLink({ client, log: createLogger({ service: 'test', level: 'error' }), onFrame: (from, frame, peerId) => { got.push({ from, size: frame.length, peerId }); } });
    link.setValidators(epoch0);
    link.start();
    await until('the link attached', () => link!.connected);
    const [s1, s2, s3] = [await dial(validators[0]!), await dial(validators[1]!), await dial(validators[2]!)];
    const arrives = (s: Stream, size: number) => { s.send(encodeFrame(bytes(size), 1 << 20)); return until(`a ${size}-byte frame arrives`, () => got.some((g) => g.size === size)); };
    const fromOf = (size: number) => got.find((g) => g.size === size)!.from;

    // Epoch 0: conf.yaml's set.
    await arrives(s2, 201);
    await arrives(s3, 301);
    assert.deepEqual([fromOf(201), fromOf(301)], [2, 3]);
    link.mute(3, 60_000, 'offences'); // validator 3 muted in epoch 0
    await waitPeer(gw, m3.identity.peerId, (p) => p.mutedUntilMs > Date.now());
    link.mute(1, 60_000, 'offences');
    await waitPeer(gw, m1.identity.peerId, (p) => p.mutedUntilMs > Date.now());
    link.mute(1, 0, 'forgiven');
    await waitPeer(gw, m1.identity.peerId, (p) => p.mutedUntilMs === 0);

    // Epoch 1 without validator 2: validator 3 is now number 2, and its mute moved with it.
    link.setValidators(epoch1);
    const v2 = await waitPeer(gw, m2.identity.peerId, (p) => !p.isValidator);
    assert.equal(v2.isValidator, false);
    const v3 = await waitPeer(gw, m3.identity.peerId, (p) => p.isValidator && p.validatorIndex === 2);
    assert.ok(v3.mutedUntilMs > Date.now(), 'validator 3\'s mute followed it to its new number');
    assert.equal(await gatewayCounter(gw, 'epoch', 'service="gateway"'), 1);
    assert.equal(await gatewayCounter(gw, 'validators', 'service="gateway"'), 3);
    assert.ok(gw.svc.lines.some((l) => l.msg === 'validator set in force changed (told by consensus)' && l.epoch === 1 && JSON.stringify(l.gone) === JSON.stringify([conf.validators[2]!.name])));
    // The removed member's frames, on the stream it opened as a validator, come as an outside peer's.
    await arrives(s2, 202);
    assert.ok(fromOf(202) >= OUTSIDE_BASE, `a removed member is an outside peer (got ${fromOf(202)})`);
    link.mute(2, 0, 'forgiven'); // validator 3, by its new number
    await waitPeer(gw, m3.identity.peerId, (p) => p.mutedUntilMs === 0);
    await arrives(s3, 302);
    assert.equal(fromOf(302), 2, 'validator 3 is number 2 in epoch 1');
    await arrives(s1, 102);
    assert.equal(fromOf(102), 1);

    // A set the gateway cannot take (the link only sends sets it built: a raw consumer sends these):
    // refused and counted (bad_request), nothing changes.
    const refusedBefore = await gatewayCounter(gw, 'frames_refused_total', 'reason="bad_request"');
    const dup = { epoch: 2, validators: [...epoch1.members, epoch1.members[0]!].map((v, i) => ({ name: `d${i}`, peerId: v.peerId, publicKey: v.publicKey, addresses: [] })) };
    link.close();
    await until('the link detached', async () => !(await listPeers(gw)).attached);
    const consumer = attach(gw);
    const ready = await consumer.ready;
    assert.equal(ready.validators, 3, 'the told set outlives the consumer that told it');
    // What the gateway itself says of each frame (the link above resolves senders on its own):
    // the removed member's stream, opened as a validator's, now carries an outside peer's frames.
    s2.send(encodeFrame(bytes(203), 1 << 20));
    s3.send(encodeFrame(bytes(303), 1 << 20));
    const [f2, f3] = [await consumer.next((f) => f.frame.length === 203), await consumer.next((f) => f.frame.length === 303)];
    assert.deepEqual([f2.fromOutside, f3.fromOutside, f3.from], [true, false, 2]);
    consumer.stream.write({ body: { $case: 'validators', value: dup } });
    consumer.stream.write({ body: { $case: 'validators', value: { epoch: 2, validators: Array.from({ length: 257 }, (_, i) => ({ name: `n${i}`, peerId: `p${i}`, publicKey: 'ab', addresses: [] })) } } });
    const seats = epoch1.members.map((v) => ({ name: v.name, peerId: v.peerId, publicKey: v.publicKey, addresses: [] as string[] }));
    const wildcard = { epoch: 2, validators: [...seats.slice(0, 2), { ...seats[2]!, addresses: ['/ip4/0.0.0.0/tcp/4001'] }] };
    consumer.stream.write({ body: { $case: 'validators', value: wildcard } });
    await until('the three sets refused and counted', async () => (await gatewayCounter(gw, 'frames_refused_total', 'reason="bad_request"')) === refusedBefore + 3);
    await gw.svc.waitFor((l) => l.msg === 'attach request refused' && /validators\[2\].*0\.0\.0\.0.*wildcard/.test(String(l.err)), 5_000);
    assert.ok(gw.svc.lines.some((l) => l.msg === 'attach request refused' && l.code === 'VALIDATORS_INVALID' && /same peer_id/.test(String(l.err))), JSON.stringify(gw.svc.lines.filter((l) => l.msg === 'attach request refused')));
    assert.equal((await waitPeer(gw, m3.identity.peerId, () => true)).validatorIndex, 2, 'nothing changed');
    assert.equal(await gatewayCounter(gw, 'epoch', 'service="gateway"'), 1);

    // Epoch 2 seats a new member the gateway has never heard of (not in peers.yaml, never dialled
    // it): the change carried its card's address, and the gateway dials it there.
    const { generateIdentity } = await import('#libs/config/index.ts');
    const fresh = await generateIdentity();
    const newcomer = await strangerNode(fresh.privateKey);
    validators.push(newcomer);
    await newcomer.start();
    const at = newcomer.getMultiaddrs()[0]!.toString().replace(/\/p2p\/.*$/, '');
    assert.equal((await listPeers(gw)).peers.some((p) => p.peerId === fresh.peerId), false, 'unknown before');
    const key = 'cd'.repeat(32);
    consumer.stream.write({ body: { $case: 'validators', value: { epoch: 2, validators: [...seats, { name: 'm9', peerId: fresh.peerId, publicKey: key, addresses: [at] }] } } });
    const seated = await waitPeer(gw, fresh.peerId, (p) => p.state === PeerState.PEER_STATE_CONNECTED && p.isValidator, 15_000);
    assert.equal(seated.validatorIndex, 3);
    assert.ok(seated.addresses.includes(at), `dialled at the change's address ${at}: ${JSON.stringify(seated.addresses)}`);
    await gw.svc.waitFor((l) => l.msg === 'validators dialled at the addresses their change carried' && JSON.stringify(l.members) === '["m9"]', 5_000);

    // Epoch 3 moves this gateway's own member (by its node.name) to another peer id, as a rotation
    // does: it says so, naming both.
    const elsewhere = await generateIdentity();
    const own = seats.find((v) => v.peerId === m0.identity.peerId)!;
    consumer.stream.write({ body: { $case: 'validators', value: { epoch: 3, validators: seats.map((v) => (v === own ? { ...v, name: m0.name, peerId: elsewhere.peerId } : v)) } } });
    const said = await gw.svc.waitFor((l) => l.msg === 'this member is seated under another peer id: it takes no part until its gateway runs with that key (btcfed member rotate --apply, then restart the store and the gateway)', 5_000);
    assert.deepEqual([said.epoch, said.member, said.seatedAs, said.peerId], [3, m0.name, elsewhere.peerId, m0.identity.peerId]);
    consumer.close();
  });
});
