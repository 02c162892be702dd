// The batches held, on real LMDB files (batch-disk.ts): what the store holds is read back after a
// restart, oldest first, and what it forgot is not; values that are expired, do not parse, or whose
// transactions do not hash to their key are deleted and counted; an environment that cannot be
// opened is made again; a full disk costs a count and a log line, and the sweep after it deletes
// what the failed write left behind.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { open } from 'lmdb';
import { pino } from 'pino';
import { batchTree } from '#libs/blocks/index.ts';
import { toHex, txHash } from '#libs/crypto/index.ts';
import { decodeBatch, decodeGroup, encodeBatch, encodeGroup } from './batch-codec.ts';
import { BatchDisk, MAX_GROUP_BYTES, SHUTDOWN_RECORD, type BatchDiskObserver, type LoadOutcome } from './batch-disk.ts';
import { BATCH_TTL_MS, BatchStore } from './batches.ts';
import { BatchIntake } from './batch-intake.ts';
import { Mempool, NO_IDS } from './mempool.ts';
import { OUTSIDE_BASE, systemClock } from './ports.ts';
import { captureLog, onSmallDisk, scratch } from '../../test/support/scratch.ts';

const enc = (s: string) => new TextEncoder().encode(s);
const scratchSpace = scratch('btcfed-batch-disk-');
const { tmp } = scratchSpace;
const capture = captureLog;

function recorder() {
  const loaded: Partial<Record<LoadOutcome, number>> = {};
  const r = { puts: 0, removes: 0, failed: 0, size: [0, 0] as [number, number], loaded };
  const observer: BatchDiskObserver = {
    written: (puts, removes) => { r.puts += puts; r.removes += removes; },
    failed: () => { r.failed++; },
    loaded: (o, n) => { loaded[o] = (loaded[o] ?? 0) + n; },
    size: (n, bytes) => { r.size = [n, bytes]; },
  };
  return { observer, r };
}

/** A batch of `n` transactions tagged `tag`, with its ids and tree. */
function batch(tag: string, n: number, size = 100) {
  const txs = Array.from({ length: n }, (_, k) => enc(`${tag}-${k}-`.padEnd(size, '.')));
  const ids = txs.map(txHash);
  return { txs, ids, tree: batchTree(ids) };
}

const store = () => new BatchStore({ maxBytesPerHolder: 1 << 20, maxBatchesPerHolder: 4 });

test('the batches a store holds are read back after a restart, in the order they were held, as they were; a group goes once none of its batches is held', async () => {
  const dir = path.join(tmp(), 'batches');
  const rec = recorder();
  const disk = await BatchDisk.open({ path: dir, log: pino({ level: 'silent' }), observer: rec.observer });
  assert.deepEqual(await disk.load(1_000, BATCH_TTL_MS), []);
  const s = store();
  s.keepOn(disk);
  const a = batch('a', 5);
  const b = batch('b', 3);
  const c = batch('c', 4);
  const own = batch('own', 2);
  s.add(2, b.txs, b.ids, 2_000, { author: 3, tree: b.tree });
  s.add(1, a.txs, a.ids, 1_000, { tree: a.tree });
  const held = s.add(1, c.txs, c.ids, 3_000);
  s.add(0, own.txs, own.ids, 4_000);
  s.forget(held.hex);
  await disk.flush();
  // c was written and deleted in one window: never written.
  assert.equal(rec.r.puts, 3);
  assert.deepEqual(rec.r.size, [3, 5 * 100 + 3 * 100 + 2 * 100]);
  await disk.close();

  const rec2 = recorder();
  const again = await BatchDisk.open({ path: dir, log: pino({ level: 'silent' }), observer: rec2.observer });
  const handed: string[] = [];
  const loaded = await again.load(5_000, BATCH_TTL_MS, (l) => handed.push(toHex(l.tree.digest)));
  assert.deepEqual(handed, loaded.map((l) => toHex(l.tree.digest)), 'each batch handed over as it is checked, in the same order');
  assert.deepEqual(loaded.map((l) => [toHex(l.tree.digest), l.holder, l.author, l.atMs]),
    [[toHex(b.tree.digest), 2, 3, 2_000], [toHex(a.tree.digest), 1, 1, 1_000], [toHex(own.tree.digest), 0, 0, 4_000]]);
  assert.deepEqual(loaded[1]!.txs.map((t) => Buffer.from(t).toString()), a.txs.map((t) => Buffer.from(t).toString()));
  assert.deepEqual(loaded[1]!.ids, a.ids);
  assert.deepEqual(rec2.r.loaded, { loaded: 3, expired: 0, corrupt: 0 });
  assert.deepEqual(rec2.r.size, [3, 1_000]);

  // Held again as read back: not written a second time; the holder's room made still deletes.
  const s2 = store();
  s2.keepOn(again);
  for (const l of loaded) s2.add(l.holder, l.txs, l.ids, l.atMs, { author: l.author, tree: l.tree, kept: true });
  for (let k = 0; k < 4; k++) { const x = batch(`more-${k}`, 1); s2.add(1, x.txs, x.ids, 6_000 + k); }
  assert.equal(s2.get(toHex(a.tree.digest)), undefined, 'holder 1\'s oldest made room');
  // The first group (a, b, own) is deleted once none of its batches is held.
  s2.forget(toHex(b.tree.digest));
  await again.flush();
  assert.deepEqual([rec2.r.puts, rec2.r.removes], [4, 0], 'only the four new batches were written; own is still held');
  s2.forget(toHex(own.tree.digest));
  await again.flush();
  assert.deepEqual([rec2.r.puts, rec2.r.removes], [4, 1], 'the first group is deleted with its last batch');
  await again.close();
  const third = await BatchDisk.open({ path: dir, log: pino({ level: 'silent' }) });
  const back = (await third.load(7_000, BATCH_TTL_MS)).map((l) => toHex(l.tree.digest));
  assert.equal(back.length, 4, 'the four new batches only');
  assert.ok(!back.includes(toHex(a.tree.digest)) && !back.includes(toHex(b.tree.digest)));
  await third.close();
});

test('a group less than a quarter of whose bytes is held is written again: what is on disk stays within four times what is held', async () => {
  const dir = path.join(tmp(), 'batches');
  const rec = recorder();
  const disk = await BatchDisk.open({ path: dir, log: pino({ level: 'silent' }), observer: rec.observer });
  await disk.load(1, BATCH_TTL_MS);
  const s = new BatchStore({ maxBytesPerHolder: 1 << 22, maxBatchesPerHolder: 64 });
  s.keepOn(disk);
  const held = Array.from({ length: 20 }, (_, k) => { const b = batch(`sparse-${k}`, 10, 1_000); return s.add(1, b.txs, b.ids, 1, { tree: b.tree }); });
  await disk.flush();
  assert.ok(disk.diskBytes > 200_000 && disk.counts.rewritten === 0);
  for (const b of held.slice(0, 17)) s.forget(b.hex);
  await disk.flush();
  assert.equal(disk.counts.rewritten, 1);
  assert.ok(disk.diskBytes <= 4 * disk.bytes, `${disk.diskBytes} bytes on disk for ${disk.bytes} held`);
  assert.deepEqual([rec.r.puts, rec.r.removes], [20 + 3, 1], 'the three still held written again, the old group deleted');
  await disk.close();
  const again = await BatchDisk.open({ path: dir, log: pino({ level: 'silent' }) });
  assert.deepEqual((await again.load(2, BATCH_TTL_MS)).map((l) => toHex(l.tree.digest)).sort(), held.slice(17).map((b) => b.hex).sort());
  await again.close();
});

test('a group written while the load still reads (it yields) takes a key after every group on disk, and loses none of them', async () => {
  const dir = path.join(tmp(), 'batches');
  const raw = open<Buffer, Buffer>({ path: dir, encoding: 'binary', keyEncoding: 'binary', compression: false });
  const key = (seq: number) => { const k = Buffer.alloc(8); k.writeBigUInt64BE(BigInt(seq)); return k; };
  // Group 1 takes some tens of milliseconds to check: the load yields inside it.
  const heavy = Array.from({ length: 40 }, (_, k) => batch(`heavy-${k}`, 500, 100));
  await raw.put(key(1), encodeGroup(heavy.map((b) => ({ digest: b.tree.digest, b: { holder: 1, author: 1, atMs: 1_000, txs: b.txs } }))));
  const marker = batch('marker', 2);
  await raw.put(key(2), encodeGroup([{ digest: marker.tree.digest, b: { holder: 2, author: 2, atMs: 1_000, txs: marker.txs } }]));
  await raw.close();
  fs.writeFileSync(path.join(dir, SHUTDOWN_RECORD), JSON.stringify({ closed: true }));
  const disk = await BatchDisk.open({ path: dir, log: pino({ level: 'silent' }) });
  const fresh = batch('fresh', 2);
  let first = true;
  const loaded = await disk.load(2_000, BATCH_TTL_MS, () => {
    if (!first) return;
    first = false;
    // A batch arrives and is written while the load goes on.
    disk.put(toHex(fresh.tree.digest), { holder: 3, author: 3, atMs: 2_000, txs: fresh.txs });
    setImmediate(() => void disk.flush());
  });
  assert.equal(loaded.length, 41);
  await disk.close();
  const again = await BatchDisk.open({ path: dir, log: pino({ level: 'silent' }) });
  const back = new Set((await again.load(2_000, BATCH_TTL_MS)).map((l) => toHex(l.tree.digest)));
  assert.ok(back.has(toHex(marker.tree.digest)), 'the marker group was not written over');
  assert.ok(back.has(toHex(fresh.tree.digest)));
  assert.equal(back.size, 42);
  await again.close();
});

test('a window with more than MAX_GROUP_BYTES due writes several groups', async () => {
  const dir = path.join(tmp(), 'batches');
  const rec = recorder();
  const disk = await BatchDisk.open({ path: dir, log: pino({ level: 'silent' }), observer: rec.observer });
  await disk.load(1, BATCH_TTL_MS);
  const big = Array.from({ length: 20 }, (_, k) => enc(`big-${k}-`.padEnd(1 << 20, '.')));
  for (const tx of big) { const ids = [txHash(tx)]; disk.put(toHex(batchTree(ids).digest), { holder: 1, author: 1, atMs: 1, txs: [tx] }); }
  await disk.flush();
  assert.equal(rec.r.puts, 20);
  await disk.close();
  const keys = open<Buffer, Buffer>({ path: dir, encoding: 'binary', keyEncoding: 'binary', compression: false });
  assert.equal([...keys.getKeys()].length, Math.ceil(20 / Math.floor(MAX_GROUP_BYTES / (1 << 20))), 'groups of at most 16 MiB');
  await keys.close();
  const again = await BatchDisk.open({ path: dir, log: pino({ level: 'silent' }) });
  assert.equal((await again.load(2, BATCH_TTL_MS)).length, 20);
  await again.close();
});

test('a batch is written only once it has been held for writeAfterMs: one forgotten sooner is never written', async () => {
  const dir = path.join(tmp(), 'batches');
  let now = 0;
  const rec = recorder();
  const disk = await BatchDisk.open({ path: dir, log: pino({ level: 'silent' }), observer: rec.observer, now: () => now, writeAfterMs: 1_000, windowMs: 10 });
  await disk.load(now, BATCH_TTL_MS);
  const s = store();
  s.keepOn(disk);
  const soon = s.add(1, batch('soon', 3).txs, batch('soon', 3).ids, now);
  const late = s.add(2, batch('late', 3).txs, batch('late', 3).ids, now);
  await new Promise((r) => setTimeout(r, 80));
  assert.equal(rec.r.puts, 0, 'nothing is due yet');
  s.forget(soon.hex);
  now = 1_500;
  await new Promise((r) => setTimeout(r, 80));
  assert.deepEqual([rec.r.puts, rec.r.removes], [1, 0], 'the batch still held is written; the one forgotten never was, so nothing is deleted');
  await disk.close();
  const again = await BatchDisk.open({ path: dir, log: pino({ level: 'silent' }) });
  assert.deepEqual((await again.load(now, BATCH_TTL_MS)).map((l) => toHex(l.tree.digest)), [late.hex]);
  await again.close();
});

test('at load, expired batches, batches that do not parse and batches whose transactions do not hash to their digest are deleted and counted', async () => {
  const dir = path.join(tmp(), 'batches');
  const good = batch('good', 3);
  const good2 = batch('good2', 3);
  const old = batch('old', 3);
  const lie = batch('lie', 3);
  const now = 10_000_000;
  const entry = (digest: Uint8Array, b: ReturnType<typeof batch>, atMs: number) => ({ digest, b: { holder: 1, author: 1, atMs, txs: b.txs } });
  const raw = open<Buffer, Buffer>({ path: dir, encoding: 'binary', keyEncoding: 'binary', compression: false });
  const key = (seq: number) => { const k = Buffer.alloc(8); k.writeBigUInt64BE(BigInt(seq)); return k; };
  await raw.put(key(1), encodeGroup([entry(good.tree.digest, good, now - 1_000)]));
  await raw.put(key(2), encodeGroup([entry(old.tree.digest, old, now - BATCH_TTL_MS - 1)]));
  // Another batch's transactions under this one's digest.
  await raw.put(key(3), encodeGroup([entry(lie.tree.digest, good, now - 1_000)]));
  await raw.put(key(4), Buffer.from('not a group'));
  await raw.put(Buffer.from('short'), encodeGroup([entry(good.tree.digest, good, now)]));
  const cut = encodeGroup([entry(good2.tree.digest, good2, now)]);
  await raw.put(key(5), cut.subarray(0, cut.length - 1));
  // The same batch again in a later group: read once, that group deleted.
  await raw.put(key(6), encodeGroup([entry(good.tree.digest, good, now - 1_000)]));
  // A group with one good batch and one whose bytes were damaged: the good one is read back.
  const damaged = encodeGroup([entry(good2.tree.digest, good2, now - 500), entry(lie.tree.digest, lie, now - 500)]);
  damaged[damaged.length - 30]! ^= 0xff;
  await raw.put(key(7), damaged);
  await raw.close();
  fs.writeFileSync(path.join(dir, SHUTDOWN_RECORD), JSON.stringify({ closed: true }));

  const { log, lines } = capture();
  const rec = recorder();
  const disk = await BatchDisk.open({ path: dir, log, observer: rec.observer });
  const loaded = await disk.load(now, BATCH_TTL_MS);
  assert.deepEqual(loaded.map((l) => toHex(l.tree.digest)), [toHex(good.tree.digest), toHex(good2.tree.digest)]);
  assert.deepEqual(rec.r.loaded, { loaded: 2, expired: 1, corrupt: 5 });
  const whys = lines.filter((l) => /corrupt batch deleted/.test(l.msg)).map((l) => String(l.why));
  assert.equal(whys.length, 5);
  assert.equal(whys.filter((w) => /do not hash to the digest/.test(w)).length, 2, whys.join('; '));
  assert.ok(whys.some((w) => /a key of 5 bytes/.test(w)), whys.join('; '));
  assert.ok(whys.some((w) => /version/.test(w)), whys.join('; '));
  assert.ok(whys.some((w) => /do not fit|runs past/.test(w)), whys.join('; '));
  await disk.close();
  // Deleted (the damaged group written again with its good batch only): a second start finds the two good ones, nothing else.
  const rec2 = recorder();
  const again = await BatchDisk.open({ path: dir, log: pino({ level: 'silent' }), observer: rec2.observer });
  assert.equal((await again.load(now, BATCH_TTL_MS)).length, 2);
  assert.deepEqual(rec2.r.loaded, { loaded: 2, expired: 0, corrupt: 0 });
  await again.close();
  const keys = open<Buffer, Buffer>({ path: dir, encoding: 'binary', keyEncoding: 'binary', compression: false });
  assert.equal([...keys.getKeys()].length, 2, 'one group for each good batch (the first as it was, the second written again)');
  await keys.close();
});

test('decodeBatch and decodeGroup never throw, and never return transactions outside the value, whatever the bytes', () => {
  const v = encodeBatch({ holder: 2, author: 3, atMs: 123, txs: batch('fuzz', 6, 40).txs });
  assert.ok(!('why' in decodeBatch(v)));
  let seed = 20261130;
  const rand = (n: number) => { seed = (seed * 1103515245 + 12345) >>> 0; return seed % n; };
  let refused = 0;
  for (let i = 0; i < 5_000; i++) {
    let m: Uint8Array = Uint8Array.from(v);
    const op = rand(3);
    if (op === 0) m = m.subarray(0, rand(m.length));
    else if (op === 1) for (let k = 0; k <= rand(4); k++) m[rand(m.length)] = rand(256);
    else m = Uint8Array.from([...m, ...Array.from({ length: 1 + rand(8) }, () => rand(256))]);
    const d = decodeBatch(m);
    if ('why' in d) { refused++; continue; }
    let bytes = m[0] === 1 ? 21 : 29; // version 1 has no epoch
    for (const tx of d.txs) {
      assert.equal(tx.buffer, m.buffer);
      assert.ok(tx.byteOffset >= m.byteOffset && tx.byteOffset + tx.length <= m.byteOffset + m.length);
      bytes += 4 + tx.length;
    }
    assert.equal(bytes, m.length, 'a decoded value is read to its end');
  }
  assert.ok(refused > 2_000, `most mutations are refused (${refused})`);
  const g = encodeGroup([{ digest: new Uint8Array(32), b: { holder: 1, author: 1, atMs: 5, txs: batch('g', 3, 30).txs } }, { digest: new Uint8Array(32).fill(1), b: { holder: 2, author: 2, atMs: 6, txs: batch('h', 2, 30).txs } }]);
  const whole = decodeGroup(g);
  assert.ok(!('why' in whole) && whole.length === 2 && whole.every((e) => !('why' in e.b)));
  for (let i = 0; i < 3_000; i++) {
    let m: Uint8Array = Uint8Array.from(g);
    const op = rand(3);
    if (op === 0) m = m.subarray(0, rand(m.length));
    else if (op === 1) for (let k = 0; k <= rand(4); k++) m[rand(m.length)] = rand(256);
    else m = Uint8Array.from([...m, ...Array.from({ length: 1 + rand(8) }, () => rand(256))]);
    const d = decodeGroup(m);
    if ('why' in d) continue;
    for (const e of d) {
      assert.equal(e.digest.length, 32);
      if (!('why' in e.b)) for (const tx of e.b.txs) assert.ok(tx.byteOffset >= m.byteOffset && tx.byteOffset + tx.length <= m.byteOffset + m.length);
    }
  }
  const huge = Uint8Array.from(v);
  Buffer.from(huge.buffer).writeUInt32BE(0xffffffff, 25);
  assert.match((decodeBatch(huge) as { why: string }).why, /cannot fit/);
});

test('an environment that cannot be opened is removed and made again, logged at error', async () => {
  const dir = path.join(tmp(), 'batches');
  fs.mkdirSync(path.join(dir, 'data.mdb'), { recursive: true });
  fs.writeFileSync(path.join(dir, SHUTDOWN_RECORD), JSON.stringify({ closed: true }));
  const { log, lines } = capture();
  const disk = await BatchDisk.open({ path: dir, log });
  assert.ok(lines.some((l) => l.level === 50 && /cannot be opened: removed and made again/.test(l.msg)), JSON.stringify(lines));
  assert.deepEqual(await disk.load(1, BATCH_TTL_MS), []);
  const b = batch('after', 2);
  disk.put(toHex(b.tree.digest), { holder: 1, author: 1, atMs: 1, txs: b.txs });
  await disk.close();
  const again = await BatchDisk.open({ path: dir, log: pino({ level: 'silent' }) });
  assert.equal((await again.load(2, BATCH_TTL_MS)).length, 1, 'the new environment keeps what is written');
  await again.close();
});

test('an environment left open when the machine stopped is removed before it is opened; one a process left open during this boot is read', async () => {
  const dir = path.join(tmp(), 'batches');
  const b = batch('kept', 2);
  const fill = async () => {
    const d = await BatchDisk.open({ path: dir, log: pino({ level: 'silent' }) });
    d.put(toHex(b.tree.digest), { holder: 1, author: 1, atMs: 1, txs: b.txs });
    await d.close();
  };
  const record = path.join(dir, SHUTDOWN_RECORD);
  await fill();
  assert.deepEqual(JSON.parse(fs.readFileSync(record, 'utf8')).closed, true);
  const boot = fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  const cases: Array<[string, string | undefined, number, RegExp | undefined]> = [
    ['closed', JSON.stringify({ boot: 'another', closed: true }), 1, undefined],
    ['open during this boot (a kill -9)', JSON.stringify({ boot, closed: false }), 1, undefined],
    ['open during another boot', JSON.stringify({ boot: 'another', closed: false }), 0, /machine stopped/],
    ['no record', undefined, 0, /no shutdown.json/],
    ['a record that does not parse', '{', 0, /does not parse/],
  ];
  for (const [what, text, want, why] of cases) {
    await fill();
    if (text === undefined) fs.rmSync(record);
    else fs.writeFileSync(record, text);
    const { log, lines } = capture();
    const d = await BatchDisk.open({ path: dir, log });
    assert.equal((await d.load(2, BATCH_TTL_MS)).length, want, what);
    const removed = lines.find((l) => /removed before opening/.test(l.msg));
    if (why) assert.match(String(removed?.why), why, what);
    else assert.equal(removed, undefined, what);
    assert.equal(JSON.parse(fs.readFileSync(record, 'utf8')).closed, false, `${what}: recorded open`);
    await d.close();
  }
});

test('what one holder makes this member write is bounded in bytes a second: beyond, its batches are held in memory only', async () => {
  const dir = path.join(tmp(), 'batches');
  let now = 1_000;
  const rec = recorder();
  const skipped: number[] = [];
  const disk = await BatchDisk.open({ path: dir, log: pino({ level: 'silent' }), observer: { ...rec.observer, skipped: (h) => skipped.push(h) },
    bytesPerSecondPerHolder: 10_000, now: () => now });
  await disk.load(now, BATCH_TTL_MS);
  const s = new BatchStore({ maxBytesPerHolder: 1 << 20, maxBatchesPerHolder: 16 });
  s.keepOn(disk);
  // Holder 1 floods: 5 batches of 5,000 bytes at once; a burst is two seconds' worth (20,000).
  const flood = Array.from({ length: 5 }, (_, k) => batch(`flood-${k}`, 50, 100));
  for (const b of flood) s.add(1, b.txs, b.ids, now, { tree: b.tree });
  const honest = batch('honest', 50, 100);
  s.add(2, honest.txs, honest.ids, now, { tree: honest.tree });
  await disk.flush();
  assert.equal(rec.r.puts, 5, 'four of the flooder\'s batches and the other holder\'s');
  assert.deepEqual(skipped, [1]);
  assert.equal(s.size, 6, 'every batch is held in memory all the same');
  now += 1_000;
  const later = batch('later', 50, 100);
  s.add(1, later.txs, later.ids, now, { tree: later.tree });
  await disk.flush();
  assert.equal(rec.r.puts, 6, 'a second later, the holder writes again');
  await disk.close();
});

test('what a holder may write a second follows it across a set change: one renumbered into a removed holder\'s number neither inherits its spent budget nor gets a fresh one', async () => {
  const dir = path.join(tmp(), 'batches');
  const skipped: number[] = [];
  const disk = await BatchDisk.open({ path: dir, log: pino({ level: 'silent' }), observer: { skipped: (h) => skipped.push(h) }, bytesPerSecondPerHolder: 10_000, now: () => 1_000 });
  await disk.load(1_000, BATCH_TTL_MS);
  const s = new BatchStore({ maxBytesPerHolder: 1 << 20, maxBatchesPerHolder: 16 });
  s.keepOn(disk);
  const add = (holder: number, tag: string) => { const b = batch(tag, 50, 100); s.add(holder, b.txs, b.ids, 1_000, { tree: b.tree }); };
  // m1 and m3 spend their bursts (two seconds' worth, 20,000 bytes: four batches of 5,000).
  for (let k = 0; k < 4; k++) { add(1, `m1-${k}`); add(3, `m3-${k}`); }
  assert.deepEqual(skipped, []);
  // Epoch 1 removes m1: m2 is number 1, m3 number 2, and m4 joins as number 3.
  s.renumber((i) => (i === 1 ? undefined : i > 1 ? i - 1 : i), 1, 0);
  add(1, 'm2');
  add(2, 'm3-after');
  add(3, 'm4');
  assert.deepEqual(skipped, [2], 'm3 has spent its budget still; m2 and m4 write within their own');
  await disk.close();
});

test('a full disk fails a write (counted, logged, the batches stay held), and the sweep after it deletes what the write could not', (t) => onSmallDisk(t, scratchSpace, '512k', async (mnt) => {
  const dir = path.join(mnt, 'batches');
  const { log, lines } = capture();
  const rec = recorder();
  const disk = await BatchDisk.open({ path: dir, log, observer: rec.observer });
  await disk.load(1, BATCH_TTL_MS);
  const s = store();
  s.keepOn(disk);
  const small = s.add(1, batch('small', 2).txs, batch('small', 2).ids, 1);
  await disk.flush();
  assert.equal(rec.r.puts, 1);
  const filler = path.join(mnt, 'filler');
  fs.writeFileSync(filler, Buffer.alloc(Math.max(0, Number(fs.statfsSync(mnt).bavail) * fs.statfsSync(mnt).bsize - (8 << 10))));
  // One write: a batch too large for what is left, and the small one's deletion.
  const big = batch('big', 40, 10_000);
  const held = s.add(2, big.txs, big.ids, 2);
  s.forget(small.hex);
  await disk.flush();
  assert.equal(rec.r.failed, 1, 'the write failed');
  assert.ok(lines.some((l) => l.level === 50 && /a write failed/.test(l.msg)));
  assert.equal(s.get(held.hex), held, 'the batch is still held in memory');
  assert.deepEqual(rec.r.size, [0, 0], 'nothing is counted as on disk');

  fs.rmSync(filler);
  disk.sweep();
  await disk.flush();
  await disk.close();
  const again = await BatchDisk.open({ path: dir, log: pino({ level: 'silent' }) });
  assert.deepEqual(await again.load(3, BATCH_TTL_MS), [], 'the sweep deleted the batch the failed write should have');
  await again.close();
}));

test('batches read back in a later epoch are renumbered from the epoch they were written in; one that does not say its epoch (version 1) names nobody', async () => {
  const dir = path.join(tmp(), 'batches');
  const disk = await BatchDisk.open({ path: dir, log: pino({ level: 'silent' }) });
  await disk.load(1, BATCH_TTL_MS);
  const held = new BatchStore({ maxBytesPerHolder: 1 << 20, maxBatchesPerHolder: 8 });
  held.keepOn(disk);
  const before = batch('m2-in-epoch-0', 2);
  const after = batch('m2-in-epoch-1', 2);
  held.add(2, before.txs, before.ids, 1_000, { tree: before.tree });
  // Epoch 1 removes validator 1: m2 is number 1 from now on.
  const removal = (i: number) => (i === 1 ? undefined : i > 1 ? i - 1 : i);
  held.renumber(removal, 1, 0);
  held.add(1, after.txs, after.ids, 2_000, { tree: after.tree });
  await disk.close();

  const again = await BatchDisk.open({ path: dir, log: pino({ level: 'silent' }) });
  const loaded = await again.load(3_000, BATCH_TTL_MS);
  await again.close();
  assert.deepEqual(loaded.map((l) => [l.holder, l.author, l.epoch]), [[2, 2, 0], [1, 1, 1]], 'each with the epoch whose numbers it holds');
  // Restored in epoch 1: both are m2's, number 1, in the pool and in the store.
  const store = new BatchStore({ maxBytesPerHolder: 1 << 20, maxBatchesPerHolder: 8, epoch: 1 });
  const pool = new Mempool({ maxTxs: 100, maxBytes: 1 << 20, maxTxBytes: 1024 });
  const driver = { self: 0, validatorCount: 4, isCommitted: () => false, batches: store, engine: undefined as never,
    indexNow: (epoch: number, i: number) => (epoch === 1 ? i : removal(i)) };
  const intake = new BatchIntake({ chainId: 'restore', maxBlockBytes: 1 << 20, maxTxBytes: 1024, driver, pool, transport: { send: () => {}, broadcast: () => {} },
    clock: systemClock, log: pino({ level: 'silent' }), useless: () => {}, counted: () => {} });
  for (const l of loaded) assert.equal(intake.restore(l), true);
  assert.deepEqual(loaded.map((l) => { const b = store.get(toHex(l.tree.digest))!; return [b.holder, b.ref.author]; }), [[1, 1], [1, 1]]);
  assert.deepEqual(pool.batch(100, 1 << 20, NO_IDS).map((p) => p.source), [1, 1, 1, 1]);

  // Version 1 (no epoch): its numbers could be any epoch's; charged as an outsider's, named by this member.
  const old = batch('v1', 1);
  const v1 = Buffer.alloc(21 + 4 + old.txs[0]!.length);
  v1[0] = 1;
  v1.writeUInt32BE(2, 1);
  v1.writeUInt32BE(2, 5);
  v1.writeDoubleBE(2_500, 9);
  v1.writeUInt32BE(1, 17);
  v1.writeUInt32BE(old.txs[0]!.length, 21);
  v1.set(old.txs[0]!, 25);
  const d = decodeBatch(v1);
  assert.ok(!('why' in d) && d.epoch === undefined && d.holder === 2, JSON.stringify(d));
  assert.equal(intake.restore({ ...d, ids: old.ids, tree: old.tree }), true);
  const b = store.get(toHex(old.tree.digest))!;
  assert.deepEqual([b.holder, b.ref.author], [OUTSIDE_BASE, 0]);
});
