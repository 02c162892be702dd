// What the transaction index's merges cost as a history grows: the same merges of 131,072 committed
// ids, each put in key order (keyOrder, as TxIndex does), then written as a sorted run (tx-runs.ts,
// with the run's filter; the compactions it starts counted in the merge that starts them) and, the
// baseline in the same run, as the index wrote them before the runs: put into one LMDB B-tree of
// random 32-byte keys, 4,096 per write transaction. (TxIndex's own work at a merge, the same both
// ways, is left out.)
// Each merge's CPU time (this process with LMDB's writer thread) and the bytes it handed to write(2)
// (Linux /proc/self/io: LMDB writes its pages so), per id, averaged over each group of merges; the
// two ways alternate, each in a data dir of its own. Then lookups of committed and of new ids in
// both, with no filter in front (what a filter's "maybe" and a resubmitted transaction cost).
// Run: node_modules/.bin/node bench/index-growth.ts [--ids 3000000] [--every 4] [--quick]

import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { open } from 'lmdb';
import { TX_INDEX_MERGE_AT, keyOrder } from '../services/consensus/tx-index.ts';
import { TxRuns } from '../services/consensus/tx-runs.ts';
import { ID_BYTES, randomIdSeed } from '#libs/blocks/index.ts';
import { du, printMachine, table } from './support.ts';

const { values: f } = parseArgs({ options: { ids: { type: 'string' }, every: { type: 'string' }, quick: { type: 'boolean', default: false } } });
const MERGES = Math.max(1, Math.round(Number(f.ids ?? (f.quick ? 1_000_000 : 3_000_000)) / TX_INDEX_MERGE_AT));
const EVERY = Math.max(1, Number(f.every ?? 4));
const M = TX_INDEX_MERGE_AT;
const TREE_CHUNK = 4_096;

const cpuMs = (): number => { const c = process.cpuUsage(); return (c.user + c.system) / 1000; };
const written = async (): Promise<number> => Number(/wchar: (\d+)/.exec(await fs.readFile('/proc/self/io', 'utf8').catch(() => ''))?.[1] ?? NaN);

async function main(): Promise<void> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'btcfed-bench-growth-'));
  printMachine('transaction index growth benchmark', [`${MERGES} merges of ${M} ids (${MERGES * M} in all), a row every ${EVERY}`]);
  const runsRoot = open({ path: path.join(dir, 'runs'), compression: false, overlappingSync: false, eventTurnBatching: false });
  const treeRoot = open({ path: path.join(dir, 'tree'), compression: false, overlappingSync: false, eventTurnBatching: false });
  try {
    const meta = runsRoot.openDB<string, string>({ name: 'meta', encoding: 'string', keyEncoding: 'ordered-binary' });
    const index = new TxRuns(runsRoot.openDB<Uint8Array, Uint8Array>({ name: 'txruns', encoding: 'binary', keyEncoding: 'binary' }),
      { write: (_what, body) => runsRoot.transaction(body), meta }, randomIdSeed());
    const tree = treeRoot.openDB<number, Uint8Array>({ name: 'txs', encoding: 'msgpack', keyEncoding: 'binary' });
    const sample: Uint8Array[] = [];
    const rows: string[][] = [];
    let acc = { runsCpu: 0, runsBytes: 0, treeCpu: 0, treeBytes: 0, runsMs: 0, treeMs: 0 };
    for (let m = 1; m <= MERGES; m++) {
      const ids = Array.from({ length: M }, () => randomBytes(32) as Uint8Array);
      for (let k = 0; k < M; k += 100) sample.push(ids[k]!);
      const runs = async (): Promise<void> => {
        const c0 = cpuMs(); const w0 = await written(); const t0 = performance.now();
        const bytes = Buffer.concat(ids);
        const order = keyOrder(bytes, M);
        const sorted = { ids: new Uint8Array(M * ID_BYTES), heights: new Float64Array(M).fill(m), indexes: Uint32Array.from(order) };
        for (let i = 0; i < M; i++) sorted.ids.set(bytes.subarray(order[i]! * ID_BYTES, (order[i]! + 1) * ID_BYTES), i * ID_BYTES);
        await index.add(sorted, () => {});
        await index.settled();
        acc.runsMs += performance.now() - t0; acc.runsCpu += cpuMs() - c0; acc.runsBytes += await written() - w0;
      };
      const treeMerge = async (): Promise<void> => {
        const c0 = cpuMs(); const w0 = await written(); const t0 = performance.now();
        const bytes = Buffer.concat(ids);
        const order = keyOrder(bytes, M);
        for (let s = 0; s < M; s += TREE_CHUNK) {
          await treeRoot.transaction(() => {
            for (let i = s; i < Math.min(M, s + TREE_CHUNK); i++) tree.put(bytes.subarray(order[i]! * 32, order[i]! * 32 + 32), m * 2 ** 20 + order[i]!);
          });
        }
        acc.treeMs += performance.now() - t0; acc.treeCpu += cpuMs() - c0; acc.treeBytes += await written() - w0;
      };
      // Alternating which goes first, so the machine's moods fall on both.
      if (m % 2 === 0) { await runs(); await treeMerge(); } else { await treeMerge(); await runs(); }
      if (m % EVERY === 0 || m === MERGES) {
        const n = (m % EVERY === 0 ? EVERY : m % EVERY) * M;
        const s = index.stats();
        rows.push([String(m * M), (1000 * acc.runsCpu / n).toFixed(2), (acc.runsBytes / n).toFixed(0), `${s.runs} in ${s.levels} levels`, String(Math.round(acc.runsMs / (n / M))),
          (1000 * acc.treeCpu / n).toFixed(2), (acc.treeBytes / n).toFixed(0), String(Math.round(acc.treeMs / (n / M))),
          ((await du(path.join(dir, 'runs'))) / 2 ** 20).toFixed(0), ((await du(path.join(dir, 'tree'))) / 2 ** 20).toFixed(0)]);
        console.log(rows.at(-1)!.join('  '));
        acc = { runsCpu: 0, runsBytes: 0, treeCpu: 0, treeBytes: 0, runsMs: 0, treeMs: 0 };
      }
    }
    console.log(table(['ids indexed', 'runs: CPU µs per id', 'runs: bytes written per id', 'runs', 'runs: ms a merge (wall)',
      'baseline, tree: CPU µs per id', 'tree: bytes written per id', 'tree: ms a merge (wall)', 'runs: MiB on disk', 'tree: MiB on disk'], rows));

    // Lookups with no filter in front, in alternation; the first round faults the files' pages into this process's map.
    const time = (ask: (id: Uint8Array) => boolean, ids: Uint8Array[], expect: boolean): number => {
      const c0 = cpuMs();
      for (const id of ids) if (ask(id) !== expect) throw new Error('a lookup answered wrong');
      return (1000 * (cpuMs() - c0)) / ids.length;
    };
    const got = { runsFound: 0, treeFound: 0, runsNew: 0, treeNew: 0 };
    for (const id of sample) { index.has(id); tree.doesExist(id); }
    for (let r = 0; r < 3; r++) {
      // New ids each round: a miss is remembered by the index, and asked again would not search the runs.
      const fresh = sample.map(() => randomBytes(32) as Uint8Array);
      got.runsFound += time((id) => index.has(id), sample, true) / 3;
      got.treeFound += time((id) => tree.doesExist(id), sample, true) / 3;
      got.runsNew += time((id) => index.has(id), fresh, false) / 3;
      got.treeNew += time((id) => tree.doesExist(id), fresh, false) / 3;
    }
    console.log(table(['lookup, no filter in front (CPU µs)', `runs (${index.stats().runs}, each with its filter)`, 'baseline: tree'], [
      [`a committed id (${sample.length} asked)`, got.runsFound.toFixed(2), got.treeFound.toFixed(2)],
      [`a new id (${sample.length} asked)`, got.runsNew.toFixed(2), got.treeNew.toFixed(2)],
    ]));
  } finally {
    await runsRoot.close();
    await treeRoot.close();
    await fs.rm(dir, { recursive: true, force: true });
  }
}

await main();
