// The mempool journal on real LMDB files: what a client was told ACCEPTED is on disk when the
// answer leaves, survives a kill -9 of the process that wrote it (a child process here), is
// replayed in acceptance order with committed transactions skipped, leaves the journal when it
// commits, stays within the mempool's limits, and a corrupt entry or a full disk costs a log line
// and a count, never the process.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { open } from 'lmdb';
import { pino } from 'pino';
import { toHex, txHash } from '#libs/crypto/index.ts';
import { FedError, isFedError } from '#libs/errors/index.ts';
import { createPromMetrics } from '#libs/metrics/index.ts';
import { startService } from '../../test/support/process.ts';
import { consensusService, mempoolIntake, type ApiDeps } from './api.ts';
import { Mempool } from './mempool.ts';
import { decodeValue, encodeGroup } from './journal-codec.ts';
import { MempoolJournal, type JournalObserver, type ReplayOutcome } from './mempool-journal.ts';
import { consensusMetrics } from './metrics.ts';
import { captureLog, onSmallDisk, scratch } from '../../test/support/scratch.ts';

const enc = (s: string) => new TextEncoder().encode(s);
const none = () => false;
const LIMITS = { maxTxs: 10_000, maxBytes: 10_000 * 1024 };

// The child role of the crash test: journal transactions, say which are durable, wait to be killed.
if (process.env.JOURNAL_CHILD_DIR) {
  const log = pino();
  const journal = new MempoolJournal({ path: process.env.JOURNAL_CHILD_DIR, log, ...LIMITS });
  const pool = new Mempool({ ...LIMITS, maxTxBytes: 1024, onRemoved: (k) => journal.forget(k) });
  const take = (txs: Uint8Array[]) => Promise.all(txs.map((tx) => {
    const r = pool.offer(tx, Date.now(), none);
    assert.equal(r.status, 'added');
    return journal.append(r.hash!, tx);
  }));
  const tx = (i: number) => enc(`crash-tx-${i}`);
  // Two bursts: one group commit each.
  await take(Array.from({ length: 60 }, (_, i) => tx(i)));
  await take(Array.from({ length: 40 }, (_, i) => tx(60 + i)));
  log.info({ n: 100 }, 'durable');
  setInterval(() => {}, 1000); // until the kill -9
} else {
  const space = scratch('btcfed-journal-');
  const { tmp } = space;
  const capture = captureLog;

  /** What the observer heard. */
  function recorder() {
    const commits: number[] = [];
    const replayed: Partial<Record<ReplayOutcome, number>> = {};
    let failures = 0;
    const observer: JournalObserver = {
      groupCommitted: (txs) => { commits.push(txs); },
      groupFailed: () => { failures++; },
      replayed: (o, n) => { replayed[o] = (replayed[o] ?? 0) + n; },
    };
    return { observer, commits, replayed, failures: () => failures };
  }

  /** What a closed journal's file holds: its keys, and the entries in their values (dead ones too). */
  async function rawFile(dir: string): Promise<{ keys: number; entries: number; versions: number[] }> {
    const db = open<Buffer, Buffer>({ path: dir, encoding: 'binary', keyEncoding: 'binary', compression: false });
    let keys = 0;
    let entries = 0;
    const versions = new Set<number>();
    for (const { key, value } of db.getRange()) {
      keys++;
      entries += decodeValue(Buffer.from(key), value).length;
      versions.add(value[0]!);
    }
    await db.close();
    return { keys, entries, versions: [...versions].sort() };
  }
  const rawCount = async (dir: string) => (await rawFile(dir)).entries;

  test('kill -9 after the answers: every durable transaction is replayed, in order, committed ones skipped and deleted', async () => {
    const dir = path.join(tmp(), 'mempool');
    const child = startService('services/consensus/mempool-journal.test.ts', [], { JOURNAL_CHILD_DIR: dir });
    try {
      await child.waitFor((l) => l.msg === 'durable', 30_000);
    } finally {
      child.proc.kill('SIGKILL');
      await child.exited;
    }
    const all = Array.from({ length: 100 }, (_, i) => enc(`crash-tx-${i}`));
    const committed = new Set(all.slice(0, 10).map((t) => toHex(txHash(t))));
    const rec = recorder();
    const journal = new MempoolJournal({ path: dir, log: pino({ level: 'silent' }), observer: rec.observer, ...LIMITS });
    const pool = new Mempool({ ...LIMITS, maxTxBytes: 1024, onRemoved: (k) => journal.forget(k) });
    const r = await journal.replay(pool, (h) => committed.has(toHex(h)), 1);
    assert.deepEqual(r.counts, { restored: 90, committed: 10, duplicate: 0, refused: 0, corrupt: 0 });
    assert.deepEqual(r.restored.map((t) => new TextDecoder().decode(t)), all.slice(10).map((t) => new TextDecoder().decode(t)), 'acceptance order');
    assert.equal(pool.size, 90);
    assert.deepEqual(pool.batch(3, 1 << 20, new Set()).map((p) => new TextDecoder().decode(p.tx)), ['crash-tx-10', 'crash-tx-11', 'crash-tx-12'], 'proposed oldest first');
    assert.equal(journal.size, 90);
    await journal.close();
    assert.equal(await rawCount(dir), 90, 'the committed ones are deleted from the file');
  });

  test('group commit: a burst is one write; what arrives during a write is the next one; answers come after the write', async () => {
    const rec = recorder();
    const journal = new MempoolJournal({ path: path.join(tmp(), 'j'), log: pino({ level: 'silent' }), observer: rec.observer, ...LIMITS });
    const order: string[] = [];
    const orig = rec.observer.groupCommitted!;
    rec.observer.groupCommitted = (...a) => { order.push(`commit:${a[0]}`); orig(...a); };
    const txs = Array.from({ length: 1000 }, (_, i) => enc(`burst-${i}`));
    const first = Promise.all(txs.map((t) => journal.append(txHash(t), t))).then(() => order.push('answered:1000'));
    await new Promise((r) => setTimeout(r, 3)); // the first batch's window has ended: it is being written
    const late = txs.slice(0, 5).map((_, i) => enc(`late-${i}`));
    const second = Promise.all(late.map((t) => journal.append(txHash(t), t))).then(() => order.push('answered:5'));
    await Promise.all([first, second]);
    assert.deepEqual(rec.commits, [1000, 5]);
    assert.deepEqual(order, ['commit:1000', 'answered:1000', 'commit:5', 'answered:5'], 'nobody is answered before its write');
    // Appending a durable transaction again is answered at once, with no write.
    await journal.append(txHash(txs[0]!), txs[0]!);
    assert.deepEqual(rec.commits, [1000, 5]);
    await journal.close();
  });

  test('a committed transaction leaves the journal; one committed before its write is never written', async () => {
    const dir = path.join(tmp(), 'j');
    const journal = new MempoolJournal({ path: dir, log: pino({ level: 'silent' }), ...LIMITS });
    const pool = new Mempool({ ...LIMITS, maxTxBytes: 1024, onRemoved: (k) => journal.forget(k) });
    const add = (tx: Uint8Array) => { const r = pool.offer(tx, 1, none); return journal.append(r.hash!, tx); };
    const txs = Array.from({ length: 5 }, (_, i) => enc(`c-${i}`));
    await Promise.all(txs.map(add));
    assert.equal(journal.size, 5);
    pool.removeCommitted(txs.slice(0, 2).map((t) => txHash(t)));
    assert.equal(journal.size, 3);
    const quick = enc('committed-at-once');
    const answered = add(quick);
    pool.removeCommitted([txHash(quick)]);
    await answered; // answered (it is committed, better than durable)
    assert.equal(journal.size, 3);
    await journal.close();
    // The five are one group: its two committed entries stay on disk while three are live.
    assert.deepEqual(await rawFile(dir), { keys: 1, entries: 5, versions: [2] });
    // The replay drops them on the block store's word, as every committed transaction.
    const committed = new Set([...txs.slice(0, 2), quick].map((t) => toHex(txHash(t))));
    const again = new MempoolJournal({ path: dir, log: pino({ level: 'silent' }), ...LIMITS });
    const r = await again.replay(new Mempool({ ...LIMITS, maxTxBytes: 1024 }), (h) => committed.has(toHex(h)), 1);
    assert.deepEqual(r.restored.map((t) => new TextDecoder().decode(t)), ['c-2', 'c-3', 'c-4']);
    await again.close();
    assert.deepEqual(await rawFile(dir), { keys: 1, entries: 3, versions: [2] }, 'the replay wrote the group again without the dead');
  });

  test('bounds: never more than the mempool may hold; a smaller mempool at restart drops the excess, logged and counted', async () => {
    const dir = path.join(tmp(), 'j');
    const journal = new MempoolJournal({ path: dir, log: pino({ level: 'silent' }), maxTxs: 3, maxBytes: 1000 });
    const txs = Array.from({ length: 4 }, (_, i) => enc(`b-${i}`));
    await Promise.all(txs.slice(0, 3).map((t) => journal.append(txHash(t), t)));
    await assert.rejects(journal.append(txHash(txs[3]!), txs[3]!), (e) => isFedError(e, 'MEMPOOL_FULL'));
    await assert.rejects(journal.append(txHash(enc('x'.repeat(995))), enc('x'.repeat(995))), (e) => isFedError(e, 'MEMPOOL_FULL'), 'bytes');
    assert.equal(journal.size, 3);
    await journal.close();

    const { log, lines } = capture();
    const rec = recorder();
    const smaller = new MempoolJournal({ path: dir, log, observer: rec.observer, maxTxs: 2, maxBytes: 1000 });
    const r = await smaller.replay(new Mempool({ maxTxs: 2, maxBytes: 1000, maxTxBytes: 100 }), none, 1);
    assert.deepEqual(r.counts, { restored: 2, committed: 0, duplicate: 0, refused: 1, corrupt: 0 });
    assert.equal(rec.replayed.refused, 1);
    const warn = lines.find((l) => l.level === 40 && /no longer fit/.test(l.msg));
    assert.ok(warn, 'a warning says accepted transactions were dropped');
    assert.deepEqual(warn.refusedBy, { MEMPOOL_FULL: 1 });
    await smaller.close();
    assert.equal(await rawCount(dir), 2, 'the file is back within the limits');
  });

  test('one key a group commit: it is deleted with the last of its transactions to leave the mempool, not before', async () => {
    const dir = path.join(tmp(), 'j');
    const rec = recorder();
    const journal = new MempoolJournal({ path: dir, log: pino({ level: 'silent' }), observer: rec.observer, ...LIMITS });
    const pool = new Mempool({ ...LIMITS, maxTxBytes: 1024, onRemoved: (k) => journal.forget(k) });
    const txs = Array.from({ length: 1000 }, (_, i) => enc(`g-${i}`));
    await Promise.all(txs.map((t) => journal.append(pool.offer(t, 1, none).hash!, t)));
    assert.deepEqual(rec.commits, [1000]);
    assert.equal(journal.groups, 1);
    pool.removeCommitted(txs.slice(0, 999).map((t) => txHash(t)));
    assert.equal(journal.groups, 1, 'one live entry keeps its group');
    const second = enc('second-group');
    await journal.append(pool.offer(second, 1, none).hash!, second);
    assert.equal(journal.groups, 2);
    pool.removeCommitted([txHash(txs[999]!)]);
    assert.equal(journal.groups, 1);
    await journal.close(); // writes the deletion that collected
    assert.deepEqual(await rawFile(dir), { keys: 1, entries: 1, versions: [2] });
    const again = new MempoolJournal({ path: dir, log: pino({ level: 'silent' }), ...LIMITS });
    const r = await again.replay(new Mempool({ ...LIMITS, maxTxBytes: 1024 }), none, 1);
    assert.deepEqual(r.restored.map((t) => new TextDecoder().decode(t)), ['second-group']);
    await again.close();
  });

  test('dead entries do not pile up: while the file holds more than twice the live bytes, a group mostly dead is written again with its live entries', async () => {
    const dir = path.join(tmp(), 'j');
    const journal = new MempoolJournal({ path: dir, log: pino({ level: 'silent' }), ...LIMITS, compactSlackBytes: 0 });
    const pool = new Mempool({ ...LIMITS, maxTxBytes: 1024, onRemoved: (k) => journal.forget(k) });
    const group = async (name: string, n: number) => {
      const txs = Array.from({ length: n }, (_, i) => enc(`${name}-${i}`));
      await Promise.all(txs.map((t) => journal.append(pool.offer(t, 1, none).hash!, t)));
      return txs;
    };
    const a = await group('a', 100);
    const b = await group('b', 100);
    // 90 of the first group commit, and 40 of the second: 70 live of 200 on disk, over twice.
    const committed = [...a.slice(0, 90), ...b.slice(0, 40)];
    pool.removeCommitted(committed.map((t) => txHash(t)));
    const before = journal.diskBytes;
    assert.ok(before > 2 * journal.bytes, `${before} bytes on disk for ${journal.bytes} live`);
    await group('c', 1); // the next write takes the oldest group mostly dead along
    assert.ok(journal.diskBytes < before, `${journal.diskBytes} bytes on disk after, ${before} before`);
    await group('d', 1); // b is more live than dead: left as it is
    await journal.close();
    assert.deepEqual(await rawFile(dir), { keys: 4, entries: 10 + 100 + 1 + 1, versions: [2] });
    const again = new MempoolJournal({ path: dir, log: pino({ level: 'silent' }), ...LIMITS });
    const isCommitted = new Set(committed.map((t) => toHex(txHash(t))));
    const r = await again.replay(new Mempool({ ...LIMITS, maxTxBytes: 1024 }), (h) => isCommitted.has(toHex(h)), 1);
    assert.equal(r.counts.committed, 40, 'the dead entries of the group left as it was');
    const names = (xs: Uint8Array[]) => xs.map((t) => new TextDecoder().decode(t));
    assert.deepEqual(names(r.restored), [...names(a.slice(90)), ...names(b.slice(40)), 'c-0', 'd-0'], 'the live ones, in acceptance order');
    await again.close();
  });

  test('a journal an older build wrote (one key a transaction) is replayed in order, and written again as groups', async () => {
    const dir = path.join(tmp(), 'j');
    const raw = open<Buffer, Buffer>({ path: dir, encoding: 'binary', keyEncoding: 'binary', compression: false });
    const key = (n: number) => { const k = Buffer.alloc(8); k.writeBigUInt64BE(BigInt(n)); return k; };
    const txs = ['old-1', 'old-2', 'old-3'].map(enc);
    await raw.transaction(() => { txs.forEach((t, i) => raw.putSync(key(i + 5), Buffer.concat([Buffer.from([1]), txHash(t), t]))); });
    await raw.close();
    const journal = new MempoolJournal({ path: dir, log: pino({ level: 'silent' }), ...LIMITS });
    const r = await journal.replay(new Mempool({ ...LIMITS, maxTxBytes: 1024 }), (h) => toHex(h) === toHex(txHash(txs[1]!)), 1);
    assert.deepEqual(r.counts, { restored: 2, committed: 1, duplicate: 0, refused: 0, corrupt: 0 });
    assert.deepEqual(r.restored.map((t) => new TextDecoder().decode(t)), ['old-1', 'old-3']);
    const next = enc('new-1');
    await journal.append(txHash(next), next);
    await journal.close();
    assert.deepEqual(await rawFile(dir), { keys: 3, entries: 3, versions: [2] });
  });

  test('a group cut short, or holding an entry that does not hash to its hash: its readable entries are restored, the rest counted corrupt', async () => {
    const dir = path.join(tmp(), 'j');
    const journal = new MempoolJournal({ path: dir, log: pino({ level: 'silent' }), ...LIMITS });
    const txs = ['x-1', 'x-2', 'x-3'].map(enc);
    await Promise.all(txs.map((t) => journal.append(txHash(t), t)));
    await journal.close();
    const raw = open<Buffer, Buffer>({ path: dir, encoding: 'binary', keyEncoding: 'binary', compression: false });
    const [only] = [...raw.getRange()];
    // Version 1 byte, then three entries of 4 + 32 + 3 bytes: x-1 at 1, x-2 at 40, x-3 at 79.
    const value = Buffer.from(only!.value);
    assert.equal(value.length, 1 + 3 * 39);
    value[40 + 4 + 10]! ^= 1; // a flipped bit in x-2's hash
    await raw.transaction(() => { raw.putSync(Buffer.from(only!.key), value.subarray(0, value.length - 2)); }); // x-3 cut short
    await raw.close();
    const { log, lines } = capture();
    const again = new MempoolJournal({ path: dir, log, ...LIMITS });
    const r = await again.replay(new Mempool({ ...LIMITS, maxTxBytes: 1024 }), none, 1);
    assert.deepEqual(r.counts, { restored: 1, committed: 0, duplicate: 0, refused: 0, corrupt: 2 });
    assert.deepEqual(r.restored.map((t) => new TextDecoder().decode(t)), ['x-1']);
    const why = lines.filter((l) => l.msg === 'mempool journal: corrupt entry skipped and deleted').map((l) => String(l.why));
    assert.deepEqual(why, ['the transaction does not hash to the stored hash', 'entry at byte 79: a transaction of 3 bytes, 1 left']);
    await again.close();
    assert.deepEqual(await rawFile(dir), { keys: 1, entries: 1, versions: [2] }, 'written again with x-1 alone');
  });

  test('decodeValue on arbitrary bytes: never throws, and every entry it returns hashes to its hash', () => {
    let x = 0x9e3779b9; // xorshift32, seeded: the same cases every run
    const rnd = () => { x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; return x; };
    const good = encodeGroup([enc('f-1'), enc('f-22')].map((tx) => ({ hash: txHash(tx), tx })));
    let entries = 0;
    for (let i = 0; i < 3000; i++) {
      // Half the cases: a valid group with bytes flipped or cut; half: noise behind a version byte.
      let v: Buffer;
      if (i % 2 === 0) {
        v = Buffer.from(good.subarray(0, good.length - (rnd() % 8)));
        for (let k = rnd() % 3; k > 0; k--) v[rnd() % v.length]! ^= 1 << (rnd() % 8);
      } else {
        v = Buffer.alloc(rnd() % 120);
        for (let k = 0; k < v.length; k++) v[k] = rnd() & 0xff;
        if (v.length > 0) v[0] = [1, 2, rnd() & 0xff][rnd() % 3]!;
      }
      const key = Buffer.alloc(rnd() % 5 === 0 ? rnd() % 10 : 8);
      for (const e of decodeValue(key, v)) {
        if ('why' in e) { assert.equal(typeof e.why, 'string'); continue; }
        assert.equal(toHex(txHash(e.tx)), toHex(e.hash));
        entries++;
      }
    }
    assert.ok(entries > 100, `${entries} entries read back whole`);
  });

  test('corrupt entries are skipped with a log line naming each, counted and deleted; the rest is restored', async () => {
    const dir = path.join(tmp(), 'j');
    const journal = new MempoolJournal({ path: dir, log: pino({ level: 'silent' }), ...LIMITS });
    const good = enc('good-tx');
    await journal.append(txHash(good), good);
    await journal.close();
    const raw = open<Buffer, Buffer>({ path: dir, encoding: 'binary', keyEncoding: 'binary', compression: false });
    const key = (n: number) => { const k = Buffer.alloc(8); k.writeBigUInt64BE(BigInt(n)); return k; };
    const other = enc('other-tx');
    const entry = (version: number, hash: Uint8Array, tx: Uint8Array) => Buffer.concat([Buffer.from([version]), hash, tx]);
    await raw.transaction(() => {
      raw.putSync(Buffer.from('bad'), entry(1, txHash(other), other)); // key of the wrong size
      raw.putSync(key(10), Buffer.from([1, 2, 3])); // too short
      raw.putSync(key(11), entry(9, txHash(other), other)); // unknown version
      raw.putSync(key(12), entry(1, txHash(enc('something else')), other)); // does not hash to its hash (a flipped bit)
      raw.putSync(key(13), entry(1, txHash(good), good)); // the same transaction twice
    });
    await raw.close();

    const { log, lines } = capture();
    const metrics = createPromMetrics({ prefix: 'btcfed_', processMetrics: false });
    const m = consensusMetrics(metrics);
    const reopened = new MempoolJournal({ path: dir, log, observer: m.journal, ...LIMITS });
    const pool = new Mempool({ ...LIMITS, maxTxBytes: 1024 });
    const r = await reopened.replay(pool, none, 1);
    assert.deepEqual(r.counts, { restored: 1, committed: 0, duplicate: 1, refused: 0, corrupt: 4 });
    assert.deepEqual(r.restored, [good]);
    const why = lines.filter((l) => l.msg === 'mempool journal: corrupt entry skipped and deleted').map((l) => l.why as string);
    assert.equal(why.length, 4);
    assert.ok(why.some((w) => /key is 3 bytes/.test(w)));
    assert.ok(why.some((w) => /shorter than/.test(w)));
    assert.ok(why.some((w) => /version 9/.test(w)));
    assert.ok(why.some((w) => /does not hash/.test(w)));
    const text = await metrics.text();
    assert.match(text, /btcfed_consensus_mempool_journal_replayed_total\{outcome="corrupt"\} 4/);
    assert.match(text, /btcfed_consensus_mempool_journal_replayed_total\{outcome="restored"\} 1/);
    assert.match(text, /btcfed_consensus_mempool_journal_transactions 1/);
    // The next sequence number follows the highest key: a new entry does not overwrite one.
    const next = enc('after-replay');
    await reopened.append(txHash(next), next);
    await reopened.close();
    assert.equal(await rawCount(dir), 2, 'the corrupt and duplicate entries are gone');
    assert.match(await metrics.text(), /btcfed_consensus_mempool_journal_batch_transactions_count 1/);
  });

  test('ACCEPTED through the API: a batch is one group commit and answered after it; a pending transaction from another validator is journaled when a client submits it', async () => {
    const dir = path.join(tmp(), 'j');
    const rec = recorder();
    const journal = new MempoolJournal({ path: dir, log: pino({ level: 'silent' }), observer: rec.observer, ...LIMITS });
    const pool = new Mempool({ ...LIMITS, maxTxBytes: 1024, onRemoved: (k) => journal.forget(k) });
    const gossiped: Uint8Array[] = [];
    const deps = { member: 'm0', chainId: 'journal-test', self: 0, validators: [], log: pino({ level: 'silent' }), journal,
      pool: mempoolIntake(pool, none, (tx) => gossiped.push(tx)), node: { failure: undefined, isCommitted: none } } as unknown as ApiDeps;
    const api = consensusService(deps);
    const unary = <Req, Res>(handler: grpc.handleUnaryCall<Req, Res>, request: Req) => new Promise<{ err: grpc.ServiceError | null; res?: Res }>((resolve) => {
      const call = Object.assign(new EventEmitter(), { request, getPath: () => '/test', cancelled: false });
      handler(call as never, (err, res) => resolve({ err: err as grpc.ServiceError | null, res: res ?? undefined }));
    });
    const txs = Array.from({ length: 500 }, (_, i) => enc(`api-${i}`));
    const { err, res } = await unary(api.submitTransactions, { txs });
    assert.equal(err, null);
    assert.equal(res!.accepted, 500);
    assert.deepEqual(rec.commits, [500], 'one group commit for the call');
    assert.equal(journal.size, 500);
    assert.equal(gossiped.length, 500);

    // Handed over by validator 2 (not journaled), then submitted here by a client: ACCEPTED must be durable too.
    const handed = enc('from-validator-2');
    assert.equal(pool.offer(handed, 1, none, 2).status, 'added');
    assert.equal(journal.size, 500);
    const dup = await unary(api.submitTransaction, { tx: handed });
    assert.equal(dup.err, null);
    assert.equal((dup.res as { duplicate: boolean }).duplicate, true);
    assert.equal(journal.size, 501);
    assert.deepEqual(rec.commits, [500, 1]);
    await journal.close();

    // A journal that cannot write: the call fails UNAVAILABLE, naming why; nothing is claimed.
    const broken = consensusService({ ...deps, pool: mempoolIntake(new Mempool({ ...LIMITS, maxTxBytes: 1024 }), none, () => undefined),
      journal: { append: () => Promise.reject(new FedError('MEMPOOL_JOURNAL_FAILED', 'not durable: disk full')) } });
    const failed = await unary(broken.submitTransactions, { txs: [enc('x')] });
    assert.equal(failed.err?.code, grpc.status.UNAVAILABLE);
    assert.match(String(failed.err?.details), /not durable/);
  });

  test('a full disk fails the submit (MEMPOOL_JOURNAL_FAILED), not the process; once there is room, a resubmit is durable', (t) => onSmallDisk(t, space, '512k', async (mnt) => {
    const filler = path.join(mnt, 'filler');
    fs.writeFileSync(filler, Buffer.alloc(200 << 10));
    const rec = recorder();
    const { log, lines } = capture();
    const journal = new MempoolJournal({ path: path.join(mnt, 'j'), log, observer: rec.observer, ...LIMITS });
    let failure: unknown;
    let ok = 0;
    for (let i = 0; i < 100 && !failure; i++) {
      const txs = Array.from({ length: 20 }, (_, k) => enc(`full-${i}-${k}-`.padEnd(1000, '.')));
      try {
        await Promise.all(txs.map((tx) => journal.append(txHash(tx), tx)));
        ok += txs.length;
      } catch (err) { failure = err; }
    }
    assert.ok(isFedError(failure, 'MEMPOOL_JOURNAL_FAILED'), `a write failed: ${String(failure)}`);
    assert.match((failure as Error).message, /resubmit/);
    assert.equal(journal.size, ok, 'what failed is not claimed');
    assert.equal(rec.failures(), 1);
    assert.ok(lines.some((l) => l.level === 50 && /write failed/.test(l.msg)));
    fs.rmSync(filler);
    const retry = enc('after-room');
    await journal.append(txHash(retry), retry);
    assert.equal(journal.size, ok + 1);
    await journal.close();
  }));
}
