// Serving block requests from a real LMDB block store: responses sized by the real encoding
// against the transport's frame limit, connected to the requester's height (committed log
// upward), one oversized block still served, the work per request bounded (maxBlocks clamped),
// and a per-peer token bucket (in bytes, at least MIN_CHARGE_BYTES per request), repeat refusal and no serving while halted — each refusal counted.

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { blockHash, merkleRoot, nextStateHash, txHash } from '#libs/crypto/index.ts';
import { Phase, genesisBlock, type Block, type HotStuffEngine, type QuorumCert } from '#libs/hotstuff/index.ts';
import { decodeFrame, type FrameLimits } from '#libs/wire/index.ts';
import { BlockStore } from './block-store.ts';
import { MAX_SYNC_BLOCKS, REQUEST_BURST, SyncClient } from './sync.ts';
import { OUTSIDE_BASE } from './ports.ts';
import type { SignatureVerifier } from './verifier.ts';

const CHAIN = `sync-${process.pid}`;
const limits: FrameLimits = { chainId: CHAIN, validatorCount: 4, signatureBytes: 64, maxBlockTxs: 1000, maxBlockBytes: 1 << 20,
  maxFrameBytes: 64 << 20, maxSyncBlocks: 4096, hashBlock: blockHash };
const log = pino({ level: process.env.TEST_LOG ?? 'silent' });
const dirs: string[] = [];
after(() => Promise.all(dirs.map((d) => fs.rm(d, { recursive: true, force: true }))));

function child(parent: Block, txBytes: number, tag: number): Block {
  const txs = [new Uint8Array(txBytes).fill(tag % 251)];
  txs[0]!.set(new TextEncoder().encode(`tx-${tag}`));
  const txRoot = merkleRoot(txs.map((t) => txHash(t)));
  const header = { chainId: CHAIN, epoch: 0, height: parent.header.height + 1, view: parent.header.height + 1, parentHash: parent.hash, proposer: 0,
    timestampMs: 1, txRoot, stateHash: nextStateHash(parent.header.stateHash, txRoot) };
  return { header, hash: blockHash(header), txs };
}
const commitQc = (b: Block): QuorumCert =>
  ({ phase: Phase.COMMIT, view: b.header.view, blockHash: b.hash, signers: [0, 1, 2], signatures: [1, 2, 3].map((i) => new Uint8Array(64).fill(i)) });

async function server(heights: number, txBytes: (h: number) => number) {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'btcfed-sync-'));
  dirs.push(dir);
  const store = new BlockStore({ path: dir, limits, hashBlock: blockHash });
  const chain = [genesisBlock(CHAIN, blockHash)];
  for (let h = 1; h <= heights; h++) {
    const b = child(chain[h - 1]!, txBytes(h), h);
    chain.push(b);
    await store.commit([b], commitQc(b));
  }
  const sent: Uint8Array[] = [];
  const engine = { halted: false, block: () => undefined } as unknown as HotStuffEngine & { halted: boolean };
  let now = 0;
  const transport = { maxFrameBytes: 64 * 1024, send: (_to: number, f: Uint8Array) => { sent.push(f); }, broadcast: () => {} };
  const sync = new SyncClient({ chainId: CHAIN, store, engine, verifier: {} as SignatureVerifier, transport, log, deliver: () => {}, now: () => now });
  const response = () => {
    const f = decodeFrame(sent.pop()!, limits);
    assert.equal(f.type, 'block-response');
    return f.type === 'block-response' ? f.blocks : [];
  };
  return { store, chain, sent, engine, transport, sync, response, tick: (ms: number) => { now += ms; }, close: () => store.close() };
}

test('a response fits the reported frame limit, starts right above the requester, and carries QCs', async () => {
  const s = await server(100, () => 2000);
  try {
    s.sync.onRequest(1, 1, [s.chain[100]!.hash], 10, MAX_SYNC_BLOCKS);
    const frame = s.sent[0]!;
    assert.ok(frame.length <= s.transport.maxFrameBytes, `${frame.length} bytes within ${s.transport.maxFrameBytes}`);
    const blocks = s.response();
    assert.ok(blocks.length > 5 && blocks.length < 64, `cut by bytes: ${blocks.length} blocks`);
    assert.deepEqual(blocks.map((b) => b.block.header.height), blocks.map((_, i) => 11 + i), 'oldest first from the requester\'s height');
    assert.ok(blocks.every((b) => b.qc?.phase === Phase.COMMIT));
  } finally { await s.close(); }
});

test('a single block larger than the budget is still served, alone', async () => {
  const s = await server(3, (h) => (h === 2 ? 100_000 : 10));
  try {
    s.sync.onRequest(1, 1, [s.chain[3]!.hash], 1, MAX_SYNC_BLOCKS);
    assert.deepEqual(s.response().map((b) => b.block.header.height), [2]);
  } finally { await s.close(); }
});

test('the work per request is bounded: maxBlocks is clamped before anything is read', async () => {
  const s = await server(MAX_SYNC_BLOCKS + 10, () => 10);
  try {
    s.sync.onRequest(1, 1, [s.chain[MAX_SYNC_BLOCKS + 10]!.hash], 0, 4096);
    assert.equal(s.response().length, MAX_SYNC_BLOCKS);
  } finally { await s.close(); }
});

test('per peer: repeats and floods are refused and counted, other peers are served; nothing is served while halted', async () => {
  const s = await server(5, () => 10);
  try {
    const ask = (from: number, fromHeight: number) => s.sync.onRequest(from, 1, [s.chain[5]!.hash], fromHeight, 64);
    ask(1, 0);
    ask(1, 0);
    assert.equal(s.sent.length, 1, 'the same request again at once is refused');
    assert.equal(s.sync.refusals.get('1:repeated'), 1);
    for (let i = 0; i < REQUEST_BURST * 2; i++) ask(1, i % 4);
    assert.equal(s.sent.length, REQUEST_BURST, 'a flood is cut to the burst');
    assert.ok(s.sync.refusals.get('1:rate_limited')! >= REQUEST_BURST / 2, 'counted per peer');
    const before = s.sent.length;
    ask(2, 0);
    assert.equal(s.sent.length, before + 1, 'another peer is still served');
    s.tick(10_000);
    ask(1, 1);
    assert.equal(s.sent.length, before + 2, 'the bucket refills');
    (s.engine as { halted: boolean }).halted = true;
    ask(3, 0);
    assert.equal(s.sent.length, before + 2);
    assert.equal(s.sync.refusals.get('3:halted'), 1);
  } finally { await s.close(); }
});

test('peers outside the validator set share one budget: new peer ids do not multiply it, and validators keep theirs', async () => {
  const s = await server(5, () => 10);
  try {
    // 200 Sybil observers, each with a fresh per-peer bucket, one request each.
    for (let k = 0; k < 200; k++) s.sync.onRequest(OUTSIDE_BASE + k, 1, [s.chain[5]!.hash], k % 4, 64);
    assert.ok(s.sent.length <= REQUEST_BURST + 1, `all outsiders together are served about one peer's burst: ${s.sent.length}`);
    assert.ok(s.sent.length >= REQUEST_BURST / 2, `but they are served: ${s.sent.length}`);
    const refused = [...s.sync.refusals].filter(([k]) => k.endsWith(':rate_limited')).reduce((n, [, v]) => n + v, 0);
    assert.equal(refused + s.sent.length, 200, 'every refusal counted');
    const before = s.sent.length;
    s.sync.onRequest(1, 1, [s.chain[5]!.hash], 0, 64);
    assert.equal(s.sent.length, before + 1, 'a validator is still served');
    s.tick(10_000);
    s.sync.onRequest(OUTSIDE_BASE + 500, 1, [s.chain[5]!.hash], 0, 64);
    assert.equal(s.sent.length, before + 2, 'the shared budget refills');
  } finally { await s.close(); }
});

test('below what the server keeps whole (pruned): no blocks, the oldest height it serves; at or above it, served as before', async () => {
  const s = await server(100, () => 200);
  try {
    await s.store.prune(60);
    s.sync.onRequest(1, 1, [], 10, MAX_SYNC_BLOCKS);
    const f = decodeFrame(s.sent.pop()!, limits);
    assert.ok(f.type === 'block-response');
    assert.deepEqual([f.blocks.length, f.oldestHeight], [0, 61]);
    assert.equal(s.sync.prunedAnswers, 1);
    s.tick(1000);
    s.sync.onRequest(1, 2, [], 60, MAX_SYNC_BLOCKS);
    const served = s.response();
    assert.equal(served[0]!.block.header.height, 61, 'from the oldest kept height, the log as before');
    assert.ok(served.every((b) => b.qc?.phase === Phase.COMMIT));
  } finally { await s.close(); }
});

test('asking: an answer "pruned" (oldest_height) is counted (onPruned) and delivers nothing to the engine', async () => {
  const s = await server(3, () => 10);
  try {
    const pruned: Array<[number, number]> = [];
    const delivered: unknown[] = [];
    const asker = new SyncClient({ chainId: CHAIN, store: s.store, engine: s.engine, verifier: {} as SignatureVerifier, transport: s.transport, log,
      deliver: (e) => delivered.push(e), onPruned: (from, oldest) => pruned.push([from, oldest]) });
    asker.fetch(s.chain[3]!.hash, 2, 0);
    await asker.onResponse(2, 1, [], 500);
    assert.deepEqual(pruned, [[2, 500]]);
    assert.deepEqual(delivered, []);
    assert.equal(asker.prunedBy.get(2), 1);
    await asker.onResponse(2, 1, [], 500);
    assert.deepEqual(pruned, [[2, 500]], 'an answer to nothing pending is dropped, not counted');
  } finally { await s.close(); }
});

test('asking: a "pruned" answer at or below the first height asked for contradicts itself: an offence, not a reason to catch up', async () => {
  const s = await server(3, () => 10);
  try {
    const pruned: Array<[number, number]> = [];
    const offences: Array<[number, string]> = [];
    const asker = new SyncClient({ chainId: CHAIN, store: s.store, engine: s.engine, verifier: {} as SignatureVerifier, transport: s.transport, log,
      deliver: () => undefined, onPruned: (from, oldest) => pruned.push([from, oldest]), onOffence: (from, reason) => offences.push([from, reason]) });
    asker.fetch(s.chain[3]!.hash, 2, 40); // asks from height 41
    await asker.onResponse(2, 1, [], 41);
    asker.fetch(s.chain[3]!.hash, 3, 40);
    await asker.onResponse(3, 2, [], 42); // keeps from 42: 41 is gone, a true answer
    assert.deepEqual(offences, [[2, 'invalid_pruned']]);
    assert.deepEqual(pruned, [[3, 42]], 'only the true answer counts toward a catch-up');
  } finally { await s.close(); }
});

test('checkpoint and history requests: same bounds as block requests (repeats, floods, a history answer reads at most the budget of stored bytes)', async () => {
  // Heights of 20 kB each: the history of 300 heights is 6 MB of blocks, the budget ~60 kB.
  const s = await server(300, () => 20_000);
  try {
    s.sync.onHistoryRequest(1, 1, 301, 4096);
    const first = decodeFrame(s.sent.pop()!, limits);
    assert.ok(first.type === 'history-response');
    const read = first.summaries.length * 20_000;
    assert.ok(first.summaries.length >= 1 && read <= s.sync.budget + 20_000, `${first.summaries.length} heights read (${read} bytes) within a budget of ${s.sync.budget}`);
    assert.deepEqual(first.summaries.map((x) => x.header.height), first.summaries.map((_, i) => 300 - i), 'newest first, from right below');
    assert.equal(first.summaries[0]!.txIds.length, 1);
    s.sync.onHistoryRequest(1, 2, 301, 4096);
    assert.equal(s.sync.refusals.get('1:repeated'), 1, 'the same request again at once is refused');
    for (let i = 0; i < REQUEST_BURST * 2; i++) s.sync.onCheckpointRequest(1, 10 + i, i);
    assert.ok(s.sync.refusals.get('1:rate_limited')! > 0, 'a flood of checkpoint requests is cut to the budget');
    // Pruned heights are served from their summaries, a few hundred bytes each: many more fit.
    await s.store.prune(299, 1000);
    s.tick(60_000);
    s.sync.onHistoryRequest(2, 1, 300, 4096);
    const pruned = decodeFrame(s.sent.pop()!, limits);
    assert.ok(pruned.type === 'history-response' && pruned.summaries.length > first.summaries.length * 5, `${pruned.type === 'history-response' ? pruned.summaries.length : 0} pruned heights in one answer`);
    // The checkpoint: no ended epoch, so no proof; the committed tip with its COMMIT QC.
    s.sync.onCheckpointRequest(3, 1, 0);
    const cp = decodeFrame(s.sent.pop()!, limits);
    assert.ok(cp.type === 'checkpoint-response');
    assert.deepEqual([cp.epochs.length, cp.tip?.block.header.height, cp.tip?.qc?.phase], [0, 300, Phase.COMMIT]);
  } finally { await s.close(); }
});
