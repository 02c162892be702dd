// The index's sorted runs (tx-runs.ts) on a real LMDB environment: lookups through the fence and
// the pages, compaction of runs into larger ones, what an open finds after a crash, and what a
// corrupt listing does (refused at open, or a compaction that gives up and loses nothing).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { open, type RootDatabase } from 'lmdb';
import { isFedError } from '#libs/errors/index.ts';
import { RUN_FANOUT, TxRuns, compareIds, pageKey, type SortedEntries } from './tx-runs.ts';

/** The counts of a stats() (its bytes and reads vary with the ids). */
const shape = ({ runs, count, levels, compactions, failed }: ReturnType<TxRuns['stats']>) => ({ runs, count, levels, compactions, failed });

interface Env { root: RootDatabase; runs: TxRuns; db: ReturnType<RootDatabase['openDB']>; meta: ReturnType<RootDatabase['openDB']> }

function openEnv(dir: string, pageIds: number, filtersMaxBytes?: number): Env {
  const root = open({ path: dir, compression: false });
  const db = root.openDB({ name: 'txruns', encoding: 'binary', keyEncoding: 'binary' });
  const meta = root.openDB({ name: 'meta', encoding: 'string', keyEncoding: 'ordered-binary' });
  try {
    const runs = new TxRuns(db as never, { write: (_what, body) => root.transaction(body), meta: meta as never }, [5, 6], pageIds, filtersMaxBytes);
    return { root, runs, db, meta };
  } catch (err) {
    void root.close();
    throw err;
  }
}

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'btcfed-txruns-'));
  try { await fn(dir); } finally { await fs.rm(dir, { recursive: true, force: true }); }
}

/** `n` random ids in key order, each at (height, its position). */
function entries(n: number, height: number): SortedEntries & { list: Buffer[] } {
  const list = Array.from({ length: n }, () => randomBytes(32)).sort(Buffer.compare);
  return { list, ids: Buffer.concat(list), heights: new Float64Array(n).fill(height), indexes: Uint32Array.from(list.keys()) };
}

test('a run answers every id it holds with its place, and none it does not: ids before its first page, between pages, past its end, one bit off', () => withDir(async (dir) => {
  const env = openEnv(dir, 64);
  try {
    const e = entries(5_000, 2 ** 40);
    await env.runs.add(e, () => {});
    assert.deepEqual(shape(env.runs.stats()), { runs: 1, count: 5_000, levels: 1, compactions: 0, failed: 0 });
    e.list.forEach((id, k) => assert.deepEqual(env.runs.get(id), { height: 2 ** 40, index: k }));
    const near = (id: Buffer, d: number) => { const x = Buffer.from(id); x[31] = (x[31]! + d) & 0xff; return x; };
    for (const id of e.list.filter((_, k) => k % 64 === 0)) {
      // Each page's first id and its neighbours (the fence's own boundaries).
      for (const other of [near(id, -1), near(id, 1)]) if (!e.list.some((x) => x.equals(other))) assert.equal(env.runs.has(other), false);
    }
    assert.equal(env.runs.has(Buffer.alloc(32, 0)), false, 'before the first page');
    assert.equal(env.runs.has(Buffer.alloc(32, 0xff)), false, 'past the last');
    for (let i = 0; i < 2_000; i++) assert.equal(env.runs.has(randomBytes(32)), false);
  } finally { await env.root.close(); }
}));

test('each run\'s filter spares the page reads of the runs that do not hold an id: made at the merge, and built in the background after an open', () => withDir(async (dir) => {
  let env = openEnv(dir, 16);
  const lists: Buffer[][] = [];
  for (let h = 1; h <= 3; h++) { const e = entries(2_000, h); lists.push(e.list); await env.runs.add(e, () => {}); }
  // Three runs of one size: the oldest is read last. Its ids, and ids in none.
  const reads = (ids: Buffer[], held: boolean): number => {
    const before = env.runs.stats().reads;
    for (const id of ids) assert.equal(env.runs.has(id), held);
    return env.runs.stats().reads - before;
  };
  const oldest = lists[0]!.slice(0, 1_000);
  try {
    assert.equal(env.runs.stats().filtered, 3, 'a merge makes its run\'s filter');
    assert.ok(reads(oldest, true) <= 1_150, 'about one page read per id held');
    assert.ok(reads(Array.from({ length: 1_000 }, () => randomBytes(32)), false) <= 150, 'almost none per id in no run');
  } finally { await env.root.close(); }
  env = openEnv(dir, 16);
  try {
    assert.equal(env.runs.stats().filtered, 0, 'runs found at open: no filter yet');
    assert.ok(reads(oldest.slice(0, 100), true) >= 250, 'without filters every newer run is read first');
    for (let i = 0; i < 500 && env.runs.stats().filtered < 3; i++) await new Promise((r) => setTimeout(r, 5));
    assert.equal(env.runs.stats().filtered, 3, 'built from the pages');
    assert.ok(reads(oldest, true) <= 1_150);
    assert.ok(reads(Array.from({ length: 1_000 }, () => randomBytes(32)), false) <= 150);
    assert.ok(env.runs.stats().bytes >= 3 * (2_000 * 10 / 8), `${env.runs.stats().bytes} bytes: three filters of at least 10 bits an id`);
  } finally { await env.root.close(); }
}));

test('the runs\' filters stay within their bound: past it the oldest, largest runs go without one, and every id is still found', () => withDir(async (dir) => {
  // Filters of 4 KiB (2,000 ids at 10 bits, rounded up): room for two.
  let env = openEnv(dir, 16, 9_000);
  const lists: Buffer[][] = [];
  try {
    for (let h = 1; h <= 3; h++) { const e = entries(2_000 - h, h); lists.push(e.list); await env.runs.add(e, () => {}); }
    assert.equal(env.runs.stats().filtered, 2, 'the third merge\'s run has none');
    assert.ok(env.runs.stats().bytes < 9_000 + 3 * 2_000 * 32 / 16);
    lists.forEach((list, k) => list.forEach((id, index) => assert.deepEqual(env.runs.get(id), { height: k + 1, index })));
  } finally { await env.root.close(); }
  env = openEnv(dir, 16, 9_000);
  try {
    for (let i = 0; i < 500 && env.runs.stats().filtered < 2; i++) await new Promise((r) => setTimeout(r, 5));
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(env.runs.stats().filtered, 2, 'built at open for the smallest two');
    lists.forEach((list, k) => list.forEach((id, index) => assert.deepEqual(env.runs.get(id), { height: k + 1, index })));
  } finally { await env.root.close(); }
}));

test('runs of a level are compacted into one of the next once enough wait: every id still found, at its place, before and after reopening; the inputs\' pages are gone', () => withDir(async (dir) => {
  let env = openEnv(dir, 16);
  const all: Array<{ id: Buffer; height: number; index: number }> = [];
  const fed = new Set<string>();
  env.runs.onCompactedPage = (ids) => { for (let at = 0; at < ids.length; at += 32) fed.add(Buffer.from(ids.subarray(at, at + 32)).toString('hex')); };
  const merges = RUN_FANOUT * RUN_FANOUT + 2;
  try {
    for (let h = 1; h <= merges; h++) {
      const e = entries(50 + h, h);
      await env.runs.add(e, () => {});
      e.list.forEach((id, index) => all.push({ id, height: h, index }));
    }
    await env.runs.settled();
    const s = shape(env.runs.stats());
    // 18 runs: 16 became 4 of level 1, then one of level 2; 2 of level 0 wait.
    assert.deepEqual(s, { runs: 3, count: all.length, levels: 2, compactions: RUN_FANOUT + 1, failed: 0 });
    for (const { id, height, index } of all) assert.deepEqual(env.runs.get(id), { height, index });
    // Every id a compaction wrote was handed over (the filter built meantime takes them).
    assert.equal(fed.size, all.length - (50 + merges - 1) - (50 + merges), 'the ids of the first sixteen runs, once per level');
    const listed = (JSON.parse(String(env.meta.get('tx_runs'))) as number[][]).map((r) => r[0]);
    const onDisk = new Set([...env.db.getKeys()].map((k) => Buffer.from(k as Uint8Array).readUInt32BE(0)));
    assert.deepEqual([...onDisk].sort((a, b) => a - b), [...listed].sort((a, b) => a! - b!), 'only listed runs have pages');
  } finally { await env.root.close(); }
  env = openEnv(dir, 16);
  try {
    assert.deepEqual(shape(env.runs.stats()), { runs: 3, count: all.length, levels: 2, compactions: 0, failed: 0 });
    for (const { id, height, index } of all) assert.deepEqual(env.runs.get(id), { height, index });
    const sorted = all.map((x) => x.id).sort(Buffer.compare);
    const pages = env.runs.pages();
    const scanned = pages.flatMap(([r, p]) => { const ids = env.runs.pageIds(r, p)!; return Array.from({ length: ids.length / 32 }, (_, k) => Buffer.from(ids.subarray(k * 32, k * 32 + 32))); });
    assert.deepEqual(scanned.sort(Buffer.compare), sorted, 'a scan of the pages reads every id once (the filter\'s build)');
  } finally { await env.root.close(); }
}));

test('at open: pages no listing names (a run cut short, a compaction\'s inputs) are removed; a listed run without its fence, or a listing that does not parse, is refused as corrupt', () => withDir(async (dir) => {
  let env = openEnv(dir, 8);
  const e = entries(20, 1);
  await env.runs.add(e, () => {});
  // A crash mid-run: pages of run 9, never listed.
  await env.db.put(pageKey(9, 0), Buffer.concat([e.list[0]!, Buffer.alloc(12)]));
  await env.root.close();
  env = openEnv(dir, 8);
  try {
    assert.equal(env.db.get(pageKey(9, 0)), undefined, 'the unlisted page is gone');
    assert.deepEqual(env.runs.get(e.list[3]!), { height: 1, index: 3 });
    await env.db.remove(pageKey(1, 0xffff_ffff));
  } finally { await env.root.close(); }
  assert.throws(() => openEnv(dir, 8), (err: unknown) => isFedError(err, 'STORE_CORRUPT'));
  for (const listing of ['[[1, 0, 20', '{"run": 1}', '[[1, 0, -20, 3]]']) {
    const raw = open({ path: dir });
    await raw.openDB({ name: 'meta', encoding: 'string', keyEncoding: 'ordered-binary' }).put('tx_runs', listing);
    await raw.close();
    assert.throws(() => openEnv(dir, 8), (err: unknown) => isFedError(err, 'STORE_CORRUPT') && /listing of its runs/.test(String(err)), listing);
  }
}));

for (const [listed, why] of [[31, /hold fewer ids than listed/], [29, /hold more ids than listed/]] as const) {
  test(`a compaction that finds its inputs unlike their listing (${listed} ids listed for 30) gives up and loses nothing: the inputs stay listed and answer`, () => withDir(async (dir) => {
    let env = openEnv(dir, 8);
    const lists: Buffer[][] = [];
    for (let h = 1; h < RUN_FANOUT; h++) { const e = entries(30, h); lists.push(e.list); await env.runs.add(e, () => {}); }
    // The listing says run 1 holds another number of ids than its pages do.
    const listing = JSON.parse(String(env.meta.get('tx_runs'))) as number[][];
    listing.find((r) => r[0] === 1)![2] = listed;
    await env.meta.put('tx_runs', JSON.stringify(listing));
    await env.root.close();
    env = openEnv(dir, 8);
    try {
      const e = entries(30, RUN_FANOUT);
      lists.push(e.list);
      await env.runs.add(e, () => {});
      await env.runs.settled();
      const { lastFailure } = env.runs.stats();
      assert.deepEqual(shape(env.runs.stats()), { runs: RUN_FANOUT, count: RUN_FANOUT * 30 + listed - 30, levels: 1, compactions: 0, failed: 1 }, 'not compacted, and tried once');
      assert.match(String(lastFailure), why);
      lists.forEach((list, k) => list.forEach((id, index) => assert.deepEqual(env.runs.get(id), { height: k + 1, index })));
      assert.equal((JSON.parse(String(env.meta.get('tx_runs'))) as unknown[]).length, RUN_FANOUT, 'the listing on disk is the inputs\'');
    } finally { await env.root.close(); }
  }));
}

test('compareIds orders as LMDB orders binary keys', () => {
  for (let i = 0; i < 1_000; i++) {
    const a = randomBytes(32);
    const b = Buffer.from(a);
    b[i % 32] = randomBytes(1)[0]!;
    assert.equal(compareIds(a, 0, b, 0), Buffer.compare(a, b));
  }
});
