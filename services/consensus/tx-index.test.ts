// The transaction index's two tiers (tx-index.ts) through the real block store: ids of recent
// commits in memory, merged to disk as sorted runs (tx-runs.ts; stores from before the runs keep
// their LMDB tree); what a crash leaves (a real process killed with SIGKILL) rebuilt from the
// committed blocks and the summaries of pruned ones.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { open } from 'lmdb';
import { blockHash, sha256, txHash } from '#libs/crypto/index.ts';
import { isFedError } from '#libs/errors/index.ts';
import { Phase, genesisBlock, type Block, type QuorumCert } from '#libs/hotstuff/index.ts';
import { BlockStore, packLocation } from './block-store.ts';
import { TX_INDEX_ABSENT_MAX, TxIndex, keyOrder, type StoredLocation, type TxIndexStats } from './tx-index.ts';
import { pageKey } from './tx-runs.ts';

const limits = { validatorCount: 4, signatureBytes: 4, maxBlockTxs: 100, maxBlockBytes: 10_000 };
const enc = (s: string) => new TextEncoder().encode(s);
const id = (s: string) => txHash(enc(s));

function child(chain: string, parent: Block, view: number, txs: string[]): Block {
  const header = { chainId: chain, epoch: 0, height: parent.header.height + 1, view, parentHash: parent.hash, proposer: view % 4,
    timestampMs: 1000 + view, txRoot: sha256(enc(txs.join())), stateHash: sha256(enc(`s${view}`)) };
  return { header, hash: blockHash(header), txs: txs.map(enc) };
}
const qcOn = (b: Block): QuorumCert => ({ phase: Phase.COMMIT, view: b.header.view, blockHash: b.hash, signers: [0, 1, 2], signatures: [1, 2, 3].map((i) => new Uint8Array(4).fill(i)) });
const refused = (e: unknown) => isFedError(e, 'STORE_DUPLICATE_TX');
/** The counts of the runs' stats (their bytes and reads vary with the ids). */
const shape = ({ runs, count, levels, compactions, failed }: TxIndexStats['runs']) => ({ runs, count, levels, compactions, failed });
const tiers = (s: BlockStore) => { const { recent, indexedTo, merges } = s.txIndexStats(); return { recent, indexedTo, merges }; };

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'btcfed-txindex-'));
  try { await fn(dir); } finally { await fs.rm(dir, { recursive: true, force: true }); }
}

test('recent commits are found and refused from memory, and after a merge from its run; the merge runs once enough wait', () => withDir(async (dir) => {
  const g = genesisBlock('tx-index', blockHash);
  const store = new BlockStore({ path: dir, limits, hashBlock: blockHash, txIndex: { mergeAt: 5, pageIds: 2 } });
  try {
    const b1 = child('tx-index', g, 1, ['a', 'b', 'c']);
    await store.commit([b1], qcOn(b1));
    assert.deepEqual(tiers(store), { recent: 3, indexedTo: 0, merges: 0 }, 'below the threshold: in memory only');
    assert.deepEqual(store.txLocation(id('b')), { height: 1, index: 1, blockHash: b1.hash });
    assert.equal(store.hasTx(id('c')), true);
    const again = child('tx-index', b1, 2, ['z', 'a']);
    await assert.rejects(store.commit([again], qcOn(again)), refused, 'refused from memory');
    assert.equal(store.hasTx(id('z')), false, 'nothing of the refused commit is kept');

    const b2 = child('tx-index', b1, 2, ['d', 'e']);
    await store.commit([b2], qcOn(b2));
    // The commit starts the merge in the background: nothing here asks for it.
    for (let i = 0; i < 200 && store.txIndexStats().merges === 0; i++) await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(tiers(store), { recent: 0, indexedTo: 2, merges: 1 }, 'five waiting: merged, one run of three pages of two');
    assert.deepEqual(shape(store.txIndexStats().runs), { runs: 1, count: 5, levels: 1, compactions: 0, failed: 0 });
    for (const [s, height, index] of [['a', 1, 0], ['b', 1, 1], ['c', 1, 2], ['d', 2, 0], ['e', 2, 1]] as const) {
      assert.deepEqual(store.txLocation(id(s)), { height, index, blockHash: height === 1 ? b1.hash : b2.hash }, `${s} from the run`);
    }
    const b3x = child('tx-index', b2, 3, ['f', 'd']);
    await assert.rejects(store.commit([b3x], qcOn(b3x)), refused, 'refused from the run');
    const b3 = child('tx-index', b2, 3, []);
    await store.commit([b3], qcOn(b3));
    await store.flushTxIndex();
    assert.deepEqual(tiers(store), { recent: 0, indexedTo: 3, merges: 2 }, 'a block without transactions moves indexed_to too');
  } finally { await store.close(); }
  // What is on disk, read without the store: the tree untouched, one run listed, its pages in key order.
  const raw = open({ path: dir });
  assert.equal(raw.openDB({ name: 'txs', encoding: 'msgpack', keyEncoding: 'binary' }).getKeysCount(), 0, 'merges no longer write the tree');
  const meta = raw.openDB({ name: 'meta', encoding: 'string', keyEncoding: 'ordered-binary' });
  assert.equal(meta.get('indexed_to'), '3');
  assert.deepEqual(JSON.parse(meta.get('tx_runs')!), [[1, 0, 5, 3]], 'run 1: level 0, five ids, three pages');
  const pages = raw.openDB<Uint8Array, Uint8Array>({ name: 'txruns', encoding: 'binary', keyEncoding: 'binary' });
  const sorted = ['a', 'b', 'c', 'd', 'e'].map((s) => Buffer.from(id(s))).sort(Buffer.compare);
  const onDisk = [0, 1, 2].flatMap((p) => { const v = pages.getBinary(pageKey(1, p))!; const n = v.length / 44; return Array.from({ length: n }, (_, k) => Buffer.from(v.subarray(k * 32, k * 32 + 32))); });
  assert.deepEqual(onDisk, sorted, 'pages of two, then one, in key order');
  assert.deepEqual(Buffer.from(pages.getBinary(pageKey(1, 0xffff_ffff))!), Buffer.concat([sorted[0]!, sorted[2]!, sorted[4]!]), 'the fence: each page\'s first id');
  await raw.close();
}));

test('a crash (SIGKILL, nothing merged) loses no committed id: the ids above indexed_to come back from the blocks and the summaries of pruned heights', () => withDir(async (dir) => {
  const probe = spawnSync(process.execPath, ['test/durability/commit-probe.ts', '--dir', dir, '--blocks', 'a,b;c;;d,e,f;g', '--prune', '3'], { encoding: 'utf8' });
  assert.equal(probe.signal, 'SIGKILL', `the probe killed itself: ${probe.stderr}`);
  // (Each commit's misses are remembered, or answered by the filter of the tree's ids once it is built.)
  const { absent: _absent, ...left } = JSON.parse(probe.stdout) as Record<string, number>;
  assert.deepEqual(left, { committed: 5, recent: 7, indexedTo: 0, merges: 0, pruned: 3 });
  const store = new BlockStore({ path: dir, limits, hashBlock: blockHash });
  try {
    assert.deepEqual(tiers(store), { recent: 7, indexedTo: 0, merges: 0 }, 'all seven rebuilt into memory');
    assert.equal(store.isPruned(1), true);
    assert.deepEqual(store.txLocation(id('b')), { height: 1, index: 1, blockHash: store.hashAtHeight(1) }, 'from a pruned height\'s summary');
    assert.deepEqual(store.txLocation(id('f')), { height: 4, index: 2, blockHash: store.hashAtHeight(4) }, 'from a block');
    const tip = store.blockAtHeight(5)!;
    const repeat = child('commit-probe', tip, 6, ['h', 'c']);
    await assert.rejects(store.commit([repeat], qcOn(repeat)), refused, 'a rebuilt id still refuses its transaction');
    await store.flushTxIndex();
    assert.deepEqual(tiers(store), { recent: 0, indexedTo: 5, merges: 1 });
  } finally { await store.close(); }
  const reopened = new BlockStore({ path: dir, limits, hashBlock: blockHash });
  try {
    assert.deepEqual(tiers(reopened), { recent: 0, indexedTo: 5, merges: 0 }, 'merged: nothing to rebuild');
    assert.equal(reopened.hasTx(id('g')), true);
  } finally { await reopened.close(); }
}));

test('a merge cut short (a run\'s pages written, the run not listed; or, before the runs, some ids in the tree) is read as it is and finished by the next merge', () => withDir(async (dir) => {
  const probe = spawnSync(process.execPath, ['test/durability/commit-probe.ts', '--dir', dir, '--blocks', 'a,b;c'], { encoding: 'utf8' });
  assert.equal(probe.signal, 'SIGKILL', probe.stderr);
  // What a crash between two write transactions of a merge leaves: pages of a run no list names,
  // indexed_to not moved. And what an earlier build's merge cut short left: an id in the tree.
  const raw = open({ path: dir });
  const orphan = Buffer.concat([id('b'), Buffer.alloc(12)]);
  await raw.openDB({ name: 'txruns', encoding: 'binary', keyEncoding: 'binary' }).put(pageKey(7, 0), orphan);
  await raw.openDB({ name: 'txs', encoding: 'msgpack', keyEncoding: 'binary' }).put(id('b'), packLocation(1, 1));
  await raw.close();
  const store = new BlockStore({ path: dir, limits, hashBlock: blockHash });
  try {
    assert.deepEqual(tiers(store), { recent: 3, indexedTo: 0, merges: 0 });
    await store.flushTxIndex();
    assert.deepEqual(tiers(store), { recent: 0, indexedTo: 2, merges: 1 });
    assert.deepEqual(['a', 'b', 'c'].map((s) => store.txLocation(id(s))), [1, 1, 2].map((height, k) => ({ height, index: [0, 1, 0][k], blockHash: store.hashAtHeight(height) })));
  } finally { await store.close(); }
  const again = open({ path: dir });
  const keys = [...again.openDB({ name: 'txruns', encoding: 'binary', keyEncoding: 'binary' }).getKeys()].map((k) => Buffer.from(k as Uint8Array).readUInt32BE(0));
  assert.ok(keys.length > 0 && !keys.includes(7), `the unlisted run's page was removed at open (runs on disk: ${keys.join(', ')})`);
  await again.close();
}));

test('a version 3 store (every commit in the tree, no indexed_to) is taken with indexed_to at its tip, nothing rebuilt', () => withDir(async (dir) => {
  const probe = spawnSync(process.execPath, ['test/durability/commit-probe.ts', '--dir', dir, '--blocks', 'a;b', '--flush'], { encoding: 'utf8' });
  assert.equal(probe.signal, 'SIGKILL', probe.stderr);
  const raw = open({ path: dir });
  const meta = raw.openDB({ name: 'meta', encoding: 'string', keyEncoding: 'ordered-binary' });
  assert.equal(meta.get('indexed_to'), '2', 'the probe merged both');
  await meta.remove('indexed_to');
  await meta.put('schema', '3');
  await raw.close();
  const store = new BlockStore({ path: dir, limits, hashBlock: blockHash });
  try {
    assert.deepEqual(tiers(store), { recent: 0, indexedTo: 2, merges: 0 });
    assert.equal(store.hasTx(id('a')), true);
  } finally { await store.close(); }
}));

test('a version 4 store (merged ids in the tree) is read as it is: the tree answers after the runs, refuses its ids again, and new merges go to runs', () => withDir(async (dir) => {
  const probe = spawnSync(process.execPath, ['test/durability/commit-probe.ts', '--dir', dir, '--blocks', 'a,b;c'], { encoding: 'utf8' });
  assert.equal(probe.signal, 'SIGKILL', probe.stderr);
  // What a version 4 build's merge left: every id in the tree, indexed_to at the tip, no runs.
  const raw = open({ path: dir });
  const txs = raw.openDB({ name: 'txs', encoding: 'msgpack', keyEncoding: 'binary' });
  const meta = raw.openDB({ name: 'meta', encoding: 'string', keyEncoding: 'ordered-binary' });
  await raw.transaction(() => {
    for (const [s, h, k] of [['a', 1, 0], ['b', 1, 1], ['c', 2, 0]] as const) txs.put(id(s), packLocation(h, k));
    meta.put('indexed_to', '2');
    meta.put('schema', '4');
  });
  await raw.close();
  const store = new BlockStore({ path: dir, limits, hashBlock: blockHash, txIndex: { mergeAt: 1 } });
  try {
    assert.deepEqual(tiers(store), { recent: 0, indexedTo: 2, merges: 0 }, 'nothing rebuilt');
    assert.deepEqual(store.txLocation(id('b')), { height: 1, index: 1, blockHash: store.hashAtHeight(1) }, 'from the tree');
    const tip = { header: store.headerAtHeight(2)!, hash: store.hashAtHeight(2)!, txs: [] };
    const repeat = child('commit-probe', tip, 3, ['d', 'c']);
    await assert.rejects(store.commit([repeat], qcOn(repeat)), refused, 'an id in the tree is refused again');
    const b3 = child('commit-probe', tip, 3, ['d']);
    await store.commit([b3], qcOn(b3));
    await store.flushTxIndex();
    assert.deepEqual(shape(store.txIndexStats().runs), { runs: 1, count: 1, levels: 1, compactions: 0, failed: 0 }, 'the new id went to a run');
    assert.deepEqual(['a', 'c', 'd'].map((s) => store.txLocation(id(s))?.height), [1, 2, 3]);
  } finally { await store.close(); }
  const after = open({ path: dir });
  assert.equal(after.openDB({ name: 'meta', encoding: 'string', keyEncoding: 'ordered-binary' }).get('schema'), '5', 'relabelled: a version 4 build now refuses it');
  await after.close();
}));

test('a join\'s history is written as runs with its summaries: written again (a join started over) it adds nothing; an id twice in it, or at another place, is refused and nothing is written', () => withDir(async (dir) => {
  const g = genesisBlock('tx-index', blockHash);
  const store = new BlockStore({ path: dir, limits, hashBlock: blockHash, txIndex: { pageIds: 2 } });
  const b1 = child('tx-index', g, 1, ['h1', 'h2', 'h3']);
  const b2 = child('tx-index', b1, 2, ['h4', 'h5']);
  const summary = (b: Block) => ({ summary: { header: b.header, txIds: b.txs.map((t) => txHash(t)) }, hash: b.hash });
  try {
    await store.importHistory([summary(b2), summary(b1)]);
    assert.deepEqual(shape(store.txIndexStats().runs), { runs: 1, count: 5, levels: 1, compactions: 0, failed: 0 });
    for (const [s, height, index] of [['h1', 1, 0], ['h3', 1, 2], ['h5', 2, 1]] as const) assert.deepEqual(store.txLocation(id(s)), { height, index, blockHash: height === 1 ? b1.hash : b2.hash });
    await store.importHistory([summary(b2), summary(b1)]);
    assert.deepEqual(shape(store.txIndexStats().runs), { runs: 1, count: 5, levels: 1, compactions: 0, failed: 0 }, 'the same history again: nothing added');

    const b3 = child('tx-index', b2, 3, ['h6', 'h6']);
    await assert.rejects(store.importHistory([summary(b3)]), refused, 'an id twice in the history');
    const b3b = child('tx-index', b2, 3, ['h7', 'h2']);
    await assert.rejects(store.importHistory([summary(b3b)]), refused, 'an id at another place');
    assert.equal(store.hashAtHeight(3), undefined, 'no summary written');
    assert.equal(store.hasTx(id('h7')), false);
    const b3c = child('tx-index', b2, 3, ['h7']);
    await store.importHistory([summary(b3c)]);
    assert.deepEqual(shape(store.txIndexStats().runs), { runs: 2, count: 6, levels: 1, compactions: 0, failed: 0 }, 'after refused writes, the listing goes on from what is on disk');
  } finally { await store.close(); }
  const again = new BlockStore({ path: dir, limits, hashBlock: blockHash, txIndex: { pageIds: 2 } });
  try {
    assert.deepEqual(['h1', 'h5', 'h7'].map((s) => again.txLocation(id(s))?.height), [1, 2, 3], 'on disk');
  } finally { await again.close(); }
}));

test('a miss of the tree is remembered for the later questions, and never outlives the id\'s commit, its merge, or a join\'s history', () => withDir(async (dir) => {
  const g = genesisBlock('tx-index', blockHash);
  // No filter of the tree's ids (it would answer the misses first; tested below).
  const store = new BlockStore({ path: dir, limits, hashBlock: blockHash, txIndex: { mergeAt: 2, filterMaxBytes: 0 } });
  try {
    assert.equal(store.hasTx(id('q')), false, 'asked on arrival: not committed');
    assert.equal(store.txIndexStats().absent, 1, 'the miss is remembered');
    const b1 = child('tx-index', g, 1, ['q', 'r']);
    await store.commit([b1], qcOn(b1));
    await store.flushTxIndex();
    const { bytes, runs, ...counts } = store.txIndexStats();
    assert.deepEqual(counts, { recent: 0, indexedTo: 1, merges: 1, absent: 0, filtered: false, spared: 0 });
    assert.deepEqual(shape(runs), { runs: 1, count: 2, levels: 1, compactions: 0, failed: 0 });
    assert.ok(bytes >= 3 * 16 * 41, `${bytes} bytes: three tables of at least 16 slots`);
    assert.equal(store.hasTx(id('q')), true, 'committed and merged: the remembered miss is gone');
    assert.deepEqual(store.txLocation(id('q')), { height: 1, index: 0, blockHash: b1.hash });

    // A join's history is written as a run of its own, outside a merge.
    const h2 = child('tx-index', b1, 2, ['s']);
    assert.equal(store.hasTx(id('s')), false);
    await store.importHistory([{ summary: { header: h2.header, txIds: [id('s')] }, hash: h2.hash }]);
    assert.equal(store.hasTx(id('s')), true, 'imported history: the remembered miss is gone');
  } finally { await store.close(); }
}));

test('remembered misses stay bounded under a flood of new ids, and one in the older generation is forgotten by the merge too', () => withDir(async (dir) => {
  const g = genesisBlock('tx-index', blockHash);
  const store = new BlockStore({ path: dir, limits, hashBlock: blockHash, txIndex: { mergeAt: 1, filterMaxBytes: 0 } });
  try {
    assert.equal(store.hasTx(id('p')), false);
    // A flood of transactions never committed: each a miss remembered.
    for (let i = 0; i < TX_INDEX_ABSENT_MAX + 1000; i++) assert.equal(store.hasTx(id(`flood-${i}`)), false);
    const { absent } = store.txIndexStats();
    assert.ok(absent <= TX_INDEX_ABSENT_MAX && absent >= TX_INDEX_ABSENT_MAX / 2, `${absent} misses remembered`);
    assert.equal(store.hasTx(id('flood-1')), false, 'forgotten or not, still not committed');

    const q = 'q-older';
    assert.equal(store.hasTx(id(q)), false);
    for (let i = 0; i < TX_INDEX_ABSENT_MAX / 2; i++) store.hasTx(id(`more-${i}`)); // q's miss is now in the older generation
    const b1 = child('tx-index', g, 1, [q]);
    await store.commit([b1], qcOn(b1));
    await store.flushTxIndex();
    assert.equal(store.txIndexStats().recent, 0, 'merged');
    assert.equal(store.hasTx(id(q)), true, 'committed and merged: its miss in the older generation is gone too');
  } finally { await store.close(); }
}));

test('a place that does not pack into one number (height 2^33 or more) is kept whole in memory and merged as such', () => withDir(async (dir) => {
  const root = open({ path: dir });
  const db = root.openDB<StoredLocation, Uint8Array>({ name: 'txs', encoding: 'msgpack', keyEncoding: 'binary' });
  const runs = root.openDB<Uint8Array, Uint8Array>({ name: 'txruns', encoding: 'binary', keyEncoding: 'binary' });
  const meta = root.openDB<string, string>({ name: 'meta', encoding: 'string', keyEncoding: 'ordered-binary' });
  try {
    const index = new TxIndex(db, runs, { write: (_what, body) => root.transaction(body), meta }, 0, { mergeAt: 1_000, seed: [1, 2], filterMaxBytes: 0 });
    const high = 2 ** 33 + 5;
    index.restore(high, [id('w0'), id('w1')]);
    index.add([{ height: high + 1, ids: [id('w2')] }]);
    assert.deepEqual(index.get(id('w1')), { height: high, index: 1 });
    assert.deepEqual(index.get(id('w2')), { height: high + 1, index: 0 });
    assert.throws(() => index.add([{ height: high + 2, ids: [id('w3'), id('w0')] }]), refused);
    assert.equal(index.has(id('w3')), false, 'the refused commit took back what it recorded');
    await index.merge(high + 1);
    const { bytes: _bytes, runs: inRuns, ...counts } = index.stats();
    assert.deepEqual(counts, { recent: 0, indexedTo: high + 1, merges: 1, absent: 1, filtered: false, spared: 0 }, 'w3\'s miss is remembered');
    assert.deepEqual(shape(inRuns), { runs: 1, count: 3, levels: 1, compactions: 0, failed: 0 });
    assert.deepEqual(index.get(id('w1')), { height: high, index: 1 }, 'from the run, the object form');
    assert.deepEqual(index.get(id('w2')), { height: high + 1, index: 0 });
    assert.deepEqual(index.get(id('w0')), { height: high, index: 0 });
  } finally { await root.close(); }
}));

/** Until the filter of the tree's ids is built (in the background, after the store opens). */
async function filtered(s: BlockStore): Promise<void> {
  for (let i = 0; i < 500 && !s.txIndexStats().filtered; i++) await new Promise((r) => setTimeout(r, 5));
  assert.equal(s.txIndexStats().filtered, true, 'the filter was built');
}

test('the filter of the ids on disk spares a lookup for new ids, never hides a committed one (built at open, fed by merges and a join\'s history, built again after a checkpoint\'s tip)', () => withDir(async (dir) => {
  const g = genesisBlock('tx-index', blockHash);
  let store = new BlockStore({ path: dir, limits, hashBlock: blockHash, txIndex: { mergeAt: 1 } });
  let tip = g;
  try {
    // Enough ids for the scan at the next open to take several turns of the event loop.
    for (let h = 1; h <= 400; h++) {
      const b = child('tx-index', tip, h, Array.from({ length: 100 }, (_, k) => `f-${h}-${k}`));
      await store.commit([b], qcOn(b));
      tip = b;
    }
    await store.flushTxIndex();
    await store.close();
    store = new BlockStore({ path: dir, limits, hashBlock: blockHash, txIndex: { mergeAt: 1 } });
    await filtered(store);
    // Every id, those at the scan's chunk boundaries included (40,000 ids: ten chunks).
    for (let h = 1; h <= 400; h++) for (let k = 0; k < 100; k++) if (!store.hasTx(id(`f-${h}-${k}`))) assert.fail(`f-${h}-${k} not found`);
    const before = store.txIndexStats().spared;
    for (let i = 0; i < 2000; i++) assert.equal(store.hasTx(id(`new-${i}`)), false);
    const spared = store.txIndexStats().spared - before;
    assert.ok(spared >= 1900, `${spared} of 2,000 new ids answered by the filter`);
    assert.equal(store.txIndexStats().absent, 2000 - spared, 'only the filter\'s "maybe"s were looked up and remembered');

    // A merge writes its ids into the filter as into the tree.
    const b = child('tx-index', tip, 401, ['m-1', 'm-2']);
    await store.commit([b], qcOn(b));
    await store.flushTxIndex();
    assert.equal(store.txIndexStats().recent, 0, 'merged');
    assert.equal(store.hasTx(id('m-2')), true, 'a merged id is not hidden by the filter');
    await assert.rejects(store.commit([child('tx-index', b, 402, ['m-1'])], qcOn(child('tx-index', b, 402, ['m-1']))), refused);

    // A join's history is written outside a merge: its ids go into the filter with it.
    const h2 = child('tx-index', b, 402, ['joined']);
    await store.importHistory([{ summary: { header: h2.header, txIds: [id('joined')] }, hash: h2.hash }]);
    assert.equal(store.txIndexStats().filtered, true, 'the filter is kept');
    assert.equal(store.hasTx(id('joined')), true, 'imported history: not hidden by the filter');
    // A checkpoint's tip is written into the tree: the filter is built again.
    await store.startAt(child('tx-index', h2, 403, ['tip']), qcOn(child('tx-index', h2, 403, ['tip'])));
    assert.equal(store.hasTx(id('tip')), true, 'the tip: not hidden by the filter');
    await filtered(store);
    assert.equal(store.hasTx(id('tip')), true, 'nor by the one built after it');
    assert.equal(store.hasTx(id('joined')), true);
  } finally { await store.close(); }
}));

test('a filter built while a compaction replaces the runs it is reading still holds every id (the compaction hands over what it writes)', () => withDir(async (dir) => {
  const root = open({ path: dir });
  const tree = root.openDB<StoredLocation, Uint8Array>({ name: 'txs', encoding: 'msgpack', keyEncoding: 'binary' });
  const runs = root.openDB<Uint8Array, Uint8Array>({ name: 'txruns', encoding: 'binary', keyEncoding: 'binary' });
  const meta = root.openDB<string, string>({ name: 'meta', encoding: 'string', keyEncoding: 'ordered-binary' });
  // Writes committed at once: a merge and the compaction it starts run to their end in microtasks,
  // before the build, a turn of the event loop at a time, reaches the runs it listed.
  const write = async (_what: string, body: () => void): Promise<void> => { root.transactionSync(body); };
  try {
    const index = new TxIndex(tree, runs, { write, meta }, 0, { mergeAt: 1_000_000, pageIds: 4, seed: [3, 4] });
    const ids = (h: number) => Array.from({ length: 10 }, (_, k) => id(`c-${h}-${k}`));
    for (let h = 1; h <= 3; h++) {
      root.transactionSync(() => index.add([{ height: h, ids: ids(h) }]));
      await index.merge(h);
    }
    for (let i = 0; i < 500 && !index.stats().filtered; i++) await new Promise((r) => setTimeout(r, 5));
    index.treeWritten(); // a build from scratch, listing the three runs' pages
    root.transactionSync(() => index.add([{ height: 4, ids: ids(4) }]));
    await index.merge(4);
    await index.settled();
    assert.deepEqual(shape(index.stats().runs), { runs: 1, count: 40, levels: 1, compactions: 1, failed: 0 }, 'the four runs became one, their pages removed');
    for (let i = 0; i < 500 && !index.stats().filtered; i++) await new Promise((r) => setTimeout(r, 5));
    assert.equal(index.stats().filtered, true);
    for (let h = 1; h <= 4; h++) ids(h).forEach((x, k) => assert.deepEqual(index.get(x), packLocation(h, k), `c-${h}-${k}`));
    for (let h = 1; h <= 4; h++) for (const x of ids(h)) assert.equal(index.has(x), true, 'not hidden by the filter');
  } finally { await root.close(); }
}));

test('keyOrder puts ids in LMDB\'s key order: random ids, ids that share their first bytes (ground by a client), buckets at and past the insertion bound', () => {
  const check = (label: string, list: Uint8Array[]) => {
    const buf = Buffer.concat(list);
    const order = keyOrder(buf, list.length);
    assert.equal(order.length, list.length, label);
    assert.deepEqual([...order].sort((a, b) => a - b), list.map((_, i) => i), `${label}: each index once`);
    const got = [...order].map((i) => Buffer.from(list[i]!).toString('hex'));
    const want = list.map((x) => Buffer.from(x).toString('hex')).sort((a, b) => Buffer.compare(Buffer.from(a, 'hex'), Buffer.from(b, 'hex')));
    assert.deepEqual(got, want, label);
  };
  check('none', []);
  check('random', Array.from({ length: 5_000 }, (_, i) => id(`k${i}`)));
  // A shared first two bytes: one bucket of each size around the insertion bound (16), and one large.
  for (const size of [2, 16, 17, 3_000]) {
    check(`${size} sharing a prefix`, Array.from({ length: size }, (_, i) => { const x = Uint8Array.from(id(`g${size}-${i}`)); x[0] = 0xab; x[1] = 0xcd; return x; }));
  }
  // Ids that differ only in their last byte, and the last and first buckets.
  check('last byte', Array.from({ length: 40 }, (_, i) => { const x = new Uint8Array(32).fill(0xff); x[31] = (i * 37) & 0xff; return x; }));
  check('edges', [new Uint8Array(32).fill(0xff), new Uint8Array(32), new Uint8Array(32).fill(0x80), Uint8Array.from(id('m'))]);
});
