// Durability proven from system calls, not asserted: real consensus drivers with real LMDB
// block stores run under strace, and for every vote member 0 sends, the trace must show the
// LMDB write that carries that vote's safety record (lastVoted = the vote's view and phase),
// then an fdatasync of the data file, then LMDB's meta-page write that makes the transaction
// durable — all finished before the vote's bytes are written to the socket. With LMDB's
// default overlapping sync the flush happens later and this test fails (it did, before the fix).

import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { parseStrace, type Syscall } from './support/strace.ts';


let dir: string;
before(async () => { dir = await fs.mkdtemp(path.join(os.tmpdir(), 'btcfed-durability-')); });

async function traceProbe(commits: number): Promise<{ calls: Syscall[]; sent: string[] }> {
  const sent: string[] = [];
  const server = net.createServer((s) => s.on('data', (d) => sent.push(...d.toString().split('\n').filter(Boolean))));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  const out = path.join(dir, 'probe.trace');
  // Every flush is made 60 ms slow (strace's syscall delay injection): a store that resolved its
  // writes before flushing them would let votes out inside that window, and be caught.
  const child = spawn('strace', ['-f', '-y', '-qq', '-s', '400000', '-o', out,
    '-e', 'trace=pwrite64,pwritev,pwritev2,write,writev,fsync,fdatasync,msync', '-e', 'inject=fsync,fdatasync:delay_enter=60000',
    process.execPath, 'test/durability/driver-probe.ts', '--dir', path.join(dir, 'stores'), '--port', String(port), '--commits', String(commits)],
  { stdio: ['ignore', 'inherit', 'inherit'] });
  const code = await new Promise<number | null>((r) => child.on('exit', r));
  server.close();
  assert.equal(code, 0, 'the probe ran to its commits');
  return { calls: parseStrace(await fs.readFile(out, 'utf8')), sent };
}

test('every vote leaves only after its safety record is fdatasynced and LMDB\'s meta page is written', async () => {
  assert.equal(spawnSync('strace', ['-V']).status, 0, 'strace is not installed: run scripts/ensure-tools.sh (the README\'s set-up)');
  const { calls, sent } = await traceProbe(3);
  const dataFile = (c: Syscall) => c.path?.endsWith('/m0/data.mdb') === true;
  const votes = calls.filter((c) => c.path?.startsWith('socket:') && /^vote \d+ \d+/.test(c.strings[0] ?? ''));
  assert.ok(votes.length >= 6, `member 0 sent ${votes.length} votes (${sent.length} messages)`);
  for (const v of votes) {
    const [, view, phase] = /^vote (\d+) (\d+)/.exec(v.strings[0]!)!;
    const mark = `"lastVoted":{"view":${view},"phase":${phase}}`;
    // The first data write that carries this vote's safety record…
    const write = calls.find((c) => dataFile(c) && c.ret > 128 && c.strings.some((t) => t.includes(mark)));
    assert.ok(write, `vote ${view}/${phase}: no LMDB write carries its safety record`);
    assert.ok(write.end < v.start, `vote ${view}/${phase} was sent before its safety record was written`);
    // …then the data file flushed…
    const sync = calls.find((c) => dataFile(c) && (c.name === 'fdatasync' || c.name === 'fsync') && c.start > write.end);
    assert.ok(sync && sync.end < v.start, `vote ${view}/${phase} was sent before the data file was flushed`);
    // …then the meta page that points at it (a 128-byte write on LMDB's O_DSYNC handle).
    const meta = calls.find((c) => dataFile(c) && c.ret === 128 && c.start > sync.end);
    assert.ok(meta && meta.end < v.start, `vote ${view}/${phase} was sent before LMDB's meta page made the transaction durable`);
  }
});
