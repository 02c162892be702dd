// JetStream against the real NATS at 127.0.0.1:4222: ensureStream is idempotent and updates
// in place, a replay sees published messages in order (with filters and a start sequence),
// and a repeated Nats-Msg-Id is stored once. Streams are named per run and deleted after.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import { isFedError } from '#libs/errors/index.ts';
import { blocksStreamSpec, ensureStream, publishDurable, replay, subject, BLOCKS_STREAM, type StoredEvent } from './index.ts';
import { Ping } from './testdata/ping.ts';

const NATS_URL = process.env.NATS_URL ?? 'nats://127.0.0.1:4222';
const run = randomBytes(4).toString('hex');
const member = `t${run}`;
let nc: NatsConnection;
let jsm: JetStreamManager;
let js: JetStreamClient;
const created: string[] = [];

before(async () => {
  nc = await connect({ servers: NATS_URL });
  jsm = await jetstreamManager(nc);
  js = jetstream(nc);
});
after(async () => {
  for (const name of created) await jsm.streams.delete(name).catch(() => false);
  await nc.drain();
});

function streamName(tag: string): string {
  const name = `TEST_${tag}_${run}`.toUpperCase();
  created.push(name);
  return name;
}

async function collect(it: AsyncIterable<StoredEvent>): Promise<StoredEvent[]> {
  const out: StoredEvent[] = [];
  for await (const e of it) out.push(e);
  return out;
}

test('ensureStream creates once, is idempotent, and updates limits in place', { timeout: 15_000 }, async () => {
  const name = streamName('ensure');
  const spec = { name, subjects: [`btcfed.${member}.ensure.>`], maxMsgs: 100, storage: 'memory' as const };
  const first = await ensureStream(jsm, spec);
  assert.equal(first.created, true);
  const again = await ensureStream(jsm, spec);
  assert.equal(again.created, false);
  assert.equal(again.info.config.max_msgs, 100);
  assert.equal(again.info.created, first.info.created, 'same stream, not re-created');

  const updated = await ensureStream(jsm, { ...spec, maxMsgs: 500, maxAgeMs: 60_000 });
  assert.equal(updated.created, false);
  assert.equal(updated.info.config.max_msgs, 500);
  assert.equal(updated.info.config.max_age, 60_000 * 1_000_000);

  await assert.rejects(ensureStream(jsm, { ...spec, storage: 'file' }), (err) => isFedError(err, 'EVENTS_STREAM_CONFLICT'));
});

test('a replay sees published messages in order, filtered and from a sequence', { timeout: 15_000 }, async () => {
  const name = streamName('replay');
  await ensureStream(jsm, { name, subjects: [`btcfed.${member}.replay.>`], storage: 'memory' });
  assert.deepEqual(await collect(replay(js, name)), [], 'an empty stream replays nothing and ends');

  const a = subject(member, 'replay', 'block.committed');
  const b = subject(member, 'replay', 'view.changed');
  for (let n = 1; n <= 5; n++) {
    await publishDurable(js, n % 2 ? a : b, Ping.encode({ text: `m${n}`, n }).finish(), { msgId: `${run}-${n}` });
  }
  const all = await collect(replay(js, name));
  assert.deepEqual(all.map((e) => e.seq), [1, 2, 3, 4, 5]);
  assert.deepEqual(all.map((e) => Ping.decode(e.data).n), [1, 2, 3, 4, 5]);
  assert.ok(all.every((e) => Math.abs(e.timestampMs - Date.now()) < 60_000));

  const onlyA = await collect(replay(js, name, { filterSubject: a }));
  assert.deepEqual(onlyA.map((e) => Ping.decode(e.data).n), [1, 3, 5]);
  assert.deepEqual((await collect(replay(js, name, { fromSeq: 4 }))).map((e) => e.seq), [4, 5]);
  assert.deepEqual(await collect(replay(js, name, { fromSeq: 5, filterSubject: b })), [], 'nothing matches after seq 5');

  // follow keeps going with messages published after the replay started.
  const follower = replay(js, name, { fromSeq: 5, follow: true });
  const firstSeen = await follower.next();
  assert.equal(firstSeen.value?.seq, 5);
  await publishDurable(js, a, Ping.encode({ text: 'late', n: 6 }).finish(), { msgId: `${run}-6` });
  const next = await follower.next();
  assert.equal(next.value?.seq, 6);
  await follower.return(undefined);
});

test('a duplicate msgId is stored once', { timeout: 15_000 }, async () => {
  const name = streamName('dedupe');
  await ensureStream(jsm, { name, subjects: [`btcfed.${member}.dedupe.>`], storage: 'memory', duplicateWindowMs: 60_000 });
  const to = subject(member, 'dedupe', 'block.committed');
  const bytes = Ping.encode({ text: 'block 7', n: 7 }).finish();
  const first = await publishDurable(js, to, bytes, { msgId: 'block-7' });
  const second = await publishDurable(js, to, bytes, { msgId: 'block-7' });
  assert.equal(first.duplicate, false);
  assert.equal(second.duplicate, true);
  assert.equal(second.seq, first.seq);
  const third = await publishDurable(js, to, bytes, { msgId: 'block-8' });
  assert.equal(third.seq, first.seq + 1);
  assert.equal((await jsm.streams.info(name)).state.messages, 2);

  await assert.rejects(publishDurable(js, to, bytes, { msgId: '' }), (err) => isFedError(err, 'EVENTS_MSG_ID_REQUIRED'));
  await assert.rejects(publishDurable(js, 'btcfed.*.x.y', bytes, { msgId: 'x' }), (err) => isFedError(err, 'EVENT_SUBJECT_INVALID'));
});

test('a publish that expects the subject\'s last sequence is stored only after it; a repeated msgId is answered "duplicate" before that check', { timeout: 15_000 }, async () => {
  const name = streamName('chain');
  await ensureStream(jsm, { name, subjects: [`btcfed.${member}.chain.>`], storage: 'memory', duplicateWindowMs: 60_000 });
  const to = subject(member, 'chain', 'block.committed');
  const other = subject(member, 'chain', 'view.changed');
  const bytes = Ping.encode({ text: 'block', n: 1 }).finish();
  const first = await publishDurable(js, to, bytes, { msgId: 'c1', expectLastSubjectSeq: 0 }); // 0: nothing on the subject yet
  await publishDurable(js, other, bytes, { msgId: 'o1' }); // another subject does not count
  const second = await publishDurable(js, to, bytes, { msgId: 'c2', expectLastSubjectSeq: first.seq });
  assert.equal(second.duplicate, false);
  await assert.rejects(publishDurable(js, to, bytes, { msgId: 'c3', expectLastSubjectSeq: first.seq }),
    (err) => isFedError(err, 'EVENTS_PUBLISH_OUT_OF_ORDER') && err.details['expected'] === first.seq && /sequence/.test(err.message));
  const again = await publishDurable(js, to, bytes, { msgId: 'c2', expectLastSubjectSeq: 12345 });
  assert.deepEqual([again.duplicate, again.seq], [true, second.seq]);
  assert.equal((await jsm.streams.info(name)).state.messages, 3);
});

test('the committed-block stream constants', () => {
  const spec = blocksStreamSpec();
  assert.equal(spec.name, BLOCKS_STREAM);
  assert.deepEqual(spec.subjects, ['btcfed.*.consensus.block.committed']);
});
