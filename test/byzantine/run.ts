// Runs scenarios against one shared federation: start it, stop m3's consensus and put the
// Byzantine member in its place, then for each scenario: a health check, the honest commit rate
// before the attack, the attack, the rate while it runs, memory after it, and the scenario's own
// checks. A scenario is defeated only if the rate under attack is at least RATE_BAR of the rate
// before it (same run), the honest services' memory returns to its baseline, and its own checks
// hold. Every process started here is stopped at the end (and on a signal); the temporary
// directory is removed unless KEEP_BYZ=1.
//   BYZ_BEFORE_S / BYZ_DURING_S / BYZ_SETTLE_S   the measuring windows (default 12 / 20 / 8 s)
// `npm run byzantine` holds every scenario to RATE_BAR. The CI set (test/byzantine.test.ts) runs
// with shorter windows and a lower floor, CI_RATE_FLOOR: on a shared machine a timed bar is a
// benchmark, not a test, so CI asserts only what a lost defence would break (the undefended
// attacks measured 17–45 % of the rate before) and prints the figures.

import path from 'node:path';
import { writeHeapSnapshot } from '../support/inspector.ts';
import { Federation, BYZANTINE, HONEST, sleep } from './federation.ts';
import { ByzantineMember } from './member.ts';
import { AttackerBox, collectGarbage, cpuLine, heldMemory, measure, memory, memoryLine, memoryParts, watchedPids } from './measure.ts';
import { healthy, SCENARIOS, type Scenario } from './scenarios.ts';
import { deltas, perHonest } from './scenario.ts';

/** The Byzantine member's label on the honest members' per-peer metrics. */
const M3_LABEL = new RegExp(`peer="${BYZANTINE}"`);
/** Rounds of forgiving m3 before a scenario, while what the last attack left queued keeps getting it muted. */
const MAX_FORGIVE_ROUNDS = 4;
/** How long m3's queues may take to drain before a scenario starts anyway, saying so. */
const DRAIN_MAX_MS = 60_000;
/** Frames left queued at m3 past which its gateway is restarted rather than drained. */
const RESTART_AT = 256;

/**
 * Waits until m3 holds no frame an earlier attack queued (ByzantineMember.queuedFrames), forgiving
 * it on every honest member each half second meanwhile: a muted m3's gateway queues cannot drain,
 * and what they hold would otherwise reach the honest members inside the next scenario's window,
 * get m3 muted there, and measure the last attack instead of this one. Seen on a slow day: a
 * replay flood's stale votes got m3 muted at m2 before the next scenario's far-future proposals
 * could be refused there, and those proposals in turn still arrived 25 s into the scenario after
 * it. A flood leaves up to its gateway's queue limit for each peer (1,024 frames), which the honest
 * members took 48 s to accept: past RESTART_AT, m3's gateway is restarted instead (a new process
 * holds nothing; what waits in m3's link, at most its buffer, goes to the new one).
 */
async function drainAttacker(fed: Federation, byz: ByzantineMember, box: AttackerBox, note: (x: string) => void): Promise<void> {
  const t0 = Date.now();
  // A scenario that restarted m3's gateway may leave it still starting: nothing queued there then.
  const queuedNow = () => byz.queuedFrames().catch(() => byz.linkFrames);
  const first = await queuedNow();
  let restarted = false;
  if (first > RESTART_AT) {
    const old = fed.proc(BYZANTINE, 'gateway').child.pid!;
    await fed.net.restart(BYZANTINE, 'gateway');
    // Started by this process, it is in the attacker's budget already; its CPU is counted as m3's.
    await box.release(old);
    await box.add(fed.proc(BYZANTINE, 'gateway').child.pid!);
    await byz.ready();
    restarted = true;
  }
  let queued = restarted ? await queuedNow() : first;
  while (queued > 0 && Date.now() - t0 < DRAIN_MAX_MS) {
    for (const i of HONEST) await fed.unmute(i, BYZANTINE);
    await sleep(500);
    queued = await queuedNow();
  }
  if (first === 0) return;
  const secs = ((Date.now() - t0) / 1000).toFixed(1);
  const how = restarted ? 'its gateway restarted, then what was left sent' : 'all sent';
  note(queued === 0 ? `m3 held ${first} frames the last attack queued: ${how} in ${secs} s (m3 forgiven meanwhile)`
    : `m3 held ${first} frames the last attack queued; ${queued} still queued after ${secs} s: the scenario starts anyway`);
}

/** The honest commit rate under attack must be at least this share of the rate before it. */
export const RATE_BAR = 0.8;
/** After the attack, each watched service's anonymous memory must be back within this of its baseline (MiB, or 25 % where more). */
export const MEMORY_SLACK_MIB = 64;
/** Slack on what a service's JavaScript holds (heldMemory): garbage not yet collected comes and goes. */
export const HELD_SLACK_MIB = 32;
/** A scenario below the rate bar is measured once more (said in its output); the last try is the verdict. */
export const MAX_ATTEMPTS = 2;
/** The CI set's floor: the share below which a defence is surely gone, whatever the machine does. */
export const CI_RATE_FLOOR = 0.5;
const seconds = (name: string, dflt: number) => 1000 * Number(process.env[name] ?? dflt);

/** How a run measures and what it holds a scenario to. */
export interface RunOptions {
  /** The least share of the rate before that the rate under attack must keep. */
  bar: number;
  beforeMs: number;
  duringMs: number;
  settleMs: number;
}

/** `npm run byzantine`: the issue's bar over the full windows (each overridable from the environment). */
export const CAMPAIGN: RunOptions = {
  bar: RATE_BAR,
  beforeMs: seconds('BYZ_BEFORE_S', 12),
  duringMs: seconds('BYZ_DURING_S', 20),
  settleMs: seconds('BYZ_SETTLE_S', 8),
};

/** The CI set: shorter windows, the floor instead of the bar. */
export const CI_RUN: RunOptions = { bar: CI_RATE_FLOOR, beforeMs: 6_000, duringMs: 12_000, settleMs: 4_000 };

export interface Figures {
  before: number; during: number; attackerCpuBefore: number; attackerCpu: number;
  memBefore: number[]; memPeak: number[]; memAfter: number[];
  /** 2 when the first try was below the rate bar and the scenario was measured once more. */
  attempts: number;
}
export interface Outcome { name: string; defeated: boolean; ms: number; notes: string[]; figures?: Figures; error?: string }

export async function runScenarios(pick: (s: Scenario) => boolean, say: (s: string) => void = console.log, opts: RunOptions = CAMPAIGN): Promise<Outcome[]> {
  const { bar, beforeMs: BEFORE_MS, duringMs: DURING_MS, settleMs: SETTLE_MS } = opts;
  const chosen = SCENARIOS.filter(pick);
  const out: Outcome[] = [];
  const fed = await Federation.start();
  const box = await AttackerBox.open();
  let byz: ByzantineMember | undefined;
  const onSignal = () => { byz?.close(); void box.close(); void fed.stop().then(() => fed.remove(Boolean(process.env.KEEP_BYZ))).finally(() => process.exit(130)); };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    say(`# byzantine: federation of 4 up in ${fed.dir} (chain ${fed.chainId}, ports ${fed.basePort}+)`);
    say(`# byzantine: warm-up: ${await healthy(fed, 3, 90_000)}`);
    // m3's consensus process goes; the Byzantine member takes its key, its LMDB and its gateway.
    await fed.stopService(BYZANTINE, 'consensus');
    byz = await ByzantineMember.start({ memberDir: fed.memberDir(BYZANTINE), gatewayAddress: `127.0.0.1:${fed.ports(BYZANTINE).gateway}`, storeAddress: `127.0.0.1:${fed.ports(BYZANTINE).store}` });
    await byz.ready();
    // The attacker: this process (m3 and the attacks) and m3's gateway, on a budget of their own.
    await box.add(process.pid);
    await box.add(fed.proc(BYZANTINE, 'gateway').child.pid!);
    say(`# byzantine: m3 is Byzantine (attached to its gateway, frame limit ${byz.maxFrameBytes} bytes); the attacker (this process and m3's gateway) runs at ${box.how}; ${await healthy(fed, 3, 90_000)}`);
    say(`# byzantine: each scenario: rate before over ${BEFORE_MS / 1000} s, under attack over ${DURING_MS / 1000} s, memory ${SETTLE_MS / 1000} s after; defeated when the rate under attack is ≥ ${bar * 100} % of the rate before and memory is back`);
    let previous = 'the start';
    for (const s of chosen) {
      const t0 = Date.now();
      const notes: string[] = [];
      const note = (x: string) => { notes.push(x); say(`#   ${s.name}: ${x}`); };
      let figures: Figures | undefined;
      try {
        // A rate below the bar may be the machine's, not the attack's: other engineers' work on
        // these two shared cores took up to 0.4 of a core in a window. Such a scenario is measured
        // once more, from its health check, and says so; the second try is the verdict.
        if (s.prepare) await s.prepare({ fed, byz, box, note });
        for (let attempt = 1; ; attempt++) {
          byz.play({});
          // A barrier: the federation has recovered from the previous scenario (or this one fails,
          // saying so), and m3 starts with a clean record on every honest member — as an operator
          // forgives a member (btcfed admin unmute) — so each scenario measures its own attack.
          try {
            await drainAttacker(fed, byz, box, note);
            // What is still on its way (in libp2p's buffers, behind a paused stream) reaches the
            // honest members once they unmute m3, and may get it muted again inside this
            // scenario's window: forgiven again until no mute follows the forgiving.
            for (let round = 1; ; round++) {
              const mutes0 = await perHonest(fed, 'btcfed_consensus_peer_mutes_total', M3_LABEL);
              for (const i of HONEST) await fed.unmute(i, BYZANTINE);
              note(`before: ${await healthy(fed, 2, 120_000)}`);
              const mutes1 = await perHonest(fed, 'btcfed_consensus_peer_mutes_total', M3_LABEL);
              if (mutes1.every((m, k) => m === mutes0[k]) || round === MAX_FORGIVE_ROUNDS) break;
              note(`m3 muted ${deltas(mutes0, mutes1)} times again after it was forgiven (what the last attack left queued at its gateway): forgiven once more`);
            }
          } catch (err) {
            throw new Error(`the federation did not recover from ${attempt > 1 ? `the first try of ${s.name}` : previous}: ${err instanceof Error ? err.message : String(err)}`);
          }
          const ctx = { fed, byz, box, note };
          const before = await measure(fed, box, BEFORE_MS);
          const memBefore = await memory(fed);
          const heldBefore = await heldMemory(fed);
          const partsBefore = await memoryParts(fed);
          const attack = await s.start(ctx);
          let during;
          try {
            during = await measure(fed, box, Math.max(s.duringMs ?? 0, DURING_MS));
          } finally {
            await attack.stop();
            byz.play({});
          }
          if (attack.drained) note(await attack.drained());
          await sleep(SETTLE_MS);
          const memAfter = await memory(fed);
          figures = { before: before.rate, during: during.rate, attackerCpuBefore: before.attackerCpu, attackerCpu: during.attackerCpu, memBefore, memPeak: during.peakRss, memAfter, attempts: attempt };
          const share = before.rate > 0 ? during.rate / before.rate : 0;
          note(`rate ${before.rate.toFixed(2)} blocks/s before, ${during.rate.toFixed(2)} under attack (${(share * 100).toFixed(0)} %); attacker CPU ${before.attackerCpu.toFixed(2)} → ${during.attackerCpu.toFixed(2)} cores`);
          note(`anonymous memory MiB (before→peak→after): ${memoryLine(fed, memBefore, during.peakRss, memAfter)}`);
          note(`honest CPU (cores) before: ${cpuLine(before)}; others on the machine ${before.otherCpu.toFixed(2)}`);
          note(`honest CPU (cores) under attack: ${cpuLine(during)}; others on the machine ${during.otherCpu.toFixed(2)}`);
          note(`m0's views before: ${before.views || 'none'}; under attack: ${during.views || 'none'}`);
          note(`resident memory before, anonymous + file-backed (LMDB's map) MiB: ${partsBefore}`);
          note(`resident memory after, anonymous + file-backed (LMDB's map) MiB: ${await memoryParts(fed)}`);
          await attack.check?.();
          if (share < bar && attempt < MAX_ATTEMPTS) {
            note(`TRY ${attempt} BELOW THE BAR: ${(share * 100).toFixed(0)} % (others on the machine ${before.otherCpu.toFixed(2)} cores before, ${during.otherCpu.toFixed(2)} under attack); measured once more`);
            continue;
          }
          if (share < bar) throw new Error(`the honest commit rate fell to ${(share * 100).toFixed(0)} % under attack (${during.rate.toFixed(2)} against ${before.rate.toFixed(2)} blocks/s before; the bar is ${bar * 100} %)${attempt > 1 ? ` on try ${attempt} of ${MAX_ATTEMPTS}` : ''}`);
          const limits = memBefore.map((m) => m + Math.max(MEMORY_SLACK_MIB, m * 0.25));
          let memLast = memAfter;
          if (memLast.some((m, k) => m > limits[k]!)) {
            // Retained memory stays; memory a burst allocated after the attack (serving a muted
            // member's catch-up once its mute ends, say) is given back once the heap is collected.
            await sleep(SETTLE_MS);
            memLast = await memory(fed);
            figures.memAfter = memLast;
            note(`MEMORY ABOVE ITS LIMIT ${SETTLE_MS / 1000} s after the attack; ${SETTLE_MS / 1000} s later: ${memoryLine(fed, memBefore, during.peakRss, memLast)}`);
          }
          if (memLast.some((m, k) => m > limits[k]!)) {
            // Still above: is it held by the service, or pages the allocator keeps (heldMemory)?
            const names = watchedPids(fed).map((p) => p.name);
            const heldLimit = (k: number) => heldBefore[k]! + Math.max(HELD_SLACK_MIB, heldBefore[k]! * 0.25);
            let heldNow = await heldMemory(fed);
            const over = names.flatMap((_, k) => (memLast[k]! > limits[k]! && heldNow[k]! > heldLimit(k) ? [k] : []));
            if (over.length > 0) {
              // The heap in use counts garbage a quiet service has not collected yet (V8 collects
              // its old generation when it grows, and after an attack it allocates little): each
              // such service collects its garbage, and what it still holds then is held.
              const first = heldNow;
              // A service whose inspector cannot be opened is judged on its heap as it is.
              await collectGarbage(fed, over).catch((err: unknown) => note(`a full garbage collection could not be run: ${err instanceof Error ? err.message : String(err)}`));
              heldNow = await heldMemory(fed);
              note(`held by JavaScript above its limit; after a full garbage collection in ${over.map((k) => names[k]).join(', ')}, MiB: ${names.map((n, k) => `${n} ${first[k]!.toFixed(0)}→${heldNow[k]!.toFixed(0)}`).join(', ')}`);
            }
            note(`held by JavaScript (V8 heap in use + buffers) MiB before → now: ${names.map((n, k) => `${n} ${heldBefore[k]!.toFixed(0)}→${heldNow[k]!.toFixed(0)}`).join(', ')}`);
            for (const [k, m] of memLast.entries()) {
              if (m <= limits[k]!) continue;
              if (heldNow[k]! > heldLimit(k)) {
                // BYZ_HEAP_SNAPSHOT=dir: what it holds, for Chrome's DevTools (Memory tab).
                const dir = process.env['BYZ_HEAP_SNAPSHOT'];
                if (dir) {
                  const file = path.join(dir, `${s.name}-${names[k]!.replace('/', '-')}.heapsnapshot`);
                  await writeHeapSnapshot(watchedPids(fed)[k]!.pid, file).then(() => note(`heap snapshot of ${names[k]}: ${file}`),
                    (err: unknown) => note(`no heap snapshot of ${names[k]}: ${err instanceof Error ? err.message : String(err)}`));
                }
                throw new Error(`memory did not return to its baseline: ${memoryLine(fed, memBefore, during.peakRss, memLast).split(', ')[k]} MiB of anonymous memory (limit ${limits[k]!.toFixed(0)}) after a second look, and ${names[k]} holds, after a full garbage collection, ${heldNow[k]!.toFixed(0)} MiB in its heap and buffers (${heldBefore[k]!.toFixed(0)} before, limit ${heldLimit(k).toFixed(0)})`);
              }
              note(`${names[k]}: anonymous memory ${m.toFixed(0)} MiB is above its limit (${limits[k]!.toFixed(0)}), but what it holds is back (${heldNow[k]!.toFixed(0)} MiB, limit ${heldLimit(k).toFixed(0)}): pages the allocator keeps, not the service`);
            }
          }
          break;
        }
        note(`after: ${await healthy(fed)}`);
        out.push({ name: s.name, defeated: true, ms: Date.now() - t0, notes, figures });
        say(`ok ${s.name} defeated (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
      } catch (err) {
        const error = err instanceof Error ? err.message : String(err);
        out.push({ name: s.name, defeated: false, ms: Date.now() - t0, notes, error, ...(figures ? { figures } : {}) });
        say(`FAIL ${s.name} (${((Date.now() - t0) / 1000).toFixed(1)} s): ${error}`);
        for (const w of (await fed.warnings()).slice(-12)) say(`#     ${w}`);
      } finally {
        byz.play({});
        await s.finish?.();
        previous = s.name;
      }
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    byz?.close();
    await box.close();
    await fed.stop();
    await fed.remove(Boolean(process.env.KEEP_BYZ));
  }
  return out;
}

/** One line per scenario with its figures, for the closing table. */
export function table(outcomes: readonly Outcome[]): string[] {
  const rows = ['# scenario | rate before → under attack (blocks/s) | share | attacker CPU (cores) | honest anonymous memory MiB before → peak → after (max over services)'];
  for (const o of outcomes) {
    const f = o.figures;
    if (!f) { rows.push(`# ${o.name} | — | — | — | — | ${o.defeated ? 'defeated' : 'FAILED'}`); continue; }
    const max = (xs: number[]) => Math.max(...xs).toFixed(0);
    rows.push(`# ${o.name} | ${f.before.toFixed(2)} → ${f.during.toFixed(2)} | ${(100 * f.during / (f.before || 1)).toFixed(0)} % | ${f.attackerCpuBefore.toFixed(2)} → ${f.attackerCpu.toFixed(2)} | ${max(f.memBefore)} → ${max(f.memPeak)} → ${max(f.memAfter)} | ${o.defeated ? 'defeated' : 'FAILED'}${f.attempts > 1 ? ' (second try: the first was below the bar)' : ''}`);
  }
  return rows;
}

export function summary(outcomes: readonly Outcome[]): string {
  const defeated = outcomes.filter((o) => o.defeated).length;
  return `byzantine: scenarios=${outcomes.length} defeated=${defeated} failed=${outcomes.length - defeated}`;
}
