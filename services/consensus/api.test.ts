// The public API over a store with a hole in its committed log (a damaged store): ListBlocks
// and StreamCommits say so with DATA_LOSS and the height, instead of skipping the height
// (ListBlocks once returned a log with a block missing) or waiting for it forever. Over a real
// LMDB store with pruned heights: BLOCK_PRUNED (OUT_OF_RANGE) naming the oldest height kept,
// headers still served, and a pruned transaction still known as committed.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import * as grpc from '@grpc/grpc-js';
import { pino } from 'pino';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { blockHash, merkleRoot, nextStateHash, txHash } from '#libs/crypto/index.ts';
import { Phase, genesisBlock, type Block } from '#libs/hotstuff/index.ts';
import { TxStatus } from '#libs/gen/btcfed/v1/consensus.pb.ts';
import { BlockStore } from './block-store.ts';
import { consensusService, type ApiDeps } from './api.ts';

const genesis = genesisBlock('api-test', blockHash);
const at = (height: number): Block => ({ ...genesis, header: { ...genesis.header, height } });

function service(missing: number): ReturnType<typeof consensusService> {
  const store = { committedHeight: () => 5, blockAtHeight: (h: number) => (h === missing ? undefined : at(h)), qcFor: () => undefined, isPruned: () => false, prunedTo: () => 0 };
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
    service(99).listBlocks(call({ fromHeight: 1, limit: 10, headersOnly: true }) as never, (e, res) => resolve(e ?? res));
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
  const store = { committedHeight: () => 39, hashAtHeight: (h: number) => at(h).hash, blockAtHeight: (h: number) => (h <= 39 ? at(h) : undefined), qcFor: () => undefined, isPruned: () => false };
  const engine = { view: 50, committed: at(46), halted: false, safety: { lastVoted: { view: 0, phase: 0 }, lockedQC: { view: 0 }, prepareQC: { view: 0 } } };
  const svc = consensusService({ member: 'm0', chainId: 'api-test', self: 0, validators: [], log: pino({ level: 'silent' }), store,
    node: { genesis, failure: undefined, status: () => ({ view: engine.view }) }, pool: { size: 0 } } as unknown as ApiDeps);
  const status = await new Promise<{ committedHeight: number }>((resolve, reject) => {
    svc.getStatus(call({}) as never, (e, res) => (e ? reject(e) : resolve(res as { committedHeight: number })));
  });
  assert.equal(status.committedHeight, 39, 'a client that asks for block committed_height must find it');
  const listed = await new Promise<{ blocks: unknown[] }>((resolve, reject) => {
    svc.listBlocks(call({ fromHeight: 1, limit: 100, headersOnly: true }) as never, (e, res) => (e ? reject(e) : resolve(res as { blocks: unknown[] })));
  });
  assert.equal(listed.blocks.length, status.committedHeight, 'ListBlocks serves every height up to the reported tip');
});

test('pruned heights (a real LMDB store): BLOCK_PRUNED as OUT_OF_RANGE naming the oldest height kept; headers still listed; a pruned transaction still committed', async () => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'btcfed-api-pruned-'));
  const limits = { validatorCount: 4, signatureBytes: 4, maxBlockTxs: 10, maxBlockBytes: 10_000 };
  const store = new BlockStore({ path: dir, limits, hashBlock: blockHash });
  try {
    let parent = genesis;
    for (let h = 1; h <= 40; h++) {
      const txs = [new TextEncoder().encode(`tx-${h}`)];
      const txRoot = merkleRoot(txs.map((t) => txHash(t)));
      const header = { ...parent.header, height: h, view: h, parentHash: parent.hash, txRoot, stateHash: nextStateHash(parent.header.stateHash, txRoot) };
      const b = { header, hash: blockHash(header), txs };
      await store.commit([b], { phase: Phase.COMMIT, view: h, blockHash: b.hash, signers: [0, 1, 2], signatures: [1, 2, 3].map((i) => new Uint8Array(4).fill(i)) });
      parent = b;
    }
    await store.prune(20);
    const svc = consensusService({ member: 'm0', chainId: 'api-test', self: 0, validators: [], log: pino({ level: 'silent' }), store,
      node: { genesis }, pool: { has: () => false } } as unknown as ApiDeps);
    const ask = <T>(method: keyof typeof svc, req: unknown) => new Promise<{ err: grpc.StatusObject | null; res: T }>((resolve) => {
      (svc[method] as (c: unknown, cb: (e: unknown, r: unknown) => void) => void)(call(req), (e, r) => resolve({ err: e as grpc.StatusObject | null, res: r as T }));
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
