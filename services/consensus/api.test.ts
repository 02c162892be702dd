// The public API over a store with a hole in its committed log (a damaged store): ListBlocks
// and StreamCommits say so with DATA_LOSS and the height, instead of skipping the height
// (ListBlocks once returned a log with a block missing) or waiting for it forever.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import * as grpc from '@grpc/grpc-js';
import { pino } from 'pino';
import { blockHash } from '#libs/crypto/index.ts';
import { genesisBlock, type Block } from '#libs/hotstuff/index.ts';
import { consensusService, type ApiDeps } from './api.ts';

const genesis = genesisBlock('api-test', blockHash);
const at = (height: number): Block => ({ ...genesis, header: { ...genesis.header, height } });

function service(missing: number): ReturnType<typeof consensusService> {
  const store = { committedHeight: () => 5, blockAtHeight: (h: number) => (h === missing ? undefined : at(h)), qcFor: () => undefined };
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
  const store = { committedHeight: () => 39, hashAtHeight: (h: number) => at(h).hash, blockAtHeight: (h: number) => (h <= 39 ? at(h) : undefined), qcFor: () => undefined };
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
