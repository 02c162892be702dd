// What a committed transaction costs one member in the block store and the Merkle tree, step by
// step, against baselines measured in the same run:
//  - commit: BlockStore.commit of blocks into a store already holding --prefill transactions, with
//    the merges of its transaction index (tx-index.ts) that the commits start. The index alone on
//    raw LMDB databases with the same prefill, each transaction asked about twice before its commit
//    (on arrival, in the proposal) and then committed: the two tiers (the real TxIndex: misses
//    remembered, a map entry at commit, merges of --merge-at ids written as sorted runs, tx-runs.ts,
//    and their compactions), against the two tiers before the runs (ids kept in memory, put into a
//    B-tree of random 32-byte keys in key order), schema 3 (two lookups, a no-overwrite put of each
//    id at commit), before schema 3 (two lookups, a lookup, then a msgpack object), and the floor
//    (two lookups, one put of a number at commit). Then lookups alone: a flood of new ids, and ids
//    committed by the prefill asked again, in the runs against in the tree.
//  - the block's Merkle root when its transactions came in batches: from the ids (every leaf hashed
//    again) against from the leaves the batches kept (batchTree).
// Run: node_modules/.bin/node bench/commit-path.ts [--prefill 200000] [--blocks 60] [--block-txs 5000] [--merge-at 131072] [--quick]

import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { open } from 'lmdb';
import { blockHash, merkleRoot, merkleRootOfLeafBytes, sha256, txHash } from '#libs/crypto/index.ts';
import { Phase, genesisBlock, genesisQC, type Block, type QuorumCert } from '#libs/hotstuff/index.ts';
import { batchTree } from '#libs/blocks/index.ts';
import { BlockStore } from '../services/consensus/block-store.ts';
import { TX_INDEX_ABSENT_MAX, TX_INDEX_MERGE_AT, TxIndex } from '../services/consensus/tx-index.ts';
import { RUN_PAGES_PER_WRITE, RUN_PAGE_IDS } from '../services/consensus/tx-runs.ts';
import { printMachine, table } from './support.ts';

const { values: f } = parseArgs({ options: { prefill: { type: 'string' }, blocks: { type: 'string' }, 'block-txs': { type: 'string', default: '5000' }, 'merge-at': { type: 'string' }, quick: { type: 'boolean', default: false } } });
const PREFILL = Number(f.prefill ?? (f.quick ? 50_000 : 200_000));
const BLOCKS = Number(f.blocks ?? (f.quick ? 6 : 60));
const MERGE_AT = Number(f['merge-at'] ?? TX_INDEX_MERGE_AT);
const BLOCK_TXS = Number(f['block-txs']);
const PREFILL_BLOCK = 10_000;
const limits = { validatorCount: 4, signatureBytes: 4, maxBlockTxs: Math.max(PREFILL_BLOCK, BLOCK_TXS), maxBlockBytes: 64 << 20 };
const genesis = genesisBlock('bench-commit', blockHash);

function child(parent: Block, txs: Uint8Array[]): Block {
  const view = parent.header.height + 1;
  const header = { chainId: 'bench-commit', epoch: 0, height: parent.header.height + 1, view, parentHash: parent.hash, proposer: view % 4,
    timestampMs: 1000 + view, txRoot: sha256(Uint8Array.of(view)), stateHash: sha256(Uint8Array.of(view, 1)) };
  return { header, hash: blockHash(header), txs };
}
const qc = (b: Block): QuorumCert => ({ phase: Phase.COMMIT, view: b.header.view, blockHash: b.hash, signers: [0, 1, 2], signatures: [1, 2, 3].map((i) => new Uint8Array(4).fill(i)) });
const txsOf = (n: number) => Array.from({ length: n }, () => randomBytes(250) as Uint8Array);
const perTx = (ms: number, n: number) => (1000 * ms / n).toFixed(2);
/** Bytes this process has handed to write(2) and its kin (Linux; LMDB writes its pages so): what an index way writes to disk. */
const written = async (): Promise<number> => Number(/wchar: (\d+)/.exec(await fs.readFile('/proc/self/io', 'utf8').catch(() => ''))?.[1] ?? NaN);

async function main(): Promise<void> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'btcfed-bench-commit-'));
  printMachine('commit path benchmark', [`prefill ${PREFILL} transactions, ${BLOCKS} blocks of ${BLOCK_TXS}, index merges of ${MERGE_AT}`]);
  try {
    // --- the block store, as the consensus service commits
    const store = new BlockStore({ path: path.join(dir, 'store'), limits, hashBlock: blockHash, txIndex: { mergeAt: MERGE_AT } });
    let tip = genesis;
    for (let done = 0; done < PREFILL; done += PREFILL_BLOCK) {
      const b = child(tip, txsOf(Math.min(PREFILL_BLOCK, PREFILL - done)));
      await store.commit([b], qc(b));
      tip = b;
    }
    await store.flushTxIndex();
    const blocks: Block[] = [];
    for (let i = 0; i < BLOCKS; i++) blocks.push(tip = child(tip, txsOf(BLOCK_TXS)));
    for (const b of blocks) b.txs.forEach((t) => txHash(t)); // warm
    // As the service does: each block stored when proposed, committed later (its body is not written again).
    for (const b of blocks) await store.persist({ view: 1, lockedQC: genesisQC(genesis), prepareQC: genesisQC(genesis), lastVoted: { view: 1, phase: Phase.COMMIT }, newViewTarget: 1, lastCommitView: 0, proposedView: 0 }, [b], []);
    const c0 = process.cpuUsage();
    let t0 = performance.now();
    for (const b of blocks) await store.commit([b], qc(b));
    await store.flushTxIndex(); // the merge under way and the rest: every commit's share
    const commitMs = performance.now() - t0;
    const commitCpu = process.cpuUsage(c0);
    await store.close();

    // --- the index alone, five ways, on raw databases with the same prefill, block by block in
    // alternation, each transaction asked about twice before its commit (on arrival, in the
    // proposal), then committed: the two tiers (TxIndex, prefilled through itself, so its history
    // is in runs; the merges and compactions its commits start counted in the commit that starts
    // them), the two tiers as they were before the runs (the same lookups of a tree, ids kept in
    // memory, then put into the tree in key order, 4,096 a write transaction), schema 3 (a
    // no-overwrite put of a number), before schema 3 (a lookup, a hex key, an object), and the
    // floor (a plain put of a number). CPU time of the process (this thread and LMDB's writer), not
    // wall time: the fsync of each transaction waits off the CPU.
    const root = open({ path: path.join(dir, 'raw'), compression: false, overlappingSync: false, eventTurnBatching: false });
    const ways = ['tiers', 'treeMerge', 'before', 'schema3', 'floor'] as const;
    const dbs = Object.fromEntries(ways.map((w) => [w, root.openDB<unknown, Uint8Array>({ name: w, encoding: 'msgpack', keyEncoding: 'binary' })])) as Record<(typeof ways)[number], ReturnType<typeof root.openDB<unknown, Uint8Array>>>;
    const meta = root.openDB<string, string>({ name: 'meta', encoding: 'string', keyEncoding: 'ordered-binary' });
    const tiers = new TxIndex(dbs.tiers as unknown as ConstructorParameters<typeof TxIndex>[0], root.openDB<Uint8Array, Uint8Array>({ name: 'runs', encoding: 'binary', keyEncoding: 'binary' }),
      { write: (_what, body) => root.transaction(body), meta }, 0, { mergeAt: MERGE_AT });
    let height = 0;
    /** Every 20th id committed by the prefill: asked about again below (a client resubmitting). */
    const committedSample: Uint8Array[] = [];
    for (let done = 0; done < PREFILL; done += PREFILL_BLOCK) {
      const ids = txsOf(Math.min(PREFILL_BLOCK, PREFILL - done)).map(txHash);
      for (let k = 0; k < ids.length; k += 20) committedSample.push(ids[k]!);
      height++;
      await root.transaction(() => {
        for (const w of ways) if (w !== 'tiers') ids.forEach((id, k) => dbs[w].put(id, height * 2 ** 20 + k));
        tiers.add([{ height, ids }]);
      });
      tiers.committed(height);
      await tiers.settled();
    }
    await tiers.merge(height);
    await tiers.settled();
    const prefilledRuns = tiers.stats().runs;
    const cpu = { tiers: 0, treeMerge: 0, before: 0, schema3: 0, floor: 0 };
    const disk = { tiers: 0, treeMerge: 0 };
    let maxMergeMs = 0;
    let maxTreeMergeMs = 0;
    const treePending: Uint8Array[] = [];
    const BASE = height;
    for (let h = 1; h <= BLOCKS; h++) {
      const ids = txsOf(BLOCK_TXS).map(txHash);
      for (const w of ways) {
        const db = dbs[w];
        const c0 = process.cpuUsage();
        // Each transaction is asked about before its commit: on arrival (the mempool) and in the
        // proposal (the block's exactly-once check). Before the two tiers, two lookups in the tree.
        for (let q = 0; q < 2; q++) {
          for (const id of ids) if (w === 'tiers' ? tiers.has(id) : db.doesExist(id)) throw new Error('duplicate');
        }
        if (w === 'tiers') {
          const w0 = await written();
          await root.transaction(() => { tiers.add([{ height: BASE + h, ids }]); });
          tiers.committed(BASE + h);
          const t = performance.now();
          await (h === BLOCKS ? tiers.merge(BASE + h) : tiers.settled());
          await tiers.settled();
          maxMergeMs = Math.max(maxMergeMs, performance.now() - t);
          disk.tiers += await written() - w0;
          const c = process.cpuUsage(c0);
          cpu.tiers += (c.user + c.system) / 1000;
          continue;
        }
        if (w === 'treeMerge') {
          treePending.push(...ids);
          const w0 = await written();
          if (treePending.length >= MERGE_AT || h === BLOCKS) {
            const t = performance.now();
            const sorted = treePending.splice(0).map((id) => Buffer.from(id)).sort(Buffer.compare);
            for (let start = 0; start < sorted.length; start += 4_096) {
              await root.transaction(() => { for (let i = start; i < Math.min(sorted.length, start + 4_096); i++) db.put(sorted[i]!, (BASE + h) * 2 ** 20 + i); });
            }
            maxTreeMergeMs = Math.max(maxTreeMergeMs, performance.now() - t);
          }
          disk.treeMerge += await written() - w0;
          const c = process.cpuUsage(c0);
          cpu.treeMerge += (c.user + c.system) / 1000;
          continue;
        }
        await root.transaction(() => {
          if (w === 'before') {
            const seen = new Set<string>();
            for (const id of ids) {
              const hex = Buffer.from(id).toString('hex');
              if (seen.has(hex) || db.doesExist(id)) throw new Error('duplicate');
              seen.add(hex);
            }
            ids.forEach((id, k) => db.put(id, { height: h, index: k }));
          } else if (w === 'schema3') {
            ids.forEach((id, k) => { if ((db.putSync(id, h * 2 ** 20 + k, { noOverwrite: true }) as unknown) !== true) throw new Error('duplicate'); });
          } else ids.forEach((id, k) => db.put(id, h * 2 ** 20 + k));
        });
        const c = process.cpuUsage(c0);
        cpu[w] += (c.user + c.system) / 1000;
      }
    }
    // A flood of new transactions that never commit (junk a client or a member sends): every one a
    // miss, remembered until the bound, then the older generation dropped. Against the plain lookup.
    const floodIds = Array.from({ length: 3 * TX_INDEX_ABSENT_MAX }, () => randomBytes(32) as Uint8Array);
    let c1 = process.cpuUsage();
    for (const id of floodIds) if (tiers.has(id)) throw new Error('flood id found');
    const floodTiers = process.cpuUsage(c1);
    c1 = process.cpuUsage();
    for (const id of floodIds) if (dbs.floor.doesExist(id)) throw new Error('flood id found');
    const floodPlain = process.cpuUsage(c1);
    // Committed ids asked about again (a client resubmitting old transactions): each one found.
    // Once first, unmeasured, both ways: the first read of a page faults it into this process's map
    // (a run's page of 11 KiB is three 4 KiB pages, a tree's leaf one), which a running member pays
    // once per page, not per question.
    for (const id of committedSample) { tiers.has(id); dbs.floor.doesExist(id); }
    c1 = process.cpuUsage();
    for (const id of committedSample) if (!tiers.has(id)) throw new Error('committed id not found');
    const againRuns = process.cpuUsage(c1);
    c1 = process.cpuUsage();
    for (const id of committedSample) if (!dbs.floor.doesExist(id)) throw new Error('committed id not found');
    const againTree = process.cpuUsage(c1);
    await root.close();
    const n = BLOCKS * BLOCK_TXS;

    // --- what a crash leaves with the memory tier full (MERGE_AT ids not merged): the store opened
    // again rebuilds them from the blocks. A copy of the files after the last commit is that image
    // (every commit is durable before it resolves; nothing else writes).
    const tierDir = path.join(dir, 'tier');
    const full = new BlockStore({ path: tierDir, limits, hashBlock: blockHash, txIndex: { mergeAt: Number.MAX_SAFE_INTEGER } });
    let top = genesis;
    for (let done = 0; done < MERGE_AT; done += PREFILL_BLOCK) {
      const b = child(top, txsOf(Math.min(PREFILL_BLOCK, MERGE_AT - done)));
      await full.commit([b], qc(b));
      top = b;
    }
    await fs.cp(tierDir, path.join(dir, 'crash'), { recursive: true });
    await full.close();
    t0 = performance.now();
    const reopened = new BlockStore({ path: path.join(dir, 'crash'), limits, hashBlock: blockHash });
    const rebuildMs = performance.now() - t0;
    // The tier is typed arrays (libs/blocks id-map.ts), counted exactly by the index itself.
    const { recent, bytes } = reopened.txIndexStats();
    console.log(`after a crash with ${recent} ids in the memory tier: the store opened in ${rebuildMs.toFixed(0)} ms (rebuilt from ${top.header.height} blocks); ` +
      `the index's tables take ${(bytes / 2 ** 20).toFixed(1)} MiB, ${(bytes / recent).toFixed(0)} bytes per id`);
    await reopened.close();

    // --- the block's Merkle root, its transactions in batches of 500
    const ids = txsOf(BLOCK_TXS).map(txHash);
    const batches = Array.from({ length: Math.ceil(ids.length / 500) }, (_, i) => batchTree(ids.slice(i * 500, (i + 1) * 500)));
    const fromLeaves = () => {
      const leaves = new Uint8Array(32 * ids.length);
      batches.forEach((b, i) => leaves.set(b.leaves, i * 500 * 32));
      return merkleRootOfLeafBytes(leaves);
    };
    // Both warmed up (compiled), then measured in alternation so the machine's moods fall on both.
    for (let r = 0; r < 5; r++) { merkleRoot(ids); fromLeaves(); }
    const rounds = 40;
    let fromIdsMs = 0;
    let fromLeavesMs = 0;
    for (let r = 0; r < rounds; r++) {
      t0 = performance.now();
      merkleRoot(ids);
      fromIdsMs += performance.now() - t0;
      t0 = performance.now();
      fromLeaves();
      fromLeavesMs += performance.now() - t0;
    }

    const writes = Math.ceil(MERGE_AT / RUN_PAGE_IDS / RUN_PAGES_PER_WRITE);
    const runs = tiers.stats().runs;
    console.log(`the two tiers: prefilled into ${prefilledRuns.runs} runs over ${prefilledRuns.levels} levels (${prefilledRuns.compactions} compactions); then ${tiers.stats().merges} merges, ${runs.runs} runs at the end; `
      + `the longest merge (with the compactions it started) took ${maxMergeMs.toFixed(0)} ms of wall time, a merge's run in ${writes} write transactions; before the runs, the longest merge into the tree took ${maxTreeMergeMs.toFixed(0)} ms in ${Math.ceil(MERGE_AT / 4_096)}`);
    console.log(table(['step', 'µs per transaction'], [
      ['BlockStore.commit of a stored block, wall (with its fsync)', perTx(commitMs, n)],
      ['BlockStore.commit of a stored block, CPU', perTx((commitCpu.user + commitCpu.system) / 1000, n)],
      ['index, asked twice then committed, CPU: two tiers (misses remembered, merged as sorted runs)', perTx(cpu.tiers, n)],
      ['  baseline: the tree\'s lookups, ids in memory then put into the tree in key order (the merge before the runs)', perTx(cpu.treeMerge, n)],
      ['index, bytes written per transaction (its commit write, merges, compactions): sorted runs', (disk.tiers / n).toFixed(0)],
      ['  baseline: key-ordered puts into the tree (ids only: no commit write)', (disk.treeMerge / n).toFixed(0)],
      ['  baseline: schema 3 (two lookups, a no-overwrite put of a number at commit)', perTx(cpu.schema3, n)],
      ['  baseline: before schema 3 (two lookups, then a lookup, a hex key, an object)', perTx(cpu.before, n)],
      ['  floor: two lookups, a plain put of a number', perTx(cpu.floor, n)],
      [`a flood of ${floodIds.length} new ids, each asked once, CPU: two tiers (misses remembered, bounded)`, perTx((floodTiers.user + floodTiers.system) / 1000, floodIds.length)],
      ['  baseline: a lookup in the tree', perTx((floodPlain.user + floodPlain.system) / 1000, floodIds.length)],
      [`${committedSample.length} ids committed before the run, asked again (a client resubmitting), CPU: the runs`, perTx((againRuns.user + againRuns.system) / 1000, committedSample.length)],
      ['  baseline: a lookup in the tree', perTx((againTree.user + againTree.system) / 1000, committedSample.length)],
      ['block Merkle root from the batches\' leaves', perTx(fromLeavesMs, rounds * ids.length)],
      ['  baseline: from the ids (every leaf hashed again)', perTx(fromIdsMs, rounds * ids.length)],
    ]));
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}

await main();
