// The seeded fault campaign (in the style of Jepsen and CometBFT's e2e runner): a workload runs
// the whole time; faults come one at a time from a schedule drawn from the seed — inject, hold,
// heal, wait for the faulty part to recover (bounded), a short gap, the next — until the time is
// up; then the checker. The seed fixes the schedule (which fault, on whom, for how long); the
// timing of the run itself is the machine's.
//
// Faults: network — a member partitioned (symmetric), a member that sends but does not receive
// (asymmetric), its signer cut from its consensus host, random packet loss on a member's host;
// processes — kill -9 of one service and its restart, SIGSTOP/SIGCONT of one service, a whole host
// down and up (a member's main host or its signer host); disk — the consensus data dir (a tmpfs)
// full; NATS — one node partitioned, killed with kill -9 and restarted, or paused; an epoch — a
// change of the consensus parameters approved at the others' signers and committed while the
// member is partitioned (it must learn how the epoch ended once healed, and follow).
// MEMBER_FAULTS leaves out the NATS faults and disk-full (see docs/testing.md for why CI does).
//
// Recovery, measured from the heal (for a kill: from the restart command):
//   - a member's host or its store/gateway/consensus: the member's committed height reaches the
//     highest height any member had at the heal, plus one (it caught up and follows again);
//   - its signer (killed, paused, cut off, host down): a block committed after the heal was
//     proposed by the member or carries its vote in its QC (it signs again);
//   - an epoch change: as a member's host, and the member in the epoch the others reached;
//   - a NATS node: every member's last block.committed in the stream reaches the member's
//     committed height at the heal, and the node is a current replica of the stream again.
// A service that exits on its own is recorded (the run fails) and, like systemd's
// Restart=on-failure, started again after 2 s so the campaign can go on.

import fs from 'node:fs';
import path from 'node:path';
import { check, compareCopies, readLog, settle, streamHeights, type Report } from './checker.ts';
import { btcfed, type Federation, type ServiceName } from './federation.ts';
import type { Host } from './netns.ts';
import type { Service } from './procs.ts';
import { Workload, type WorkloadOptions } from './workload.ts';

/** mulberry32: a small, fast, seedable PRNG (the schedule must be the same for the same seed). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const FAULT_KINDS = ['partition', 'partition-inbound', 'signer-cut', 'loss', 'kill', 'pause', 'host-down', 'disk-full',
  'nats-partition', 'nats-kill', 'nats-pause', 'epoch-change'] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

export interface PlannedFault {
  kind: FaultKind;
  member: number;
  /** kill, pause: which service (of `member`, or a NATS node). */
  service?: ServiceName | 'nats';
  /** host-down: the member's main host or its signer host. */
  host?: 'main' | 'signer';
  /** nats-partition, kill/pause of nats: node index 0..2. */
  natsNode?: number;
  /** loss: the drop probability. */
  p?: number;
  holdMs: number;
}

/** The first `count` faults of the seed's schedule. */
export function schedule(seed: number, count: number, members: number, kinds: readonly FaultKind[] = FAULT_KINDS): PlannedFault[] {
  const r = rng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  const between = (lo: number, hi: number) => Math.round(lo + r() * (hi - lo));
  const out: PlannedFault[] = [];
  for (let k = 0; k < count; k++) {
    const kind = pick(kinds);
    const member = Math.floor(r() * members);
    const f: PlannedFault = { kind, member, holdMs: 0 };
    switch (kind) {
      case 'partition': case 'partition-inbound': case 'signer-cut': f.holdMs = between(8_000, 15_000); break;
      case 'nats-partition': f.natsNode = Math.floor(r() * 3); f.holdMs = between(8_000, 15_000); break;
      case 'nats-kill': f.service = 'nats'; f.holdMs = between(0, 3_000); break;
      case 'nats-pause': f.service = 'nats'; f.holdMs = between(3_000, 10_000); break;
      case 'loss': f.p = Math.round((0.05 + r() * 0.25) * 100) / 100; f.holdMs = between(10_000, 20_000); break;
      case 'kill': f.service = pick(['store', 'signer', 'gateway', 'consensus'] as const); f.holdMs = between(0, 3_000); break;
      case 'pause': f.service = pick(['store', 'signer', 'gateway', 'consensus'] as const); f.holdMs = between(3_000, 10_000); break;
      case 'host-down': f.host = pick(['main', 'signer'] as const); f.holdMs = between(5_000, 12_000); break;
      case 'disk-full': f.holdMs = between(5_000, 10_000); break;
      case 'epoch-change': f.holdMs = between(2_000, 8_000); break;
    }
    if (f.service === 'nats') f.natsNode = Math.floor(r() * 3);
    out.push(f);
  }
  return out;
}

export function describeFault(f: PlannedFault): string {
  const m = `m${f.member}`;
  switch (f.kind) {
    case 'partition': return `partition ${m} (symmetric)`;
    case 'partition-inbound': return `partition ${m} (inbound only: it sends, receives nothing)`;
    case 'signer-cut': return `cut ${m}'s signer host from its consensus host`;
    case 'nats-partition': return `partition NATS node n${f.natsNode! + 1}`;
    case 'loss': return `${Math.round(f.p! * 100)} % packet loss on ${m}'s host`;
    case 'kill': return `kill -9 ${m}.${f.service}, restart after ${f.holdMs} ms`;
    case 'pause': return `SIGSTOP ${m}.${f.service}`;
    case 'nats-kill': return `kill -9 NATS node n${f.natsNode! + 1}, restart after ${f.holdMs} ms`;
    case 'nats-pause': return `SIGSTOP NATS node n${f.natsNode! + 1}`;
    case 'host-down': return `${f.host === 'signer' ? `${m}'s signer host` : `${m}'s host`} down`;
    case 'disk-full': return `${m}'s consensus data dir full`;
    case 'epoch-change': return `a parameter change ends the epoch while ${m} is partitioned`;
  }
}

/** The kinds whose faults hit a member (not NATS), without disk-full. */
export const MEMBER_FAULTS: readonly FaultKind[] = ['partition', 'partition-inbound', 'signer-cut', 'loss', 'kill', 'pause', 'host-down'];

type RecoveryClass = 'member' | 'signer' | 'nats';

function recoveryClass(f: PlannedFault): RecoveryClass {
  if (f.kind.startsWith('nats-')) return 'nats';
  if (f.kind === 'signer-cut' || f.service === 'signer' || (f.kind === 'host-down' && f.host === 'signer')) return 'signer';
  return 'member';
}

export interface FaultResult {
  fault: PlannedFault;
  description: string;
  injectedAt: number;
  healedAt: number;
  recoveredAt?: number;
  recoverySec?: number;
  error?: string;
}

export interface CampaignOptions {
  seed: number;
  minutes: number;
  kinds?: readonly FaultKind[];
  workload?: WorkloadOptions;
  /** How long a fault may take to recover before it counts as unrecovered. */
  recoveryTimeoutMs?: number;
  log?: (s: string) => void;
}

export interface CampaignResult {
  seed: number;
  faults: FaultResult[];
  report: Report;
  unexpectedExits: string[];
  recoveryP50: number | undefined;
  recoveryMax: number | undefined;
  ok: boolean;
  /** The one summary line. */
  line: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function quantile(xs: number[], q: number): number | undefined {
  if (xs.length === 0) return undefined;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)];
}

export async function runCampaign(fed: Federation, o: CampaignOptions): Promise<CampaignResult> {
  const say = o.log ?? (() => undefined);
  const N = fed.members.length;
  const kinds = o.kinds ?? FAULT_KINDS;
  if (kinds.includes('disk-full') && !fed.options.consensusTmpfsMb) throw new Error('campaign: disk-full needs the federation started with consensusTmpfsMb');
  const plan = schedule(o.seed, 10_000, N, kinds);
  const recoveryTimeout = o.recoveryTimeoutMs ?? 60_000;
  const endAt = Date.now() + o.minutes * 60_000;
  const results: FaultResult[] = [];
  let over = false;

  // Services that die on their own are recorded by the runner and restarted like systemd would.
  fed.runner.onUnexpectedExit = (s, e) => {
    say(`!! ${s.name} exited on its own (code ${e.code}, signal ${e.signal}); restarting it in 2 s. Last lines:\n${e.tail.slice(-5).join('\n')}`);
    setTimeout(() => { if (!over && !s.running) fed.runner.restart(s).catch((err) => say(`!! restart of ${s.name} failed: ${(err as Error).message}`)); }, 2000);
  };

  const workload = new Workload(fed.clients, o.workload ?? { clients: N, batch: 10, intervalMs: 200 });
  workload.start();
  await fed.waitHeights('the first commits', (h) => h.every((x) => (x ?? 0) >= 1), 60_000);

  const serviceOf = (f: PlannedFault): Service => f.service === 'nats' ? fed.nats.services[f.natsNode!]! : fed.service(f.member, f.service as ServiceName);
  const natsHost = (i: number): Host => fed.nats.hosts[i]!;

  /** Injects the fault; returns its heal. */
  const inject = async (f: PlannedFault): Promise<() => Promise<void>> => {
    const m = fed.members[f.member]!;
    const tb = fed.tb;
    switch (f.kind) {
      case 'partition': tb.partition(m.host, { allow: [m.signerHost] }); return async () => tb.heal(m.host);
      case 'partition-inbound': tb.partitionInbound(m.host, { allow: [m.signerHost] }); return async () => tb.heal(m.host);
      case 'signer-cut': tb.cut(m.signerHost, m.host); return async () => tb.heal(m.signerHost);
      case 'nats-partition': { const h = natsHost(f.natsNode!); tb.partition(h); return async () => tb.heal(h); }
      case 'loss': tb.loss(m.host, f.p!); return async () => tb.heal(m.host);
      case 'kill': case 'nats-kill': { const s = serviceOf(f); await fed.runner.kill(s, 'SIGKILL'); return () => fed.runner.restart(s); }
      case 'pause': case 'nats-pause': { const s = serviceOf(f); fed.runner.pause(s); return async () => fed.runner.resume(s); }
      case 'host-down': { const h = f.host === 'signer' ? m.signerHost : m.host; await fed.hostDown(h); return () => fed.hostUp(h); }
      case 'disk-full': { const d = path.join(m.dir, 'consensus'); tb.fillDisk(d); return async () => tb.freeDisk(d); }
      case 'epoch-change': return epochChange(f);
    }
  };

  const epochs = () => fed.epochs(2000);
  let changes = 0;
  /**
   * An epoch change with `m` cut off: the operators of a quorum of the others approve a change of
   * the base timeout (another value each time) at their signers' hosts, it is submitted to one of
   * them, and the others end the epoch; `m` stays partitioned for the hold, then is healed.
   */
  const epochChange = async (f: PlannedFault): Promise<() => Promise<void>> => {
    const m = fed.members[f.member]!;
    const others = fed.members.filter((x) => x.index !== f.member).map((x) => x.index);
    const quorum = N - Math.floor((N - 1) / 3);
    const before = Math.max(0, ...(await epochs()).map((e) => e ?? 0));
    fed.tb.partition(m.host, { allow: [m.signerHost] });
    const baseMs = 1000 + 100 * (1 + (changes++ % 5));
    const tx = await fed.assembleChange(['--base-timeout', `${baseMs}ms`, '--idle-heartbeat', '0'], others.slice(0, quorum), `chaos-${changes}`);
    await btcfed(['reconfigure', 'submit', '--member', fed.members[others.at(-1)!]!.dir, '--tx', tx]);
    const t = Date.now();
    while (!(await epochs()).every((e, i) => i === f.member || (e ?? 0) > before)) {
      if (Date.now() - t > 60_000) throw new Error(`the others did not reach epoch ${before + 1} within 60 s of the submit`);
      await sleep(250);
    }
    say(`   epoch ${before + 1} on the others ${((Date.now() - t) / 1000).toFixed(1)} s after the submit (base timeout ${baseMs} ms)`);
    return async () => fed.tb.heal(m.host);
  };

  const recovered = async (f: PlannedFault, atHeal: { max: number; heights: (number | undefined)[] }): Promise<boolean> => {
    const cls = recoveryClass(f);
    if (cls === 'nats') {
      const sh = await streamHeights(fed.nats.nc, fed.members.map((m) => m.name));
      if (!sh.every((h, i) => h >= (atHeal.heights[i] ?? 0))) return false;
      const info = await fed.nats.jsm.streams.info('BTCFED_BLOCKS');
      const name = `n${f.natsNode! + 1}`;
      return info.cluster?.leader === name || (info.cluster?.replicas ?? []).some((r) => r.name === name && r.current);
    }
    const h = await fed.heights(2000);
    if ((h[f.member] ?? 0) < atHeal.max + 1) return false;
    if (f.kind === 'epoch-change') {
      const e = await epochs();
      return (e[f.member] ?? -1) >= Math.max(...e.map((x) => x ?? 0));
    }
    if (cls === 'member') return true;
    // The signer signs again: a block after the heal proposed by the member, or with its vote in the QC.
    const other = (f.member + 1) % N;
    const top = h[other] ?? 0;
    if (top <= atHeal.max) return false;
    const blocks = await readLog(fed.clients[other]!, atHeal.max + 1, top, { headersOnly: true, deadlineMs: 5000 });
    return blocks.some((b) => b.proposer === f.member || b.signers.includes(f.member));
  };

  for (let k = 0; k < plan.length && Date.now() < endAt; k++) {
    const f = plan[k]!;
    const description = describeFault(f);
    const r: FaultResult = { fault: f, description, injectedAt: Date.now(), healedAt: 0 };
    results.push(r);
    say(`fault ${k + 1}: ${description}${f.kind === 'kill' || f.kind === 'nats-kill' ? '' : `, for ${(f.holdMs / 1000).toFixed(1)} s`}`);
    try {
      const heal = await inject(f);
      await sleep(f.holdMs);
      const hs = await fed.heights(2000);
      r.healedAt = Date.now();
      await heal();
      const atHeal = { max: Math.max(0, ...hs.map((x) => x ?? 0)), heights: hs };
      while (Date.now() - r.healedAt < recoveryTimeout) {
        if (await recovered(f, atHeal).catch(() => false)) { r.recoveredAt = Date.now(); break; }
        await sleep(200);
      }
    } catch (err) {
      r.error = (err as Error).message;
      say(`   fault ${k + 1} failed: ${r.error}`);
      fed.tb.heal();
    }
    if (r.recoveredAt) {
      r.recoverySec = (r.recoveredAt - r.healedAt) / 1000;
      say(`   recovered in ${r.recoverySec.toFixed(1)} s`);
    } else if (!r.error) {
      say(`   NOT recovered within ${recoveryTimeout / 1000} s; heights ${(await fed.heights(2000)).join(' ')}`);
    }
    await sleep(2000);
  }

  // The end: stop the load, let acked transactions commit and every member reach the same height,
  // let the stream catch up, then check.
  await workload.stop();
  const names = fed.members.map((m) => m.name);
  await settle(fed.clients, names, fed.nats.nc, 60_000);
  const report = await check(fed.clients, names, workload, fed.nats.nc, fed.checked);
  // Every node's copy of the stream, not only the one that happens to lead it now.
  const copies = await compareCopies(fed.nats.nc, fed.nats.jsm, { nodes: fed.nats.hosts.length });
  report.streamProblems.push(...copies.problems);
  if (copies.read.length < fed.nats.hosts.length) say(`the stream's copies: only ${copies.read.join(', ')} could be read as leader`);
  over = true;
  fed.runner.onUnexpectedExit = undefined;

  const times = results.filter((r) => r.recoverySec !== undefined).map((r) => r.recoverySec!);
  const unexpectedExits = fed.runner.unexpectedExits().map((e) => `${e.service} (code ${e.code}, signal ${e.signal}) at ${new Date(e.at).toISOString()}`);
  const recoveredCount = times.length;
  const p50 = quantile(times, 0.5);
  const maxT = times.length ? Math.max(...times) : undefined;
  const fmt = (x: number | undefined) => (x === undefined ? 'n/a' : x.toFixed(1));
  const ok = report.lost.length === 0 && report.duplicated.length === 0 && report.disagreements.length === 0
    && recoveredCount === results.length && unexpectedExits.length === 0 && report.streamProblems.length === 0;
  const line = `chaos: seed=${o.seed} faults=${results.length} acked=${report.acked} lost=${report.lost.length} duplicated=${report.duplicated.length} `
    + `disagreements=${report.disagreements.length} recovered=${recoveredCount}/${results.length} recovery_p50_s=${fmt(p50)} recovery_max_s=${fmt(maxT)}`;

  // What a post-mortem needs, in the work dir: the schedule run, each fault's times, the report,
  // and every transaction's outcome.
  fs.writeFileSync(path.join(fed.tb.workDir, 'campaign.json'), JSON.stringify({ seed: o.seed, minutes: o.minutes, faults: results, report: { ...report, stream: undefined, lost: report.lost.slice(0, 1000), duplicated: report.duplicated.slice(0, 1000) }, unexpectedExits, line }, null, 2));
  fs.writeFileSync(path.join(fed.tb.workDir, 'stream.jsonl'), report.stream.map((x) => JSON.stringify(x)).join('\n') + '\n');
  fs.writeFileSync(path.join(fed.tb.workDir, 'transactions.jsonl'), workload.records.map((x) => JSON.stringify(x)).join('\n') + '\n');
  return { seed: o.seed, faults: results, report, unexpectedExits, recoveryP50: p50, recoveryMax: maxT, ok, line };
}
