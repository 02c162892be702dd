// Presence between gateways, as real processes: two members' stores and gateways, a third
// validator and a stranger played by in-process libp2p nodes. A gateway tells the validators it is
// connected to when its consumer (the consensus service) detaches and attaches again, and tells
// its own consumer which validators are absent: those whose gateway said so, and those every
// connection to which closed. A consumer attached as an observer takes no part: its member is
// absent. A consumer that attaches is told who is absent then. What a gateway
// says is about itself only, a validator's messages are rate-limited, and a stranger's are refused.
// An engine catching up through a block sync (the consensus service's own GatewayLink says so) is
// absent too, its NEW-VIEWs notwithstanding, again after its gateway restarts, and present once
// caught up.

import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { multiaddr } from '@multiformats/multiaddr';
import * as grpc from '@grpc/grpc-js';
import { GatewayServiceClient, PresenceMessage, PeerState } from '#libs/gen/btcfed/v1/gateway.pb.ts';
import { BlockRequest, ConsensusFrame, NewView } from '#libs/gen/btcfed/v1/wire.pb.ts';
import { createLogger } from '#libs/log/index.ts';
import { GatewayLink } from '../services/consensus/gateway-link.ts';
import { ATTACH_CATCHING_UP_METADATA, ATTACH_ROLE_METADATA, attachRoleMetadata } from '#libs/rpc/index.ts';
import { encodeFrame } from '../services/gateway/framing.ts';
import { PRESENCE_PROTOCOL } from '../services/gateway/presence.ts';
import {
  attach, freePort, gatewayCounter, makeCluster, startGateway, startMember, stopAll, strangerNode, waitPeer,
  type Consumer, type GatewayMember, type Node,
} from './support/gateway.ts';

type Libp2pNode = Awaited<ReturnType<typeof strangerNode>>;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 15_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await check()) return;
    await sleep(50);
  }
  throw new Error(`timed out: ${what}`);
}

/** What `consumer` was last told of `peerId`: true (present), false (absent), undefined (nothing: present). */
const said = (consumer: Consumer, peerId: string): boolean | undefined => consumer.presence.filter((p) => p.peerId === peerId).at(-1)?.present;

/** A presence message from `from` (its authenticated identity is the sender) to member `to`'s gateway. */
async function tell(from: Libp2pNode, to: GatewayMember, attached: boolean, seq = 0): Promise<void> {
  const s = await from.dialProtocol(multiaddr(`${to.address}/p2p/${to.identity.peerId}`), PRESENCE_PROTOCOL);
  s.send(encodeFrame(PresenceMessage.encode({ consensusAttached: attached, seq, catchingUp: false }).finish(), 64));
  await s.close().catch(() => undefined);
}

describe('gateway presence', () => {
  const nodes: Array<Node | undefined> = [];
  let members: GatewayMember[] = [];
  const others: Libp2pNode[] = [];
  const consumers: Consumer[] = [];
  after(async () => {
    for (const c of consumers) c.close();
    await Promise.allSettled(others.map((v) => v.stop()));
    await stopAll(nodes, members);
  });

  test('a validator whose consensus detaches, or whose connections close, is told absent; back, present; only its own gateway speaks for it', async () => {
    members = await makeCluster(3, { knows: (i) => (i < 2 ? [1 - i] : []) });
    const [m0, m1, m2] = members as [GatewayMember, GatewayMember, GatewayMember];
    nodes[0] = await startMember(m0, ['--metrics', '127.0.0.1:0']);
    nodes[1] = await startMember(m1);
    const gw0 = nodes[0].gw;
    const c0 = attach(gw0);
    consumers.push(c0);
    await c0.ready;
    await waitPeer(gw0, m1.identity.peerId, (p) => p.state === PeerState.PEER_STATE_CONNECTED);
    // m1's gateway has no consumer yet: it says so on connecting.
    await until(() => said(c0, m1.identity.peerId) === false, 'm1 absent: its gateway has no consensus attached');

    const c1 = attach(nodes[1].gw);
    consumers.push(c1);
    await c1.ready;
    await until(() => said(c0, m1.identity.peerId) === true, 'm1 present once its consensus attached');
    c1.close();
    await until(() => said(c0, m1.identity.peerId) === false, 'm1 absent once its consensus detached');
    const c1b = attach(nodes[1].gw);
    consumers.push(c1b);
    await c1b.ready;
    await until(() => said(c0, m1.identity.peerId) === true, 'm1 present again');

    // An observer attached to m1's gateway (a member added to the set, catching up before its
    // epoch seats it) takes no part: m1 is absent for it, and stays so while it only asks for
    // blocks; its engine attaching takes m1 back at once.
    c1b.close();
    await until(() => said(c0, m1.identity.peerId) === false, 'm1 absent once its consensus detached');
    const c1o = attach(nodes[1].gw, undefined, attachRoleMetadata('observer'));
    consumers.push(c1o);
    await c1o.ready;
    await until(() => nodes[1]!.gw.svc.lines.some((l) => l.role === 'observer' && l.msg === 'consumer attached'), 'm1\'s gateway took the observer');
    // An observer never takes part: its word that it catches up is refused, naming why.
    c1o.stream.write({ body: { $case: 'participation', value: { catchingUp: true } } });
    await until(() => nodes[1]!.gw.svc.lines.some((l) => l.msg === 'attach request refused' && /an observer takes no part/.test(String(l.err))), 'the observer\'s participation refused');
    await sleep(1200); // past the time after which a detached validator's frames would say it is back
    const request = ConsensusFrame.encode({ chainId: 'c', body: { $case: 'blockRequest', value: BlockRequest.fromPartial({ requestId: 7 }) } }).finish();
    c1o.send(0, request);
    await c0.next((f) => f.peerId === m1.identity.peerId && Buffer.from(f.frame).equals(request));
    assert.equal(said(c0, m1.identity.peerId), false, 'm1 present while only an observer is attached to its gateway');
    const detachments = () => nodes[1]!.gw.svc.lines.filter((l) => l.msg === 'consumer detached').length;
    const before = detachments();
    c1o.close();
    await until(() => detachments() > before, 'the observer detached (it says nothing to the validators)');
    const c1c = attach(nodes[1].gw);
    consumers.push(c1c);
    await c1c.ready;
    await until(() => said(c0, m1.identity.peerId) === true, 'm1 present once its engine attached');
    // A role the gateway does not know is refused, naming it, and leaves the consumer attached alone.
    const bad = attach(nodes[1].gw, undefined, (() => { const md = new grpc.Metadata(); md.set(ATTACH_ROLE_METADATA, 'leader'); return md; })());
    const status = await bad.ended;
    assert.equal((status as grpc.StatusObject).code, grpc.status.INVALID_ARGUMENT);
    assert.match((status as grpc.StatusObject).details, /btcfed-attach-role "leader" is not one of validator, observer/);
    // So is an observer that says it is catching up: it never takes part.
    const observerCatchingUp = attach(nodes[1].gw, undefined, (() => { const md = attachRoleMetadata('observer'); md.set(ATTACH_CATCHING_UP_METADATA, 'true'); return md; })());
    const status2 = await observerCatchingUp.ended;
    assert.equal((status2 as grpc.StatusObject).code, grpc.status.INVALID_ARGUMENT);
    assert.match((status2 as grpc.StatusObject).details, /btcfed-attach-catching-up: an observer takes no part/);
    c1c.send(0, request);
    await until(() => c0.frames.filter((f) => f.peerId === m1.identity.peerId && Buffer.from(f.frame).equals(request)).length === 2, 'a frame from m1\'s engine delivered: still attached');
    assert.equal(said(c0, m1.identity.peerId), true, 'm1 still present: the refused Attach changed nothing');

    // m1's whole member dies: every connection closes, and nothing is said first. (A gateway that
    // stops cleanly ends its consensus's Attach first, so it says "absent" as its last word before
    // its connections close; a crash says nothing, and the connections alone must tell.)
    nodes[1].gw.client.close();
    await nodes[1].gw.svc.stop('SIGKILL');
    await until(() => said(c0, m1.identity.peerId) === false, 'm1 absent once every connection to it closed');
    await until(() => gw0.svc.lines.some((l) => l.peerId === m1.identity.peerId && l.lost === true && l.present === false), 'absent for its connections (not only for a last word)');
    // A consumer that attaches now is told at once.
    c0.close();
    const c0b = attach(gw0);
    consumers.push(c0b);
    await c0b.ready;
    await until(() => said(c0b, m1.identity.peerId) === false, 'a new consumer is told m1 is absent');
    assert.equal(await gatewayCounter(gw0, 'absent_validators', 'service="gateway"'), 1);

    // m2, a validator with its real key, speaks for itself only (the message names nobody); its
    // flood is rate-limited, and only changes reach the consumer.
    const v2 = await strangerNode(m2.identity.privateKey);
    others.push(v2);
    await tell(v2, m0, false);
    await until(() => said(c0b, m2.identity.peerId) === false, 'm2 absent on its own word');
    assert.equal(said(c0b, m1.identity.peerId), false, 'nothing said of m1');
    // Words are ordered by their sequence number: an older one arriving late never undoes a newer.
    await tell(v2, m0, true, 2000);
    await until(() => said(c0b, m2.identity.peerId) === true, 'm2 present on its newer word');
    await tell(v2, m0, false, 1000);
    await until(async () => (await gatewayCounter(gw0, 'presence_messages_total', 'direction="in",result="stale"')) === 1, 'the older word dropped as stale');
    assert.equal(said(c0b, m2.identity.peerId), true, 'm2 still present: the older word changed nothing');
    await tell(v2, m0, false, 3000);
    await until(() => said(c0b, m2.identity.peerId) === false, 'm2 absent on a word newer still');
    for (let i = 0; i < 20; i++) await tell(v2, m0, i % 2 === 1).catch(() => undefined);
    await until(async () => (await gatewayCounter(gw0, 'presence_messages_total', 'direction="in",result="rate_limited"')) > 0, 'm2\'s flood rate-limited');
    const told = c0b.presence.filter((p) => p.peerId === m2.identity.peerId).length;
    assert.ok(told <= 9, `the consumer heard at most the bucket's worth of m2's changes (heard ${told})`);

    // A stranger is refused unread, and the consumer hears nothing of it.
    const stranger = await strangerNode();
    others.push(stranger);
    await tell(stranger, m0, false).catch(() => undefined);
    await until(async () => (await gatewayCounter(gw0, 'presence_messages_total', 'direction="in",result="not_validator"')) > 0, 'the stranger\'s message refused');
    assert.equal(c0b.presence.filter((p) => p.peerId === stranger.peerId.toString()).length, 0);
  });
});

describe('gateway presence: an engine catching up through a block sync', () => {
  const nodes: Array<Node | undefined> = [];
  let members: GatewayMember[] = [];
  const consumers: Consumer[] = [];
  let link: GatewayLink | undefined;
  let client: GatewayServiceClient | undefined;
  after(async () => {
    link?.close();
    client?.close();
    for (const c of consumers) c.close();
    await stopAll(nodes, members);
  });

  test('is absent to the others while its link says so, its NEW-VIEWs notwithstanding, again after its gateway restarts, and present once caught up', async () => {
    members = await makeCluster(2, { knows: (i) => [1 - i] });
    const [m0, m1] = members as [GatewayMember, GatewayMember];
    const m1Id = m1.identity.peerId;
    nodes[0] = await startMember(m0, ['--metrics', '127.0.0.1:0']);
    const listen = ['--listen', `127.0.0.1:${await freePort()}`];
    nodes[1] = await startMember(m1, listen);
    const c0 = attach(nodes[0].gw);
    consumers.push(c0);
    await c0.ready;
    await waitPeer(nodes[0].gw, m1Id, (p) => p.state === PeerState.PEER_STATE_CONNECTED);
    // m1's consensus, played by the consensus service's own end of the Attach stream.
    client = new GatewayServiceClient(listen[1]!, grpc.credentials.createInsecure());
    link = new GatewayLink({ client, log: createLogger({ service: 'test', level: 'error' }), onFrame: () => undefined });
    link.start();
    await until(() => said(c0, m1Id) === true, 'm1 present once its engine attached');

    link.catchingUp(true);
    await until(() => said(c0, m1Id) === false, 'm1 absent while its engine catches up');
    await sleep(1200); // past the time after which a detached validator's NEW-VIEW would say it is back
    const newView = ConsensusFrame.encode({ chainId: 'c', body: { $case: 'newView', value: NewView.fromPartial({ view: 12 }) } }).finish();
    link.broadcast(newView);
    await c0.next((f) => f.peerId === m1Id && Buffer.from(f.frame).equals(newView));
    assert.equal(said(c0, m1Id), false, 'its view timer\'s NEW-VIEW took m1 back while it catches up');

    // m1's gateway restarts: the link attaches again and says at once that it still catches up.
    const m0Lines = () => nodes[0]!.gw.svc.lines.filter((l) => l.peerId === m1Id && typeof l.present === 'boolean');
    const okBefore = await gatewayCounter(nodes[0].gw, 'presence_messages_total', 'direction="in",result="ok"');
    await nodes[1].gw.close();
    nodes[1].gw = await startGateway(nodes[1].store, listen);
    // The link says it in the Attach call's metadata: the restarted gateway knows at once.
    await until(() => nodes[1]!.gw.svc.lines.some((l) => l.catchingUp === true && String(l.msg).startsWith('consumer attached, catching up')), 'the restarted gateway told by the link');
    // m0 hears m1's word (its log says "catching up" only where m1's absence changed with it: the
    // word may come before m0 counts m1's connection back); the NEW-VIEW below shows which word.
    await until(async () => said(c0, m1Id) === false && (await gatewayCounter(nodes[0]!.gw, 'presence_messages_total', 'direction="in",result="ok"')) > okBefore, 'm1 absent to m0 again, as catching up', 20_000);
    await sleep(1200);
    link.broadcast(newView);
    await until(() => c0.frames.filter((f) => f.peerId === m1Id && Buffer.from(f.frame).equals(newView)).length === 2, 'its second NEW-VIEW delivered');
    assert.equal(said(c0, m1Id), false, 'a NEW-VIEW took m1 back after the restart');

    link.catchingUp(false);
    await until(() => said(c0, m1Id) === true, 'm1 present once caught up');

    // m1's consensus restarts (its gateway and connections stay up) and catches up from its start:
    // its Attach says so in the call's metadata, so m0 is never told m1 present in between (before,
    // the gateway said "attached" until the link's first request said otherwise).
    link.close();
    await until(() => said(c0, m1Id) === false, 'm1 absent once its engine detached');
    const restartedAt = m0Lines().length;
    const attachedLines = () => nodes[1]!.gw.svc.lines.filter((l) => String(l.msg).startsWith('consumer attached')).length;
    const attachedBefore = attachedLines();
    link = new GatewayLink({ client, log: createLogger({ service: 'test', level: 'error' }), onFrame: () => undefined });
    link.catchingUp(true);
    link.start();
    await until(() => attachedLines() > attachedBefore, 'the restarted engine attached');
    assert.equal(nodes[1].gw.svc.lines.filter((l) => String(l.msg).startsWith('consumer attached')).at(-1)?.catchingUp, true, 'attached as catching up');
    await sleep(1200); // past the time after which a detached validator's NEW-VIEW would say it is back
    link.broadcast(newView);
    await until(() => c0.frames.filter((f) => f.peerId === m1Id && Buffer.from(f.frame).equals(newView)).length === 3, 'its NEW-VIEW delivered');
    assert.equal(said(c0, m1Id), false, 'a NEW-VIEW took m1 back: the word at its attach was not "catching up"');
    assert.deepEqual(m0Lines().slice(restartedAt).filter((l) => l.present === true), [], 'm0 was told m1 present between its engine\'s restart and its word');
    link.catchingUp(false);
    await until(() => said(c0, m1Id) === true, 'm1 present once caught up after its restart');
  });
});
