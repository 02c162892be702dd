// What an idle member writes to disk (`npm run bench -- idle-disk [--members 4] [--minutes 10]
// [--heartbeat 10s] [--baseline-minutes 3] [--keep-blocks K]`): the same devnet made twice in one run — first as before
// (idle_heartbeat 0: a block every view), then with idle views (a block per heartbeat); with
// --keep-blocks, a third time: a block every view with consensus.keep_blocks K on every member
// (retention: the block store stops growing once it holds K blocks and the pruning step; measured
// from once the window is full) — and, over
// a window with no transactions at all, each member's growth per minute: its block store (LMDB),
// its signer's state and journal, its logs, and its share of the BTCFED_BLOCKS JetStream stream
// (the bytes of its block.committed events). Printed, never asserted.

import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { jetstreamManager } from '@nats-io/jetstream';
import { BlockCommitted } from '#libs/gen/btcfed/v1/events.pb.ts';
import { call } from '#libs/rpc/index.ts';
import { connectEvents, subject, BLOCKS_STREAM, BLOCK_COMMITTED_EVENT } from '#libs/events/index.ts';
import { pino } from 'pino';
import { parseDocument } from 'yaml';
import { consensusClient } from '../cli/client.ts';
import { runDevnet } from '../cli/devnet.ts';
import { initFederation } from '../cli/init.ts';
import { printMachine, table, du } from './support.ts';
import { freePortBlock } from '../test/support/ports.ts';

const { values: f } = parseArgs({ options: {
  members: { type: 'string', default: '4' }, minutes: { type: 'string', default: '10' }, heartbeat: { type: 'string', default: '10s' },
  'baseline-minutes': { type: 'string' }, 'keep-blocks': { type: 'string' }, quick: { type: 'boolean', default: false },
} });
const N = Number(f.members);
const minutes = f.quick ? 0.5 : Number(f.minutes);
const baselineMinutes = f.quick ? 0.5 : Number(f['baseline-minutes'] ?? f.minutes);
const NATS = process.env.NATS_URL ?? 'nats://127.0.0.1:4222';
const log = pino({ level: 'silent' });

/**
 * The size of this chain's latest block.committed event of `member` in the stream (other runs on
 * this NATS publish under the same member names: the chain id tells ours).
 */
async function eventBytes(member: string, chainId: string): Promise<number> {
  const conn = await connectEvents({ url: NATS, name: 'bench-idle-disk', log });
  try {
    const jsm = await jetstreamManager(conn.nc);
    const m = await jsm.streams.getMessage(BLOCKS_STREAM, { last_by_subj: subject(member, 'consensus', BLOCK_COMMITTED_EVENT) }).catch(() => null);
    if (!m || BlockCommitted.decode(m.data).header?.chainId !== chainId) return NaN;
    return m.data.length + m.subject.length + (m.header?.toString().length ?? 0);
  } finally {
    await conn.drain();
  }
}

interface Sizes { store: number; signer: number; logs: number; height: number }
async function sizes(dir: string, member: string): Promise<Sizes> {
  const m = path.join(dir, member);
  const c = consensusClient(m);
  try {
    const height = Number((await call(c.getStatus.bind(c), {}, { deadlineMs: 10_000 })).committedHeight);
    return { store: await du(path.join(m, 'consensus')), signer: await du(path.join(m, 'signer')), logs: await du(path.join(m, 'logs')), height };
  } finally {
    c.close();
  }
}

async function run(label: string, heartbeat: string | undefined, mins: number, keepBlocks = 0): Promise<string[]> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'btcfed-bench-idle-disk-'));
  const basePort = await freePortBlock(10_000, 70);
  const chainId = `bench-idle-disk-${Date.now().toString(36)}`;
  await initFederation({ members: N, out: dir, basePort, chainId, paramSet: 'slh-dsa-sha2-128f', baseTimeout: '1s', logFormat: 'json', natsUrl: NATS,
    ...(heartbeat ? { idleHeartbeat: heartbeat } : {}) });
  for (let i = 0; keepBlocks > 0 && i < N; i++) {
    const confPath = path.join(dir, `m${i}`, 'conf.yaml');
    const doc = parseDocument(await fs.readFile(confPath, 'utf8'));
    doc.setIn(['consensus', 'keep_blocks'], keepBlocks);
    await fs.writeFile(confPath, doc.toString());
  }
  const net = await runDevnet({ dir, members: N, basePort, natsUrl: NATS, quiet: true });
  try {
    await new Promise((r) => setTimeout(r, 15_000)); // started, connected, first blocks
    // With retention, the window is measured once it is full and pruning runs (a soak shows whether
    // the store then stops growing with height): past 2K heights and a pruning step.
    for (const t = Date.now(); keepBlocks > 0 && Date.now() - t < 10 * 60_000;) {
      if ((await sizes(dir, 'm0')).height >= 2 * keepBlocks + 64) break;
      await new Promise((r) => setTimeout(r, 5_000));
    }
    const before = await sizes(dir, 'm0');
    const t0 = Date.now();
    await new Promise((r) => setTimeout(r, mins * 60_000));
    const after = await sizes(dir, 'm0');
    const event = await eventBytes('m0', chainId);
    const m = (Date.now() - t0) / 60_000;
    const per = (k: keyof Sizes) => (after[k] - before[k]) / m;
    const kib = (b: number) => `${(b / 1024).toFixed(0)} KiB`;
    // JetStream: one event per block (its size from this chain's latest), what retention then bounds.
    const stream = per('height') * (Number.isNaN(event) ? 0 : event);
    const total = per('store') + per('signer') + per('logs') + stream;
    console.log(`${label}: m0's block store ${(before.store / 1024 / 1024).toFixed(1)} → ${(after.store / 1024 / 1024).toFixed(1)} MiB at heights ${before.height} → ${after.height}`);
    return [label, `${m.toFixed(1)} min`, `${per('height').toFixed(1)}`, kib(per('store')), kib(per('signer')), kib(per('logs')), Number.isNaN(event) ? 'n/a' : kib(stream), `${(total / 1024 / 1024).toFixed(2)} MiB`];
  } finally {
    await net.stop();
    await fs.rm(dir, { recursive: true, force: true });
  }
}

printMachine(`idle disk growth of one member (m0 of ${N}), per minute, no transactions`);
const rows = [
  await run('before: a block every view (idle_heartbeat 0)', undefined, baselineMinutes),
  await run(`idle views, heartbeat ${f.heartbeat}`, f.heartbeat, minutes),
  ...(f['keep-blocks'] ? [await run(`a block every view, keep_blocks ${f['keep-blocks']}`, undefined, baselineMinutes, Number(f['keep-blocks']))] : []),
];
console.log(table(['federation', 'window', 'blocks/min', 'block store', 'signer', 'logs', 'JetStream', 'total/min'], rows));
console.log('(JetStream: blocks a minute × the size of this chain\'s latest block.committed event of m0; logs at the devnet\'s info level)');
