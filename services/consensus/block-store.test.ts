import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { blockHash, sha256, txHash } from '#libs/crypto/index.ts';
import { isFedError } from '#libs/errors/index.ts';
import { Phase, genesisBlock, genesisQC, type Block, type QuorumCert, type SafetyState } from '#libs/hotstuff/index.ts';
import { open } from 'lmdb';
import { QuorumCert as QuorumCertMsg } from '#libs/gen/btcfed/v1/wire.pb.ts';
import { qcToWire } from '#libs/wire/index.ts';
import { BlockStore, STORE_SCHEMA_VERSION, packLocation, unpackLocation } from './block-store.ts';

const limits = { validatorCount: 4, signatureBytes: 4, maxBlockTxs: 100, maxBlockBytes: 10_000 };
const genesis = genesisBlock('store-test', blockHash);
const enc = (s: string) => new TextEncoder().encode(s);

function child(parent: Block, view: number, txs: string[]): Block {
  const header = { chainId: 'store-test', epoch: 0, height: parent.header.height + 1, view, parentHash: parent.hash, proposer: view % 4,
    timestampMs: 1000 + view, txRoot: sha256(enc(txs.join())), stateHash: sha256(enc(`s${view}`)) };
  return { header, hash: blockHash(header), txs: txs.map(enc) };
}
const qcOn = (b: Block, phase: Phase, view: number): QuorumCert =>
  ({ phase, view, blockHash: b.hash, signers: [0, 1, 2], signatures: [1, 2, 3].map((i) => new Uint8Array(4).fill(i)) });
const safety = (view: number, locked: QuorumCert, prepare: QuorumCert): SafetyState =>
  ({ view, lockedQC: locked, prepareQC: prepare, lastVoted: { view, phase: Phase.COMMIT }, newViewTarget: view, lastCommitView: view - 1, proposedView: 0 });

async function withStore(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'btcfed-blocks-'));
  try { await fn(dir); } finally { await fs.rm(dir, { recursive: true, force: true }); }
}

test('persist, commit, reopen: the record, the log, the tx index and the QCs come back', () => withStore(async (dir) => {
  const b1 = child(genesis, 1, ['a', 'b']);
  const b2 = child(b1, 2, ['c']);
  const fork = child(genesis, 1, ['x']);
  let store = new BlockStore({ path: dir, limits, hashBlock: blockHash });
  assert.equal(store.load(genesis), undefined, 'a fresh store has no record');
  await store.persist(safety(2, qcOn(b1, Phase.PRE_COMMIT, 1), qcOn(b2, Phase.PREPARE, 2)), [b1, b2, fork], [qcOn(b1, Phase.PREPARE, 1)]);
  await store.commit([b1], qcOn(b1, Phase.COMMIT, 1));
  await store.close();

  store = new BlockStore({ path: dir, limits, hashBlock: blockHash });
  const rec = store.load(genesis)!;
  assert.equal(rec.safety.view, 2);
  assert.deepEqual(rec.safety.lockedQC, qcOn(b1, Phase.PRE_COMMIT, 1));
  assert.deepEqual(rec.committed, b1);
  assert.deepEqual(rec.blocks.map((b) => b.header.height), [2], 'uncommitted b2 back, the losing fork gone');
  assert.equal(store.blockByHash(fork.hash), undefined);
  assert.equal(store.committedHeight(), 1);
  assert.deepEqual(store.blockAtHeight(1), b1);
  assert.equal(store.isCommittedBlock(b1.hash, 1), true);
  assert.equal(store.isCommittedBlock(fork.hash, 1), false, 'another block at a committed height is not the committed one');
  assert.equal(store.isCommittedBlock(b1.hash, 2), false);
  assert.equal(store.isCommittedBlock(b2.hash, 2), false, 'stored, not committed');
  assert.equal(store.qcFor(b1.hash)?.phase, Phase.COMMIT, 'the commitQC is kept over the prepareQC');
  assert.deepEqual(store.txLocation(txHash(enc('b'))), { height: 1, index: 1, blockHash: b1.hash });
  assert.equal(store.hasTx(txHash(enc('c'))), false, 'not committed yet');
  await store.close();
}));

test('a commit that skips a height is refused and changes nothing', () => withStore(async (dir) => {
  const store = new BlockStore({ path: dir, limits, hashBlock: blockHash });
  const b1 = child(genesis, 1, []);
  const b2 = child(b1, 2, ['t']);
  await assert.rejects(store.commit([b2], qcOn(b2, Phase.COMMIT, 2)), (e) => isFedError(e, 'STORE_COMMIT_GAP'));
  assert.equal(store.committedHeight(), 0);
  assert.equal(store.hasTx(txHash(enc('t'))), false);
  await store.persist(safety(1, genesisQC(genesis), genesisQC(genesis)), [], []);
  assert.deepEqual(store.load(genesis)?.committed, genesis);
  await store.close();
}));

test('evidence is kept across a reopen, in arrival order', () => withStore(async (dir) => {
  let store = new BlockStore({ path: dir, limits, hashBlock: blockHash });
  await store.addEvidence(1, enc('first'));
  await store.addEvidence(2, enc('second'));
  await store.close();
  store = new BlockStore({ path: dir, limits, hashBlock: blockHash });
  assert.deepEqual([...store.evidence()].map((e) => [e.seq, new TextDecoder().decode(e.bytes)]), [[1, 'first'], [2, 'second']]);
  assert.deepEqual([...store.evidence(1)].map((e) => e.seq), [2], 'paging from a sequence number');
  await store.close();
}));

test('a commit repeating a committed transaction is refused; the index is not overwritten', () => withStore(async (dir) => {
  const store = new BlockStore({ path: dir, limits, hashBlock: blockHash });
  try {
    const b1 = child(genesis, 1, ['same']);
    await store.commit([b1], qcOn(b1, Phase.COMMIT, 1));
    const b2 = child(b1, 2, ['other', 'same']);
    await assert.rejects(store.commit([b2], qcOn(b2, Phase.COMMIT, 2)), (e: unknown) => isFedError(e, 'STORE_DUPLICATE_TX'));
    assert.equal(store.committedHeight(), 1);
    assert.equal(store.txLocation(txHash(enc('same')))?.height, 1);
    assert.equal(store.hasTx(txHash(enc('other'))), false, 'nothing of the refused commit is kept');
  } finally { await store.close(); }
}));

test('a commit repeating a transaction within itself is refused, in one block or across two; nothing of it is kept', () => withStore(async (dir) => {
  const store = new BlockStore({ path: dir, limits, hashBlock: blockHash });
  try {
    const b1 = child(genesis, 1, ['a', 'twice', 'b', 'twice']);
    await assert.rejects(store.commit([b1], qcOn(b1, Phase.COMMIT, 1)), (e: unknown) => isFedError(e, 'STORE_DUPLICATE_TX'));
    const c1 = child(genesis, 1, ['c', 'across']);
    const c2 = child(c1, 2, ['d', 'across']);
    await assert.rejects(store.commit([c1, c2], qcOn(c2, Phase.COMMIT, 2)), (e: unknown) => isFedError(e, 'STORE_DUPLICATE_TX'));
    assert.equal(store.committedHeight(), 0);
    for (const t of ['a', 'twice', 'b', 'c', 'across', 'd']) assert.equal(store.hasTx(txHash(enc(t))), false, `${t}: nothing of a refused commit is kept`);
    await store.commit([c1], qcOn(c1, Phase.COMMIT, 1));
    assert.deepEqual(store.txLocation(txHash(enc('across'))), { height: 1, index: 1, blockHash: c1.hash }, 'the same transactions commit once the repeat is gone');
  } finally { await store.close(); }
}));

test('an index location is one number where it fits, the object beyond; both read back, also through LMDB', () => withStore(async (dir) => {
  const raw = open({ path: dir });
  const db = raw.openDB({ name: 'txs', encoding: 'msgpack', keyEncoding: 'binary' });
  try {
    for (const [k, [height, index]] of ([[1, 0], [7, 3], [2 ** 33 - 1, 2 ** 20 - 1], [2 ** 33, 0], [5, 2 ** 20], [2 ** 40, 2 ** 24]] as const).entries()) {
      const stored = packLocation(height, index);
      assert.equal(typeof stored, height < 2 ** 33 && index < 2 ** 20 ? 'number' : 'object', `${height}/${index}`);
      assert.deepEqual(unpackLocation(stored), { height, index });
      await db.put(Uint8Array.of(k), stored);
      assert.deepEqual(unpackLocation(db.get(Uint8Array.of(k)) as number), { height, index }, `${height}/${index} through msgpack`);
    }
  } finally { await raw.close(); }
}));

test('a version 2 store (index locations as objects) is taken, relabelled, and read as before', () => withStore(async (dir) => {
  const b1 = child(genesis, 1, ['old-a', 'old-b']);
  let store = new BlockStore({ path: dir, limits, hashBlock: blockHash });
  await store.commit([b1], qcOn(b1, Phase.COMMIT, 1));
  await store.close();
  // What version 2 wrote: the locations as msgpack objects, the schema as '2'.
  const raw = open({ path: dir });
  const txs = raw.openDB({ name: 'txs', encoding: 'msgpack', keyEncoding: 'binary' });
  await txs.put(txHash(enc('old-a')), { height: 1, index: 0 });
  await txs.put(txHash(enc('old-b')), { height: 1, index: 1 });
  assert.equal(typeof txs.get(txHash(enc('old-b'))), 'object');
  await raw.openDB({ name: 'meta', encoding: 'string', keyEncoding: 'ordered-binary' }).put('schema', '2');
  await raw.close();
  store = new BlockStore({ path: dir, limits, hashBlock: blockHash });
  try {
    assert.deepEqual(store.txLocation(txHash(enc('old-b'))), { height: 1, index: 1, blockHash: b1.hash });
    const b2 = child(b1, 2, ['new', 'old-a']);
    await assert.rejects(store.commit([b2], qcOn(b2, Phase.COMMIT, 2)), (e: unknown) => isFedError(e, 'STORE_DUPLICATE_TX'), 'an old entry still refuses its transaction');
    const b2b = child(b1, 2, ['new']);
    await store.commit([b2b], qcOn(b2b, Phase.COMMIT, 2));
    assert.deepEqual(store.txLocation(txHash(enc('new'))), { height: 2, index: 0, blockHash: b2b.hash });
  } finally { await store.close(); }
  const meta = open({ path: dir });
  assert.equal(meta.openDB({ name: 'meta', encoding: 'string', keyEncoding: 'ordered-binary' }).get('schema'), String(STORE_SCHEMA_VERSION));
  await meta.close();
}));

test('a dropped block is forgotten (also when stored in the same persist); a committed one never is', () => withStore(async (dir) => {
  const b1 = child(genesis, 1, ['a']);
  const bad = child(b1, 2, ['forged']);
  const later = child(b1, 2, ['y']);
  let store = new BlockStore({ path: dir, limits, hashBlock: blockHash });
  const s = safety(2, genesisQC(genesis), genesisQC(genesis));
  await store.persist(s, [b1, bad], []);
  await store.commit([b1], qcOn(b1, Phase.COMMIT, 1));
  await store.persist(s, [later], [], [bad.hash, later.hash, b1.hash]);
  assert.equal(store.blockByHash(bad.hash), undefined, 'the dropped block is gone');
  assert.equal(store.blockByHash(later.hash), undefined, 'stored and dropped in one persist: not kept');
  assert.deepEqual(store.blockAtHeight(1), b1, 'a committed block is never dropped');
  await store.close();
  store = new BlockStore({ path: dir, limits, hashBlock: blockHash });
  assert.deepEqual(store.load(genesis)!.blocks, [], 'a restart does not bring them back');
  await store.close();
}));

test('a store of another chain or another schema version is refused at open, with what to do', () => withStore(async (dir) => {
  let store = new BlockStore({ path: dir, limits, hashBlock: blockHash, chainId: 'store-test' });
  await store.close();
  assert.throws(() => new BlockStore({ path: dir, limits, hashBlock: blockHash, chainId: 'other-chain' }),
    (err) => isFedError(err, 'STORE_WRONG_CHAIN') && /holds chain "store-test"/.test(err.message));
  store = new BlockStore({ path: dir, limits, hashBlock: blockHash, chainId: 'store-test' });
  await store.close();
  // A newer build's store: its schema version is above what this build reads.
  const { open } = await import('lmdb');
  const raw = open({ path: dir });
  const meta = raw.openDB({ name: 'meta', encoding: 'string', keyEncoding: 'ordered-binary' });
  await meta.put('schema', String(STORE_SCHEMA_VERSION + 1));
  await raw.close();
  assert.throws(() => new BlockStore({ path: dir, limits, hashBlock: blockHash, chainId: 'store-test' }),
    (err) => isFedError(err, 'STORE_SCHEMA_UNSUPPORTED') && /newer btcfed/.test(err.message));
  // An older build's store (version 1: headers without their epoch) is refused with what to do.
  const raw1 = open({ path: dir });
  await raw1.openDB({ name: 'meta', encoding: 'string', keyEncoding: 'ordered-binary' }).put('schema', '1');
  await raw1.close();
  assert.throws(() => new BlockStore({ path: dir, limits, hashBlock: blockHash, chainId: 'store-test' }),
    (err) => isFedError(err, 'STORE_SCHEMA_UNSUPPORTED') && new RegExp(`schema version 1; this build reads version ${STORE_SCHEMA_VERSION}\\. No migration`).test(err.message));
}));

test('a store from before versions were recorded: empty, it is taken; holding blocks, it is version 1 and refused', () => withStore(async (dir) => {
  const { open } = await import('lmdb');
  const unrecord = async () => {
    const raw = open({ path: dir });
    await raw.openDB({ name: 'meta', encoding: 'string', keyEncoding: 'ordered-binary' }).remove('schema');
    await raw.close();
  };
  let store = new BlockStore({ path: dir, limits, hashBlock: blockHash });
  await store.close();
  await unrecord();
  store = new BlockStore({ path: dir, limits, hashBlock: blockHash });
  const b1 = child(genesis, 1, ['a']);
  await store.persist(safety(2, genesisQC(genesis), genesisQC(genesis)), [b1], []);
  await store.commit([b1], qcOn(b1, Phase.COMMIT, 1));
  await store.close();
  await unrecord();
  assert.throws(() => new BlockStore({ path: dir, limits, hashBlock: blockHash }),
    (err) => isFedError(err, 'STORE_SCHEMA_UNSUPPORTED') && /schema version 1/.test(err.message));
}));

test('the safety QCs are written when they change, not on every persist; the last ones written come back', () => withStore(async (dir) => {
  const b1 = child(genesis, 1, []);
  const b2 = child(b1, 2, []);
  const locked = qcOn(b1, Phase.PRE_COMMIT, 1);
  const prepare1 = qcOn(b1, Phase.PREPARE, 1);
  const prepare2 = qcOn(b2, Phase.PREPARE, 2);
  let store = new BlockStore({ path: dir, limits, hashBlock: blockHash });
  const meta = () => open({ path: dir, readOnly: true }).openDB({ name: 'meta', encoding: 'string', keyEncoding: 'ordered-binary' });
  await store.persist(safety(1, locked, prepare1), [b1], []);
  await store.persist(safety(2, locked, prepare2), [b2], []);
  await store.persist({ ...safety(3, locked, prepare2), lastVoted: { view: 3, phase: Phase.PREPARE } }, [], []);
  const m = meta();
  assert.ok(!String(m.get('safety')).includes('signatures'), 'the small safety fields carry no QC');
  assert.ok(m.get('safety.lockedQC') && m.get('safety.prepareQC'), 'both QCs stored under their own keys');
  await store.close();
  store = new BlockStore({ path: dir, limits, hashBlock: blockHash });
  const rec = store.load(genesis)!;
  assert.equal(rec.safety.view, 3);
  assert.deepEqual(rec.safety.lastVoted, { view: 3, phase: Phase.PREPARE });
  assert.deepEqual(rec.safety.lockedQC, locked);
  assert.deepEqual(rec.safety.prepareQC, prepare2, 'the changed prepareQC was written, not the first one kept');
  // A reopened store writes its QCs again on the first persist (it does not know what is on disk).
  await store.persist(safety(4, prepare2, prepare2), [], []);
  await store.close();
  store = new BlockStore({ path: dir, limits, hashBlock: blockHash });
  assert.deepEqual(store.load(genesis)!.safety.lockedQC, prepare2);
  await store.close();
}));

test('a safety state written by an earlier build (QCs inline) still loads', () => withStore(async (dir) => {
  const b1 = child(genesis, 1, []);
  const locked = qcOn(b1, Phase.PRE_COMMIT, 1);
  const prepare = qcOn(b1, Phase.PREPARE, 1);
  const root = open({ path: dir, compression: false });
  const b64 = (q: QuorumCert) => Buffer.from(QuorumCertMsg.encode(qcToWire(q)).finish()).toString('base64');
  await root.openDB({ name: 'meta', encoding: 'string', keyEncoding: 'ordered-binary' })
    .put('safety', JSON.stringify({ ...safety(5, locked, prepare), lockedQC: b64(locked), prepareQC: b64(prepare) }));
  await root.close();
  const store = new BlockStore({ path: dir, limits, hashBlock: blockHash });
  const rec = store.load(genesis)!;
  assert.equal(rec.safety.view, 5);
  assert.deepEqual(rec.safety.lockedQC, locked);
  assert.deepEqual(rec.safety.prepareQC, prepare);
  await store.close();
}));

test('prune: bodies and QCs of old heights go, headers, hashes, the tx index and the floor stay (across a reopen); never the tip', () => withStore(async (dir) => {
  let store = new BlockStore({ path: dir, limits, hashBlock: blockHash });
  const chain: Block[] = [];
  let parent = genesis;
  for (let v = 1; v <= 10; v++) {
    const b = child(parent, v, [`t${v}`]);
    await store.commit([b], qcOn(b, Phase.COMMIT, v));
    chain.push(b);
    parent = b;
  }
  assert.equal(store.prunedTo(), 0);
  assert.equal(await store.prune(4, 3), 3, 'at most `max` heights a call');
  assert.equal(await store.prune(4), 4);
  assert.equal(await store.prune(4), 4, 'nothing more to do');
  for (const h of [1, 4]) {
    assert.equal(store.blockAtHeight(h), undefined, `height ${h}: body gone`);
    assert.equal(store.qcFor(chain[h - 1]!.hash), undefined, `height ${h}: QC gone`);
    assert.equal(store.isPruned(h), true);
    assert.deepEqual(store.headerAtHeight(h), chain[h - 1]!.header, `height ${h}: header kept`);
    assert.deepEqual(store.hashAtHeight(h), chain[h - 1]!.hash);
  }
  assert.equal(store.isPruned(5), false);
  assert.deepEqual(store.blockAtHeight(5), chain[4]);
  assert.deepEqual(store.headerAtHeight(5), chain[4]!.header, 'an unpruned header comes from its block');
  assert.equal(store.qcFor(chain[4]!.hash)?.phase, Phase.COMMIT);
  assert.deepEqual(store.txLocation(txHash(enc('t2'))), { height: 2, index: 0, blockHash: chain[1]!.hash }, 'exactly-once still knows pruned transactions');
  assert.equal(await store.prune(1_000, 1_000), 9, 'the committed tip is never pruned');
  assert.deepEqual(store.blockAtHeight(10), chain[9]);
  await store.close();

  store = new BlockStore({ path: dir, limits, hashBlock: blockHash });
  assert.equal(store.prunedTo(), 9, 'the floor is durable');
  assert.equal(store.isPruned(9), true);
  assert.deepEqual(store.headerAtHeight(9), chain[8]!.header);
  assert.equal(store.hasTx(txHash(enc('t9'))), true);
  const b11 = child(chain[9]!, 11, ['t11']);
  await store.commit([b11], qcOn(b11, Phase.COMMIT, 11));
  assert.equal(store.committedHeight(), 11, 'the log goes on above a pruned floor');
  await assert.rejects(store.commit([child(b11, 12, ['t3'])], qcOn(b11, Phase.COMMIT, 12)), (e) => isFedError(e, 'STORE_DUPLICATE_TX'),
    'a pruned height\'s transaction is still refused as committed');
  await store.close();
}));

test('a catch-up asked for survives a reopen, and the end of a join clears it (with the bootstrap mark)', () => withStore(async (dir) => {
  const open = () => new BlockStore({ path: dir, limits, hashBlock: blockHash });
  let store = open();
  assert.equal(store.catchUpRequested(), undefined);
  await store.requestCatchUp('peers 0, 1 pruned the blocks above height 7');
  await store.close();
  store = open();
  assert.equal(store.catchUpRequested(), 'peers 0, 1 pruned the blocks above height 7', 'the next start reads it');
  await store.beginBootstrap(child(genesis, 1, ['a']));
  await store.finishBootstrap();
  assert.equal(store.catchUpRequested(), undefined);
  assert.equal(store.bootstrapping(), undefined);
  await store.close();
}));
