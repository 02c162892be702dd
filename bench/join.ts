// How long a new observer takes to reach the tip (`npm run bench -- join [--blocks 600] [--tx-rate 20]`):
// replaying every block from genesis against joining from a checkpoint (the epoch proofs, a
// certified recent block, and the history's headers and transaction ids), in one run on one chain.
// A devnet of 4 validators (keeping every block) and 2 observers runs until the chain holds
// --blocks blocks (with --tx-rate transactions a second as load); then each observer in turn is
// stopped, its store deleted, and started again — o0 with consensus.bootstrap: replay (the
// baseline), o1 with checkpoint — and timed from its start to the validators' tip at that start.
// Printed, never asserted.

import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { parseDocument } from 'yaml';
import { call } from '#libs/rpc/index.ts';
import { consensusClient } from '../cli/client.ts';
import { runDevnet } from '../cli/devnet.ts';
import { initFederation } from '../cli/init.ts';
import { printMachine, table, du } from './support.ts';

const { values: f } = parseArgs({ options: {
  blocks: { type: 'string', default: '600' }, 'tx-rate': { type: 'string', default: '20' }, quick: { type: 'boolean', default: false },
} });
const BLOCKS = f.quick ? 150 : Number(f.blocks);
const RATE = Number(f['tx-rate']);
const NATS = process.env.NATS_URL ?? 'nats://127.0.0.1:4222';


printMachine(`a new observer reaching the tip: replay from genesis against a checkpoint join (${BLOCKS} blocks)`);
const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'btcfed-bench-join-'));
const basePort = 12_000 + 100 * Math.floor(Math.random() * 70);
await initFederation({ members: 4, observers: 2, out: dir, basePort, chainId: `bench-join-${Date.now().toString(36)}`, paramSet: 'slh-dsa-sha2-128f',
  baseTimeout: '1s', logFormat: 'json', natsUrl: NATS, idleHeartbeat: '0s' });
// Both observers follow the validators (o1 would follow o0 by default).
for (const [name, mode] of [['o0', 'replay'], ['o1', 'checkpoint']] as const) {
  const file = path.join(dir, name, 'conf.yaml');
  const doc = parseDocument(await fs.readFile(file, 'utf8'));
  doc.setIn(['consensus', 'follow'], []);
  doc.setIn(['consensus', 'bootstrap'], mode);
  await fs.writeFile(file, doc.toString());
}
const net = await runDevnet({ dir, members: 4, observers: 2, basePort, natsUrl: NATS, quiet: true });
const m0 = consensusClient(path.join(dir, 'm0'));
const height = async (c: ReturnType<typeof consensusClient>) => Number((await call(c.getStatus.bind(c), {}, { deadlineMs: 10_000 })).committedHeight);
const rows: string[][] = [];
try {
  let load = true;
  let sent = 0;
  const loading = (async () => {
    while (load) {
      for (let k = 0; k < RATE / 10; k++) {
        void call(m0.submitTransaction.bind(m0), { tx: randomBytes(250) }, { deadlineMs: 5000 }).then(() => { sent++; }, () => undefined);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  const t0 = Date.now();
  while (await height(m0) < BLOCKS) await new Promise((r) => setTimeout(r, 2000));
  console.log(`chain at ${await height(m0)} blocks after ${((Date.now() - t0) / 1000).toFixed(0)} s (${sent} transactions)`);
  for (const [name, label] of [['o0', 'replay every block (bootstrap: replay)'], ['o1', 'checkpoint join (bootstrap: checkpoint)']] as const) {
    const p = net.procs.find((x) => x.member === name && x.service === 'consensus')!;
    p.child.kill('SIGTERM');
    await new Promise((r) => p.child.once('exit', r));
    await fs.rm(path.join(dir, name, 'consensus'), { recursive: true, force: true });
    const started = Date.now();
    const target = await height(m0);
    await net.restart(name, 'consensus');
    const c = consensusClient(path.join(dir, name));
    while (await height(c).catch(() => 0) < target) await new Promise((r) => setTimeout(r, 100));
    const s = (Date.now() - started) / 1000;
    rows.push([label, String(target), `${s.toFixed(1)} s`, `${(target / s).toFixed(0)}`, `${((await du(path.join(dir, name, 'consensus'))) / 1024 / 1024).toFixed(1)} MiB`]);
    c.close();
  }
  load = false;
  await loading;
} finally {
  m0.close();
  await net.stop();
  await fs.rm(dir, { recursive: true, force: true });
}
console.log(table(['observer starting from an empty store', 'tip', 'start → tip', 'heights/s', 'its store'], rows));
console.log('(start → tip includes the service start, ~2 s; the first row is the baseline)');
