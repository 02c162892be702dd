// Attacks on the batched data path (services/consensus/batches.ts): m3 takes transactions from
// clients of its own, as an honest member does, and sends their batches to some members only,
// answers asks for them with other bytes, or hands over batches of transactions already in the
// log. The honest members must fetch what they lack from someone honest, strike the server of a
// forged batch, lose at most the views whose batches nobody serves, commit nothing twice, and
// serve a member that keeps asking for batches no more than its byte budget.
// (A flood of batches is 'mempool-fill' in scenarios.ts.)

import { randomBytes } from 'node:crypto';
import { txHash } from '#libs/crypto/index.ts';
import { batchDigest } from '#libs/blocks/index.ts';
import { call } from '#libs/rpc/index.ts';
import { TxStatus } from '#libs/gen/btcfed/v1/consensus.pb.ts';
import { encodeFrame } from '#libs/wire/index.ts';
import { HONEST, sleep, until } from './federation.ts';
import type { ByzantineMember } from './member.ts';
import { background, check, deltas, perHonest, type Scenario } from './scenario.ts';

/** m3's own clients: `count` transactions every 200 ms into its pool and its batches, as an honest member takes them. */
function ownClients(byz: ByzantineMember, count: number): ReturnType<typeof background> {
  return background(async () => {
    await byz.paced();
    for (let k = 0; k < count; k++) {
      const tx = randomBytes(120);
      const r = byz.driver.pool.offer(tx, Date.now(), byz.driver.isCommitted);
      if (r.status === 'added') byz.inbound.gossip(tx, r.hash);
    }
    await sleep(200);
  });
}

const withheldThenForged: Scenario = {
  name: 'batch-withheld-then-forged', ci: true,
  async start({ fed, byz, note }) {
    const victim = 2;
    const struck = () => fed.metric(victim, 'consensus', 'btcfed_consensus_peer_offences_total', /peer="3",reason="batch_mismatch"/);
    const fetched = () => fed.metric(victim, 'consensus', 'btcfed_consensus_batch_fetch_events_total', /event="received"/);
    const [struck0, fetched0] = [await struck(), await fetched()];
    let withheld = 0;
    let forged = 0;
    byz.play({
      outbound(to, frame, bytes) {
        // m3's batches reach m0 and m1, never m2: every block with m3's transactions names a batch m2 lacks…
        if (frame.type === 'tx-batch' && (to === 'all' || to === victim)) {
          withheld++;
          return to === 'all' ? HONEST.filter((i) => i !== victim).map((i) => ({ to: i, bytes })) : [];
        }
        // …and when m2 asks m3 for it (as the proposer, or as the batch's author), m3 serves other bytes.
        if (frame.type === 'batch-response' && to === victim) {
          forged++;
          const batches = frame.batches.map((b) => b.map(() => randomBytes(120)));
          return [{ to, bytes: encodeFrame(byz.chainId, { ...frame, batches }) }];
        }
        return undefined;
      },
    });
    const clients = ownClients(byz, 200);
    return {
      stop: () => clients.stop(),
      async check() {
        const [struck1, fetched1] = [await struck(), await fetched()];
        note(`m3 withheld ${withheld} batches from m2 and answered ${forged} of its asks with forged bytes; m2 struck m3 ${struck1 - struck0} times for them and fetched ${fetched1 - fetched0} batches from honest members`);
        check(withheld > 0, 'm3 sent no batch to withhold');
        check(forged > 0, 'm2 never asked m3 for a batch it lacked');
        check(struck1 > struck0, 'm2 took forged batch bytes without striking m3 (btcfed_consensus_peer_offences_total{peer="3",reason="batch_mismatch"} unchanged)');
        check(fetched1 > fetched0, 'm2 never got a batch it lacked from an honest proposer (btcfed_consensus_batch_fetch_events_total{event="received"} unchanged)');
      },
    };
  },
};

const repeatsCommitted: Scenario = {
  name: 'batch-repeats-committed', ci: false,
  async start({ fed, byz, note }) {
    // Transactions of honest clients, committed first; then m3 hands them over again and again.
    const txs = Array.from({ length: 40 }, () => randomBytes(100));
    await Promise.all(txs.map((tx, k) => { const c = fed.clients[HONEST[k % 3]!]!; return call(c.submitTransaction.bind(c), { tx }); }));
    const heightOf = async (i: number, tx: Uint8Array) => {
      const c = fed.clients[i]!;
      const r = await call(c.getTransaction.bind(c), { txHash: txHash(tx), withProof: false });
      return r.status === TxStatus.TX_STATUS_COMMITTED ? Number(r.height) : undefined;
    };
    /** Each transaction's height on member i, one read at a time (a client has at most four in flight). */
    const heights = async (i: number) => {
      const out: (number | undefined)[] = [];
      for (const tx of txs) out.push(await heightOf(i, tx));
      return out;
    };
    const first = await until('the honest clients\' transactions committed', async () => {
      const hs = await heights(0);
      return hs.every((h) => h !== undefined) ? hs : undefined;
    }, 60_000);
    const notTaken = () => perHonest(fed, 'btcfed_consensus_peer_offences_total', /peer="3",reason="txs_not_taken"/);
    const before = await notTaken();
    let sent = 0;
    const attack = background(async () => {
      await byz.paced();
      byz.inject('all', { type: 'tx-batch', txs });
      sent++;
      await sleep(100);
    });
    return {
      stop: () => attack.stop(),
      async check() {
        const after = await notTaken();
        const again = [];
        for (const i of HONEST) again.push(await heights(i));
        note(`m3 handed over ${sent} batches of ${txs.length} committed transactions; refused as bringing nothing ${deltas(before, after)}`);
        check(sent > 0, 'nothing was sent');
        for (const [k, hs] of again.entries()) check(hs.every((h, j) => h === first[j]), `m${HONEST[k]} holds a repeated transaction at another height than where it was first committed`);
        check(after.every((x, k) => x > before[k]!), 'an honest member took a batch of committed transactions without counting it useless');
      },
    };
  },
};

const askFlood: Scenario = {
  name: 'batch-ask-flood', ci: false,
  async start({ fed, byz, note }) {
    // m3 sends its batches as an honest member does, keeps their digests, and asks every honest
    // member for all of them again and again: a few bytes asked, up to a frame served each time.
    const digests: Uint8Array[] = [];
    byz.play({
      outbound(_to, frame) {
        if (frame.type === 'tx-batch' && digests.length < 200) digests.push(batchDigest(frame.txs.map(txHash)));
        return undefined;
      },
    });
    const clients = ownClients(byz, 200);
    await sleep(3000);
    const refusedOf = () => perHonest(fed, 'btcfed_consensus_peer_offences_total', /peer="3",reason="batch_asked_again"/);
    const served = () => perHonest(fed, 'btcfed_consensus_batch_fetch_events_total', /event="served"/);
    const mutes = () => perHonest(fed, 'btcfed_consensus_peer_mutes_total', /peer="3"/);
    const [refused0, served0, mutes0] = [await refusedOf(), await served(), await mutes()];
    let asked = 0;
    let requestId = 1;
    const t0 = Date.now();
    const attack = background(async () => {
      await byz.paced();
      for (const i of HONEST) byz.inject(i, { type: 'batch-request', requestId: requestId++, digests: digests.slice(0, 200) });
      asked++;
      await sleep(10);
    });
    return {
      stop: async () => { await attack.stop(); await clients.stop(); },
      async check() {
        const [refused1, served1, mutes1] = [await refusedOf(), await served(), await mutes()];
        // Each batch is served to an asker once in SERVED_MEMORY_MS (30 s): at most that many
        // times each over the window, whatever the asks (and once more: honest members' own fetches).
        const most = digests.length * (Math.ceil((Date.now() - t0) / 30_000) + 1);
        note(`m3 asked each honest member ${asked} times for ${digests.length} of its own batches; served ${deltas(served0, served1)} batches (at most ${most} allowed), refused as asked again ${deltas(refused0, refused1)} times; m3 muted ${deltas(mutes0, mutes1)} times`);
        check(digests.length > 0, 'm3 sent no batch to ask for');
        check(served1.every((x, k) => x - served0[k]! <= most), `an honest member served m3 the same batches again and again (more than ${most})`);
        check(refused1.every((x, k) => x > refused0[k]!), 'an honest member served m3 again without counting it useless (btcfed_consensus_peer_offences_total{reason="batch_asked_again"} unchanged)');
        check(mutes1.every((x, k) => x > mutes0[k]!), 'an honest member never muted the member that kept asking for the same batches');
      },
    };
  },
};

export const BATCH_SCENARIOS: Scenario[] = [withheldThenForged, repeatsCommitted, askFlood];
