// The committed-block stream across a crash, against the real NATS JetStream and a real LMDB
// block store: blocks committed while no publisher ran (the member "crashed" after committing,
// before publishing) reach the stream at the next start, in height order, with no gap and no
// duplicate.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { jetstream } from '@nats-io/jetstream';
import { blockHash, merkleRoot, nextStateHash, toHex, txHash } from '#libs/crypto/index.ts';
import { BLOCKS_STREAM, ackHolds, connectEvents, publishDurable, replay, subject, BLOCK_COMMITTED_EVENT } from '#libs/events/index.ts';
import { jetstreamManager } from '@nats-io/jetstream';
import { BlockCommitted, InvalidSignature, ViewChanged } from '#libs/gen/btcfed/v1/events.pb.ts';
import { Phase, genesisBlock, type Block, type QuorumCert } from '#libs/hotstuff/index.ts';
import { BlockStore } from './block-store.ts';
import { ConsensusPublisher } from './publish.ts';
import { createPromMetrics } from '#libs/metrics/index.ts';
import { NATS_URL, recordEvents } from '../../test/support/store.ts';
import { startNatsAckForger } from '../../test/support/nats-ack-forger.ts';

const chainId = `publish-${process.pid}-${Date.now()}`;
const member = `pub-${process.pid}-${Date.now().toString(36)}`;
const limits = { validatorCount: 4, signatureBytes: 4, maxBlockTxs: 100, maxBlockBytes: 100_000 };
const log = pino({ level: process.env.TEST_LOG ?? 'silent' });

function child(parent: Block, tx: string, epoch = 0): Block {
  const txs = [new TextEncoder().encode(tx)];
  const txRoot = merkleRoot(txs.map((t) => txHash(t)));
  const header = { chainId, epoch, height: parent.header.height + 1, view: parent.header.height + 1, parentHash: parent.hash, proposer: 0,
    timestampMs: Date.now(), txRoot, stateHash: nextStateHash(parent.header.stateHash, txRoot) };
  return { header, hash: blockHash(header), txs };
}
const commitQc = (b: Block): QuorumCert =>
  ({ phase: Phase.COMMIT, view: b.header.view, blockHash: b.hash, signers: [0, 1, 2], signatures: [1, 2, 3].map((i) => new Uint8Array(4).fill(i)) });

async function heightsInStream(who = member): Promise<number[]> {
  const conn = await connectEvents({ url: NATS_URL, name: 'publish-test-reader', log });
  try {
    const out: number[] = [];
    for await (const e of replay(jetstream(conn.nc), BLOCKS_STREAM, { filterSubject: subject(who, 'consensus', BLOCK_COMMITTED_EVENT) })) {
      out.push(Number(BlockCommitted.decode(e.data).height));
    }
    return out;
  } finally {
    await conn.drain();
  }
}

async function until(what: string, cond: () => Promise<boolean>, ms = 15_000): Promise<void> {
  const t0 = Date.now();
  while (!(await cond())) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

test('blocks committed while the publisher was down reach the stream at restart: no gap, no duplicate', async () => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'btcfed-publish-'));
  const store = new BlockStore({ path: dir, limits, hashBlock: blockHash });
  try {
    let tip = genesisBlock(chainId, blockHash);
    const commit = async (n: number) => {
      for (let i = 0; i < n; i++) {
        const b = child(tip, `tx-${tip.header.height + 1}`);
        await store.commit([b], commitQc(b));
        tip = b;
      }
    };
    await commit(3);
    let pub = await ConsensusPublisher.connect({ url: NATS_URL, member, log, source: store });
    await until('heights 1..3 in the stream', async () => (await heightsInStream()).length === 3);
    await pub.close(); // the member goes down…
    await commit(4); // …after committing four more blocks it never published (a crash)
    pub = await ConsensusPublisher.connect({ url: NATS_URL, member, log, source: store });
    await until('heights 4..7 in the stream', async () => (await heightsInStream()).length >= 7);
    await commit(1);
    pub.committed();
    await until('height 8 in the stream', async () => (await heightsInStream()).length >= 8);
    await pub.close();
    // A restart with nothing new publishes nothing again.
    pub = await ConsensusPublisher.connect({ url: NATS_URL, member, log, source: store });
    assert.equal(pub.published, 8);
    await pub.close();
    assert.deepEqual(await heightsInStream(), [1, 2, 3, 4, 5, 6, 7, 8]);
  } finally {
    await store.close();
    await fs.rm(dir, { recursive: true, force: true });
  }
});

test('a "duplicate" ack for a block the stream does not hold is not believed: the block goes out again under a new id', async () => {
  // nats-server 2.9 can answer "duplicate" for a msgId whose message it lost in a leader change.
  // The same answer comes, on any server, when another message in the stream took the id: here a
  // stranger's message on another subject carries the id our height 2 will use.
  const who = `${member}-dup`;
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'btcfed-publish-'));
  const store = new BlockStore({ path: dir, limits, hashBlock: blockHash });
  const conn = await connectEvents({ url: NATS_URL, name: 'publish-test-squatter', log });
  try {
    let tip = genesisBlock(chainId, blockHash);
    const blocks: Block[] = [];
    for (let i = 0; i < 3; i++) { tip = child(tip, `dup-${i}`); blocks.push(tip); await store.commit([tip], commitQc(tip)); }
    const takenId = `${who}:2:${toHex(blocks[1]!.hash).slice(0, 16)}`;
    const squat = await publishDurable(jetstream(conn.nc), subject(`${who}-other`, 'consensus', BLOCK_COMMITTED_EVENT), new Uint8Array([1]), { msgId: takenId });
    assert.equal(squat.duplicate, false);
    const jsm = await jetstreamManager(conn.nc);
    assert.equal(await ackHolds(jsm, squat, subject(`${who}-other`, 'consensus', BLOCK_COMMITTED_EVENT), takenId), true, 'the real message is confirmed');
    assert.equal(await ackHolds(jsm, squat, subject(who, 'consensus', BLOCK_COMMITTED_EVENT), takenId), false, 'another subject at that seq is not ours');
    assert.equal(await ackHolds(jsm, { ...squat, seq: squat.seq + 1_000_000 }, subject(who, 'consensus', BLOCK_COMMITTED_EVENT), takenId), false, 'no message at that seq');

    const pub = await ConsensusPublisher.connect({ url: NATS_URL, member: who, log, source: store });
    await until('heights 1..3 in the stream', async () => pub.published === 3, 15_000);
    await pub.close();
    assert.deepEqual(await heightsInStream(who), [1, 2, 3], 'no gap at height 2');
  } finally {
    await conn.drain();
    await store.close();
    await fs.rm(dir, { recursive: true, force: true });
  }
});

/** This member's block.committed heights in stream order, with their sequence numbers; a stranger's bytes under the name are left out. */
async function oursInStream(who: string): Promise<Array<{ height: number; seq: number }>> {
  const conn = await connectEvents({ url: NATS_URL, name: 'publish-test-reader', log });
  try {
    const out: Array<{ height: number; seq: number }> = [];
    for await (const e of replay(jetstream(conn.nc), BLOCKS_STREAM, { filterSubject: subject(who, 'consensus', BLOCK_COMMITTED_EVENT) })) {
      let m: BlockCommitted | undefined;
      try { m = BlockCommitted.decode(e.data); } catch { m = undefined; }
      if (m?.member === who) out.push({ height: m.height, seq: e.seq });
    }
    return out;
  } finally {
    await conn.drain();
  }
}

const republishedCount = async (metrics: ReturnType<typeof createPromMetrics>, reason: string): Promise<number> => {
  const line = (await metrics.text()).split('\n').find((l) => l.startsWith('btcfed_consensus_stream_republished_total{') && l.includes(`reason="${reason}"`));
  return Number(line?.split(' ').at(-1));
};

/** A member's block store with blocks to commit, a NATS connection and metrics, for one test; `close` undoes all of it. */
async function chainFixture(who: string) {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), `btcfed-publish-${who.split('-').at(-1)}-`));
  const store = new BlockStore({ path: dir, limits, hashBlock: blockHash });
  const conn = await connectEvents({ url: NATS_URL, name: `publish-test-${who}`, log });
  const metrics = createPromMetrics({ prefix: 'btcfed_', processMetrics: false });
  let tip = genesisBlock(chainId, blockHash);
  return {
    store, conn, metrics,
    async commit(n: number) {
      for (let i = 0; i < n; i++) { tip = child(tip, `${who}-${tip.header.height + 1}`); await store.commit([tip], commitQc(tip)); }
    },
    async close() {
      await conn.drain();
      await store.close();
      await fs.rm(dir, { recursive: true, force: true });
    },
  };
}

test('block.committed acknowledged but never stored (a replaced stream leader\'s ack) is published again, in height order', async () => {
  // The chaos campaign's case (seed 7, a SIGSTOPped stream leader): acks for blocks the cluster
  // did not keep. A proxy between the publisher and the real nats-server loses heights 2 and 3 and
  // answers each with an ack, as the stale leader did. Height 4 expects the sequence number 3's ack
  // named, is refused, and the publisher goes back to the stream's last block of ours (height 1).
  const who = `${member}-lost`;
  const f = await chainFixture(who);
  const url = new URL(NATS_URL.replace(/^nats:/, 'http:'));
  const forger = await startNatsAckForger({ host: url.hostname, port: Number(url.port || 4222) });
  let pub: ConsensusPublisher | undefined;
  try {
    await f.commit(1);
    pub = await ConsensusPublisher.connect({ url: forger.url, member: who, log, source: f.store, metrics: f.metrics });
    await until('height 1 published', async () => pub!.published === 1);
    // The forged acks name the sequence numbers the stream gives next (to other messages, as it happened).
    const next = (await (await jetstreamManager(f.conn.nc)).streams.info(BLOCKS_STREAM)).state.last_seq + 1;
    forger.loseNext(subject(who, 'consensus', BLOCK_COMMITTED_EVENT), { count: 2, fromSeq: next, stream: BLOCKS_STREAM });
    await f.commit(2);
    pub.committed();
    await until('heights 2..3 acknowledged', async () => pub!.published === 3);
    assert.equal(forger.lost, 2, 'two publishes lost, both acked');
    assert.deepEqual((await oursInStream(who)).map((e) => e.height), [1], 'the stream holds height 1 only');
    await f.commit(1);
    pub.committed();
    await until('height 4 published', async () => pub!.published === 4);
    assert.deepEqual((await oursInStream(who)).map((e) => e.height), [1, 2, 3, 4], 'the lost heights again, then the new one, in height order');
    assert.equal(await republishedCount(f.metrics, 'chain_broken'), 2, 'two blocks published again, counted');
    assert.equal(f.store.publishedMark(), 4);
  } finally {
    await pub?.close();
    await forger.close();
    await f.close();
  }
});

test('a stranger\'s message under our name (anyone who may publish on NATS) does not break publishing; with our last block lost behind it, that block goes out again', async () => {
  const who = `${member}-stranger`;
  const f = await chainFixture(who);
  const to = subject(who, 'consensus', BLOCK_COMMITTED_EVENT);
  let pub: ConsensusPublisher | undefined;
  try {
    await f.commit(2);
    pub = await ConsensusPublisher.connect({ url: NATS_URL, member: who, log, source: f.store, metrics: f.metrics });
    await until('heights 1..2 published', async () => pub!.published === 2);
    const js = jetstream(f.conn.nc);
    const jsm = await jetstreamManager(f.conn.nc);
    // A stranger writes after our height 2: height 3 is refused once, then goes out after it.
    await js.publish(to, new TextEncoder().encode('not a block'));
    await f.commit(1);
    pub.committed();
    await until('height 3 published', async () => pub!.published === 3);
    assert.deepEqual((await oursInStream(who)).map((e) => e.height), [1, 2, 3]);
    assert.equal(await republishedCount(f.metrics, 'chain_broken'), 0, 'nothing published twice');
    // Our height 3 is lost and a stranger's message is the last under our name: 3 goes out again before 4.
    const seq3 = (await oursInStream(who)).at(-1)!.seq;
    await jsm.streams.deleteMessage(BLOCKS_STREAM, seq3, false);
    await js.publish(to, new TextEncoder().encode('not a block either'));
    await f.commit(1);
    pub.committed();
    await until('height 4 published', async () => pub!.published === 4);
    assert.deepEqual((await oursInStream(who)).map((e) => e.height), [1, 2, 3, 4]);
    assert.equal(await republishedCount(f.metrics, 'chain_broken'), 1);
  } finally {
    await pub?.close();
    await f.close();
  }
});

test('blocks handed over at commit are published from memory, with their ids and the deciding QC; a bounded number wait', async () => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'btcfed-publish-handed-'));
  const store = new BlockStore({ path: dir, limits, hashBlock: blockHash });
  const who = `${member}-handed`;
  let storeReads = 0;
  const source = {
    committedHeight: () => store.committedHeight(),
    blockAtHeight: (h: number) => { storeReads++; return store.blockAtHeight(h); },
    qcFor: (hash: Uint8Array) => { storeReads++; return store.qcFor(hash); },
  };
  try {
    let tip = genesisBlock(chainId, blockHash);
    const pub = await ConsensusPublisher.connect({ url: NATS_URL, member: who, log, source });
    // Two blocks committed in one go (an ancestor and the decided block), as the driver does.
    const run = [child(tip, 'handed-1')];
    run.push(child(run[0]!, 'handed-2'));
    tip = run[1]!;
    await store.commit(run, commitQc(tip));
    storeReads = 0;
    pub.committed(run, commitQc(tip));
    await until('heights 1..2 in the stream', async () => (await heightsInStream(who)).length === 2);
    // The ancestor's QC comes from the store (the decided block's was handed over); no block is read back.
    assert.equal(storeReads, 1, 'only the ancestor\'s QC is read from the store');
    assert.equal(pub.recentBlocks, 0, 'published blocks are forgotten');

    // The stream's blocks say what the store does: ids of the transactions, the commit QC of the last.
    const conn = await connectEvents({ url: NATS_URL, name: 'publish-test-reader', log });
    const events: BlockCommitted[] = [];
    for await (const e of replay(jetstream(conn.nc), BLOCKS_STREAM, { filterSubject: subject(who, 'consensus', BLOCK_COMMITTED_EVENT) })) events.push(BlockCommitted.decode(e.data));
    await conn.drain();
    assert.deepEqual(events.map((e) => toHex(e.txHashes[0]!)), run.map((b) => toHex(txHash(b.txs[0]!))));
    assert.equal(events[1]!.commitQc?.view, tip.header.view);

    // More blocks handed over than it keeps while it cannot publish: the oldest are dropped (and read back later).
    await pub.close();
    const many: Block[] = [];
    for (let i = 0; i < 100; i++) { const b = child(tip, `many-${i}`); many.push(b); tip = b; }
    pub.committed(many, commitQc(tip));
    assert.ok(pub.recentBlocks <= 64, `at most 64 kept, ${pub.recentBlocks}`);
  } finally {
    await store.close();
    await fs.rm(dir, { recursive: true, force: true });
  }
});

test('an epoch\'s last block committed with a suffix above it goes out without the suffix\'s QC, from memory as from the store', async () => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'btcfed-publish-suffix-'));
  const store = new BlockStore({ path: dir, limits, hashBlock: blockHash });
  const who = `${member}-suffix`;
  const again = `${member}-suffix-store`;
  try {
    // Epoch 1's last block R (at height 2), then two empty blocks certified above it (the suffix):
    // the COMMIT QC that ended the epoch is on the suffix's top, and R is the last block committed.
    const first = child(genesisBlock(chainId, blockHash), 'suffix-1', 1);
    const r = child(first, 'suffix-last', 1);
    const s1 = child(r, 'suffix-s1', 1);
    const s2 = child(s1, 'suffix-s2', 1);
    const endQc = commitQc(s2);
    await store.commit([first], commitQc(first));
    await store.commit([r], endQc);
    const pub = await ConsensusPublisher.connect({ url: NATS_URL, member: who, log, source: store });
    try {
      pub.committed([r], endQc);
      await until('heights 1..2 in the stream', async () => (await heightsInStream(who)).length === 2);
    } finally {
      await pub.close();
    }
    // Read back from the store (a restart, or blocks the stream was down for): the same answer.
    // Another member name, and no published mark (the first publisher's would skip both blocks).
    const reads = { committedHeight: () => store.committedHeight(), blockAtHeight: (h: number) => store.blockAtHeight(h), qcFor: (h: Uint8Array) => store.qcFor(h) };
    const fromStore = await ConsensusPublisher.connect({ url: NATS_URL, member: again, log, source: reads });
    try {
      await until('heights 1..2 in the stream (from the store)', async () => (await heightsInStream(again)).length === 2);
    } finally {
      await fromStore.close();
    }

    const conn = await connectEvents({ url: NATS_URL, name: 'publish-test-reader', log });
    const read = async (name: string) => {
      const out: BlockCommitted[] = [];
      for await (const e of replay(jetstream(conn.nc), BLOCKS_STREAM, { filterSubject: subject(name, 'consensus', BLOCK_COMMITTED_EVENT) })) out.push(BlockCommitted.decode(e.data));
      return out;
    };
    const [handed, stored] = [await read(who), await read(again)];
    await conn.drain();
    for (const [how, events] of [['from memory', handed], ['from the store', stored]] as const) {
      assert.equal(toHex(events[0]!.commitQc?.blockHash ?? new Uint8Array()), toHex(first.hash), `${how}: a block its own COMMIT QC decided keeps it`);
      assert.equal(toHex(events[1]!.blockHash), toHex(r.hash));
      assert.equal(events[1]!.commitQc, undefined, `${how}: the suffix top's QC is not R's (no suffix headers link it)`);
    }
  } finally {
    await store.close();
    await fs.rm(dir, { recursive: true, force: true });
  }
});

test('view.changed and security.invalid_signature of epoch 2 name their epoch, and the member at the index in that epoch\'s set', async () => {
  const who = `${member}-epochs`;
  const source = { committedHeight: () => 0, blockAtHeight: () => undefined, qcFor: () => undefined };
  // Epoch 2's set after m1's removal: index 1 is m2's now (it was m1's in epoch 0). The set given
  // is what names an index, never the frame; an index the set lacks names nobody.
  const epoch2 = ['m0', 'm2', 'm3'];
  const set = { has: (i: number) => i < epoch2.length, byIndex: (i: number) => ({ name: epoch2[i]! }) };
  const views = await recordEvents(subject(who, 'consensus', 'view.changed'), (b) => ViewChanged.decode(b));
  const invalid = await recordEvents(subject(who, 'consensus', 'security.invalid_signature'), (b) => InvalidSignature.decode(b));
  const pub = await ConsensusPublisher.connect({ url: NATS_URL, member: who, log, source });
  try {
    pub.viewChanged(3, 1, 'timeout', 2, set);
    pub.invalidSignature('12D3KooWpeer', 1, 'vote', 3, 2, set);
    pub.invalidSignature('12D3KooWstranger', 7, 'vote', 4, 2, set);
    const v = (await views.next()).data;
    assert.deepEqual({ epoch: v.epoch, view: v.view, leader: v.leader, leaderName: v.leaderName }, { epoch: 2, view: 3, leader: 1, leaderName: 'm2' });
    const i = (await invalid.next()).data;
    assert.deepEqual({ epoch: i.epoch, view: i.view, claimedSender: i.claimedSender, claimedSenderName: i.claimedSenderName, peerId: i.peerId },
      { epoch: 2, view: 3, claimedSender: 1, claimedSenderName: 'm2', peerId: '12D3KooWpeer' });
    const outside = (await invalid.next((e) => e.data.claimedSender === 7)).data;
    assert.equal(outside.claimedSenderName, '', 'an index outside the set names nobody');
    assert.equal(outside.epoch, 2);
  } finally {
    await pub.close();
    await views.close();
    await invalid.close();
  }
});

test('retention dropped every block of this member from the stream: the publisher goes on from the mark kept in the store, not from height 1; the limits are applied', async () => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'btcfed-publish-'));
  const store = new BlockStore({ path: dir, limits, hashBlock: blockHash });
  const who = `${member}-ret`;
  let pub: ConsensusPublisher | undefined;
  try {
    let tip = genesisBlock(chainId, blockHash);
    const commit = async (n: number) => {
      for (let i = 0; i < n; i++) {
        const b = child(tip, `ret-tx-${tip.header.height + 1}`);
        await store.commit([b], commitQc(b));
        tip = b;
      }
    };
    await commit(5);
    // Limits this shared stream is well inside, whatever other runs on this NATS left in it: a
    // limit below what it holds makes the server delete messages during the update, which took
    // longer than a JetStream request may (5 s) on a loaded machine, with 1.2 GB left by soaks.
    const probe = await connectEvents({ url: NATS_URL, name: 'publish-test-size', log });
    const held = (await (await jetstreamManager(probe.nc)).streams.info(BLOCKS_STREAM).catch(() => undefined))?.state.bytes ?? 0;
    await probe.drain();
    const retention = { maxAgeMs: 3650 * 24 * 3_600_000, maxBytes: Math.max(1024 ** 3, 2 * held) };
    pub = await ConsensusPublisher.connect({ url: NATS_URL, member: who, log, source: store, retention });
    await until('heights 1..5 in the stream', async () => (await heightsInStream(who)).length === 5);
    await pub.close();
    const conn = await connectEvents({ url: NATS_URL, name: 'publish-test-retention', log });
    const jsm = await jetstreamManager(conn.nc);
    const info = await jsm.streams.info(BLOCKS_STREAM);
    assert.equal(info.config.max_age, retention.maxAgeMs * 1_000_000, 'max_age applied (ns)');
    assert.equal(info.config.max_bytes, retention.maxBytes, 'max_bytes applied');
    // What max_age or max_bytes does to an idle or stopped member's events: all gone.
    await jsm.streams.purge(BLOCKS_STREAM, { filter: subject(who, 'consensus', BLOCK_COMMITTED_EVENT) });
    await conn.drain();
    assert.deepEqual(await heightsInStream(who), []);
    await commit(2);
    pub = await ConsensusPublisher.connect({ url: NATS_URL, member: who, log, source: store, retention });
    assert.equal(pub.published, 5, 'the mark kept beside the blocks');
    await until('heights 6..7 in the stream', async () => (await heightsInStream(who)).length >= 2);
    await pub.close();
    pub = undefined;
    assert.deepEqual(await heightsInStream(who), [6, 7], 'only what the stream never had: the chain is not published again');
  } finally {
    await pub?.close();
    await store.close();
    await fs.rm(dir, { recursive: true, force: true });
  }
});

test('a last block.committed under our name that does not decode (anyone on NATS may publish there) does not stop the start: publishing goes on from the kept mark', async () => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'btcfed-publish-'));
  const store = new BlockStore({ path: dir, limits, hashBlock: blockHash });
  const who = `${member}-junk`;
  let pub: ConsensusPublisher | undefined;
  try {
    let tip = genesisBlock(chainId, blockHash);
    for (let i = 0; i < 2; i++) {
      const b = child(tip, `junk-tx-${i}`);
      await store.commit([b], commitQc(b));
      tip = b;
    }
    const conn = await connectEvents({ url: NATS_URL, name: 'publish-test-junk', log });
    await jetstream(conn.nc).publish(subject(who, 'consensus', BLOCK_COMMITTED_EVENT), new Uint8Array([0xff, 0xff, 0xff, 0xff, 0x0f]));
    await conn.drain();
    pub = await ConsensusPublisher.connect({ url: NATS_URL, member: who, log, source: store });
    assert.equal(pub.published, 0, 'taken as no mark');
    await until('heights 1..2 stored in the stream', async () => pub!.published === 2);
  } finally {
    await pub?.close();
    await store.close();
    await fs.rm(dir, { recursive: true, force: true });
  }
});

test('a start that fails after connecting closes its NATS connection: the process it ran in exits by itself', () => {
  // In a process of its own: the committed source fails once the stream is ready. Before the
  // fix the connection stayed open (reconnecting for ever) and the process never exited.
  const script = `
    import { pino } from 'pino';
    import { ConsensusPublisher } from ${JSON.stringify(path.join(import.meta.dirname, 'publish.ts'))};
    const source = { committedHeight() { throw new Error('the store is gone'); }, blockAtHeight() { return undefined; } };
    try {
      await ConsensusPublisher.connect({ url: ${JSON.stringify(NATS_URL)}, member: 'publish-test-fails', log: pino({ level: 'silent' }), source });
      console.log('connected');
    } catch (err) {
      console.log('refused: ' + err.message);
    }`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { cwd: path.join(import.meta.dirname, '../..'), encoding: 'utf8', timeout: 30_000 });
  assert.equal(r.signal, null, `the process did not exit by itself within 30 s (killed by ${r.signal}): ${r.stdout}${r.stderr}`);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^refused: the store is gone$/m);
});
