// Presence (presence.ts) on a fake libp2p node: words ordered by their sequence number, words of
// non-validators refused, changes told to the consumer once, a validator said detached taken back
// by its votes (not by an observer's requests), one said catching up not by its NEW-VIEWs, and every record of a validator that left the set
// pruned when a consumer attaches and when the set changes, so a member seated again starts afresh.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Connection, Stream } from '@libp2p/interface';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { createLogger } from '#libs/log/index.ts';
import { createPromMetrics } from '#libs/metrics/index.ts';
import { PresenceMessage } from '#libs/gen/btcfed/v1/gateway.pb.ts';
import { BlockRequest, ConsensusFrame, NewView, Proposal, TxBatch, Vote, type ConsensusFrame as Frame } from '#libs/gen/btcfed/v1/wire.pb.ts';
import { FrameDecoder, encodeFrame } from './framing.ts';
import { gatewayMetrics } from './metrics.ts';
import type { GatewayNode } from './node.ts';
import { CATCHING_UP_STALE_MS, MAX_PRESENCE_MESSAGE_BYTES, Presence } from './presence.ts';

type Handler = (s: Stream, c: Connection) => void;

async function harness(now?: () => number) {
  let handler: Handler | undefined;
  const told: string[] = [];
  const validators = new Set(['A', 'B']);
  /** Who is connected (node.getPeers). */
  const peers = new Set<string>();
  const node = {
    handle: async (_protocol: string, h: Handler) => { handler = h; },
    getPeers: () => [...peers].map((id) => ({ toString: () => id })),
    getConnections: () => [],
    dialProtocol: async () => { throw new Error('this test dials nobody'); },
  } as unknown as GatewayNode;
  const presence = new Presence({
    node, log: createLogger({ service: 'test', level: 'error' }), metrics: gatewayMetrics(createPromMetrics({ prefix: 't_' })),
    isValidator: (id) => validators.has(id), attached: () => true, catchingUp: () => false, tell: (id, present) => told.push(`${id} ${present ? 'present' : 'absent'}`), timeoutMs: 1000, ...(now ? { now } : {}),
  });
  await presence.start();
  /** `from`'s gateway says whether its consensus is attached, on a stream of its own; resolves once it is taken or refused. */
  const say = async (from: string, attached: boolean, seq: number, catchingUp = false): Promise<void> => {
    const stream = Object.assign(new EventTarget(), { close: async () => undefined, abort: () => undefined });
    handler!(stream as unknown as Stream, { remotePeer: { toString: () => from } } as unknown as Connection);
    const data = encodeFrame(PresenceMessage.encode({ consensusAttached: attached, seq, catchingUp }).finish(), MAX_PRESENCE_MESSAGE_BYTES);
    stream.dispatchEvent(Object.assign(new Event('message'), { data }));
    await new Promise((r) => setImmediate(r));
  };
  return { presence, told, validators, peers, say };
}

test('presence: a newer word overrides an older one, a stale one is dropped, a non-validator is not heard', async () => {
  const { presence, told, say } = await harness();
  await say('A', false, 5);
  assert.deepEqual(told, ['A absent']);
  assert.deepEqual(presence.absent(), ['A']);
  await say('A', true, 4); // older than the last taken: dropped
  await say('A', true, 5); // not newer either: dropped
  assert.deepEqual(presence.absent(), ['A']);
  await say('A', true, 6);
  assert.deepEqual(told, ['A absent', 'A present']);
  assert.deepEqual(presence.absent(), []);
  await say('A', true, 7); // no change: nothing told
  await say('C', false, 1); // not a validator
  assert.deepEqual(told, ['A absent', 'A present']);
  assert.deepEqual(presence.absent(), []);
});

test('presence: a validator whose connections all closed is absent until it connects again', async () => {
  const { presence, told } = await harness();
  presence.connected('B');
  presence.disconnected('B');
  assert.deepEqual(presence.absent(), ['B']);
  presence.connected('B');
  assert.deepEqual(told, ['B absent', 'B present']);
  presence.disconnected('X'); // not a validator: nothing
  assert.deepEqual(presence.absent(), []);
});

test('presence: every record of a validator that left the set is dropped when a consumer attaches', async () => {
  const { presence, validators, say } = await harness();
  await say('A', false, 3); // detached: its word, its time, its sequence number and its rate bucket held
  presence.disconnected('B');
  assert.equal(presence.records, 2);
  assert.deepEqual(presence.absent().sort(), ['A', 'B']);
  validators.delete('A');
  validators.delete('B');
  assert.deepEqual(presence.absent(), []);
  assert.equal(presence.records, 0, 'records held for validators that left the set');
  // Back in a later set, its words start afresh: an old sequence number is taken again.
  validators.add('A');
  await say('A', false, 1);
  assert.deepEqual(presence.absent(), ['A']);
});

test('presence: a set change drops every record of the validators it lost, at once', async () => {
  const { presence, told, validators, say } = await harness();
  await say('A', false, 3);
  presence.disconnected('B');
  assert.equal(presence.records, 2);
  validators.delete('A');
  presence.validatorsChanged([]);
  assert.equal(presence.records, 1, 'records held for a validator that left the set until some consumer attaches');
  assert.deepEqual(told, ['A absent', 'B absent'], 'nobody is told of a validator that left');
});

test('presence: a member removed while its connections were lost, back connected, then seated again is present once its gateway says so', async () => {
  const { presence, told, validators, peers, say } = await harness();
  presence.connected('B');
  presence.disconnected('B'); // lost while a validator
  validators.delete('B');
  presence.validatorsChanged([]); // removed
  peers.add('B');
  presence.connected('B'); // connects again, no validator here: not heard
  validators.add('B');
  presence.validatorsChanged(['B']); // seated again: absent until heard (its removal was told to nobody)
  assert.deepEqual(told, ['B absent', 'B absent']);
  await say('B', true, 1);
  assert.deepEqual(presence.absent(), [], 'a connection lost in an earlier seat kept it absent');
  assert.deepEqual(told, ['B absent', 'B absent', 'B present']);
});

test('presence: a validator held as lost that is connected when a set is adopted is present (it connected while no validator here)', async () => {
  const { presence, told, validators, peers } = await harness();
  presence.disconnected('B');
  validators.delete('B'); // the set in force lost it, and presence heard of no change
  peers.add('B');
  presence.connected('B'); // not heard: no validator
  validators.add('B');
  presence.validatorsChanged([]);
  assert.deepEqual(presence.absent(), []);
  assert.deepEqual(told, ['B absent', 'B present']);
});

test('presence: a validator said detached is back when it votes a second on, not when it only asks for blocks or hands on transactions', async () => {
  const { presence, told, say } = await harness();
  const frame = (body: Frame['body']) => ConsensusFrame.encode({ chainId: 'c', body }).finish();
  const vote = frame({ $case: 'vote', value: Vote.fromPartial({ view: 9 }) });
  await say('A', false, 1);
  presence.heard('A', vote); // sent just before its detach, perhaps: not taken
  assert.deepEqual(presence.absent(), ['A']);
  await new Promise((r) => setTimeout(r, 1100));
  // An observer attached to A's gateway follows the chain: its requests and hand-offs say nothing.
  presence.heard('A', frame({ $case: 'blockRequest', value: BlockRequest.fromPartial({ requestId: 1 }) }));
  presence.heard('A', frame({ $case: 'txBatch', value: TxBatch.fromPartial({}) }));
  presence.heard('A', Uint8Array.of(0xff, 0xff)); // not a frame at all
  assert.deepEqual(presence.absent(), ['A'], 'an observer\'s frames took A back');
  presence.heard('A', vote);
  assert.deepEqual(told, ['A absent', 'A present']);
  assert.deepEqual(presence.absent(), []);
});

test('presence: a validator the set gains is absent until its gateway says it is attached, or it is heard voting', async () => {
  const { presence, told, validators, say } = await harness();
  const vote = ConsensusFrame.encode({ chainId: 'c', body: { $case: 'vote', value: Vote.fromPartial({ view: 3 }) } }).finish();
  validators.add('C');
  validators.add('D');
  presence.validatorsChanged(['C', 'D', 'X']); // X is no validator: nothing held for it
  assert.deepEqual(presence.absent().sort(), ['C', 'D']);
  assert.equal(presence.records, 2);
  await say('C', true, 1); // its gateway's word
  await new Promise((r) => setTimeout(r, 1100));
  presence.heard('D', vote); // D votes: it takes part
  assert.deepEqual(presence.absent(), []);
  assert.deepEqual(told, ['C absent', 'D absent', 'C present', 'D present']);
});

test('presence: a validator said catching up is taken back by its next word, not by its NEW-VIEWs, nor by its votes until its word is stale', async () => {
  let t = 1_000_000;
  const { presence, told, say } = await harness(() => t);
  const frame = (body: Frame['body']) => ConsensusFrame.encode({ chainId: 'c', body }).finish();
  const newView = frame({ $case: 'newView', value: NewView.fromPartial({ view: 40 }) });
  const vote = frame({ $case: 'vote', value: Vote.fromPartial({ view: 41 }) });
  await say('A', false, 1, true); // A's engine is catching up: its timer sends NEW-VIEWs, and it may vote
  await say('B', false, 1); // B's consensus detached: a NEW-VIEW from it a second on says it is back
  t += 1100;
  presence.heard('A', newView);
  presence.heard('A', vote);
  presence.heard('B', newView);
  assert.deepEqual(presence.absent(), ['A'], 'a frame took A back while it catches up, or a NEW-VIEW did not take B back');
  // A says it again within the stale time: its votes still say nothing.
  t += CATCHING_UP_STALE_MS - 2000;
  await say('A', false, 2, true);
  t += CATCHING_UP_STALE_MS - 1000;
  presence.heard('A', vote);
  presence.heard('A', frame({ $case: 'proposal', value: Proposal.fromPartial({ view: 44 }) }));
  assert.deepEqual(presence.absent(), ['A'], 'A taken back while its word stands');
  // Its next word ends it.
  await say('A', true, 3);
  assert.deepEqual(presence.absent(), []);
  // Its "caught up" lost: a vote heard past the stale time takes it back, a NEW-VIEW does not.
  await say('A', false, 4, true);
  t += CATCHING_UP_STALE_MS;
  presence.heard('A', newView);
  assert.deepEqual(presence.absent(), ['A']);
  presence.heard('A', vote);
  assert.deepEqual(presence.absent(), []);
  // A later word without the flag is a plain detach: its NEW-VIEWs take it back a second on.
  await say('A', false, 5, true);
  await say('A', false, 6);
  t += 1100;
  presence.heard('A', newView);
  assert.deepEqual(presence.absent(), []);
  assert.deepEqual(told, ['A absent', 'B absent', 'B present', 'A present', 'A absent', 'A present', 'A absent', 'A present']);
  assert.equal(presence.records, 2, 'only the sequence numbers and rate buckets of A and B are held');
});

test('presence: a consumer that says again and again what it is makes its gateway dial no more than a receiver takes, and its latest word still goes', async () => {
  const sent: Array<{ to: string; attached: boolean; catchingUp: boolean }> = [];
  let attached = true;
  const [a, b, c] = await Promise.all([0, 1, 2].map(async () => peerIdFromPrivateKey(await generateKeyPair('Ed25519'))));
  const node = {
    handle: async () => undefined,
    getPeers: () => [a, b, c],
    getConnections: () => [{}],
    dialProtocol: async (peer: { toString(): string }) => ({
      send: (data: Uint8Array) => {
        const [frame] = new FrameDecoder(MAX_PRESENCE_MESSAGE_BYTES).push(data);
        const m = PresenceMessage.decode(frame!);
        sent.push({ to: peer.toString(), attached: m.consensusAttached, catchingUp: m.catchingUp });
      },
      close: async () => undefined,
    }),
  } as unknown as GatewayNode;
  const presence = new Presence({
    node, log: createLogger({ service: 'test', level: 'error' }), metrics: gatewayMetrics(createPromMetrics({ prefix: 't_' })),
    isValidator: (id) => id !== c!.toString(), attached: () => attached, catchingUp: () => !attached, tell: () => undefined, timeoutMs: 1000,
  });
  // A consumer flooding its gateway: participation(true) and (false) in turn, 100 times.
  for (let i = 0; i < 100; i++) {
    attached = i % 2 === 1;
    presence.consumerChanged();
  }
  await new Promise((r) => setImmediate(r));
  assert.equal(sent.length, 16, 'a burst of 8 rounds to the 2 validators (not C, no validator), the rest held back');
  attached = false; // what it says last: catching up
  await new Promise((r) => setTimeout(r, 2200));
  presence.stop();
  assert.equal(sent.length, 18, 'one round more once a token is back');
  assert.deepEqual(sent.slice(-2).map((w) => w.catchingUp), [true, true], 'the round held back says the latest state');
});
