// Idle views on real processes (consensus.idle_heartbeat, libs/hotstuff/idle.ts): a federation
// with nothing to order commits only heartbeats and stays in its view; a transaction commits at
// once, without waiting for the heartbeat; views stay free of timeouts.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { txHash } from '#libs/crypto/index.ts';
import { call } from '#libs/rpc/index.ts';
import { TxStatus, type ConsensusServiceClient } from '#libs/gen/btcfed/v1/consensus.pb.ts';
import { consensusClient } from '../cli/client.ts';
import { initFederation } from '../cli/init.ts';
import { runDevnet, type Devnet } from '../cli/devnet.ts';
import { NATS_URL } from './support/store.ts';
import { until } from './support/until.ts';
import { freePortBlock } from './support/ports.ts';
import { WARN_OR_WORSE, logTail } from './support/logs.ts';

const N = 4;
const HEARTBEAT_S = 5;
const basePort = await freePortBlock(20_000, 120);
let dir: string;
let net: Devnet | undefined;
const clients: ConsensusServiceClient[] = [];
const status = (i: number) => call(clients[i]!.getStatus.bind(clients[i]!), {}, { deadlineMs: 5000 });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

before(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'btcfed-idle-'));
  await initFederation({ members: N, out: dir, basePort, chainId: `idle-${randomBytes(3).toString('hex')}`, paramSet: 'slh-dsa-sha2-128f',
    baseTimeout: '1s', idleHeartbeat: `${HEARTBEAT_S}s`, logFormat: 'json', natsUrl: NATS_URL });
  const conf = await fs.readFile(path.join(dir, 'm0', 'conf.yaml'), 'utf8');
  assert.match(conf, new RegExp(`idle_heartbeat: ${HEARTBEAT_S}s`), 'the genesis carries the heartbeat into conf.yaml');
  net = await runDevnet({ dir, members: N, basePort, natsUrl: NATS_URL, quiet: true });
  for (let i = 0; i < N; i++) clients.push(consensusClient(path.join(dir, `m${i}`)));
});

after(async () => {
  for (const c of clients) c.close();
  await net?.stop();
  await fs.rm(dir, { recursive: true, force: true });
});

test('an idle federation commits a heartbeat block now and then, and no block or view in between', { timeout: 120_000 }, async () => {
  // The first heartbeat: every member has committed height 1.
  await until('the first heartbeat block', async () => ((await Promise.all(clients.map((_, i) => status(i)))).every((s) => Number(s.committedHeight) >= 1) ? true : undefined), 60_000);
  const before = await status(0);
  const window = 3 * HEARTBEAT_S + 1;
  await sleep(window * 1000);
  const afterIdle = await status(0);
  const blocks = Number(afterIdle.committedHeight) - Number(before.committedHeight);
  const views = Number(afterIdle.view) - Number(before.view);
  console.log(`idle ${window} s: ${blocks} block(s), ${views} view(s) (heartbeat ${HEARTBEAT_S} s; a block every view would be ~${window * 2}+)`);
  assert.ok(blocks >= 1, `heartbeats still commit: ${blocks} in ${window} s`);
  assert.ok(blocks <= Math.ceil(window / HEARTBEAT_S) + 1, `only heartbeats commit: ${blocks} blocks in ${window} s`);
  // On failure, say why each member changed views: the runs that failed so far left no logs behind,
  // and CI shows the assertion's message but may cut what was printed before it.
  const quiet = views <= blocks + 1;
  if (!quiet) console.log(await viewChanges());
  assert.ok(quiet, `no view changes but the heartbeats' (${views} views for ${blocks} blocks): a quiet view outlives its timer\n${quiet ? '' : await viewSummary()}`);
});

/** Member i's last `count` consensus log lines (JSON) that `keep` accepts. */
const consensusLog = (i: number, keep: (line: string) => boolean, count: number, width: number) =>
  logTail(path.join(dir, `m${i}`, 'logs', 'consensus.log'), keep, count, width);
const viewWords = (l: string) => l.includes('"view started"') || l.includes('"view given up');

/** One line a member: each view it entered and why, each view it gave up at once and why, each validator said absent or back. */
async function viewSummary(): Promise<string> {
  const out: string[] = [];
  for (let i = 0; i < N; i++) {
    const words = (await consensusLog(i, (l) => viewWords(l) || l.includes('(gateway)'), 14, 2000)).map((l) => {
      try {
        const o = JSON.parse(l) as { time?: string; view?: number; cause?: string; reason?: string; leader?: number; validator?: number; msg?: string };
        const t = o.time?.slice(17, 23) ?? '';
        if (o.msg === 'view started') return `${t} v${o.view}:${o.cause}`;
        if (o.msg?.startsWith('view given up')) return `${t} gave-up v${o.view} (leader ${o.leader}: ${o.reason})`;
        return `${t} ${o.msg?.split(' ').slice(0, 3).join(' ')} ${o.validator ?? ''}`;
      } catch { return l.slice(0, 80); }
    });
    out.push(`m${i}: ${words.join(', ')}`);
  }
  return out.join('\n');
}

/** Each member's last view changes and warnings, from its consensus log (JSON lines). */
async function viewChanges(): Promise<string> {
  const out: string[] = [];
  for (let i = 0; i < N; i++) {
    const lines = await consensusLog(i, (l) => viewWords(l) || WARN_OR_WORSE.test(l), 10, 300);
    out.push(...lines.map((l) => `  [m${i}/consensus] ${l}`));
  }
  return `view changes and warnings, the last 10 of each member:\n${out.join('\n')}`;
}

test('a transaction at an idle federation commits without waiting for the heartbeat', { timeout: 120_000 }, async () => {
  // Just after a heartbeat commit: the next one is HEARTBEAT_S away.
  const h0 = Number((await status(1)).committedHeight);
  await until('a heartbeat', async () => (Number((await status(1)).committedHeight) > h0 ? true : undefined), 30_000);
  const tx = new TextEncoder().encode(`idle-tx-${randomBytes(6).toString('hex')}`);
  const started = Date.now();
  await call(clients[1]!.submitTransaction.bind(clients[1]!), { tx });
  const r = await until('the transaction committed on every member', async () => {
    for (const c of clients) {
      const s = await call(c.getTransaction.bind(c), { txHash: txHash(tx), withProof: false });
      if (s.status !== TxStatus.TX_STATUS_COMMITTED) return undefined;
    }
    return Date.now() - started;
  }, 60_000);
  console.log(`a transaction at idle: committed everywhere ${r} ms after submission (heartbeat ${HEARTBEAT_S} s)`);
  // Committed before the heartbeat was due: it did not wait for it. (A correctness bound, not a
  // speed figure: waiting for the heartbeat would take HEARTBEAT_S s at least.)
  assert.ok(r < HEARTBEAT_S * 1000 - 1000, `committed in ${r} ms, before the next heartbeat`);
});
