// Catch-up on real processes: a federation of N members (16 processes at N = 4), one member's
// consensus stopped while the others commit GAP more blocks, then restarted; it must catch up
// through block sync over real libp2p. Opt-in (slow): BTCFED_CATCHUP_E2E=1, with
// CATCHUP_MEMBERS (default 4) and CATCHUP_GAP (default 300 blocks) or CATCHUP_DOWN_S (seconds
// stopped, e.g. 300 for the N = 7 for several minutes). Prints its figures.

import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { call } from '#libs/rpc/index.ts';
import type { ConsensusServiceClient } from '#libs/gen/btcfed/v1/consensus.pb.ts';
import { consensusClient } from '../cli/client.ts';
import { initFederation } from '../cli/init.ts';
import { runDevnet, type Devnet } from '../cli/devnet.ts';
import { NATS_URL } from './support/store.ts';
import { freePortBlock } from './support/ports.ts';

const enabled = process.env.BTCFED_CATCHUP_E2E === '1';
const N = Number(process.env.CATCHUP_MEMBERS ?? 4);
const GAP = Number(process.env.CATCHUP_GAP ?? 300);
const DOWN_S = Number(process.env.CATCHUP_DOWN_S ?? 0);
const basePort = await freePortBlock(20_000, 120);
const chainId = `catchup-${randomBytes(3).toString('hex')}`;

describe(`catch-up on real processes (N = ${N})`, { skip: !enabled && 'opt-in: BTCFED_CATCHUP_E2E=1', timeout: 3_600_000 }, () => {
  let dir = '';
  let net: Devnet | undefined;
  const clients: ConsensusServiceClient[] = [];
  after(async () => {
    for (const c of clients) c.close();
    await net?.stop();
    if (dir && !process.env.KEEP_E2E) await fs.rm(dir, { recursive: true, force: true });
  });
  const height = async (i: number) => Number((await call(clients[i]!.getStatus.bind(clients[i]!), {}, { deadlineMs: 5000 })).committedHeight);
  async function until(what: string, fn: () => Promise<boolean>, ms: number): Promise<void> {
    const t0 = Date.now();
    while (Date.now() - t0 < ms) {
      if (await fn().catch(() => false)) return;
      await new Promise((r) => setTimeout(r, 500));
    }
    throw new Error(`timed out waiting for ${what}`);
  }

  test('a member stopped while the others commit rejoins and catches up', async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'btcfed-catchup-e2e-'));
    await initFederation({ members: N, out: dir, basePort, chainId, paramSet: 'slh-dsa-sha2-128f', baseTimeout: '1s', logFormat: 'json', natsUrl: NATS_URL });
    net = await runDevnet({ dir, members: N, basePort, natsUrl: NATS_URL, quiet: true });
    for (let i = 0; i < N; i++) clients.push(consensusClient(path.join(dir, `m${i}`)));
    const lag = N - 1;
    await until('first commits', async () => (await height(0)) >= 3, 120_000);
    const stopped = net.procs.find((p) => p.member === `m${lag}` && p.service === 'consensus')!;
    stopped.child.kill('SIGTERM');
    await new Promise((r) => stopped.child.once('exit', r));
    const atStop = await height(0);
    const t0 = Date.now();
    if (DOWN_S > 0) await new Promise((r) => setTimeout(r, DOWN_S * 1000));
    await until(`${GAP} blocks committed without m${lag}`, async () => (await height(0)) >= atStop + GAP, 1_800_000);
    const target = await height(0);
    const downMs = Date.now() - t0;
    const t1 = Date.now();
    await net.restart(lag, 'consensus');
    const restartMs = Date.now() - t1;
    await until(`m${lag} catches up to ${target}`, async () => (await height(lag)) >= target, 1_800_000);
    const catchUpMs = Date.now() - t1;
    const others = await height(0);
    console.log(`catch-up-e2e: members=${N} down_ms=${downMs} behind_blocks=${target - atStop} restart_ms=${restartMs} ` +
      `catch_up_ms=${catchUpMs} blocks_per_s=${((target - atStop) / (catchUpMs / 1000)).toFixed(0)} others_now=${others}`);
    assert.ok((await height(lag)) >= target);
  });
});
