// What the mempool journal costs a member per transaction its clients submit: the append that
// makes ACCEPTED durable, and the forgetting when the transaction commits, through the real
// MempoolJournal (one LMDB key a group commit). The baseline, in the same run and on the same
// LMDB options: the layout the journal had before, one key a transaction, put in the group
// commit's transaction and deleted one by one when it commits. Load: rounds of transactions
// appended in one burst (one group commit each); the commits trail four rounds behind, as
// blocks trail the intake under load. CPU is the whole process's (LMDB's writes included),
// over the rounds after the warm-up; both runs alternate, so the machine's drift falls on both.
// Never asserted: it prints figures.
//
// Run: node_modules/.bin/node bench/journal.ts [--rounds 60] [--per 5000] [--tx-bytes 250] [--pairs 3] [--quick]

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { open } from 'lmdb';
import { pino } from 'pino';
import { txHash } from '#libs/crypto/index.ts';
import { MempoolJournal } from '../services/consensus/mempool-journal.ts';
import { ms, printMachine, table } from './support.ts';

const { values: args } = parseArgs({
  options: {
    rounds: { type: 'string', default: '60' },
    per: { type: 'string', default: '5000' },
    'tx-bytes': { type: 'string', default: '250' },
    pairs: { type: 'string', default: '3' },
    quick: { type: 'boolean', default: false },
  },
});
const rounds = args.quick ? 20 : Number(args.rounds);
const per = args.quick ? 2000 : Number(args.per);
const txBytes = Number(args['tx-bytes']);
const pairs = args.quick ? 1 : Number(args.pairs);
const WARMUP_ROUNDS = Math.min(10, Math.floor(rounds / 3));
const LAG = 4;

/** What both layouts are driven through: a burst made durable, and ids that committed. */
interface Layout { append(ids: Uint8Array[], txs: Uint8Array[]): Promise<void>; forget(ids: Uint8Array[]): void; close(): Promise<void> }

function journalLayout(dir: string): Layout {
  const j = new MempoolJournal({ path: dir, log: pino({ level: 'silent' }), maxTxs: 10_000_000, maxBytes: 1 << 30 });
  return {
    append: async (ids, txs) => { await Promise.all(txs.map((t, i) => j.append(ids[i]!, t))); },
    forget: (ids) => j.forget(ids),
    close: () => j.close(),
  };
}

/** The former layout: `1 | hash | tx` under an 8-byte sequence number a transaction; a commit deletes its keys with the next write. */
function keyPerTransaction(dir: string): Layout {
  const db = open<Buffer, Buffer>({ path: dir, compression: false, overlappingSync: false, eventTurnBatching: false, encoding: 'binary', keyEncoding: 'binary' });
  const seqOf = new Map<string, number>();
  let next = 1;
  let removes: number[] = [];
  const key = (seq: number) => { const k = Buffer.alloc(8); k.writeBigUInt64BE(BigInt(seq)); return k; };
  return {
    append: async (ids, txs) => {
      const puts = txs.map((tx, i) => {
        const v = Buffer.allocUnsafe(1 + 32 + tx.length);
        v[0] = 1; v.set(ids[i]!, 1); v.set(tx, 33);
        const seq = next++;
        seqOf.set(Buffer.from(ids[i]!).toString('latin1'), seq);
        return { seq, v };
      });
      const gone = removes;
      removes = [];
      await db.transaction(() => {
        for (const p of puts) db.putSync(key(p.seq), p.v);
        for (const seq of gone) db.removeSync(key(seq));
      });
    },
    forget: (ids) => {
      for (const id of ids) {
        const k = Buffer.from(id).toString('latin1');
        const seq = seqOf.get(k);
        if (seq !== undefined) { seqOf.delete(k); removes.push(seq); }
      }
    },
    close: () => db.close(),
  };
}

/** CPU-µs per transaction (append and forget) over the rounds after the warm-up, and the file's size at the end. */
async function measure(make: (dir: string) => Layout): Promise<{ cpuUs: number; fileMiB: number }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'btcfed-bench-journal-'));
  const layout = make(dir);
  let n = 0;
  const tx = () => { const t = new Uint8Array(txBytes); new DataView(t.buffer).setUint32(0, n++); t[4] = 1; return t; };
  const trailing: Uint8Array[][] = [];
  let cpu = 0;
  let counted = 0;
  for (let r = 0; r < rounds; r++) {
    const txs = Array.from({ length: per }, tx);
    const ids = txs.map((t) => txHash(t));
    const t0 = process.cpuUsage();
    await layout.append(ids, txs);
    trailing.push(ids);
    if (trailing.length > LAG) layout.forget(trailing.shift()!);
    const u = process.cpuUsage(t0);
    if (r >= WARMUP_ROUNDS) { cpu += u.user + u.system; counted += per; }
  }
  await layout.close();
  const fileMiB = fs.statSync(path.join(dir, 'data.mdb')).size / (1 << 20);
  fs.rmSync(dir, { recursive: true, force: true });
  return { cpuUs: cpu / counted, fileMiB };
}

printMachine('the mempool journal: append and forget, per transaction', [
  `load       ${rounds} rounds of ${per} transactions of ${txBytes} bytes, one group commit each; commits trail ${LAG} rounds; ${pairs} pair(s), alternating`,
]);
const rows: string[][] = [];
const sums = { before: 0, groups: 0 };
for (let p = 0; p < pairs; p++) {
  const before = await measure(keyPerTransaction);
  const groups = await measure(journalLayout);
  sums.before += before.cpuUs;
  sums.groups += groups.cpuUs;
  rows.push([String(p + 1), ms(before.cpuUs), ms(groups.cpuUs), `${before.fileMiB.toFixed(1)} / ${groups.fileMiB.toFixed(1)}`]);
}
console.log(table(['pair', 'baseline: a key a transaction (CPU-µs/tx)', 'MempoolJournal: a key a group (CPU-µs/tx)', 'file MiB (baseline / journal)'], rows));
console.log(`\nmean over ${pairs} pair(s): ${ms(sums.before / pairs)} CPU-µs per transaction with a key a transaction, ${ms(sums.groups / pairs)} with a key a group commit (${(100 * (1 - sums.groups / sums.before)).toFixed(0)} % less)`);
