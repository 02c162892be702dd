// Mutes at the gateway's edge, as real processes: a real store and gateway, validators played by
// in-process libp2p nodes holding the validators' keys, the consensus service played by an Attach
// stream and then by the consensus service's own GatewayLink. A validator muted over Attach has
// its stream paused (its bytes wait at the sender) and what it sent meanwhile dropped at the
// gateway when the stream resumes (counted in its peer entry and the refused metric) while
// another validator's still arrive; ms = 0 lifts the mute and a short one
// ends by itself; the consumer's mutes end when it detaches; and the consensus link sends its
// mutes again after the gateway restarts (a restarted gateway had forgotten them).

import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { multiaddr } from '@multiformats/multiaddr';
import type { Stream } from '@libp2p/interface';
import { createLogger } from '#libs/log/index.ts';
import { GatewayServiceClient } from '#libs/gen/btcfed/v1/gateway.pb.ts';
import { CONSENSUS_PROTOCOL } from '../services/gateway/consensus.ts';
import { encodeFrame } from '../services/gateway/framing.ts';
import { GatewayLink } from '../services/consensus/gateway-link.ts';
import {
  attach, bytes, freePort, gatewayCounter, listPeers, makeCluster, startGateway, startMember, stopAll, strangerNode, waitPeer,
  type GatewayMember, type Node,
} from './support/gateway.ts';

type Libp2pNode = Awaited<ReturnType<typeof strangerNode>>;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Opens a consensus stream from a validator's node to member 0's gateway. */
async function dial(from: Libp2pNode, to: GatewayMember): Promise<Stream> {
  return from.dialProtocol(multiaddr(`${to.address}/p2p/${to.identity.peerId}`), CONSENSUS_PROTOCOL);
}

const send = (s: Stream, n: number, size: number): void => {
  for (let i = 0; i < n; i++) s.send(encodeFrame(bytes(size, i), 1 << 20));
};

async function until(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await check()) return;
    await sleep(50);
  }
  throw new Error(`timed out: ${what}`);
}

describe('gateway: a validator muted over Attach', () => {
  const nodes: Array<Node | undefined> = [];
  let members: GatewayMember[] = [];
  const validators: Libp2pNode[] = [];
  after(async () => {
    await Promise.allSettled(validators.map((v) => v.stop()));
    await stopAll(nodes, members);
  });

  test('has its frames dropped at the gateway and counted while another\'s arrive; ms = 0 lifts it, a short one ends, a detach clears them', async () => {
    members = await makeCluster(3);
    const [m0, m1, m2] = members as [GatewayMember, GatewayMember, GatewayMember];
    nodes[0] = await startMember(m0, ['--metrics', '127.0.0.1:0']);
    const gw = nodes[0].gw;
    // Validators 1 and 2, speaking the consensus protocol with their real keys.
    validators.push(await strangerNode(m1.identity.privateKey), await strangerNode(m2.identity.privateKey));
    const consumer = attach(gw);
    await consumer.ready;
    const s1 = await dial(validators[0]!, m0);
    const s2 = await dial(validators[1]!, m0);
    const mute = (validator: number, ms: number) =>
      consumer.stream.write({ body: { $case: 'mute', value: { validator, ms, reason: 'test', peerId: '' } } });
    const fromV1 = (size: number) => consumer.frames.filter((f) => f.from === 1 && f.frame.length === size).length;

    mute(1, 60_000);
    await waitPeer(gw, m1.identity.peerId, (p) => p.mutedUntilMs > Date.now());
    send(s1, 50, 1000);
    send(s2, 5, 200);
    await until(() => consumer.frames.filter((f) => f.from === 2 && f.frame.length === 200).length === 5, 'validator 2\'s frames arrive');
    await sleep(300);
    // Its stream is paused: what it sent waits in yamux's buffer (within the window granted before), unread.
    assert.equal((await waitPeer(gw, m1.identity.peerId, () => true)).framesReceived, 0, 'not read while muted');
    await until(async () => (await gatewayCounter(gw, 'inbound_muted_streams', 'service="gateway"')) === 1, 'the gauge of streams paused for a mute at 1 (sampled each second)');
    assert.equal(fromV1(1000), 0, 'none of the muted validator\'s frames reached the consumer');
    const muted = gw.svc.lines.find((l) => l.msg === 'peer muted: its streams are paused and its frames dropped at the edge');
    assert.equal(muted?.validator, 1);
    assert.equal(muted?.pausedStreams, 1);

    // ms = 0 (the operator's `btcfed admin unmute`) lifts it: what it sent while muted is read and dropped.
    mute(1, 0);
    await waitPeer(gw, m1.identity.peerId, (p) => p.mutedUntilMs === 0);
    const v1 = await waitPeer(gw, m1.identity.peerId, (p) => p.framesMuted === 50);
    assert.equal(v1.framesReceived, 50, 'read from libp2p once resumed, then dropped');
    assert.equal(await gatewayCounter(gw, 'frames_refused_total', 'reason="muted"'), 50);
    assert.ok((await listPeers(gw)).refusedFrames >= 50);
    assert.equal(gw.svc.lines.filter((l) => l.msg === 'frames a peer sent while muted dropped when its stream resumed').length, 1);
    assert.equal(fromV1(1000), 0, 'none of the frames it sent while muted reached the consumer');
    send(s1, 1, 300);
    await consumer.next((f) => f.from === 1 && f.frame.length === 300);

    // A short mute ends by itself.
    mute(1, 700);
    await waitPeer(gw, m1.identity.peerId, (p) => p.mutedUntilMs > 0);
    send(s1, 1, 400);
    await waitPeer(gw, m1.identity.peerId, (p) => p.framesMuted === 51);
    await sleep(800);
    send(s1, 1, 401);
    await consumer.next((f) => f.from === 1 && f.frame.length === 401);
    assert.equal(fromV1(400), 0);

    // The consumer's mutes end with it: a new consumer starts with none.
    mute(2, 60_000);
    await waitPeer(gw, m2.identity.peerId, (p) => p.mutedUntilMs > 0);
    consumer.close();
    await until(async () => !(await listPeers(gw)).attached, 'the consumer detached');
    const next = attach(gw);
    await next.ready;
    assert.equal((await waitPeer(gw, m2.identity.peerId, () => true)).mutedUntilMs, 0);
    send(s2, 1, 222);
    await next.next((f) => f.from === 2 && f.frame.length === 222);
    next.close();
  });
});

describe('gateway: the consensus service\'s link after a gateway restart', () => {
  const nodes: Array<Node | undefined> = [];
  let members: GatewayMember[] = [];
  const validators: Libp2pNode[] = [];
  let link: GatewayLink | undefined;
  after(async () => {
    link?.close();
    await Promise.allSettled(validators.map((v) => v.stop()));
    await stopAll(nodes, members);
  });

  test('sends its mutes in force again, so the restarted gateway drops the muted validator\'s frames too', async () => {
    members = await makeCluster(3);
    const [m0, m1, m2] = members as [GatewayMember, GatewayMember, GatewayMember];
    const grpcPort = await freePort();
    const listen = ['--listen', `127.0.0.1:${grpcPort}`];
    nodes[0] = await startMember(m0, listen);
    validators.push(await strangerNode(m1.identity.privateKey), await strangerNode(m2.identity.privateKey));
    const got: Array<{ from: number; size: number }> = [];
    const client = new GatewayServiceClient(`127.0.0.1:${grpcPort}`, grpc.credentials.createInsecure());
    link = new GatewayLink({ client, log: createLogger({ service: 'test', level: 'error' }), onFrame: (from, frame) => { got.push({ from, size: frame.length }); } });
    link.start();
    await until(() => link!.connected, 'the link attached');
    link.mute(1, 60_000, 'offences');
    let s1 = await dial(validators[0]!, m0);
    await waitPeer(nodes[0].gw, m1.identity.peerId, (p) => p.mutedUntilMs > Date.now());
    send(s1, 3, 1000);
    await sleep(300);
    assert.equal((await waitPeer(nodes[0].gw, m1.identity.peerId, () => true)).framesReceived, 0, 'its stream is paused: not read');

    // The gateway restarts; the link reattaches (within a second) and sends its mutes again.
    await nodes[0].gw.close();
    nodes[0].gw = await startGateway(nodes[0].store, listen);
    const gw = nodes[0].gw;
    await until(async () => (await listPeers(gw)).attached, 'the link reattached to the new gateway');
    s1 = await dial(validators[0]!, m0);
    const s2 = await dial(validators[1]!, m0);
    await waitPeer(gw, m1.identity.peerId, (p) => p.mutedUntilMs > Date.now());
    send(s1, 10, 1000);
    send(s2, 1, 200);
    await until(() => got.some((g) => g.from === 2 && g.size === 200), 'validator 2\'s frame arrives');
    await sleep(300);
    assert.equal((await waitPeer(gw, m1.identity.peerId, () => true)).framesReceived, 0, 'the restarted gateway paused its stream too');
    assert.equal(got.filter((g) => g.from === 1).length, 0, 'nothing of the muted validator reached consensus, before or after the restart');

    // Forgiven (AdminService Unmute → driver.forgive → mute(peer, 0)): what it sent while muted is
    // dropped as its stream resumes, and its frames arrive again.
    link.mute(1, 0, 'forgiven by the operator');
    await waitPeer(gw, m1.identity.peerId, (p) => p.mutedUntilMs === 0);
    await waitPeer(gw, m1.identity.peerId, (p) => p.framesMuted === 10);
    assert.equal(got.filter((g) => g.from === 1).length, 0);
    send(s1, 1, 300);
    await until(() => got.some((g) => g.from === 1 && g.size === 300), 'the forgiven validator\'s frame arrives');
  });
});
