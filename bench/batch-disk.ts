// What keeping the batches a member holds on disk (batch-disk.ts) costs, against holding them in
// memory only (the baseline, in the same run): batches of `--batch` transactions of 250 bytes
// arrive from three holders, and each is forgotten (its block committed) `--lag` batches later, as
// a member receives and commits them; every `--group` batches (a write window's worth) are written. Both ways add the same batches to
// a BatchStore (ids and Merkle tree computed beforehand, as a receiver does once either way); the
// disk way also gives them to a BatchDisk (a group of batches a write, every 250 ms, no fsync;
// every batch written: `--write-after 0`, the default here, is a saturated federation, where
// batches wait seconds to be proposed — the service writes a batch once held for 2,000 ms).
// CPU time of the whole process (LMDB's writer thread too) and bytes handed to write(2) (Linux
// /proc/self/io), per transaction, the two ways alternating in rounds. Then a restart: the time to
// read back a full store's worth (`--held` batches: each value parsed and its transactions hashed
// again) and hold it again.
// Run: node_modules/.bin/node bench/batch-disk.ts [--txs 400000] [--batch 500] [--lag 12] [--held 400] [--rounds 4] [--group 150] [--write-after MS]
//   [--window MS] (the disk copy's own write timer, 250 ms as in the service; the bench also writes every --group batches itself)

import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { batchTree } from '#libs/blocks/index.ts';
import { txHash } from '#libs/crypto/index.ts';
import { BatchDisk } from '../services/consensus/batch-disk.ts';
import { BATCH_TTL_MS, BatchStore } from '../services/consensus/batches.ts';
import { du, printMachine, table } from './support.ts';

const { values: f } = parseArgs({ options: { txs: { type: 'string' }, batch: { type: 'string' }, lag: { type: 'string' }, held: { type: 'string' }, rounds: { type: 'string' }, window: { type: 'string' }, 'write-after': { type: 'string' }, group: { type: 'string' } } });
const BATCH = Number(f.batch ?? 500);
const ROUNDS = Number(f.rounds ?? 4);
const PER_ROUND = Math.max(1, Math.round(Number(f.txs ?? 400_000) / ROUNDS / BATCH));
const LAG = Number(f.lag ?? 12);
const HELD = Number(f.held ?? 400);
const TX_BYTES = 250;
const WINDOW = f.window ? Number(f.window) : undefined;
// Every batch written (0 ms): a saturated federation, where batches wait seconds to be proposed. The service's default is 2,000 ms.
const WRITE_AFTER = Number(f['write-after'] ?? 0);
const HOLDERS = 3;

const cpuMs = (): number => { const c = process.cpuUsage(); return (c.user + c.system) / 1000; };
const written = async (): Promise<number> => Number(/wchar: (\d+)/.exec(await fs.readFile('/proc/self/io', 'utf8').catch(() => ''))?.[1] ?? NaN);
const tick = () => new Promise((r) => setTimeout(r, 1));
/** Batches a write window holds: 250 ms at some 600 batches a second (three holders' batches of ten at 8,000 tx/s). */
const GROUP = Number(f.group ?? 150);

type Made = { txs: Uint8Array[]; ids: Uint8Array[]; tree: { digest: Uint8Array; leaves: Uint8Array } };
function make(n: number): Made[] {
  return Array.from({ length: n }, () => {
    const txs = Array.from({ length: BATCH }, () => randomBytes(TX_BYTES) as Uint8Array);
    const ids = txs.map(txHash);
    return { txs, ids, tree: batchTree(ids) };
  });
}

const storeFor = () => new BatchStore({ maxBytesPerHolder: 8 * (4 << 20), maxBatchesPerHolder: 4096 });

/** One round: the batches added one a millisecond, each forgotten LAG batches later; CPU ms and bytes written. */
async function round(batches: Made[], disk: BatchDisk | undefined): Promise<{ cpu: number; bytes: number }> {
  const store = storeFor();
  if (disk) store.keepOn(disk);
  const hexes: string[] = [];
  const w0 = await written();
  const c0 = cpuMs();
  for (const [k, b] of batches.entries()) {
    hexes.push(store.add(k % HOLDERS, b.txs, b.ids, Date.now(), { tree: b.tree }).hex);
    if (k >= LAG) store.forget(hexes[k - LAG]!);
    // A write window's worth (GROUP batches) goes in one write, as the service's timer does.
    if (k % GROUP === GROUP - 1) await disk?.flush();
  }
  for (const h of hexes.slice(-LAG)) store.forget(h);
  await disk?.flush();
  return { cpu: cpuMs() - c0, bytes: await written() - w0 };
}

async function main(): Promise<void> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'btcfed-bench-batchdisk-'));
  printMachine('batches on disk benchmark', [`${ROUNDS} rounds of ${PER_ROUND} batches of ${BATCH} × ${TX_BYTES} B each way, each forgotten ${LAG} batches later; ${GROUP} batches a write window, written once held ${WRITE_AFTER} ms; then ${HELD} batches read back`]);
  const log = pino({ level: 'silent' });
  try {
    const disk = await BatchDisk.open({ path: path.join(dir, 'batches'), log, writeAfterMs: WRITE_AFTER, ...(WINDOW ? { windowMs: WINDOW } : {}) });
    await disk.load(Date.now(), BATCH_TTL_MS);
    const acc = { memCpu: 0, diskCpu: 0, memBytes: 0, diskBytes: 0 };
    const rows: string[][] = [];
    for (let r = 0; r < ROUNDS; r++) {
      const batches = make(PER_ROUND);
      // Alternating which goes first.
      const order = r % 2 === 0 ? ['memory', 'disk'] : ['disk', 'memory'];
      const got: Record<string, { cpu: number; bytes: number }> = {};
      for (const way of order) got[way] = await round(batches, way === 'disk' ? disk : undefined);
      const n = PER_ROUND * BATCH;
      acc.memCpu += got.memory!.cpu; acc.diskCpu += got.disk!.cpu; acc.memBytes += got.memory!.bytes; acc.diskBytes += got.disk!.bytes;
      rows.push([String(r + 1), (got.memory!.cpu * 1000 / n).toFixed(2), (got.disk!.cpu * 1000 / n).toFixed(2),
        ((got.disk!.cpu - got.memory!.cpu) * 1000 / n).toFixed(2), (got.disk!.bytes / n).toFixed(0)]);
    }
    const n = ROUNDS * PER_ROUND * BATCH;
    rows.push(['all', (acc.memCpu * 1000 / n).toFixed(2), (acc.diskCpu * 1000 / n).toFixed(2), ((acc.diskCpu - acc.memCpu) * 1000 / n).toFixed(2), (acc.diskBytes / n).toFixed(0)]);
    console.log('\nper transaction received and committed (the memory-only way is the baseline; the batches are the same both ways)');
    console.log(table(['round', 'memory only CPU-µs', 'with disk CPU-µs', 'disk adds CPU-µs', 'disk bytes written'], rows));

    // A restart with a full store's worth on disk.
    const full = make(HELD);
    const store = storeFor();
    store.keepOn(disk);
    for (const [k, b] of full.entries()) { store.add(k % HOLDERS, b.txs, b.ids, Date.now(), { tree: b.tree }); if (k % 20 === 0) await tick(); }
    await disk.close();
    const onDisk = await du(path.join(dir, 'batches'));
    const t0 = performance.now();
    const c0 = cpuMs();
    const again = await BatchDisk.open({ path: path.join(dir, 'batches'), log });
    const loaded = await again.load(Date.now(), BATCH_TTL_MS);
    const held = storeFor();
    held.keepOn(again);
    for (const b of loaded) held.add(b.holder, b.txs, b.ids, b.atMs, { author: b.author, tree: b.tree, kept: true });
    const wall = performance.now() - t0;
    const cpu = cpuMs() - c0;
    const mb = (HELD * BATCH * TX_BYTES) / (1 << 20);
    console.log(`\nrestart: ${loaded.length} batches (${(HELD * BATCH).toLocaleString('en')} transactions, ${mb.toFixed(1)} MiB of transactions, ${(onDisk / (1 << 20)).toFixed(1)} MiB on disk) read back and held in ${wall.toFixed(0)} ms wall, ${cpu.toFixed(0)} ms CPU (${(mb / (wall / 1000)).toFixed(0)} MiB/s)`);
    await again.close();
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}

await main();
