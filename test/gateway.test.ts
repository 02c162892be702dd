// The gateway as real processes: a real store and a real gateway per member, libp2p on
// 127.0.0.1, the consensus service played by Attach streams, NATS for peer events.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import * as grpc from '@grpc/grpc-js';
import { parse } from 'yaml';
import { PeerStateChanged } from '#libs/gen/btcfed/v1/events.pb.ts';
import { multiaddr } from '@multiformats/multiaddr';
import { generateIdentity } from '#libs/config/index.ts';
import { PeerExchangeMessage } from '#libs/gen/btcfed/v1/gateway.pb.ts';
import { FrameDecoder, encodeFrame, encodeVarint } from '../services/gateway/framing.ts';
import { OUTSIDE_FRAMES_PER_SECOND } from '../services/gateway/inbound.ts';
import { EXCHANGE_PROTOCOL } from '../services/gateway/exchange.ts';
import { recordEvents } from './support/store.ts';
import {
  PeerState, attach, bytes, freePort, gatewayCounter, listPeers, makeCluster, startMember, stopAll, strangerNode, waitPeer,
  type GatewayMember, type Node,
} from './support/gateway.ts';

describe('gateway: two members', () => {
  let members: GatewayMember[] = [];
  const nodes: Array<Node | undefined> = [];
  before(async () => {
    members = await makeCluster(2, { knows: (i) => (i === 0 ? [1] : []) });
  });
  after(() => stopAll(nodes, members));

  test('A connects to B within 3 s of being ready, and both report it on NATS and ListPeers', async () => {
    const [a, b] = members as [GatewayMember, GatewayMember];
    const events = await recordEvents(`btcfed.${a.name}.gateway.peer.>`, (d) => PeerStateChanged.decode(d));
    try {
      nodes[1] = await startMember(b);
      nodes[0] = await startMember(a);
      const ev = await events.next((e) => e.subject.endsWith('peer.connected') && e.data.peerId === b.identity.peerId, 10_000);
      const elapsedMs = Date.now() - Math.round(performance.timeOrigin + nodes[0].gw.readyAt);
      const setupMs = ev.data.atMs - Math.round(performance.timeOrigin + nodes[0].gw.readyAt);
      console.log(`# two gateways: connected ${setupMs} ms after A was ready (seen here after ${elapsedMs} ms); A's process took ${Math.round(nodes[0].gw.readyAt - nodes[0].gw.startedAt)} ms to be ready`);
      assert.ok(setupMs < 3000, `connection took ${setupMs} ms`);
      assert.equal(ev.data.member, a.name);
      const onA = await waitPeer(nodes[0].gw, b.identity.peerId, (p) => p.state === PeerState.PEER_STATE_CONNECTED);
      assert.equal(onA.isValidator, true);
      assert.equal(onA.validatorIndex, 1);
      assert.deepEqual(onA.addresses, [b.address]);
      const onB = await waitPeer(nodes[1].gw, a.identity.peerId, (p) => p.state === PeerState.PEER_STATE_CONNECTED);
      assert.equal(onB.validatorIndex, 0);
      const res = await listPeers(nodes[0].gw);
      assert.equal(res.peerId, a.identity.peerId);
      assert.ok(res.maxFrameBytes > 4 * 1024 * 1024 + 2 * 2 * 17_088, `max frame ${res.maxFrameBytes} fits a full block and two QCs`);
    } finally {
      await events.close();
    }
  });

  test('frames go gRPC → libp2p → gRPC with the sender\'s validator index; a second Attach is refused', async () => {
    const [a, b] = [nodes[0]!, nodes[1]!];
    const ca = attach(a.gw);
    const cb = attach(b.gw);
    try {
      const readyA = await ca.ready;
      assert.deepEqual({ self: readyA.selfIndex, v: readyA.isValidator, n: readyA.validators }, { self: 0, v: true, n: 2 });
      await cb.ready;
      const second = attach(a.gw);
      const status = await second.ended;
      assert.equal((status as grpc.StatusObject).code, grpc.status.FAILED_PRECONDITION);

      const big = bytes(17_088 * 3, 7);
      ca.send(1, big);
      const got = await cb.next((f) => f.frame.length === big.length);
      assert.equal(got.from, 0);
      assert.equal(got.peerId, members[0]!.identity.peerId);
      assert.deepEqual(Buffer.from(got.frame), Buffer.from(big));

      cb.broadcast(bytes(100, 3));
      const back = await ca.next((f) => f.frame.length === 100);
      assert.equal(back.from, 1);

      // Envelope checks on our side: too large, unknown index and self are refused, the stream lives on.
      const max = readyA.maxFrameBytes;
      ca.send(1, new Uint8Array(max + 1));
      ca.send(9, bytes(10));
      ca.send(0, bytes(10));
      ca.send(1, bytes(55, 9));
      const after = await cb.next((f) => f.frame.length === 55);
      assert.equal(after.from, 0);
      assert.equal(cb.frames.filter((f) => f.frame.length > 100_000 && f.frame.length !== big.length).length, 0);
      const peerB = await waitPeer(a.gw, members[1]!.identity.peerId, (p) => p.framesSent >= 2);
      assert.ok(peerB.bytesSent >= big.length);
    } finally {
      ca.close();
      cb.close();
    }
  });
});

describe('gateway: peer exchange and bad input', () => {
  let members: GatewayMember[] = [];
  const nodes: Array<Node | undefined> = [];
  // A knows B, B knows C.
  before(async () => {
    // C is not a validator: validators' addresses are never learned, only configured.
    members = await makeCluster(3, { validators: 2, knows: (i) => (i === 0 ? [1] : i === 1 ? [2] : []) });
  });
  after(() => stopAll(nodes, members));

  test('A knows B, B knows C → A learns C, dials it, and C lands in A\'s peers.yaml', async () => {
    const [a, b, c] = members as [GatewayMember, GatewayMember, GatewayMember];
    nodes[2] = await startMember(c);
    nodes[1] = await startMember(b);
    await waitPeer(nodes[1].gw, c.identity.peerId, (p) => p.state === PeerState.PEER_STATE_CONNECTED);
    nodes[0] = await startMember(a);
    await waitPeer(nodes[0].gw, c.identity.peerId, (p) => p.state === PeerState.PEER_STATE_CONNECTED, 15_000);
    const until = Date.now() + 10_000;
    let file: { peers: Array<{ public_key: string; addresses: string[] }> } = { peers: [] };
    while (Date.now() < until) {
      file = parse(await fs.readFile(a.peersPath, 'utf8')) as typeof file;
      if (file.peers.some((p) => p.public_key === c.identity.publicKey)) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const entry = file.peers.find((p) => p.public_key === c.identity.publicKey);
    assert.ok(entry, `C in A's peers.yaml: ${JSON.stringify(file)}`);
    assert.ok(entry.addresses.includes(c.address), `C's address ${c.address} in ${JSON.stringify(entry.addresses)}`);
    assert.ok(!file.peers.some((p) => p.public_key === a.identity.publicKey), 'never itself');
  });
});

/** True once the stream is closed or reset (at once if it already is); false after 5 s. */
function closedOf(s: { status: string; addEventListener(e: 'close', f: () => void): void }): Promise<boolean> {
  if (s.status !== 'open') return Promise.resolve(true);
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(s.status !== 'open'), 5_000);
    s.addEventListener('close', () => { clearTimeout(t); resolve(true); });
  });
}

describe('gateway: strangers', () => {
  let members: GatewayMember[] = [];
  const nodes: Array<Node | undefined> = [];
  let stranger: Awaited<ReturnType<typeof strangerNode>> | undefined;
  before(async () => {
    members = await makeCluster(2, { knows: (i) => (i === 0 ? [1] : []) });
    nodes[1] = await startMember(members[1]!);
    nodes[0] = await startMember(members[0]!, ['--metrics', '127.0.0.1:0']);
    stranger = await strangerNode();
  });
  after(async () => {
    await stranger?.stop();
    await stopAll(nodes, members);
  });
  const target = () => multiaddr(`${members[0]!.address}/p2p/${members[0]!.identity.peerId}`);

  test('invalid peer records are rejected; a valid one is persisted once it connects, one that never answers is forgotten; an oversized message resets the stream', async () => {
    const a = members[0]!;
    const [good, bad, fake] = [await generateIdentity(), await generateIdentity(), await generateIdentity()];
    // `good` is a real peer listening where its record says; `fake` is a record of a closed port.
    const goodNode = await strangerNode(good.privateKey);
    const goodAddr = goodNode.getMultiaddrs()[0]!.toString().split('/p2p/')[0]!;
    const fakeAddr = `/ip4/127.0.0.1/tcp/${await freePort()}`;
    const forgotten0 = await gatewayCounter(nodes[0]!.gw, 'peers_forgotten_total', 'service="gateway"');
    const records = [
      { publicKey: 'Zm9v', addresses: ['/ip4/127.0.0.1/tcp/1'] },
      { publicKey: a.identity.publicKey, addresses: ['/ip4/127.0.0.1/tcp/2'] },
      { publicKey: bad.publicKey, addresses: ['/ip4/0.0.0.0/tcp/1', 'not-a-multiaddr', '/ip4/1.2.3.4/udp/5', `/ip4/127.0.0.1/tcp/5/p2p/${good.peerId}`] },
      { publicKey: good.publicKey, addresses: [goodAddr, '/dns4/bad host/tcp/1'] },
      { publicKey: fake.publicKey, addresses: [fakeAddr] },
    ];
    try {
      const stream = await stranger!.dialProtocol(target(), EXCHANGE_PROTOCOL);
      stream.send(encodeFrame(PeerExchangeMessage.encode({ body: { $case: 'announce', value: { peers: records } } }).finish(), 1 << 20));
      await stream.close();
      const until = Date.now() + 15_000;
      let text = '';
      let forgotten = 0;
      while (Date.now() < until) {
        text = await fs.readFile(a.peersPath, 'utf8');
        forgotten = (await gatewayCounter(nodes[0]!.gw, 'peers_forgotten_total', 'service="gateway"')) - forgotten0;
        if (text.includes(good.publicKey) && forgotten >= 1) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      const file = parse(text) as { peers: Array<{ public_key: string; addresses: string[] }> };
      assert.deepEqual(file.peers.find((p) => p.public_key === good.publicKey)?.addresses, [goodAddr], 'the peer that connected is kept');
      assert.ok(!text.includes(fake.publicKey), 'a record that never connected is not persisted');
      assert.equal(forgotten, 1, 'the record that never answered is forgotten after its dials failed');
      assert.ok(!(await listPeers(nodes[0]!.gw)).peers.some((p) => p.peerId === fake.peerId), 'and gone from the peer table');
      assert.ok(!text.includes(bad.publicKey), 'a record without a usable address is refused');
      assert.ok(!text.includes('Zm9v'));
      assert.ok(!file.peers.some((p) => p.public_key === a.identity.publicKey), 'never itself');
    } finally {
      await goodNode.stop();
    }

    // A length prefix far past the exchange limit: the stream is reset, nothing is buffered.
    const big = await stranger!.dialProtocol(target(), EXCHANGE_PROTOCOL);
    big.send(encodeVarint(64 * 1024 * 1024));
    assert.equal(await closedOf(big), true, 'the gateway reset the stream');
    await nodes[0]!.gw.svc.waitFor((l) => l.msg === 'peer exchange message refused' && /limit/.test(String(l.err)), 5_000);
  });

  test('a peer that asks too often is rate limited', async () => {
    let answered = 0;
    await Promise.all(Array.from({ length: 30 }, async () => {
      try {
        const s = await stranger!.dialProtocol(target(), EXCHANGE_PROTOCOL);
        s.send(encodeFrame(PeerExchangeMessage.encode({ body: { $case: 'request', value: { limit: 10 } } }).finish(), 1 << 20));
        const got = new Promise<boolean>((resolve) => s.addEventListener('message', () => resolve(true)));
        if (await Promise.race([got, closedOf(s).then(() => false)])) answered++;
      } catch { /* refused */ }
    }));
    assert.ok(answered >= 1 && answered <= 15, `answered ${answered} of 30`);
  });

  test('a peer that is not a validator: its frames arrive marked from outside, within a budget, and are answered only while it is connected', async () => {
    const a = nodes[0]!;
    const consumer = attach(a.gw);
    const replies: Uint8Array[] = [];
    await stranger!.handle('/btcfed/consensus/1.0.0', (stream) => {
      const decoder = new FrameDecoder(1 << 20);
      stream.addEventListener('message', (evt) => { replies.push(...decoder.push(evt.data)); });
    });
    try {
      await consumer.ready;
      const s = await stranger!.dialProtocol(target(), '/btcfed/consensus/1.0.0');
      s.send(encodeFrame(bytes(1000), 1 << 20));
      const f = await consumer.next((x) => x.fromOutside);
      assert.equal(f.peerId, stranger!.peerId.toString(), 'named by its authenticated identity');
      assert.equal(f.from, 0);
      assert.equal(f.frame.length, 1000);
      // The consumer answers it by peer id; the gateway delivers to the connected peer.
      consumer.stream.write({ body: { $case: 'send', value: { to: 0, toPeer: stranger!.peerId.toString(), frame: bytes(333) } } });
      const until = Date.now() + 5_000;
      while (replies.length === 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
      assert.equal(replies[0]?.length, 333, 'the answer reached the outside peer');

      // A flood from outside: past the shared budget it is dropped and counted, and a validator's
      // frame still gets through (outside frames never pause the consumer's stream).
      const before = (await listPeers(a.gw)).refusedFrames;
      const flood = OUTSIDE_FRAMES_PER_SECOND * 3;
      for (let k = 0; k < flood; k++) s.send(encodeFrame(bytes(100), 1 << 20));
      const cb = attach(nodes[1]!.gw);
      await cb.ready;
      cb.send(0, bytes(77));
      const fromValidator = await consumer.next((x) => !x.fromOutside);
      assert.equal(fromValidator.from, 1);
      const end = Date.now() + 5_000;
      while ((await listPeers(a.gw)).refusedFrames - before < flood - 2 * OUTSIDE_FRAMES_PER_SECOND && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
      const dropped = (await listPeers(a.gw)).refusedFrames - before;
      const delivered = consumer.frames.filter((x) => x.fromOutside).length - 1;
      assert.equal(dropped + delivered, flood, `every flooded frame is delivered or counted (${delivered} delivered, ${dropped} dropped)`);
      assert.ok(delivered <= 2 * OUTSIDE_FRAMES_PER_SECOND, `at most the budget is delivered: ${delivered}`);
      cb.close();
    } finally {
      await stranger!.unhandle('/btcfed/consensus/1.0.0');
      consumer.close();
    }
  });
});
