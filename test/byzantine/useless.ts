// Attacks with traffic that is validly signed but useless or wrong in what it says: replays of
// old messages, proposals for views far ahead, a stream of NEW-VIEW claims, and a leader that
// stamps its blocks with times of its choosing. Nothing here is forged: m3 signs it all with its
// real key. Honest members must refuse it cheaply (before decoding what they can, before any
// signature check), count it, and mute the sender once it goes beyond what honest members send.

import { randomBytes } from 'node:crypto';
import { blockHash, newViewSigningBytes, proposalSigningBytes, toHex } from '#libs/crypto/index.ts';
import { callPatiently } from '#libs/rpc/index.ts';
import { encodeFrame, type Frame } from '#libs/wire/index.ts';
import { BYZANTINE, sleep } from './federation.ts';
import { until } from '../support/until.ts';
import { background, check, deltas, perHonest, type Scenario } from './scenario.ts';

const offences = (reason: string) => new RegExp(`peer="3",reason="${reason}"`);
const mutesOf3 = /peer="3"/;

/** Old messages replayed a second (the measurement: ~390/s took the rate from 4.8 to 0.84 blocks/s). */
const REPLAY_RATE = Number(process.env.BYZ_REPLAY_RATE ?? 390);

const staleReplay: Scenario = {
  name: 'stale-replay-flood', ci: true,
  async start({ fed, byz, note }) {
    // First, honestly, collect what a member legitimately holds: QC announcements of the honest
    // leaders and m3's own votes and NEW-VIEWs, each validly signed.
    const captured: Uint8Array[] = [];
    byz.play({
      inbound(_from, frame, bytes) { if (frame?.type === 'consensus' && frame.message.type === 'qc' && captured.length < 4000) captured.push(bytes); return true; },
      outbound(_to, frame) {
        if (frame.type === 'consensus' && frame.message.type !== 'proposal' && captured.length < 4000) captured.push(encodeFrame(byz.chainId, frame));
        return undefined;
      },
    });
    await sleep(4000);
    byz.play({});
    const stale = () => perHonest(fed, 'btcfed_consensus_peer_offences_total', offences('(stale|duplicate)'));
    const mutes = () => perHonest(fed, 'btcfed_consensus_peer_mutes_total', mutesOf3);
    const [stale0, mutes0] = [await stale(), await mutes()];
    let sent = 0;
    const attack = background(async () => {
      await byz.paced();
      for (let k = 0; k < REPLAY_RATE / 10; k++) byz.inject('all', captured[sent++ % captured.length]!);
      await sleep(100);
    });
    return {
      stop: () => attack.stop(),
      async check() {
        const [stale1, mutes1] = [await stale(), await mutes()];
        note(`${captured.length} validly signed messages captured, replayed ${sent} times to every honest member (~${REPLAY_RATE}/s); refused as stale or duplicate ${deltas(stale0, stale1)}; m3 muted ${deltas(mutes0, mutes1)} times`);
        check(captured.length > 0, 'nothing was captured to replay');
        check(stale1.every((s, k) => s > stale0[k]!), 'an honest member did not refuse the replays as stale or duplicate');
        check(mutes1.every((m, k) => m > mutes0[k]!), 'an honest member never muted the member replaying old messages: refusals of valid but useless messages must count');
      },
    };
  },
};

const futureProposals: Scenario = {
  name: 'future-proposal-flood', ci: true,
  async start({ fed, byz, note }) {
    // A validly signed proposal of almost the largest size the gateway carries, for a view m3
    // leads far ahead, again and again (the measurement: 3.9 MiB, 5 a second).
    const txBytes = 60_000;
    const count = Math.max(1, Math.floor(Math.min(byz.maxFrameBytes || 4 << 20, byz.limits.maxBlockBytes) / (txBytes + 16)) - 2);
    const txs = Array.from({ length: Math.min(count, byz.limits.maxBlockTxs) }, () => randomBytes(txBytes));
    const refused = () => perHonest(fed, 'btcfed_consensus_peer_offences_total', offences('far_future'));
    const mutes = () => perHonest(fed, 'btcfed_consensus_peer_mutes_total', mutesOf3);
    const [refused0, mutes0] = [await refused(), await mutes()];
    let sent = 0;
    let frame: Uint8Array | undefined;
    let frameView = 0;
    const attack = background(async () => {
      await byz.paced();
      if (!frame || frameView < byz.view + 100) {
        let view = byz.view + 1000;
        while (byz.leaderOf(view) !== BYZANTINE) view++;
        const justify = byz.driver.engine.safety.prepareQC;
        const parent = byz.driver.engine.block(toHex(justify.blockHash)) ?? byz.driver.genesis;
        const header = { chainId: byz.chainId, epoch: 0, height: parent.header.height + 1, view, parentHash: justify.blockHash, proposer: BYZANTINE,
          timestampMs: Date.now(), txRoot: randomBytes(32), stateHash: randomBytes(32) };
        const block = { header, hash: blockHash(header), txs };
        const signature = await byz.sign(proposalSigningBytes({ chainId: byz.chainId, epoch: 0, view, blockHash: block.hash, justify }));
        frame = encodeFrame(byz.chainId, { type: 'consensus', message: { type: 'proposal', view, block, justify, sender: BYZANTINE, signature } });
        frameView = view;
      }
      byz.inject('all', frame);
      sent++;
      await sleep(200);
    });
    return {
      stop: () => attack.stop(),
      async check() {
        const [refused1, mutes1] = [await refused(), await mutes()];
        note(`${sent} validly signed proposals of ${(frame!.length / (1 << 20)).toFixed(1)} MiB for views ~1000 ahead; refused as far_future ${deltas(refused0, refused1)}; m3 muted ${deltas(mutes0, mutes1)} times`);
        check(refused1.every((r, k) => r > refused0[k]!), 'an honest member did not refuse proposals for views far ahead before decoding them');
        check(mutes1.every((m, k) => m > mutes0[k]!), 'an honest member never muted the member sending them');
      },
    };
  },
};

const newViewChurn: Scenario = {
  name: 'new-view-churn', ci: false,
  async start({ fed, byz, note }) {
    // NEW-VIEW claims for ever higher views, each a new claim and validly signed: each would cost
    // an honest member an SLH-DSA verification. m3 alone (f = 1) can never move anybody's view.
    const refused = () => perHonest(fed, 'btcfed_consensus_peer_offences_total', offences('new_view_churn'));
    const mutes = () => perHonest(fed, 'btcfed_consensus_peer_mutes_total', mutesOf3);
    const [refused0, mutes0] = [await refused(), await mutes()];
    const views0 = await Promise.all([0, 1, 2].map(async (i) => Number((await fed.status(i)).view)));
    let sent = 0;
    let next = byz.view + 10;
    const attack = background(async () => {
      await byz.paced();
      const highQC = byz.driver.engine.safety.prepareQC;
      const view = next++;
      const signature = await byz.sign(newViewSigningBytes({ chainId: byz.chainId, epoch: 0, view, highQC }));
      byz.inject('all', { type: 'consensus', message: { type: 'new-view', epoch: 0, view, highQC, sender: BYZANTINE, signature } } as Frame);
      sent++;
    });
    return {
      stop: () => attack.stop(),
      async check() {
        const [refused1, mutes1] = [await refused(), await mutes()];
        const views1 = await Promise.all([0, 1, 2].map(async (i) => Number((await fed.status(i)).view)));
        note(`${sent} NEW-VIEWs for views ${views0[0]! + 10}…${next}; refused beyond the claims an honest member makes in a view ${deltas(refused0, refused1)}; m3 muted ${deltas(mutes0, mutes1)} times; honest views ${views0.join('/')} → ${views1.join('/')}`);
        check(refused1.every((r, k) => r > refused0[k]!), 'an honest member verified every NEW-VIEW of the churn');
        check(views1.every((v) => v < next - 5), 'an honest member followed m3\'s NEW-VIEWs alone');
      },
    };
  },
};

/** Ten years, in ms. */
const DECADE_MS = 10 * 365 * 86_400_000;

const badBlockTime: Scenario = {
  name: 'bad-block-time', ci: true,
  // m3 leads only the views the schedule gives it, and after the scenarios before it the schedule
  // skips it for a while: in CI's 12 s window it once led a single view, at the window's end.
  duringMs: 18_000,
  async start({ fed, byz, note }) {
    // When m3 leads, its proposal goes out re-stamped and re-signed: alternately ten years ahead
    // and an hour before its parent. Everything else about the block is valid.
    let restamped = 0;
    byz.play({
      outbound(to, frame) {
        if (frame.type !== 'consensus' || frame.message.type !== 'proposal') return undefined;
        const p = frame.message;
        const parent = byz.driver.engine.block(toHex(p.block.header.parentHash));
        const timestampMs = restamped % 2 === 0 ? Date.now() + DECADE_MS : Math.max(0, (parent?.header.timestampMs ?? Date.now()) - 3_600_000);
        restamped++;
        const header = { ...p.block.header, timestampMs };
        const block = { ...p.block, header, hash: blockHash(header) };
        void byz.sign(proposalSigningBytes({ chainId: byz.chainId, epoch: 0, view: p.view, blockHash: block.hash, justify: p.justify }))
          .then((signature) => byz.inject(to, { type: 'consensus', message: { ...p, block, signature } }));
        return [];
      },
    });
    const refused = () => perHonest(fed, 'btcfed_consensus_peer_offences_total', offences('bad_block_time'));
    const anomalies = () => perHonest(fed, 'btcfed_consensus_block_time_anomalies_total');
    const [refused0, anomalies0] = [await refused(), await anomalies()];
    const from = Number((await fed.status(0)).committedHeight) + 1;
    return {
      stop: async () => {},
      async check() {
        // A proposal re-stamped as the window closed is still on its way (signed, then sent):
        // each honest member is given a few seconds to refuse it before it is counted.
        if (restamped > 0) {
          await until('every honest member to refuse a re-stamped proposal', async () => (await refused()).every((x, k) => x > refused0[k]!), 5_000).catch(() => undefined);
        }
        const [refused1, anomalies1] = [await refused(), await anomalies()];
        // Every block committed meanwhile: after its parent, and not ahead of the clock.
        const c = fed.clients[0]!;
        const r = await callPatiently(c.listBlocks.bind(c), { fromHeight: from - 1, limit: 100, headersOnly: true }, { deadlineMs: 15_000, patienceMs: 60_000 });
        const stamps = r.blocks.map((b) => b.block!.header!.timestampMs);
        const now = Date.now();
        note(`${restamped} proposals of m3 re-stamped (ten years ahead, an hour behind); refused as bad_block_time ${deltas(refused0, refused1)}; block-time anomalies counted ${deltas(anomalies0, anomalies1)}; ${stamps.length} blocks committed from height ${from - 1}`);
        check(restamped > 0, 'm3 never led a view');
        check(refused1.every((x, k) => x > refused0[k]!), 'an honest member did not refuse a proposal stamped beyond its clock');
        check(anomalies1.every((x, k) => x === anomalies0[k]), 'a committed block\'s time ran backwards or ahead of the clock on an honest member');
        for (let k = 1; k < stamps.length; k++) check(stamps[k]! > stamps[k - 1]!, `block time runs backwards at height ${from - 1 + k}: ${stamps[k]} after ${stamps[k - 1]}`);
        check(stamps.every((t) => t <= now + 2000), 'a committed block is stamped ahead of the clock');
      },
    };
  },
};

export const USELESS_SCENARIOS: Scenario[] = [staleReplay, futureProposals, newViewChurn, badBlockTime];
