// Joining from a checkpoint, end to end over real parts: a serving member's real LMDB store (a
// chain of two epochs, pruned) answered by its real SyncClient, every frame encoded and decoded
// with the production codec, real SLH-DSA signatures on every QC and approval, and a follower with
// its own real store and epochs. What is fake: the transport (frames handed over in process).
// Shown: the joined store holds the checkpoint as its tip, every height's hash and every
// transaction id below it (exactly-once refuses a pruned height's transaction), the epoch proofs;
// a source serving forged history or a forged checkpoint is refused and blamed, and the join
// finishes from an honest one; following goes on from the checkpoint; a join stopped half-way
// starts again and finishes.

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { blockHash, createSlhDsa, merkleRoot, nextStateHash, paramSpec, reconfigSigningBytes, toHex, txHash, voteSigningBytes } from '#libs/crypto/index.ts';
import { Phase, genesisBlock, type Block, type QuorumCert } from '#libs/hotstuff/index.ts';
import { ValidatorSet, encodeReconfigTx, type Reconfiguration } from '#libs/validators/index.ts';
import { isFedError } from '#libs/errors/index.ts';
import { decodeFrame, type Frame } from '#libs/wire/index.ts';
import { BlockStore } from './block-store.ts';
import { ConsensusEpochs } from './epochs.ts';
import { Follower } from './follower.ts';
import { SyncClient } from './sync.ts';
import { systemClock } from './ports.ts';
import type { SignatureVerifier } from './verifier.ts';

const CHAIN = `join-${process.pid}`;
const dsa = createSlhDsa();
const keys = Array.from({ length: 4 }, () => dsa.generateKeyPair());
const limits = { validatorCount: 4, signatureBytes: paramSpec('slh-dsa-sha2-128f').signatureBytes, maxBlockTxs: 100, maxBlockBytes: 1 << 20 };
const frameLimits = { ...limits, chainId: CHAIN, maxFrameBytes: 64 << 20, maxSyncBlocks: 64, hashBlock: blockHash };
const log = pino({ level: process.env.TEST_LOG ?? 'silent' });
const enc = (s: string) => new TextEncoder().encode(s);
const dirs: string[] = [];
after(() => Promise.all(dirs.map((d) => fs.rm(d, { recursive: true, force: true }))));
const genesis = genesisBlock(CHAIN, blockHash);
const genesisSet = ValidatorSet.fromConfig(keys.map((k, i) => ({ name: `m${i}`, peer_id: `peer-${i}`, public_key: toHex(k.publicKey) })));

function child(parent: Block, txs: Uint8Array[], epoch: number): Block {
  const txRoot = merkleRoot(txs.map((t) => txHash(t)));
  const view = parent.header.height + 1;
  const header = { chainId: CHAIN, epoch, height: view, view, parentHash: parent.hash, proposer: view % 4, timestampMs: view, txRoot, stateHash: nextStateHash(parent.header.stateHash, txRoot) };
  return { header, hash: blockHash(header), txs };
}
function commitQc(b: Block): QuorumCert {
  const bytes = voteSigningBytes({ chainId: CHAIN, epoch: b.header.epoch, phase: Phase.COMMIT, view: b.header.view, blockHash: b.hash });
  return { phase: Phase.COMMIT, view: b.header.view, blockHash: b.hash, signers: [0, 1, 2], signatures: [0, 1, 2].map((i) => dsa.signSync(keys[i]!.secretKey, bytes)) };
}
const tempStore = async () => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'btcfed-join-'));
  dirs.push(dir);
  return new BlockStore({ path: dir, limits, hashBlock: blockHash, chainId: CHAIN });
};

/** A serving member: heights 1–10 in epoch 0 (10 ends it, rotating m3's key — or adding m4), 11–30 in epoch 1; pruned to 25. */
async function server(addM4 = false) {
  const store = await tempStore();
  const chain: Block[] = [genesis];
  const change: Reconfiguration = addM4
    ? { chainId: CHAIN, epoch: 0, ops: [{ kind: 'add', name: 'm4', peerId: 'peer-4', publicKey: dsa.generateKeyPair().publicKey }] }
    : { chainId: CHAIN, epoch: 0, ops: [{ kind: 'rotate', name: 'm3', peerId: 'peer-3', publicKey: dsa.generateKeyPair().publicKey }] };
  const reconfig = encodeReconfigTx({ change, approvals: [0, 1, 2].map((validator) => ({ validator, signature: dsa.signSync(keys[validator]!.secretKey, reconfigSigningBytes(change)) })) });
  for (let h = 1; h <= 30; h++) {
    const txs = h === 10 ? [reconfig] : [enc(`tx at ${h}`), enc(`another at ${h}`)];
    chain.push(child(chain[h - 1]!, txs, h <= 10 ? 0 : 1));
  }
  await store.commit(chain.slice(1, 11), commitQc(chain[10]!));
  await store.endEpoch(0, { last: chain[10]!, suffix: [], qc: commitQc(chain[10]!) });
  await store.commit(chain.slice(11, 31), commitQc(chain[30]!));
  assert.equal(await store.prune(25, 1000), 25);
  return { store, chain, sync: undefined as SyncClient | undefined };
}

/**
 * Answers on their way to a follower (each handed over on a later turn, as a socket would) and
 * what handling them started: a test's end waits for them (quiesce) before it closes the stores,
 * so no answer reaches a closed store after the test ended.
 */
const inflight = new Set<Promise<unknown>>();
async function quiesce(): Promise<void> {
  while (inflight.size > 0) await Promise.allSettled([...inflight]);
}

/** Frames from the follower to source `to` are served by `servers[to]`; answers go back, mangled by `tamper` if given. */
function wire(servers: Array<{ store: BlockStore }>, deliver: () => Follower, tamper: (from: number, f: Frame) => Frame = (_, f) => f) {
  const syncs = servers.map((s, index) => new SyncClient({ chainId: CHAIN, store: s.store, engine: { halted: false, block: () => undefined }, verifier: {} as SignatureVerifier, log, deliver: () => {},
    transport: { send: (_to, bytes) => {
      const f = tamper(index, decodeFrame(bytes, frameLimits));
      const handled = new Promise<unknown>((resolve) => setImmediate(() => {
        const follower = deliver();
        if (f.type === 'checkpoint-response') resolve(follower.onCheckpoint(index, f.requestId, f.epochs, f.tip));
        else if (f.type === 'history-response') resolve(follower.onHistory(index, f.requestId, f.summaries));
        else if (f.type === 'block-response') resolve(follower.onResponse(index, f.requestId, f.blocks, f.epochEnd, f.oldestHeight));
        else resolve(undefined);
      }));
      inflight.add(handled);
      void handled.finally(() => inflight.delete(handled));
    }, broadcast: () => {} } }));
  return {
    send(to: number, bytes: Uint8Array) {
      const f = decodeFrame(bytes, frameLimits);
      const s = syncs[to]!;
      if (f.type === 'checkpoint-request') s.onCheckpointRequest(0, f.requestId, f.fromEpoch);
      else if (f.type === 'history-request') s.onHistoryRequest(0, f.requestId, f.belowHeight, f.max);
      else if (f.type === 'block-request') s.onRequest(0, f.requestId, f.hashes, f.fromHeight, f.maxBlocks);
    },
    broadcast: () => {},
  };
}

async function joiner(sources: number[], servers: Array<{ store: BlockStore }>, tamper?: (from: number, f: Frame) => Frame, bootstrap: 'auto' | 'checkpoint' = 'checkpoint', store?: BlockStore, member?: string) {
  const own = store ?? await tempStore();
  const epochs = ConsensusEpochs.open({ chainId: CHAIN, genesis: genesisSet, member: member ?? 'o0', dsa, store: own });
  const refused: { from: number; reason: string; detail: string }[] = [];
  const started: number[] = [];
  const committed: number[] = [];
  let f!: Follower;
  f = new Follower({ chainId: CHAIN, store: own, genesis, root: { chainId: CHAIN, publicKeys: keys.map((k) => k.publicKey), dsa }, epochs, bootstrap, ...(member ? { member } : {}),
    transport: wire(servers, () => f, tamper), clock: systemClock, log, sources: () => sources,
    epochStarted: (e) => { started.push(e); }, committed: (bs) => committed.push(...bs.map((b) => b.header.height)),
    refused: (from, reason, detail) => refused.push({ from, reason, detail }) });
  f.start();
  return { f, store: own, epochs, refused, started, committed };
}

async function until(what: string, ok: () => boolean, ms = 20_000): Promise<void> {
  for (const t0 = Date.now(); Date.now() - t0 < ms;) {
    if (ok()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`timed out: ${what}`);
}

test('an empty store joins from a pruned member\'s checkpoint: tip, every hash and transaction id below it, the epochs; then follows on', async () => {
  const s = await server();
  const b31 = child(s.chain[30]!, [enc('tx at 31')], 1);
  const b32 = child(b31, [enc('tx at 32')], 1);
  const b33 = child(b32, [enc('tx at 33')], 1);
  // Served in b33's place, with a real QC: a block repeating height 3's transaction.
  const dup = child(b32, [enc('tx at 3')], 1);
  const swap = (_from: number, f: Frame): Frame => (f.type === 'block-response' && f.blocks.some((b) => b.block.header.height === 33)
    ? { ...f, blocks: f.blocks.map((b) => (b.block.header.height === 33 ? { block: dup, qc: commitQc(dup) } : b)) } : f);
  const j = await joiner([0], [s], swap);
  try {
    await until('joined', () => j.f.joined !== undefined);
    assert.deepEqual(j.f.joined && { ...j.f.joined, ms: 0 }, { checkpointHeight: 30, epochs: 1, heights: 29, transactions: 57, ms: 0 });
    assert.equal(j.store.committedHeight(), 30);
    assert.deepEqual(j.store.blockAtHeight(30), s.chain[30], 'the checkpoint is the committed tip, whole');
    assert.equal(j.store.qcFor(s.chain[30]!.hash)?.phase, Phase.COMMIT);
    for (let h = 1; h < 30; h++) {
      assert.equal(j.store.isPruned(h), true);
      assert.equal(toHex(j.store.hashAtHeight(h)!), toHex(s.chain[h]!.hash), `height ${h}'s hash`);
      assert.deepEqual(j.store.headerAtHeight(h), s.chain[h]!.header);
    }
    assert.deepEqual(j.store.txLocation(txHash(enc('tx at 3'))), { height: 3, index: 0, blockHash: s.chain[3]!.hash }, 'a transaction of a height pruned on the server too');
    assert.equal(j.store.bootstrapping(), undefined, 'the store is whole');
    assert.equal(j.epochs.current.number, 1);
    assert.deepEqual(j.started, [1]);
    assert.equal(j.store.endedEpochs().length, 1);
    // Following goes on from the checkpoint: the server commits 31–32, the follower takes them.
    await s.store.commit([b31, b32], commitQc(b32));
    await until('followed past the checkpoint', () => j.store.committedHeight() === 32);
    // Exactly-once holds over the skipped history: a block repeating height 3's transaction is refused.
    await s.store.commit([b33], commitQc(b33));
    await until('the repeat refused', () => j.refused.some((r) => r.reason === 'invalid_blocks'));
    assert.match(j.refused.find((r) => r.reason === 'invalid_blocks')!.detail, /already committed/);
    assert.equal(j.store.committedHeight(), 32);
    assert.equal(j.store.hasTx(txHash(enc('tx at 33'))), false);
  } finally {
    j.f.stop();
    await quiesce();
    await j.store.close();
    await s.store.close();
  }
});

test('a forged checkpoint: refused and blamed on its source; the join finishes from an honest one', async () => {
  const s = await server();
  const forge = (from: number, f: Frame): Frame => {
    if (from !== 0 || f.type !== 'checkpoint-response' || !f.tip) return f;
    const qc = f.tip.qc!;
    return { ...f, tip: { ...f.tip, qc: { ...qc, signatures: qc.signatures.map((sig, i) => (i === 1 ? Uint8Array.from(sig, (b, k) => (k === 9 ? b ^ 1 : b)) : sig)) } } };
  };
  const j = await joiner([0, 1], [s, s], forge);
  try {
    await until('joined', () => j.f.joined !== undefined);
    assert.equal(j.store.committedHeight(), 30);
    assert.deepEqual(j.refused.map((r) => `${r.from}:${r.reason}`), ['0:invalid_checkpoint']);
    assert.match(j.refused[0]!.detail, /tip: .*signature/);
  } finally {
    j.f.stop();
    await quiesce();
    await j.store.close();
    await s.store.close();
  }
});

test('forged history (a transaction id swapped): refused and blamed; nothing of it stored; the join finishes from an honest source', async () => {
  const s = await server();
  let emptyFrom1 = 0;
  const tamper = (from: number, f: Frame): Frame => {
    if (f.type !== 'history-response') return f;
    // Source 1 has nothing the first two times it is asked, so source 0 is asked in between.
    if (from === 1) return emptyFrom1++ < 2 ? { ...f, summaries: [] } : f;
    // Height 27's first transaction id swapped: its header's tx_root gives it away.
    return { ...f, summaries: f.summaries.map((x) => (x.header.height === 27 ? { ...x, txIds: [txHash(enc('never committed')), ...x.txIds.slice(1)] } : x)) };
  };
  const j = await joiner([0, 1], [s, s], tamper);
  try {
    await until('joined', () => j.f.joined !== undefined);
    assert.equal(j.store.committedHeight(), 30);
    assert.deepEqual(j.refused.map((r) => `${r.from}:${r.reason}`), ['0:invalid_history']);
    assert.match(j.refused[0]!.detail, /height 27: its 2 transaction ids do not match the header's tx_root/);
    assert.equal(j.store.hasTx(txHash(enc('never committed'))), false);
    assert.deepEqual(j.store.txLocation(txHash(enc('tx at 27'))), { height: 27, index: 0, blockHash: s.chain[27]!.hash });
  } finally {
    j.f.stop();
    await quiesce();
    await j.store.close();
    await s.store.close();
  }
});

test('auto: a follower told "pruned" joins from a checkpoint; a join stopped half-way starts again at the next start and finishes', async () => {
  const s = await server();
  // The first join gets five heights of history, then nothing more (as if it crashed there).
  let answers = 0;
  const halt = (_from: number, f: Frame): Frame => (f.type === 'history-response' && answers++ > 0 ? { ...f, summaries: [] }
    : f.type === 'history-response' ? { ...f, summaries: f.summaries.slice(0, 5) } : f);
  const first = await joiner([0], [s], halt, 'auto');
  const { store } = first;
  try {
    await until('five heights of history written', () => store.summaryAt(25) !== undefined);
    first.f.stop();
    await quiesce();
    assert.ok(store.bootstrapping(), 'a join under way marks the store as not whole');
    assert.equal(store.committedHeight(), 0, 'and nothing is committed yet');
    assert.equal(store.summaryAt(24), undefined);
    const again = await joiner([0], [s], undefined, 'auto', store);
    try {
      await until('joined again', () => again.f.joined !== undefined);
      assert.equal(store.committedHeight(), 30);
      assert.equal(store.bootstrapping(), undefined);
      assert.equal(again.epochs.current.number, 1);
      for (let h = 1; h <= 30; h++) assert.equal(toHex(store.hashAtHeight(h)!), toHex(s.chain[h]!.hash));
    } finally {
      again.f.stop();
      await quiesce();
    }
  } finally {
    await store.close();
    await s.store.close();
  }
});

test('after a join, a source saying "pruned" of heights just above the checkpoint is passed over: no second join within JOIN_AGAIN_AFTER_MS; following goes on from another', async () => {
  const s = await server();
  let joins = 0;
  let f: Follower | undefined;
  // Source 0 answers every block request after the join with a "pruned" above our tip.
  const lie = (from: number, fr: Frame): Frame => {
    if (fr.type === 'checkpoint-response') joins++;
    return from === 0 && fr.type === 'block-response' && f?.joined ? { ...fr, blocks: [], oldestHeight: 40 } : fr;
  };
  const j = await joiner([0, 1], [s, s], lie, 'auto');
  f = j.f;
  try {
    await until('joined', () => j.f.joined !== undefined);
    assert.equal(joins, 1);
    const pruned = j.f.stats.pruned;
    for (let h = 31; h <= 32; h++) s.chain.push(child(s.chain[h - 1]!, [enc(`tx at ${h}`)], 1));
    await s.store.commit(s.chain.slice(31, 33), commitQc(s.chain[32]!));
    await until('followed on to 32', () => j.store.committedHeight() === 32);
    await until('source 0 said "pruned" again', () => j.f.stats.pruned > pruned);
    assert.equal(joins, 1, 'no second join');
    assert.equal(j.f.status().joining, undefined);
    assert.deepEqual(j.refused, [], 'saying "pruned" of heights above ours is no offence');
  } finally {
    j.f.stop();
    await quiesce();
    await j.store.close();
    await s.store.close();
  }
});

test('a member being added that starts after the change seating it: the checkpoint is its first epoch\'s root, not the source\'s tip', async () => {
  const s = await server(true);
  const j = await joiner([0], [s], undefined, 'checkpoint', undefined, 'm4');
  try {
    await until('joined', () => j.f.joined !== undefined);
    assert.equal(j.f.joined!.checkpointHeight, 10, 'the block that ended epoch 0');
    assert.equal(j.store.committedHeight(), 10);
    assert.deepEqual(j.store.blockAtHeight(10), s.chain[10]);
    assert.equal(j.epochs.current.number, 1);
    assert.equal(j.epochs.current.set.self?.name, 'm4', 'seated in epoch 1');
    assert.deepEqual(j.started, [1], 'told, so it starts again as a validator');
    for (let h = 1; h < 10; h++) assert.equal(toHex(j.store.hashAtHeight(h)!), toHex(s.chain[h]!.hash));
    assert.equal(j.store.hashAtHeight(11), undefined, 'nothing above its root: its engine commits epoch 1 itself');
  } finally {
    j.f.stop();
    await quiesce();
    await j.store.close();
    await s.store.close();
  }
});

test('a join verifies each epoch proof once, however many of its responses walk the proofs it holds again', async () => {
  let verifies = 0;
  const counting = { ...dsa, verifySync: (pk: Uint8Array, m: Uint8Array, sig: Uint8Array) => { verifies++; return dsa.verifySync(pk, m, sig); } };
  // Three epochs, each ended by a parameter change (the set stays: m0–m2 sign every QC and approval).
  const proofs: { last: Block; suffix: []; qc: QuorumCert }[] = [];
  let parent = genesis;
  for (let e = 0; e < 3; e++) {
    const change: Reconfiguration = { chainId: CHAIN, epoch: e, ops: [{ kind: 'params', baseTimeoutMs: 1000 + e, idleHeartbeatMs: 0 }] };
    const tx = encodeReconfigTx({ change, approvals: [0, 1, 2].map((validator) => ({ validator, signature: dsa.signSync(keys[validator]!.secretKey, reconfigSigningBytes(change)) })) });
    const last = child(parent, [tx], e);
    proofs.push({ last, suffix: [], qc: commitQc(last) });
    parent = last;
  }
  const store = await tempStore();
  try {
    const epochs = ConsensusEpochs.open({ chainId: CHAIN, genesis: genesisSet, member: 'o0', dsa: counting, store });
    // As a join walks them: those it holds, with each response's on top.
    epochs.walk(proofs.slice(0, 1));
    const each = verifies;
    assert.ok(each >= 6, `${each} signatures checked for one proof (a quorum's QC and approvals)`);
    epochs.walk(proofs.slice(0, 2));
    epochs.walk(proofs);
    assert.deepEqual(epochs.walk(proofs).map((s) => s.epoch), [1, 2, 3]);
    assert.equal(verifies, 3 * each, 'each proof verified once');
    // The same bytes decoded again (other objects) are the same proofs.
    assert.equal(epochs.walk(structuredClone(proofs)).length, 3);
    assert.equal(verifies, 3 * each);
    // Other bytes where a proof was walked are verified: a QC with its signatures swapped is refused, and the honest ones still walk.
    const [a, b, c] = proofs[1]!.qc.signatures;
    const forged = { ...proofs[1]!, qc: { ...proofs[1]!.qc, signatures: [b!, a!, c!] } };
    assert.throws(() => epochs.walk([proofs[0]!, forged]), (e: unknown) => isFedError(e, 'EPOCH_PROOF_INVALID'));
    assert.deepEqual(epochs.walk(proofs).map((s) => s.epoch), [1, 2, 3]);
  } finally {
    await store.close();
  }
});
