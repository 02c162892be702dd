// The scenarios: each one a named attack by m3 (with its real key) or by a keyless stranger, and
// the checks that show it defeated. The runner measures the honest commit rate before and during
// each attack (run.ts); a scenario adds what its attack must have caused — refused, counted,
// its sender muted, nothing stored that should not be. This file: the attacks on consensus and
// on peer exchange; useless.ts: valid but useless traffic; clients.ts: an application.

import fs from 'node:fs/promises';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { parse } from 'yaml';
import { multiaddr } from '@multiformats/multiaddr';
import { blockHash, toHex, txHash, voteSigningBytes, newViewSigningBytes, proposalSigningBytes } from '#libs/crypto/index.ts';
import { call } from '#libs/rpc/index.ts';
import { Phase, type Block } from '#libs/hotstuff/index.ts';
import { encodeFrame, type Frame } from '#libs/wire/index.ts';
import { generateIdentity } from '#libs/config/index.ts';
import { TxStatus } from '#libs/gen/btcfed/v1/consensus.pb.ts';
import { EquivocationEvidence } from '#libs/gen/btcfed/v1/events.pb.ts';
import { PeerExchangeMessage } from '#libs/gen/btcfed/v1/gateway.pb.ts';
import { encodeFrame as encodeStreamFrame } from '../../services/gateway/framing.ts';
import { EXCHANGE_PROTOCOL } from '../../services/gateway/exchange.ts';
import { strangerNode } from '../support/gateway.ts';
import { recordEvents } from '../support/store.ts';
import { BYZANTINE, HONEST, OBSERVER, sleep, until, type Federation } from './federation.ts';
import { isOutside } from '../../services/consensus/ports.ts';
import { REFUSALS_PER_STRIKE, REPEATED_REFUSAL_WEIGHT, STRIKES_TO_MUTE, WINDOW_MS } from '../../services/consensus/penalties.ts';
import type { Outgoing } from './member.ts';
import { background, check, deltas, healthy, perHonest, type Scenario } from './scenario.ts';
import { USELESS_SCENARIOS } from './useless.ts';
import { rssParts } from './measure.ts';
import { CLIENT_SCENARIOS } from './clients.ts';
import { BATCH_SCENARIOS } from './batches.ts';
import { PRESENCE_SCENARIOS } from './presence.ts';
import { CONNECTION_SCENARIOS } from './connections.ts';
import { LAST_SCENARIOS, RECONFIG_SCENARIOS } from './reconfig.ts';

export { healthy, type Scenario } from './scenario.ts';

const MAX_VIEW = 2 ** 53 - 1;

const withhold: Scenario = {
  name: 'withhold-then-forge-sync', ci: true,
  async start({ fed, byz, note }) {
    const victim = 2;
    const invalid0 = await fed.metric(victim, 'consensus', 'btcfed_consensus_rejected_messages_total', /reason="invalid_block"/);
    const blamed0 = await fed.metric(victim, 'consensus', 'btcfed_consensus_peer_offences_total', /peer="3",reason="invalid_block"/);
    const withheld = new Set<string>();
    let forged = 0;
    byz.play({
      outbound(to, frame) {
        // Lead as usual towards m0 and m1; m2 never gets the proposal, so it must fetch the block.
        if (frame.type === 'consensus' && frame.message.type === 'proposal' && (to === 'all' || to === victim)) {
          withheld.add(toHex(frame.message.block.hash));
          const bytes = encodeFrame(byz.chainId, frame);
          return HONEST.filter((i) => i !== victim).map((i): Outgoing => ({ to: i, bytes }));
        }
        // …and when it asks m3, m3 serves the right header (and QC) with other transactions.
        if (frame.type === 'block-response' && to === victim) {
          const blocks = frame.blocks.map((b) => {
            if (!withheld.has(toHex(b.block.hash))) return b;
            forged++;
            return { ...b, block: { ...b.block, txs: [...b.block.txs, randomBytes(48)] } };
          });
          return [{ to, bytes: encodeFrame(byz.chainId, { ...frame, blocks }) }];
        }
        return undefined;
      },
    });
    // Then m3 goes silent: m0–m2 are exactly a quorum, so a victim that halted stalls everyone.
    let silent = false;
    const turn = (async () => {
      try { await until('m3 to serve m2 a forged block (m2 asks m3 for the block m3 withheld)', () => (forged > 0 ? true : undefined), 15_000); } catch { /* checked below */ }
      await sleep(3000);
      byz.play({ outbound: () => [] });
      silent = true;
    })();
    return {
      stop: async () => { await turn; },
      async check() {
        const invalid1 = await fed.metric(victim, 'consensus', 'btcfed_consensus_rejected_messages_total', /reason="invalid_block"/);
        const blamed1 = await fed.metric(victim, 'consensus', 'btcfed_consensus_peer_offences_total', /peer="3",reason="invalid_block"/);
        note(`withheld ${withheld.size} proposals from m2, served ${forged} forged blocks; m2 refused ${invalid1 - invalid0} fetched blocks as invalid${silent ? '; then m3 went silent' : ''}`);
        check(forged > 0, 'm2 never asked m3 for a withheld block');
        check(invalid1 > invalid0, 'm2 took the forged block without refusing it (btcfed_consensus_rejected_messages_total{reason="invalid_block"} unchanged)');
        check(blamed1 > blamed0, 'm2 refused the forged block but did not hold m3, which served it, to account (btcfed_consensus_peer_offences_total{peer="3",reason="invalid_block"})');
      },
    };
  },
};

const equivocate: Scenario = {
  name: 'equivocate-repeatedly', ci: true,
  async start({ fed, byz, note }) {
    const events = await recordEvents(`btcfed.*.consensus.security.equivocation`, (b) => EquivocationEvidence.decode(b));
    const fromView = byz.view;
    const disk0 = await fed.diskMiB('m0/consensus');
    let sent = 0;
    let proposals = 0;
    const views = new Set<number>();
    // When m3 leads, every member gets its proposal and then VARIANTS more for the same view:
    // the same transactions (so each variant's content is valid), another timestamp, so another
    // block hash, each one properly signed — conflicting proposals, not junk.
    const VARIANTS = 4;
    byz.play({
      outbound(to, frame, bytes) {
        if (frame.type !== 'consensus' || frame.message.type !== 'proposal' || to !== 'all') return undefined;
        const p = frame.message;
        views.add(p.view);
        const out: Outgoing[] = HONEST.map((i) => ({ to: i, bytes }));
        void (async () => {
          for (let k = 1; k <= VARIANTS; k++) {
            const header = { ...p.block.header, timestampMs: p.block.header.timestampMs + k };
            const block = { ...p.block, header, hash: blockHash(header) };
            const signature = await byz.sign(proposalSigningBytes({ chainId: byz.chainId, epoch: 0, view: p.view, blockHash: block.hash, justify: p.justify }));
            byz.inject('all', { type: 'consensus', message: { ...p, block, signature } });
            proposals++;
          }
        })();
        return out;
      },
    });
    // Eight conflicting PREPARE votes a view, to the view's leader (where votes go).
    const votes = background(async () => {
      await byz.paced();
      const view = byz.view;
      const leader = byz.leaderOf(view);
      if (leader === BYZANTINE) { await sleep(50); return; }
      views.add(view);
      for (let k = 0; k < 8; k++) {
        const hash = randomBytes(32);
        const signature = await byz.sign(voteSigningBytes({ chainId: byz.chainId, epoch: 0, phase: Phase.PREPARE, view, blockHash: hash }));
        byz.inject(leader, { type: 'consensus', message: { type: 'vote', epoch: 0, phase: Phase.PREPARE, view, blockHash: hash, sender: BYZANTINE, signature } });
        sent++;
      }
    });
    return {
      stop: () => votes.stop(),
      async check() {
        try {
          await sleep(2000);
          note(`${sent} conflicting PREPARE votes and ${proposals} conflicting proposals over ${views.size} views`);
          const kept: string[] = [];
          for (const i of HONEST) {
            const c = fed.clients[i]!;
            const all = [];
            let afterSeq = 0;
            for (;;) {
              const r = await call(c.getEvidence.bind(c), { fromEpoch: 0, fromView, afterSeq, limit: 64 });
              all.push(...r.evidence);
              if (r.evidence.length < 64) break;
              afterSeq = Number(r.evidence.at(-1)!.seq);
            }
            const mine = all.filter((e) => e.offender === BYZANTINE);
            const keys = mine.map((e) => `${e.view}/${e.kind}`);
            check(new Set(keys).size === keys.length, `m${i} kept ${keys.length} evidence items for ${new Set(keys).size} (offender, view, kind): evidence is not deduplicated`);
            check(mine.length <= 2 * views.size + 1, `m${i} kept ${mine.length} evidence items for ${views.size} views (at most one vote and one proposal item each)`);
            kept.push(`m${i}:${mine.length}`);
          }
          const published = events.seen.filter((e) => e.data.offender === BYZANTINE);
          const pubKeys = published.map((e) => `${e.subject}/${e.data.view}/${e.data.phase}`);
          check(new Set(pubKeys).size === pubKeys.length, `${pubKeys.length} equivocation events published for ${new Set(pubKeys).size} distinct (member, view, kind)`);
          check(sent === 0 || published.length > 0, 'no security.equivocation event published: the offender is not reported');
          // Votes go to the view's leader only, and one that arrives after the leader has moved on
          // is refused as stale before its signature is checked: which honest leader catches
          // m3 depends on timing, so the count is over all of them.
          const countedBy = await perHonest(fed, 'btcfed_consensus_equivocations_total');
          const counted = countedBy.reduce((a, b) => a + b, 0);
          check(counted > 0, `btcfed_consensus_equivocations_total stayed 0 on every honest member (${countedBy.join('/')})`);
          // An equivocation is proof of a fault: the first one an honest member catches mutes m3.
          const mutes = await perHonest(fed, 'btcfed_consensus_peer_mutes_total', /peer="3"/);
          check(mutes.some((m) => m > 0), 'no honest member muted m3 for equivocating');
          const disk1 = await fed.diskMiB('m0/consensus');
          check(disk1 - disk0 < 64, `m0's LMDB grew ${(disk1 - disk0).toFixed(1)} MiB during the attack`);
          note(`evidence kept ${kept.join(' ')}, events ${published.length}, equivocations counted ${countedBy.join('/')}, m3 muted ${mutes.join('/')} times, m0 LMDB ${disk0.toFixed(1)}→${disk1.toFixed(1)} MiB`);
        } finally {
          await events.close();
        }
      },
    };
  },
};

const viewJump: Scenario = {
  name: 'view-jump', ci: true,
  async start({ fed, byz, note }) {
    const highQC = byz.driver.engine.safety.prepareQC;
    const sigs0 = await Promise.all(HONEST.map((i) => fed.metric(i, 'consensus', 'btcfed_consensus_signatures_total')));
    const federationView = byz.view;
    for (const view of [MAX_VIEW, MAX_VIEW - 1, 2 ** 40, byz.view + 1_000_000, byz.view + 50]) {
      const nv = await byz.sign(newViewSigningBytes({ chainId: byz.chainId, epoch: 0, view, highQC }));
      byz.inject('all', { type: 'consensus', message: { type: 'new-view', epoch: 0, view, highQC, sender: BYZANTINE, signature: nv } });
      const hash = randomBytes(32);
      const v = await byz.sign(voteSigningBytes({ chainId: byz.chainId, epoch: 0, phase: Phase.PREPARE, view, blockHash: hash }));
      byz.inject('all', { type: 'consensus', message: { type: 'vote', epoch: 0, phase: Phase.PREPARE, view, blockHash: hash, sender: BYZANTINE, signature: v } });
    }
    return {
      stop: async () => {},
      async check() {
        for (const i of HONEST) {
          const s = await fed.status(i);
          check(Number(s.view) < federationView + 1000, `m${i} jumped to view ${s.view} (the federation was at ${federationView})`);
          const mark = await fed.metric(i, 'signer', 'btcfed_signer_last_vote_view');
          check(mark < 2 ** 40, `m${i}'s signer marks moved to view ${mark}: it refuses everything from now on`);
        }
        const sigs1 = await Promise.all(HONEST.map((i) => fed.metric(i, 'consensus', 'btcfed_consensus_signatures_total')));
        for (const [k, i] of HONEST.entries()) check(sigs1[k]! > sigs0[k]!, `m${i} signed nothing after the jump: its signer is disabled`);
        note(`views stay near the federation's; every honest signer still signs`);
      },
    };
  },
};

const stallOwnViews: Scenario = {
  name: 'stall-own-views', ci: true,
  // Its views must come up while m3 is not (yet) suspected: in a 12 s window of CI, m3 once stayed
  // suspected from the scenario before and never led (22 of its views given up at once).
  duringMs: 20_000,
  async start({ fed, byz, note }) {
    // m3 leads its views as usual up to the votes, then never announces a QC: every view it
    // leads is alive (the honest members voted) and times out — unless they have learned to give
    // its views up at once (leader suspicion). Its views must not raise the honest members' view
    // timer either (the timer level rises only for slow views of f + 1 leaders).
    // The previous scenario's aftermath can leave m3 suspected past the barrier's forgiveness (a view
    // of its that failed just after): its views would all be given up at once, before it led one
    // (CI, 2026-11-26: 0 withheld, 21 of 22 views given up at once; the rate 112 %). Its record is
    // cleared as the attack begins, so what is judged is this attack (as slow-leader does).
    for (const i of HONEST) await fed.unmute(i, BYZANTINE);
    let withheld = 0;
    byz.play({
      outbound(_to, frame) {
        if (frame.type === 'consensus' && frame.message.type === 'qc') { withheld++; return []; }
        return undefined;
      },
    });
    const ended = () => perHonest(fed, 'btcfed_consensus_view_changes_total', /cause="new-view-quorum"/);
    const skipped = () => perHonest(fed, 'btcfed_consensus_views_skipped_total', /leader="3"/);
    // The leader schedule (libs/hotstuff schedule.ts) takes m3 out of the rotation once its last three
    // views hold no block of its own: then no view of its is left to give up.
    const outOfRotation = () => perHonest(fed, 'btcfed_consensus_skipped_leaders_validators');
    const [ended0, skipped0] = [await ended(), await skipped()];
    return {
      stop: async () => {},
      async check() {
        const [ended1, skipped1, out1] = [await ended(), await skipped(), await outOfRotation()];
        // The timer right after a commit is base × multiplier^level: the lowest one armed over 3 s.
        const lowest = await Promise.all(HONEST.map(async (i) => {
          let min = Infinity;
          for (let k = 0; k < 30; k++) {
            min = Math.min(min, await fed.metric(i, 'consensus', 'btcfed_consensus_view_timeout_seconds'));
            await sleep(100);
          }
          return min;
        }));
        const { baseMs, multiplier } = byz.timeouts;
        note(`${withheld} QC announcements withheld; views ended by NEW-VIEWs ${deltas(ended0, ended1)}, of them given up at once (m3 suspected) ${deltas(skipped0, skipped1)}; `
          + `validators out of the rotation at the end ${out1.join('/')}; lowest view timer ${lowest.map((x) => `${x.toFixed(2)} s`).join('/')} (base ${baseMs / 1000} s)`);
        check(withheld > 0, 'm3 never led a view while stalling');
        check(skipped1.every((x, k) => x > skipped0[k]! || out1[k]! > 0),
          'an honest member never gave up a stalling leader\'s view at once nor took it out of the rotation: each of its views cost it the view timer');
        check(lowest.every((x) => x * 1000 < baseMs * multiplier ** 2),
          `a stalling leader raised the honest members' view timer: lowest ${lowest.map((x) => x.toFixed(2)).join('/')} s against a base of ${baseMs / 1000} s`);
      },
    };
  },
};

const silent: Scenario = {
  name: 'silent', ci: false,
  async start({ byz, note }) {
    // Not an attack: the crash-fault floor the others are read against. m3 sends nothing at all, as
    // if it had crashed, so its views fail (then are given up at once) and every quorum needs all
    // three honest members — the slowest of their signers in each phase, not the third fastest of
    // four. Whatever a scenario that gets m3 muted loses beyond this, its defence loses.
    let dropped = 0;
    byz.play({ outbound() { dropped++; return []; } });
    return {
      stop: async () => {},
      async check() {
        note(`${dropped} frames m3 did not send`);
        check(dropped > 0, 'm3 sent nothing to drop');
      },
    };
  },
};

/** Labels of m3's views given up for `reason`, in either label order. */
const skippedOf3 = (reason: string) => new RegExp(`leader="3",[^}]*reason="${reason}"|reason="${reason}",[^}]*leader="3"`);

const slowLeader: Scenario = {
  name: 'slow-leader', ci: true,
  // Judging a leader slow takes three of its last four views: in CI's shorter window two of three
  // members once saw too few of m3's views to judge it (0/0/13 given up as slow).
  duringMs: 20_000,
  async start({ fed, byz, note }) {
    // m3 leads every view it is given, correctly, but holds each proposal back for a third of the
    // view timer: its views certify — no failure, no offence — and each costs the federation a third
    // of a timer. The hold must put m3's views above 1.5 × the median view and still under the timer:
    // at 70 % the view (~0.3 s of its own then) ran into the timer on some members and failed there
    // instead, and at 50 % so did views of ~0.45–0.5 s (this machine, 2026-11-25: m0 and m1 judged m3
    // failed, not slow). Only judging leaders by how long their views take (slow views, leader
    // suspicion) gives those views up at once.
    const holdMs = Math.round(0.35 * byz.timeouts.baseMs);
    // A view of m3's that failed after the barrier's forgiveness (the previous scenario's aftermath)
    // suspects it for failing, and a leader suspected so has its views given up at once, before a
    // held proposal can arrive: each failing again, it would never be judged slow (CI, 2026-11-26:
    // 5 of m3's views skipped as failed in the window before, 0/0/0 judged slow). Its record is
    // cleared once more as the hold begins, so what is judged is this attack.
    const failed = () => perHonest(fed, 'btcfed_consensus_views_skipped_total', skippedOf3('failed_views'));
    const failedBefore = await failed();
    for (const i of HONEST) await fed.unmute(i, BYZANTINE);
    let held = 0;
    const timers = new Set<NodeJS.Timeout>();
    byz.play({
      outbound(to, frame) {
        if (frame.type !== 'consensus' || frame.message.type !== 'proposal') return undefined;
        held++;
        const t = setTimeout(() => { timers.delete(t); byz.inject(to, frame); }, holdMs);
        timers.add(t);
        return [];
      },
    });
    const skipped = () => perHonest(fed, 'btcfed_consensus_views_skipped_total', skippedOf3('slow_views'));
    const skipped0 = await skipped();
    // And once more 5 s in, if a view of m3's failed since all the same (CI, 2026-11-26: as failed
    // 24/24/23, slow 0/0/0 — one early failure, and m3's views were given up as failed for the rest of
    // the window, which also defends, but is not what this scenario judges).
    let reforgiven = '';
    const again = setTimeout(() => void (async () => {
      const now = await failed();
      if (!now.some((x, k) => x > failedBefore[k]!)) return;
      reforgiven = ` (a view of m3's failed in the first 5 s, ${deltas(failedBefore, now)}: its record cleared again)`;
      for (const i of HONEST) await fed.unmute(i, BYZANTINE);
    })().catch(() => undefined), 5000);
    return {
      stop: async () => { clearTimeout(again); for (const t of timers) clearTimeout(t); },
      async check() {
        const [skipped1, failed1] = [await skipped(), await failed()];
        note(`${held} proposals held back ${holdMs} ms each; m3's views given up at once as slow ${deltas(skipped0, skipped1)}, as failed ${deltas(failedBefore, failed1)}${reforgiven}`);
        check(held > 0, 'm3 never led a view');
        // The slow judgement works (some member made it), and every member stopped waiting on m3's
        // views: as slow, or — when one of them failed on its way (CI, 2026-11-26: slow 6/0/6,
        // failed 0/5/0) — as failed, which defends as well.
        check(skipped1.some((x, k) => x > skipped0[k]!), 'no honest member judged the slow leader\'s views slow');
        check(skipped1.every((x, k) => x > skipped0[k]! || failed1[k]! > failedBefore[k]!), 'an honest member never gave the slow leader\'s views up at once: each cost it most of a view timer');
      },
    };
  },
};

/** The newest block m0 committed, for requests that make a member walk the whole chain. */
async function tip(fed: Federation): Promise<Uint8Array> {
  const c = fed.clients[0]!;
  const h = Number((await fed.status(0)).committedHeight);
  return (await call(c.getBlock.bind(c), { by: { $case: 'height', value: h } })).blockHash;
}

/** Block requests a second to each honest member in block-request-flood (BYZ_REQUEST_RATE, default 500). */
const REQUEST_RATE = Number(process.env.BYZ_REQUEST_RATE ?? 500);

const requestFlood: Scenario = {
  name: 'block-request-flood', ci: true,
  // Muting takes some 500 refused requests a member: at ~500/s sent, a 10 s window left one of
  // three members short in CI (396 refused, not yet muted); the campaign's 20 s never did.
  duringMs: 18_000,
  async start({ fed, byz, note }) {
    const syncRefused = () => perHonest(fed, 'btcfed_consensus_peer_offences_total', /peer="3",reason="sync_(rate_limited|repeated)"/);
    const mutes = () => perHonest(fed, 'btcfed_consensus_peer_mutes_total', /peer="3"/);
    const [refused0, mutes0] = [await syncRefused(), await mutes()];
    const hash = await tip(fed);
    let sent = 0;
    const perTick = Math.max(1, Math.round(REQUEST_RATE / 10));
    const attack = background(async () => {
      await byz.paced();
      for (let k = 0; k < perTick; k++) {
        byz.inject('all', { type: 'block-request', requestId: ++sent, hashes: [hash], fromHeight: 0, maxBlocks: 1 << 30 } as Frame);
      }
      await sleep(100);
    });
    return {
      stop: () => attack.stop(),
      async check() {
        const [refused1, mutes1] = [await syncRefused(), await mutes()];
        note(`${sent} block requests sent to each honest member (~${REQUEST_RATE}/s); refused ${deltas(refused0, refused1)}; m3 muted ${deltas(mutes0, mutes1)} times`);
        check(refused1.every((r, k) => r > refused0[k]!), 'the flood of block requests was not refused and counted (sync_rate_limited/sync_repeated) on every honest member');
        check(mutes1.every((r, k) => r > mutes0[k]!), 'the flooding member was never muted: its requests were still decoded and answered');
        // One request repeated: each mute takes 64 refusals (penalties.ts REPEATED_REFUSAL_WEIGHT);
        // at one refusal each it took 512, and each took its members ~1 s of flood (66–72 % of the
        // rate before, against 96 % with the weight). Twice that per mute is the bar.
        const perMute = (REFUSALS_PER_STRIKE / REPEATED_REFUSAL_WEIGHT) * STRIKES_TO_MUTE;
        check(refused1.every((r, k) => r - refused0[k]! <= 2 * perMute * (mutes1[k]! - mutes0[k]! + 1)),
          `the repeats were not weighed as repeats: ${deltas(refused0, refused1)} refused for ${deltas(mutes0, mutes1)} mutes (each should take ${perMute})`);
      },
    };
  },
};

const badSignatures: Scenario = {
  name: 'bad-signature-flood', ci: true,
  async start({ fed, byz, note }) {
    const invalid = () => perHonest(fed, 'btcfed_consensus_invalid_signatures_total');
    const mutes = () => perHonest(fed, 'btcfed_consensus_peer_mutes_total', /peer="3"/);
    const [bad0, mutes0] = [await invalid(), await mutes()];
    const startedAt = Date.now();
    const sigBytes = byz.limits.signatureBytes;
    let sent = 0;
    // Junk-signed votes to the leader of each view, ~2,000 a second.
    const attack = background(async () => {
      await byz.paced();
      const view = byz.view;
      const leader = byz.leaderOf(view);
      if (leader === BYZANTINE) { await sleep(20); return; }
      for (let k = 0; k < 100; k++) {
        byz.inject(leader, { type: 'consensus', message: { type: 'vote', epoch: 0, phase: Phase.PREPARE, view, blockHash: randomBytes(32), sender: BYZANTINE, signature: randomBytes(sigBytes) } });
        sent++;
      }
      await sleep(50);
    });
    return {
      stop: () => attack.stop(),
      async check() {
        const [bad1, mutes1] = [await invalid(), await mutes()];
        note(`${sent} forged votes; invalid signatures counted ${deltas(bad0, bad1)}; m3 muted ${deltas(mutes0, mutes1)} times`);
        check(bad1.some((b, k) => b > bad0[k]!), 'no honest member counted the invalid signatures');
        // The cheap checks come first: a vote goes to the signature check only when this member
        // leads its view and it is the first from its sender for that (view, phase), so a flood
        // costs a leader one verification per view it leads, not one per forged vote.
        const verified = bad1.reduce((a, b, k) => a + b - bad0[k]!, 0);
        check(verified * 20 <= sent, `honest members verified ${verified} of ${sent} forged votes: the leader and first-seen checks did not keep the expensive work under 5 %`);
        // Sixteen strikes inside one ten-second window mute the sender. Windows are fixed, so a
        // member that verified more than sixteen per window it could have had, reached the count in
        // one of them (pigeonhole) and must have muted. One that leads few views verifies fewer
        // forged votes than that and rightly never mutes for them (seen in CI: 9 in 25 s).
        const windows = Math.ceil((Date.now() - startedAt) / WINDOW_MS) + 1;
        check(mutes1.every((m, k) => m > mutes0[k]! || bad1[k]! - bad0[k]! < STRIKES_TO_MUTE * windows), `a member that verified ${STRIKES_TO_MUTE * windows} or more forged votes in ${windows} windows never muted their sender`);
        check(mutes1.some((m, k) => m > mutes0[k]!), 'nobody muted the sender of forged votes');
      },
    };
  },
};

const oversized: Scenario = {
  name: 'oversized-frame-flood', ci: false,
  async start({ fed, byz, note }) {
    // The largest proposal the gateway carries: a 4 MiB-class block, a junk signature. Its
    // signature must be checked (and fail) before anyone hashes megabytes of transactions.
    const txBytes = 60_000;
    const count = Math.max(1, Math.floor(Math.min(byz.maxFrameBytes || 4 << 20, byz.limits.maxBlockBytes) / (txBytes + 16)) - 2);
    const txs = Array.from({ length: Math.min(count, byz.limits.maxBlockTxs) }, () => randomBytes(txBytes));
    const justify = byz.driver.engine.safety.prepareQC;
    const mutes = () => perHonest(fed, 'btcfed_consensus_peer_mutes_total', /peer="3"/);
    const checked = () => perHonest(fed, 'btcfed_consensus_invalid_signatures_total', /what="proposal"/);
    const [mutes0, checked0] = [await mutes(), await checked()];
    let sent = 0;
    const attack = background(async () => {
      await byz.paced();
      let view = byz.view;
      while (byz.leaderOf(view) !== BYZANTINE) view++;
      const header = { chainId: byz.chainId, epoch: 0, height: 1_000_000, view, parentHash: randomBytes(32), proposer: BYZANTINE, timestampMs: Date.now(), txRoot: randomBytes(32), stateHash: randomBytes(32) };
      const block: Block = { header, hash: blockHash(header), txs };
      byz.inject('all', { type: 'consensus', message: { type: 'proposal', view, block, justify, sender: BYZANTINE, signature: randomBytes(byz.limits.signatureBytes) } });
      sent++;
      await sleep(200);
    });
    return {
      stop: () => attack.stop(),
      async check() {
        const [mutes1, checked1] = [await mutes(), await checked()];
        note(`${sent} proposals of ${(txs.length * txBytes / (1 << 20)).toFixed(1)} MiB with junk signatures; their signatures checked ${deltas(checked0, checked1)} times; m3 muted ${deltas(mutes0, mutes1)} times`);
        check(mutes1.every((m, k) => m > mutes0[k]!), 'an honest member never muted the sender of junk-signed proposals');
        // A forged signature strikes by the message's size: one such proposal mutes. A member checks
        // one per mute, a few more when some wait in its verification queue as the first fails (the
        // queue drops a muted sender's); at one strike each it took sixteen.
        const perMute = checked1.map((c, k) => (c - checked0[k]!) / Math.max(1, mutes1[k]! - mutes0[k]!));
        check(perMute.every((x) => x <= 4), `an honest member checked ${perMute.map((x) => x.toFixed(1)).join('/')} junk-signed proposals per mute of their sender (a mute takes one)`);
      },
    };
  },
};

/** A mempool this small after a flood has worked it off (the honest clients' 30 and what a few blocks take). */
const DRAINED_TXS = 2_000;
/** How long the honest members may take to work the flood's backlog off (its quota in each pool, at the federation's block rate). */
const DRAIN_MS = 180_000;

const mempoolFill: Scenario = {
  name: 'mempool-fill', ci: false,
  async start({ fed, byz, note }) {
    let sent = 0;
    // What the junk costs the honest members besides its own handling: proposals that named a batch
    // a replica lacked (one honest member took it from m3, another refused it over m3's hand-off
    // rate or while m3 was muted there) wait for it to be fetched.
    const waited0 = await perHonest(fed, 'btcfed_consensus_batch_fetch_events_total', /event="waited"/);
    const asked0 = await perHonest(fed, 'btcfed_consensus_batch_fetch_events_total', /event="asked"/);
    const proposed0 = await perHonest(fed, 'btcfed_consensus_proposed_transactions_total');
    const attack = background(async () => {
      await byz.paced();
      byz.inject('all', { type: 'tx-batch', txs: Array.from({ length: 512 }, () => randomBytes(200)) });
      sent += 512;
      await sleep(20);
    });
    const ours = Array.from({ length: 30 }, (_, k) => new TextEncoder().encode(`honest-client-${k}-${randomBytes(4).toString('hex')}`));
    const clients = (async () => {
      await sleep(5000);
      await Promise.all(ours.map((tx, k) => { const c = fed.clients[HONEST[k % 3]!]!; return call(c.submitTransaction.bind(c), { tx }); }));
    })();
    /** Each honest member's mempool and batch store, transactions and MiB. */
    const levels = () => Promise.all(HONEST.map(async (i) => ({
      txs: await fed.metric(i, 'consensus', 'btcfed_consensus_mempool_transactions'),
      mib: await fed.metric(i, 'consensus', 'btcfed_consensus_batch_store_bytes') / 2 ** 20,
    })));
    const shown = (l: Awaited<ReturnType<typeof levels>>) => l.map((x, k) => `m${HONEST[k]} ${x.txs} txs, ${x.mib.toFixed(1)} MiB`).join('; ');
    // The peaks, sampled through the flood.
    let peak = 0;
    let peakMib = 0;
    let sampling = true;
    const sample = async () => {
      for (const l of await levels().catch(() => [])) { peak = Math.max(peak, l.txs); peakMib = Math.max(peakMib, l.mib); }
    };
    const sampler = (async () => { while (sampling) { await sample(); await sleep(500); } })();
    return {
      stop: async () => {
        await attack.stop();
        await clients;
        sampling = false;
        await sampler;
        await sample();
        const [waited, asked, proposed] = await Promise.all([
          perHonest(fed, 'btcfed_consensus_batch_fetch_events_total', /event="waited"/),
          perHonest(fed, 'btcfed_consensus_batch_fetch_events_total', /event="asked"/),
          perHonest(fed, 'btcfed_consensus_proposed_transactions_total')]);
        note(`during the flood, on m0/m1/m2: proposals that waited for a batch ${deltas(waited0, waited)}, batches asked for ${deltas(asked0, asked)}; transactions proposed as leader ${deltas(proposed0, proposed)}`);
      },
      async drained() {
        // m3's junk, up to its quota of each honest pool, is proposed and committed like any
        // validator's hand-offs once the flood stops: until it is, it is held by design.
        const t0 = Date.now();
        const at = await levels();
        const now = await until('the honest members to commit the junk left in their mempools', async () => {
          const l = await levels();
          return l.every((x) => x.txs <= DRAINED_TXS) ? l : undefined;
        }, DRAIN_MS);
        return `the junk left when the flood stopped, mempool and batch store: ${shown(at)}; worked off in ${((Date.now() - t0) / 1000).toFixed(0)} s: ${shown(now)}`;
      },
      async check() {
        await until('the honest clients\' transactions committed on every honest member', async () => {
          for (const i of HONEST) {
            const c = fed.clients[i]!;
            for (const tx of ours) if ((await call(c.getTransaction.bind(c), { txHash: txHash(tx), withProof: false })).status !== TxStatus.TX_STATUS_COMMITTED) return undefined;
          }
          return true;
        }, 90_000);
        const conf = parse(await fs.readFile(path.join(fed.memberDir(0), 'conf.yaml'), 'utf8')) as { consensus: { mempool_max_txs?: number; max_block_bytes?: number } };
        const max = conf.consensus.mempool_max_txs ?? 200_000; // the schema's default
        // Each sender's batches are held up to eight blocks' worth (driver.ts): m3's flood, and the honest members' own.
        const batchBound = 8 * (conf.consensus.max_block_bytes ?? 4 << 20) * 4;
        note(`${sent} junk transactions from m3; ${ours.length} client transactions committed; peak honest mempool ${peak} of ${max}; peak batches held ${peakMib.toFixed(1)} MiB (bound ${batchBound / 2 ** 20} MiB)`);
        check(peak <= max / 2, `one validator filled an honest mempool to ${peak} of ${max} transactions: no per-source quota`);
        check(peakMib * 2 ** 20 <= batchBound, `an honest member held ${peakMib.toFixed(1)} MiB of batches, over the bound of ${batchBound / 2 ** 20} MiB`);
      },
    };
  },
};

/** One unsolicited announce on the exchange protocol; a reset (a penalty) is not an error here. */
async function announce(from: Awaited<ReturnType<typeof strangerNode>>, to: ReturnType<typeof multiaddr>, peers: Array<{ publicKey: string; addresses: string[] }>): Promise<void> {
  try {
    const s = await from.dialProtocol(to, EXCHANGE_PROTOCOL);
    s.send(encodeStreamFrame(PeerExchangeMessage.encode({ body: { $case: 'announce', value: { peers } } }).finish(), 1 << 20));
    await s.close();
  } catch { /* refused or reset */ }
}

const poisoning: Scenario = {
  // Not in the CI set (it restarts m0's gateway and waits for its memory to settle, ~70 s):
  // test/gateway-resilience.test.ts shows the same defences on real gateways.
  name: 'peer-exchange-poisoning', ci: false,
  async start({ fed, box, note }) {
    const peersPath = path.join(fed.memberDir(0), 'peers.yaml');
    type PeersFile = { peers: Array<{ public_key: string; addresses: string[] }> };
    const before = parse(await fs.readFile(peersPath, 'utf8')) as PeersFile;
    const stranger = await strangerNode();
    const target = multiaddr(`/ip4/127.0.0.1/tcp/${fed.ports(0).libp2p}`);
    let fakes = 0;
    const fakeKeys = new Set<string>();
    const flood = (async () => {
      await stranger.dial(target);
      for (let m = 0; m < 10; m++) {
        const peers = [];
        for (let k = 0; k < 200; k++) {
          const id = await generateIdentity();
          fakes++;
          fakeKeys.add(id.publicKey);
          // Half inside the federation's learned networks (closed loopback ports: taken, dialled,
          // refused at once), half outside (refused before anything is stored or dialled).
          peers.push({ publicKey: id.publicKey, addresses: Array.from({ length: 8 }, (_, j) => (j % 2 ? `/ip4/10.${k % 250}.0.${j + 1}/tcp/${1000 + j}` : `/ip4/127.77.${m}.${k + 1}/tcp/${1000 + j}`)) });
        }
        await announce(stranger, target, peers);
      }
      const blackhole = Array.from({ length: 64 }, (_, j) => `/ip4/192.0.2.${j + 1}/tcp/${4000 + j}`);
      for (let m = 0; m < 3; m++) {
        for (const v of before.peers) await announce(stranger, target, [{ publicKey: v.public_key, addresses: [...blackhole, ...v.addresses] }]);
      }
    })();
    return {
      stop: async () => { try { await flood; } finally { await stranger.stop(); } },
      async check() {
        const after = parse(await fs.readFile(peersPath, 'utf8')) as PeersFile;
        for (const v of before.peers) {
          const now = after.peers.find((p) => p.public_key === v.public_key);
          check(JSON.stringify(now?.addresses) === JSON.stringify(v.addresses), `a validator's addresses in m0's peers.yaml changed to ${JSON.stringify(now?.addresses)?.slice(0, 200)}`);
        }
        check(after.peers.length <= before.peers.length + 256, `m0's peers.yaml grew from ${before.peers.length} to ${after.peers.length} entries`);
        const kept = after.peers.filter((p) => fakeKeys.has(p.public_key)).length;
        check(kept === 0, `${kept} fake peers (records that never connected) in m0's peers.yaml`);
        const penalised = await fed.metric(0, 'gateway', 'btcfed_gateway_peers_penalised_total');
        const rejected = await fed.metric(0, 'gateway', 'btcfed_gateway_peer_records_rejected_total');
        check(penalised + rejected > 0, 'm0\'s gateway neither rejected nor penalised anything');
        const forgotten = await fed.metric(0, 'gateway', 'btcfed_gateway_peers_forgotten_total');
        note(`${fakes} fake peers + ${3 * before.peers.length} poisoned validator records → peers.yaml ${before.peers.length}→${after.peers.length}, rejected ${rejected}, penalised ${penalised}, forgotten after failed dials ${forgotten}`);
        // A restarted gateway still dials the validators. (Started by this process, it is an honest
        // process: out of the attacker's CPU budget.)
        await fed.net.restart(0, 'gateway');
        await box.release(fed.proc(0, 'gateway').child.pid!);
        await until('m0 connected to the three other validators after its gateway restarted', async () => {
          const p = (await fed.status(0)).peers.filter((x) => x.state === 'connected');
          return p.length === 3 ? true : undefined;
        }, 60_000);
        // A new process's heap grows to its working size over its first minute or so (m0's gateway
        // 165 → 234 MiB): wait until it settles, so that a try after this one (run.ts) does not take
        // a young process's memory as its baseline.
        const pid = fed.proc(0, 'gateway').child.pid!;
        const t0 = Date.now();
        let last = (await rssParts(pid)).anon;
        for (;;) {
          await sleep(10_000);
          const now = (await rssParts(pid)).anon;
          if (now - last < 4 || Date.now() - t0 > 90_000) { last = now; break; }
          last = now;
        }
        note(`m0's gateway restarted and reconnected; ${await healthy(fed)}; its memory settled at ${last.toFixed(0)} MiB in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
      },
    };
  },
};

const forgeToObserver: Scenario = {
  name: 'forge-to-observer', ci: true,
  async start({ fed, byz, note }) {
    const refusedOf = () => fed.metric(OBSERVER, 'consensus', 'btcfed_observer_refused_responses_total', /sender="validator"/);
    const refused0 = await refusedOf();
    const start = await fed.observed();
    let forged = 0;
    // The observer asks from its tip, and the CPU-capped m3 is nearly always behind it: answered at
    // once, m3 would have no block to forge (2026-11-27 a CI window saw no forgery at all). So m3
    // holds each of the observer's requests until it has a block above it — the observer waits for
    // one source at a time, up to its request timeout — and its honest sync then answers it.
    // One forgery a window is what to expect: the observer passes a source it refused over for a minute.
    const held: { from: number; bytes: Uint8Array; above: number }[] = [];
    const tip = () => byz.driver.engine.committed.header.height;
    const release = background(async () => {
      for (const r of held.splice(0)) {
        if (tip() > r.above) byz.inbound.onFrame(r.from, r.bytes);
        else held.push(r);
      }
      await sleep(20);
    });
    byz.play({
      inbound(from, frame, bytes) {
        if (frame?.type !== 'block-request' || !isOutside(from) || tip() > frame.fromHeight || held.length >= 8) return true;
        held.push({ from, bytes, above: frame.fromHeight });
        return false;
      },
      outbound(to, frame) {
        // Honest to the validators; to the observer, the real blocks with their COMMIT QC's first
        // signature bent (the blocks alone are valid: only checking the SLH-DSA signatures shows it).
        // Forged transactions are refused earlier, by libs/blocks (services/consensus/follower.test.ts).
        if (frame.type !== 'block-response' || typeof to !== 'number' || !isOutside(to)) return undefined;
        const last = frame.blocks.findLastIndex((b) => b.qc?.phase === Phase.COMMIT);
        if (last < 0) return undefined;
        const qc = frame.blocks[last]!.qc!;
        const sig = new Uint8Array(qc.signatures[0]!);
        sig[100] = sig[100]! ^ 0xff;
        const blocks = [...frame.blocks];
        blocks[last] = { ...blocks[last]!, qc: { ...qc, signatures: [sig, ...qc.signatures.slice(1)] } };
        forged++;
        return [{ to, bytes: encodeFrame(byz.chainId, { ...frame, blocks }) }];
      },
    });
    return {
      stop: async () => { await release.stop(); held.length = 0; },
      async check() {
        await sleep(2000);
        const refused1 = await refusedOf();
        note(`m3 served the observer ${forged} runs with a bent COMMIT QC signature; it refused ${refused1 - refused0}`);
        check(forged > 0, 'm3 never served the observer');
        check(refused1 - refused0 === forged, `the observer did not refuse each of m3's ${forged} forgeries (btcfed_observer_refused_responses_total{sender="validator"} ${refused0} → ${refused1})`);
        // It follows on from the honest validators, and what it holds is the validators' log.
        const [m0] = await fed.heights([0]);
        const now = await until('the observer to follow on past the forgery', async () => { const o = await fed.observed(); return o.height >= Math.max(start.height + 3, m0! - 2) ? o : undefined; }, 60_000);
        const theirs = await call(fed.clients[0]!.getBlock.bind(fed.clients[0]!), { by: { $case: 'height', value: now.height } });
        check(toHex(theirs.blockHash) === now.hash, `the observer holds ${now.hash} at height ${now.height}, m0 ${toHex(theirs.blockHash)}`);
        note(`observer ${start.height}→${now.height}, same hash as m0 at ${now.height}`);
      },
    };
  },
};

/**
 * In the order they run. peer-exchange-poisoning goes last: it restarts m0's gateway, and a
 * scenario after it would take its memory baseline from a process a minute old, whose heap is
 * still growing to its working size (m0's restarted gateway 191 → 265 MiB over mempool-fill, while
 * the others grew 10–16), and its fake peers stay in every member's peers.yaml.
 */
export const SCENARIOS: Scenario[] = [
  silent, withhold, forgeToObserver, mempoolFill, ...BATCH_SCENARIOS, ...PRESENCE_SCENARIOS, viewJump, stallOwnViews, slowLeader, equivocate,
  ...USELESS_SCENARIOS, ...RECONFIG_SCENARIOS, badSignatures, oversized, requestFlood, ...CLIENT_SCENARIOS, ...CONNECTION_SCENARIOS, poisoning, ...LAST_SCENARIOS,
];
