// What a member restarted far behind costs the others (`node bench/catch-up.ts [--down 60] [--rate
// 3000] [--after 60] [--quick]`): a devnet of 4, load offered to m0–m2 throughout; m3's consensus is
// killed, left down --down seconds while the others commit, and started again. Printed for the sync
// (restart → m3 at the height the others had at its restart) and for --after seconds after it: on
// m0, the views that ended in a NEW-VIEW round and the time they took, the views of m3's it gave up
// at once and why (absent: no record; failed_views or slow_views: a record that keeps m3 from
// leading after it caught up), and how long after catching up m3 proposed a block that committed.
// Also whether m3 said it was catching up (services/consensus/catching-up.ts). The baseline is the
// same bench on the code before that word, from a worktree. Printed, never asserted.

import fs from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { call } from '#libs/rpc/index.ts';
import { consensusClient } from '../cli/client.ts';
import { memberTargets } from '../cli/prometheus.ts';
import { benchDevnet, offerLoad, printMachine, processCpuMs, samplesByLabel, scrapeMetrics, table } from './support.ts';

const { values: f } = parseArgs({ options: {
  down: { type: 'string', default: '60' }, rate: { type: 'string', default: '3000' }, after: { type: 'string', default: '60' },
  'tx-size': { type: 'string', default: '250' }, quick: { type: 'boolean', default: false }, keep: { type: 'boolean', default: false },
} });
const DOWN_S = f.quick ? 20 : Number(f.down);
const RATE = Number(f.rate);
const AFTER_S = f.quick ? 20 : Number(f.after);
const LAG = 3;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

printMachine(`a member restarted far behind: ${DOWN_S} s down under ${RATE} tx/s offered, N = 4`);
const d = await benchDevnet('catchup', 4);
const { net, clients, dir } = d;
let stopLoad = false;
try {
  const status = (i: number) => call(clients[i]!.getStatus.bind(clients[i]!), {}, { deadlineMs: 5000 });
  const height = async (i: number) => Number((await status(i)).committedHeight);
  const until = async (what: string, fn: () => Promise<boolean>, ms: number): Promise<number> => {
    const t0 = Date.now();
    while (Date.now() - t0 < ms) {
      if (await fn().catch(() => false)) return Date.now() - t0;
      await sleep(250);
    }
    throw new Error(`timed out waiting for ${what}`);
  };
  await until('first commits', async () => (await height(0)) >= 3, 180_000);
  const load = { accepted: 0, refused: 0 };
  const loading = offerLoad(clients.slice(0, LAG), RATE, Number(f['tx-size']), () => stopLoad, load);
  await sleep(10_000);

  const m0 = memberTargets(path.join(dir, 'm0')).targets.consensus!;
  const snap = async () => {
    const text = await scrapeMetrics(`http://${m0}/metrics`);
    const skipped = new Map<string, number>();
    for (const line of text.split('\n')) {
      if (!line.startsWith('btcfed_consensus_views_skipped_total{') || !line.includes(`leader="${LAG}"`)) continue;
      const reason = /reason="([^"]+)"/.exec(line)?.[1] ?? '?';
      skipped.set(reason, (skipped.get(reason) ?? 0) + Number(line.slice(line.lastIndexOf(' ') + 1)));
    }
    const changes = samplesByLabel(text, 'btcfed_consensus_view_changes_total', 'cause');
    const nvSeconds = samplesByLabel(text, 'btcfed_consensus_view_duration_seconds_sum', 'cause').get('new-view-quorum') ?? 0;
    return { skipped, newViews: changes.get('new-view-quorum') ?? 0, views: [...changes.values()].reduce((a, b) => a + b, 0), nvSeconds };
  };
  const diff = (a: Awaited<ReturnType<typeof snap>>, b: Awaited<ReturnType<typeof snap>>) => ({
    views: b.views - a.views, newViews: b.newViews - a.newViews, nvSeconds: b.nvSeconds - a.nvSeconds,
    skipped: [...new Set([...a.skipped.keys(), ...b.skipped.keys()])].map((r) => [r, (b.skipped.get(r) ?? 0) - (a.skipped.get(r) ?? 0)] as const).filter(([, n]) => n > 0),
  });

  const proc = net.procs.find((p) => p.member === `m${LAG}` && p.service === 'consensus' && !p.exited)!;
  proc.child.kill('SIGKILL');
  const atKill = await height(0);
  await sleep(DOWN_S * 1000);
  const target = await height(0);
  const s0 = await snap();
  /** CPU-ms of every live process, by member and service (a restarted process counts from its start). */
  const cpu = () => new Map(net.procs.filter((p) => !p.exited && p.child.pid !== undefined)
    .map((p) => [`${p.member}/${p.service}`, processCpuMs(p.child.pid!) ?? 0] as const));
  const c0 = cpu();
  const t1 = Date.now();
  const windows: Array<[number, number]> = [[t1, 0], [0, 0]];
  await net.restart(LAG, 'consensus');
  clients[LAG]!.close();
  clients[LAG] = consensusClient(path.join(dir, `m${LAG}`));
  await until(`m${LAG} at height ${target}`, async () => (await height(LAG)) >= target, 600_000);
  const syncMs = Date.now() - t1;
  const c1 = cpu();
  windows[0]![1] = Date.now();
  windows[1]![0] = Date.now();
  const s1 = await snap();
  const caughtAt = await height(0);
  // m3's first committed proposal after it caught up: m0's blocks from there, headers only.
  let from = caughtAt + 1;
  let ledMs: number | undefined;
  let ledHeight: number | undefined;
  const tc = Date.now();
  while (Date.now() - tc < AFTER_S * 1000) {
    if (ledHeight === undefined) {
      const page = (await call(clients[0]!.listBlocks.bind(clients[0]!), { fromHeight: from, limit: 100, headersOnly: true }).catch(() => ({ blocks: [] }))).blocks;
      const own = page.find((b) => b.block?.header?.proposer === LAG);
      if (own) { ledHeight = Number(own.block!.header!.height); ledMs = Date.now() - tc; }
      const last = page.at(-1)?.block?.header?.height;
      if (last !== undefined) from = Number(last) + 1;
    }
    await sleep(1000);
  }
  const s2 = await snap();
  windows[1]![1] = Date.now();
  stopLoad = true;
  await loading;

  const log3 = await fs.readFile(path.join(dir, `m${LAG}`, 'logs', 'consensus.log'), 'utf8').catch(() => '');
  const words = log3.split('\n').filter((l) => l.includes('"module":"catch-up"') && l.includes('"catchingUp":true')).length;
  // Whose views ended in a NEW-VIEW round, from m0's 'view started' lines: the view before one started by a NEW-VIEW quorum.
  const started = (await fs.readFile(path.join(dir, 'm0', 'logs', 'consensus.log'), 'utf8').catch(() => '')).split('\n')
    .filter((l) => l.includes('"view started"')).map((l) => JSON.parse(l) as { time: string; view: number; leader: number; cause: string }).map((l) => ({ ...l, at: Date.parse(l.time) }));
  const failedBy = ([a, b]: [number, number]) => {
    const by = new Map<number, number>();
    for (let i = 1; i < started.length; i++) {
      const s = started[i]!;
      if (s.cause !== 'new-view-quorum' || s.at < a || s.at > b) continue;
      const leader = started[i - 1]!.leader;
      by.set(leader, (by.get(leader) ?? 0) + 1);
    }
    return [...by].sort((x, y) => x[0] - y[0]).map(([l, n]) => `m${l} ${n}`).join(', ') || 'none';
  };
  const during = diff(s0, s1);
  const after = diff(s1, s2);
  // Where the CPU went over the sync: the member catching up, and what the others spent.
  const spent = (who: (key: string) => boolean) => [...c1].filter(([k]) => who(k)).reduce((a, [k, v]) => a + v - (k === `m${LAG}/consensus` ? 0 : c0.get(k) ?? 0), 0);
  const cpuRow = (who: (key: string) => boolean) => `${(spent(who) / 1000).toFixed(1)} s (${(spent(who) / syncMs * 100).toFixed(0)} % of a core)`;
  const fmtSkipped = (s: ReadonlyArray<readonly [string, number]>) => (s.length === 0 ? 'none' : s.map(([r, n]) => `${r} ${n}`).join(', '));
  console.log(table(['figure', 'during the sync', `${AFTER_S} s after it`], [
    ['m3 behind at its restart (blocks)', String(target - atKill), ''],
    ['sync: restart → at the others\' height then (ms)', String(syncMs), ''],
    ['m3 said it was catching up (times, at its start or later)', String(words), ''],
    ['CPU: m3\'s consensus (from its start)', cpuRow((k) => k === `m${LAG}/consensus`), ''],
    ['CPU: m3\'s gateway', cpuRow((k) => k === `m${LAG}/gateway`), ''],
    ['CPU: the others\' consensus services', cpuRow((k) => k.endsWith('/consensus') && !k.startsWith(`m${LAG}/`)), ''],
    ['CPU: the others\' gateways', cpuRow((k) => k.endsWith('/gateway') && !k.startsWith(`m${LAG}/`)), ''],
    ['CPU: every signer and store', cpuRow((k) => k.endsWith('/signer') || k.endsWith('/store')), ''],
    ['m0: views entered', String(during.views), String(after.views)],
    ['m0: views ended by a NEW-VIEW round', String(during.newViews), String(after.newViews)],
    ['  by the failed view\'s leader', failedBy(windows[0]!), failedBy(windows[1]!)],
    ['m0: time in those views (s)', during.nvSeconds.toFixed(1), after.nvSeconds.toFixed(1)],
    ['m0: m3\'s views given up at once, by reason', fmtSkipped(during.skipped), fmtSkipped(after.skipped)],
    ['m3\'s first committed proposal after catching up', '', ledHeight === undefined ? `none in ${AFTER_S} s` : `height ${ledHeight}, ${(ledMs! / 1000).toFixed(1)} s after`],
  ]));
  console.log(`load: ${load.accepted} accepted, ${load.refused} refused`);
} finally {
  stopLoad = true;
  if (f.keep) { await net.stop(); console.log(`kept: ${dir}`); } else await d.close();
}
