// The public API over a store with a hole in its committed log (a damaged store): ListBlocks
// and StreamCommits say so with DATA_LOSS and the height, instead of skipping the height
// (ListBlocks once returned a log with a block missing) or waiting for it forever. Over a real
// LMDB store with pruned heights: BLOCK_PRUNED (OUT_OF_RANGE) naming the oldest height kept,
// headers still served, and a pruned transaction still known as committed. A read's synchronous
// work, slice by slice, is charged to its read CPU, and so is sending its answer.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import * as grpc from '@grpc/grpc-js';
import { pino } from 'pino';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { blockHash, merkleRoot, nextStateHash, txHash, verifyMerkleProof } from '#libs/crypto/index.ts';
import { Phase, genesisBlock, type Block } from '#libs/hotstuff/index.ts';
import { GetBlockResponse, ListBlocksResponse, StreamCommitsResponse, TxStatus } from '#libs/gen/btcfed/v1/consensus.pb.ts';
import { Block as BlockMsg } from '#libs/gen/btcfed/v1/wire.pb.ts';
import { blockToWire, qcToWire } from '#libs/wire/index.ts';
import { BlockStore } from './block-store.ts';
import { CONSENSUS_SERVICE, consensusService, type ApiDeps } from './api.ts';
import { ReadCpu } from './read-cpu.ts';

const genesis = genesisBlock('api-test', blockHash);
const at = (height: number): Block => ({ ...genesis, header: { ...genesis.header, height } });
/** A block as the store keeps it (stored-reads.ts). */
const stored = (b: Block) => ({ hash: b.hash, block: BlockMsg.encode(blockToWire(b)).finish(), qc: undefined });
/** An answer as a client reads it: through the served definition's serializer, then decoded. */
function wire<T>(method: 'getBlock' | 'listBlocks' | 'getStatus' | 'getTransaction', res: unknown): T {
  const m = CONSENSUS_SERVICE[method] as unknown as { responseSerialize(v: unknown): Buffer; responseDeserialize(b: Buffer): unknown };
  return m.responseDeserialize(m.responseSerialize(res)) as T;
}

function service(missing: number): ReturnType<typeof consensusService> {
  const store = { committedHeight: () => 5, blockAtHeight: (h: number) => (h === missing ? undefined : at(h)),
    storedAtHeight: (h: number) => (h === missing ? undefined : stored(at(h))), qcFor: () => undefined, isPruned: () => false, prunedTo: () => 0 };
  return consensusService({ member: 'm0', chainId: 'api-test', self: 0, validators: [], log: pino({ level: 'silent' }), store } as unknown as ApiDeps);
}

function call<Req>(request: Req): EventEmitter & { request: Req; getPath(): string; cancelled: boolean; write(x: unknown): boolean; end(): void } {
  return Object.assign(new EventEmitter(), { request, getPath: () => '/test', cancelled: false, write: () => true, end: () => {} });
}

test('ListBlocks over a hole in the committed log fails with DATA_LOSS naming the height', async () => {
  const err = await new Promise<grpc.StatusObject | null>((resolve) => {
    service(3).listBlocks(call({ fromHeight: 1, limit: 10, headersOnly: true }) as never, (e) => resolve(e as grpc.StatusObject | null));
  });
  assert.equal(err?.code, grpc.status.DATA_LOSS);
  assert.match(String(err?.details), /height 3/);
  const ok = await new Promise<unknown>((resolve) => {
    service(99).listBlocks(call({ fromHeight: 1, limit: 10, headersOnly: true }) as never, (e, res) => resolve(e ?? wire('listBlocks', res)));
  });
  assert.equal((ok as { blocks: unknown[] }).blocks.length, 5, 'without a hole: every committed block');
});

test('StreamCommits over a hole ends with DATA_LOSS instead of waiting forever', async () => {
  const c = call({ fromHeight: 1, headersOnly: true });
  const written: unknown[] = [];
  c.write = (x) => { written.push(x); return true; };
  const err = await new Promise<grpc.StatusObject>((resolve) => {
    c.once('error', resolve);
    service(3).streamCommits(c as never);
  });
  assert.equal(err.code, grpc.status.DATA_LOSS);
  assert.equal(written.length, 2, 'heights 1 and 2 were sent first');
});

test('GetStatus reports the committed tip the store serves, not the engine\'s tip still being written', async () => {
  // The engine has decided up to 46; the store has written the commits up to 39 so far.
  const store = { committedHeight: () => 39, hashAtHeight: (h: number) => at(h).hash, blockAtHeight: (h: number) => (h <= 39 ? at(h) : undefined),
    storedAtHeight: (h: number) => (h <= 39 ? stored(at(h)) : undefined), qcFor: () => undefined, isPruned: () => false };
  const engine = { view: 50, committed: at(46), halted: false, safety: { lastVoted: { view: 0, phase: 0 }, lockedQC: { view: 0 }, prepareQC: { view: 0 } } };
  const svc = consensusService({ member: 'm0', chainId: 'api-test', self: 0, validators: [], log: pino({ level: 'silent' }), store,
    node: { genesis, failure: undefined, status: () => ({ view: engine.view }) }, pool: { size: 0 } } as unknown as ApiDeps);
  const status = await new Promise<{ committedHeight: number }>((resolve, reject) => {
    svc.getStatus(call({}) as never, (e, res) => (e ? reject(e) : resolve(res as { committedHeight: number })));
  });
  assert.equal(status.committedHeight, 39, 'a client that asks for block committed_height must find it');
  const listed = await new Promise<{ blocks: unknown[] }>((resolve, reject) => {
    svc.listBlocks(call({ fromHeight: 1, limit: 100, headersOnly: true }) as never, (e, res) => (e ? reject(e) : resolve(wire('listBlocks', res))));
  });
  assert.equal(listed.blocks.length, status.committedHeight, 'ListBlocks serves every height up to the reported tip');
});

/** A real LMDB block store with `heights` committed blocks, `perBlock` transactions each ('tx-H' first), each with a QC. */
async function storeOf(heights: number, perBlock: number): Promise<{ dir: string; store: BlockStore }> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'btcfed-api-store-'));
  const limits = { validatorCount: 4, signatureBytes: 4, maxBlockTxs: 10, maxBlockBytes: 10_000 };
  const store = new BlockStore({ path: dir, limits, hashBlock: blockHash });
  let parent = genesis;
  for (let h = 1; h <= heights; h++) {
    const txs = Array.from({ length: perBlock }, (_, i) => new TextEncoder().encode(i === 0 ? `tx-${h}` : `tx-${h}-${i}`));
    const txRoot = merkleRoot(txs.map((t) => txHash(t)));
    const header = { ...parent.header, height: h, view: h, parentHash: parent.hash, txRoot, stateHash: nextStateHash(parent.header.stateHash, txRoot) };
    const b = { header, hash: blockHash(header), txs };
    await store.commit([b], { phase: Phase.COMMIT, view: h, blockHash: b.hash, signers: [0, 1, 2], signatures: [1, 2, 3].map((i) => new Uint8Array(4).fill(i + h)) });
    parent = b;
  }
  return { dir, store };
}

test('GetBlock, ListBlocks and StreamCommits answer the stored bytes: byte for byte what encoding the decoded block and QC gives', async () => {
  const { dir, store } = await storeOf(12, 3);
  try {
    await store.prune(4);
    const svc = consensusService({ member: 'm0', chainId: 'api-test', self: 0, validators: [], log: pino({ level: 'silent' }), store,
      node: { genesis }, pool: { has: () => false },
      nextCommit: (signal: AbortSignal) => new Promise((resolve) => signal.addEventListener('abort', resolve)) } as unknown as ApiDeps);
    const served = (method: 'getBlock' | 'listBlocks', req: unknown) => new Promise<Buffer>((resolve, reject) => {
      (svc[method] as (c: unknown, cb: (e: unknown, r: unknown) => void) => void)(call(req),
        (e, r) => (e ? reject(e as Error) : resolve((CONSENSUS_SERVICE[method] as unknown as { responseSerialize(v: unknown): Buffer }).responseSerialize(r))));
    });
    // What the answers were before they were served from the store's bytes: decoded, then encoded.
    const decoded = (h: number, headersOnly: boolean): GetBlockResponse => {
      if (headersOnly && store.isPruned(h)) return { block: blockToWire({ header: store.headerAtHeight(h)!, hash: store.hashAtHeight(h)!, txs: [] }), blockHash: store.hashAtHeight(h)!, qc: undefined };
      const b = store.blockAtHeight(h)!;
      const qc = store.qcFor(b.hash);
      return { block: blockToWire(headersOnly ? { ...b, txs: [] } : b), blockHash: b.hash, qc: qc ? qcToWire(qc) : undefined };
    };
    for (let h = 5; h <= 12; h++) {
      assert.deepEqual(await served('getBlock', { by: { $case: 'height', value: h } }), Buffer.from(GetBlockResponse.encode(decoded(h, false)).finish()), `GetBlock ${h}`);
    }
    for (const headersOnly of [false, true]) {
      const from = headersOnly ? 2 : 5;
      const expected = ListBlocksResponse.encode({ blocks: Array.from({ length: 13 - from }, (_, i) => decoded(from + i, headersOnly)) }).finish();
      assert.deepEqual(await served('listBlocks', { fromHeight: from, limit: 100, headersOnly }), Buffer.from(expected), `ListBlocks headersOnly=${headersOnly}`);
    }
    for (const headersOnly of [false, true]) {
      const from = headersOnly ? 2 : 5;
      const c = call({ fromHeight: from, headersOnly });
      const written: Buffer[] = [];
      const serialize = (CONSENSUS_SERVICE.streamCommits as unknown as { responseSerialize(v: unknown): Buffer }).responseSerialize;
      const all = new Promise<void>((resolve) => {
        c.write = (x) => { written.push(serialize(x)); if (from + written.length > 12) resolve(); return true; };
      });
      svc.streamCommits(c as never);
      await all;
      c.cancelled = true;
      c.emit('cancelled');
      assert.deepEqual(written, Array.from({ length: 13 - from }, (_, i) => Buffer.from(StreamCommitsResponse.encode({ block: decoded(from + i, headersOnly) }).finish())),
        `StreamCommits headersOnly=${headersOnly}`);
    }
    assert.equal(wire<GetBlockResponse>('getBlock', { block: undefined, blockHash: new Uint8Array(0), qc: undefined }).block, undefined,
      'an answer that is a message is still encoded as one');
  } finally {
    await store.close();
    await fs.rm(dir, { recursive: true, force: true });
  }
});

test('inclusion proofs from kept trees: valid for every transaction of a block, read once; pruned is said as pruned though the tree is kept', async () => {
  const { dir, store } = await storeOf(12, 5);
  try {
    let reads = 0;
    const counted = new Proxy(store, { get: (target, key) => {
      if (key === 'blockAtHeight') return (h: number) => { reads++; return target.blockAtHeight(h); };
      const v: unknown = Reflect.get(target, key);
      return typeof v === 'function' ? v.bind(target) : v;
    } });
    const svc = consensusService({ member: 'm0', chainId: 'api-test', self: 0, validators: [], log: pino({ level: 'silent' }), store: counted,
      node: { genesis }, pool: { has: () => false } } as unknown as ApiDeps);
    const prove = (tx: Uint8Array) => new Promise<{ err: grpc.StatusObject | null; res: { index: number; txCount: number; proof: Uint8Array[]; header: { txRoot: Uint8Array } } }>((resolve) => {
      svc.getTransaction(call({ txHash: txHash(tx), withProof: true }) as never, (e, r) => resolve({ err: e as grpc.StatusObject | null, res: r as never }));
    });
    const enc = (t: string) => new TextEncoder().encode(t);
    for (const t of ['tx-9', 'tx-9-1', 'tx-9-2', 'tx-9-3', 'tx-9-4', 'tx-9-2']) {
      const { err, res } = await prove(enc(t));
      assert.equal(err, null, t);
      assert.equal(res.txCount, 5);
      assert.ok(verifyMerkleProof(txHash(enc(t)), res.index, res.txCount, res.proof, res.header.txRoot), `${t}: the proof verifies against the header's root`);
    }
    assert.equal(reads, 1, 'the block was read once for its six proofs');
    await store.prune(10);
    const gone = await prove(enc('tx-9-1'));
    assert.equal(gone.err?.code, grpc.status.OUT_OF_RANGE);
    assert.match(String(gone.err?.details), /committed at height 9, but its proof needs that block, which is pruned/);
  } finally {
    await store.close();
    await fs.rm(dir, { recursive: true, force: true });
  }
});

test('pruned heights (a real LMDB store): BLOCK_PRUNED as OUT_OF_RANGE naming the oldest height kept; headers still listed; a pruned transaction still committed', async () => {
  const { dir, store } = await storeOf(40, 1);
  try {
    await store.prune(20);
    const svc = consensusService({ member: 'm0', chainId: 'api-test', self: 0, validators: [], log: pino({ level: 'silent' }), store,
      node: { genesis }, pool: { has: () => false } } as unknown as ApiDeps);
    const ask = <T>(method: keyof typeof svc, req: unknown) => new Promise<{ err: grpc.StatusObject | null; res: T }>((resolve) => {
      (svc[method] as (c: unknown, cb: (e: unknown, r: unknown) => void) => void)(call(req),
        (e, r) => resolve({ err: e as grpc.StatusObject | null, res: e ? (r as T) : wire<T>(method as 'getBlock', r) }));
    });
    const got = await ask('getBlock', { by: { $case: 'height', value: 5 } });
    assert.equal(got.err?.code, grpc.status.OUT_OF_RANGE);
    assert.match(String(got.err?.details), /block 5 is pruned.*from height 21/);
    assert.equal((await ask('getBlock', { by: { $case: 'height', value: 21 } })).err, null, 'the oldest kept height is served');
    const bodies = await ask('listBlocks', { fromHeight: 1, limit: 5, headersOnly: false });
    assert.equal(bodies.err?.code, grpc.status.OUT_OF_RANGE);
    const headers = await ask<{ blocks: { blockHash: Uint8Array; block: { header: { height: number } }; qc?: unknown }[] }>('listBlocks', { fromHeight: 19, limit: 4, headersOnly: true });
    assert.equal(headers.err, null);
    assert.deepEqual(headers.res.blocks.map((b) => b.block.header.height), [19, 20, 21, 22], 'headers across the pruned floor');
    assert.deepEqual(headers.res.blocks.map((b) => b.qc !== undefined), [false, false, true, true], 'pruned heights come without their QC');
    assert.deepEqual(Buffer.from(headers.res.blocks[0]!.blockHash), Buffer.from(store.hashAtHeight(19)!));
    const tx7 = txHash(new TextEncoder().encode('tx-7'));
    const plain = await ask<{ status: number; height: number }>('getTransaction', { txHash: tx7, withProof: false });
    assert.deepEqual([plain.res.status, plain.res.height], [TxStatus.TX_STATUS_COMMITTED, 7], 'still known as committed');
    const proof = await ask('getTransaction', { txHash: tx7, withProof: true });
    assert.equal(proof.err?.code, grpc.status.OUT_OF_RANGE);
    assert.match(String(proof.err?.details), /committed at height 7, but its proof needs that block, which is pruned/);
  } finally {
    await store.close();
    await fs.rm(dir, { recursive: true, force: true });
  }
});

test('during a join from a checkpoint: a transaction of the history written ahead of the committed tip is not yet committed as this member serves it (no DATA_LOSS for its proof)', async () => {
  const { dir, store } = await storeOf(2, 1);
  try {
    let parent = store.blockAtHeight(2)!;
    const ahead: Block[] = [];
    for (const h of [3, 4]) {
      const txs = [new TextEncoder().encode(`tx-${h}`)];
      const txRoot = merkleRoot(txs.map((t) => txHash(t)));
      const header = { ...parent.header, height: h, view: h, parentHash: parent.hash, txRoot, stateHash: nextStateHash(parent.header.stateHash, txRoot) };
      parent = { header, hash: blockHash(header), txs };
      ahead.push(parent);
    }
    await store.beginBootstrap(ahead.at(-1)!);
    await store.importHistory(ahead.map((b) => ({ summary: { header: b.header, txIds: b.txs.map((t) => txHash(t)) }, hash: b.hash })));
    const svc = consensusService({ member: 'm0', chainId: 'api-test', self: 0, validators: [], log: pino({ level: 'silent' }), store,
      node: { genesis }, pool: { has: () => false } } as unknown as ApiDeps);
    const ask = (req: unknown) => new Promise<{ err: grpc.StatusObject | null; res: { status: number; height: number } }>((resolve) => {
      (svc.getTransaction as (c: unknown, cb: (e: unknown, r: unknown) => void) => void)(call(req),
        (e, r) => resolve({ err: e as grpc.StatusObject | null, res: e ? (r as { status: number; height: number }) : wire('getTransaction', r) }));
    });
    const tx3 = txHash(new TextEncoder().encode('tx-3'));
    for (const withProof of [false, true]) {
      const got = await ask({ txHash: tx3, withProof });
      assert.equal(got.err, null, `withProof ${withProof}: ${got.err?.details}`);
      assert.equal(got.res.status, TxStatus.TX_STATUS_UNKNOWN, 'above the committed tip (2): not committed here yet');
    }
    const tx2 = await ask({ txHash: txHash(new TextEncoder().encode('tx-2')), withProof: true });
    assert.deepEqual([tx2.err, tx2.res.status, tx2.res.height], [null, TxStatus.TX_STATUS_COMMITTED, 2], 'the committed ones as before');
  } finally {
    await store.close();
    await fs.rm(dir, { recursive: true, force: true });
  }
});

test('ListBlocks charges its read CPU each slice of store reads, its encoding and the sending of its answer', async () => {
  // Each block read costs 1 ms of busy CPU, as a slow LMDB read would.
  const spin = (ms: number) => { const t = performance.now(); while (performance.now() - t < ms); };
  const store = { committedHeight: () => 20, storedAtHeight: (h: number) => { spin(1); return stored(at(h)); }, isPruned: () => false, prunedTo: () => 0 };
  const charges: number[] = [];
  const guard = { read: () => new ReadCpu((ms) => charges.push(ms)), hold: async () => undefined };
  const svc = consensusService({ member: 'm0', chainId: 'api-test', self: 0, validators: [], log: pino({ level: 'silent' }), store, guard } as unknown as ApiDeps);
  let sendMs = 0;
  const res = await new Promise<unknown>((resolve, reject) => {
    svc.listBlocks(call({ fromHeight: 1, limit: 20, headersOnly: false }) as never, (e, r) => {
      if (e) { reject(e as Error); return; }
      spin(3); // grpc-js serializing and framing the answer, inside this callback
      sendMs = 3;
      resolve(wire('listBlocks', r));
    });
  });
  assert.equal((res as { blocks: unknown[] }).blocks.length, 20);
  // Slices of 8, 8 and 4 blocks, the encoding, the send: each a charge.
  assert.equal(charges.length, 5, `charges: ${charges.map((c) => c.toFixed(2)).join(', ')}`);
  // At least its blocks' time each (no upper bound: a loaded machine can take the thread away
  // inside a slice, and the yields between slices are too short to tell from that).
  for (const [k, blocks] of [8, 8, 4].entries()) assert.ok(charges[k]! >= blocks, `slice ${k}: ${charges[k]} ms for ${blocks} blocks`);
  assert.ok(charges[4]! >= sendMs, `the send: ${charges[4]} ms`);
});
