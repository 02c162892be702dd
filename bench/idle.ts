// What an idle process costs (`npm run bench -- idle [--members 4] [--seconds 20]`): a devnet of
// N members is started, every member's consensus is paused through AdminService (no proposals,
// no votes), and each service process's CPU time is read from /proc over the window. What is
// left is the price of being up — timers, keepalives and pings, peer exchange, metrics, NATS
// heartbeats, the gateway polls, re-broadcasts of a signed NEW-VIEW — paid 4·N times on a
// machine that hosts every member. Compared in the same run against the same federation
// running (not paused), so the share of consensus work is visible. Never asserted.
// `--profile gateway|consensus|signer|store` also takes a CPU profile of m0's process of that
// service over the paused window (bench/attach-profile.ts) and prints where its time goes.

import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { call } from '#libs/rpc/index.ts';
import { adminClient } from '../cli/client.ts';
import { runDevnet, type Devnet } from '../cli/devnet.ts';
import { initFederation } from '../cli/init.ts';
import { profileProcess, topSelf } from './attach-profile.ts';
import { printMachine, processCpuMs, table } from './support.ts';
import { freePortBlock } from '../test/support/ports.ts';

const { values: f } = parseArgs({ options: { members: { type: 'string', default: '4' }, seconds: { type: 'string', default: '20' }, quick: { type: 'boolean', default: false }, profile: { type: 'string' } } });
const N = Number(f.members);
const seconds = f.quick ? 5 : Number(f.seconds);
const SERVICES = ['store', 'signer', 'gateway', 'consensus'] as const;

/** CPU-ms per second per process of each service over `ms`. */
async function cpuRate(net: Devnet, ms: number): Promise<Map<string, number>> {
  const snap = () => new Map(net.procs.map((p) => [`${p.member}/${p.service}`, p.child.pid === undefined ? 0 : processCpuMs(p.child.pid) ?? 0]));
  const a = snap();
  const t0 = Date.now();
  await new Promise((r) => setTimeout(r, ms));
  const b = snap();
  const secs = (Date.now() - t0) / 1000;
  const by = new Map<string, number>();
  for (const [key, end] of b) {
    const service = key.split('/')[1]!;
    by.set(service, (by.get(service) ?? 0) + (end - (a.get(key) ?? end)) / N / secs);
  }
  return by;
}

printMachine(`idle cost per process: N=${N}, ${seconds} s windows`);
const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'btcfed-bench-idle-'));
const basePort = await freePortBlock(10_000, 70);
await initFederation({ members: N, out: dir, basePort, chainId: 'bench-idle', paramSet: 'slh-dsa-sha2-128f', baseTimeout: '1s', logFormat: 'json', natsUrl: process.env.NATS_URL ?? 'nats://127.0.0.1:4222' });
const net = await runDevnet({ dir, members: N, basePort, natsUrl: process.env.NATS_URL ?? 'nats://127.0.0.1:4222', quiet: true });
try {
  await new Promise((r) => setTimeout(r, 3000));
  const running = await cpuRate(net, seconds * 1000);
  for (let i = 0; i < N; i++) {
    const a = adminClient(path.join(dir, `m${i}`));
    try { await call(a.pause.bind(a), {}); } finally { a.close(); }
  }
  await new Promise((r) => setTimeout(r, 2000));
  const profiled = f.profile ? net.procs.find((p) => p.member === 'm0' && p.service === f.profile) : undefined;
  if (f.profile && !profiled) throw new Error(`--profile: no service ${f.profile} (one of ${SERVICES.join(', ')})`);
  const [paused, profile] = await Promise.all([
    cpuRate(net, seconds * 1000),
    profiled?.child.pid === undefined ? undefined : profileProcess(profiled.child.pid, seconds),
  ]);
  const total = (m: Map<string, number>) => [...m.values()].reduce((s, x) => s + x, 0) * N;
  console.log(table(['service', '', 'running (CPU-ms/s per process)', 'consensus paused (CPU-ms/s per process)'], [
    ...SERVICES.map((s) => [s, '', (running.get(s) ?? 0).toFixed(1), (paused.get(s) ?? 0).toFixed(1)]),
    [`all ${4 * N} processes (CPU-ms/s)`, '', total(running).toFixed(0), total(paused).toFixed(0)],
    ['share of one core', '', `${(total(running) / 10).toFixed(1)} %`, `${(total(paused) / 10).toFixed(1)} %`],
  ]));
  if (profile) {
    const out = path.join(os.tmpdir(), `idle-m0-${f.profile}-N${N}.cpuprofile`);
    await fs.writeFile(out, JSON.stringify(profile));
    console.log(`\nm0's ${f.profile}, consensus paused: self time by function (profile in ${out})`);
    for (const r of topSelf(profile, 30)) console.log(`${(100 * r.share).toFixed(1).padStart(5)} %  ${r.ms.toFixed(0).padStart(6)} ms  ${r.fn}`);
  }
} finally {
  await net.stop();
  await fs.rm(dir, { recursive: true, force: true });
}
