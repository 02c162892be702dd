// Attacks by an application: streams it never reads, a hammered read API, submissions at its
// highest rate — each with a client certificate of its own, as a real application holds (issued
// from m0's CA as `btcfed cert issue --client` does), from a process of its own in the attacker's
// CPU budget (client-attack.ts: a raw grpc-js client). The limits are m0's defaults
// (services.consensus.limits), except in submit-flood: the default submit quota lets one client
// offer more than the federation commits (so that the federation bench's one client per member is
// never throttled), so there m0's operator first gives applications a quota in conf.yaml, reloaded
// live. Every refusal must be RESOURCE_EXHAUSTED naming its limit, with the FedError code in the
// trailer, and be counted in btcfed_consensus_api_refused_total{method,limit}.

import fs from 'node:fs/promises';
import path from 'node:path';
import { fork } from 'node:child_process';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { parseDocument } from 'yaml';
import { txHash } from '#libs/crypto/index.ts';
import { call } from '#libs/rpc/index.ts';
import { issueRoleCertificate } from '#libs/rpc/certs.ts';
import { appCertificateName } from '#libs/service/index.ts';
import { TxStatus } from '#libs/gen/btcfed/v1/consensus.pb.ts';
import { HONEST, sleep, until, type Federation } from './federation.ts';
import { cpuSeconds } from './measure.ts';
import { check, type Context, type Scenario } from './scenario.ts';
import { limitOf, type AttackOrder, type AttackReport } from './client-attack.ts';

const VICTIM = 0;
const STREAMS = Number(process.env.BYZ_STREAMS ?? 800);

/** Starts the attacking application `app` of m0 (its own certificate, its own process, in the attacker's budget). */
async function launch({ fed, box }: Context, app: string, order: AttackOrder): Promise<{ stop(): Promise<AttackReport> }> {
  const caDir = path.join(fed.dir, 'ca', `m${VICTIM}`);
  const ca = { cert: await fs.readFile(path.join(caDir, 'ca.pem'), 'utf8'), key: await fs.readFile(path.join(caDir, 'ca-key.pem'), 'utf8') };
  const leaf = await issueRoleCertificate(ca, 'client', { commonName: appCertificateName(`m${VICTIM}`, app) });
  const child = fork(path.join(import.meta.dirname, 'client-attack.ts'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const kill = () => child.kill('SIGKILL');
  process.once('exit', kill);
  await box.add(child.pid!);
  const started = once(child, 'message');
  child.send({ address: `127.0.0.1:${fed.ports(VICTIM).consensus}`, ca: ca.cert, cert: leaf.cert, key: leaf.key, order });
  await started;
  return {
    async stop() {
      const report = once(child, 'message');
      const exited = once(child, 'exit');
      child.send('stop');
      const [r] = await Promise.race([report, sleep(30_000).then(() => { throw new Error(`the attacking application ${app} did not report within 30 s`); })]) as [AttackReport];
      await Promise.race([exited, sleep(5000)]);
      kill();
      process.off('exit', kill);
      await box.release(child.pid!);
      return r;
    },
  };
}

/** m0's consensus CPU from now until the returned function is called, in cores. */
function victimCpu(fed: Federation): () => Promise<string> {
  const pid = fed.proc(VICTIM, 'consensus').child.pid!;
  const t0 = Date.now();
  const c0 = cpuSeconds(pid);
  return async () => `m0's consensus ${((await cpuSeconds(pid) - await c0) / ((Date.now() - t0) / 1000)).toFixed(2)} cores`;
}

/** btcfed_consensus_api_refused_total on m0 summed over the methods and limits the two regexes match. */
const refusedOn = (fed: Federation, method: string, limit: string) =>
  fed.metric(VICTIM, 'consensus', 'btcfed_consensus_api_refused_total', new RegExp(`(?=.*method="(${method})")(?=.*limit="(${limit})")`));

const sum = (o: Record<string, number>): number => Object.values(o).reduce((a, b) => a + b, 0);
const byLimit = (o: Record<string, number>): string => Object.entries(o).map(([k, v]) => `${v} ${k}`).join(', ') || 'none';

const streamsNeverRead: Scenario = {
  // Not in the CI set: services/consensus/api-limits.test.ts shows the same limits on real gRPC.
  name: 'streams-never-read', ci: false,
  // Opening the 800 streams takes some 11 s here and a stall is cancelled after 15 s (stream_stall).
  duringMs: 20_000,
  async start(ctx) {
    const { fed, note } = ctx;
    const [refused0, stalled0] = [await refusedOn(fed, 'StreamCommits', 'streams_per_client'), await refusedOn(fed, 'StreamCommits', 'stream_stall')];
    const cpu = victimCpu(fed);
    const app = await launch(ctx, 'streams', { kind: 'streams', streams: STREAMS });
    let report: AttackReport | undefined;
    let cpuLine = '';
    return {
      stop: async () => { cpuLine = await cpu(); report = await app.stop(); },
      async check() {
        const ends = report!.ends;
        const refused = ends.filter((e) => limitOf(e) === 'streams_per_client');
        // A stalled stream is reset (RST_STREAM ENHANCE_YOUR_CALM): RESOURCE_EXHAUSTED without a trailer of ours.
        const stalled = ends.filter((e) => e.code === grpc.status.RESOURCE_EXHAUSTED && limitOf(e) === undefined);
        const other = ends.filter((e) => e.code !== grpc.status.RESOURCE_EXHAUSTED);
        const accepted = STREAMS - refused.length;
        const [refused1, stalled1] = [await refusedOn(fed, 'StreamCommits', 'streams_per_client'), await refusedOn(fed, 'StreamCommits', 'stream_stall')];
        const open = await until('m0\'s open-streams gauge back to 0', async () => ((await fed.metric(VICTIM, 'consensus', 'btcfed_consensus_api_open_streams')) === 0 ? true : undefined), 10_000).catch(() => false);
        note(`${STREAMS} StreamCommits from height 1, never read: ${refused.length} refused naming streams_per_client (first: "${refused[0]?.details}", the last ${(Math.max(...refused.map((e) => e.ms)) / 1000).toFixed(1)} s in), `
          + `${accepted} accepted, ${stalled.length} of them cancelled as stalled (RESOURCE_EXHAUSTED after ${stalled.map((e) => (e.ms / 1000).toFixed(1)).join('/')} s), ${other.length} other ends; `
          + `m0 counted ${refused1 - refused0} refusals and ${stalled1 - stalled0} stalls; ${cpuLine} during the attack`);
        check(refused.length > 0 && accepted > 0 && accepted <= 16, `${accepted} of ${STREAMS} streams of one client were accepted (streams_per_client is 16)`);
        check(refused.every((e) => e.errorCode === 'API_STREAM_LIMIT'), 'a refusal without the FedError code API_STREAM_LIMIT in its trailer');
        check(stalled.length === accepted, `${stalled.length} of the ${accepted} accepted streams were cancelled as stalled within the attack`);
        check(other.length === 0, `streams ended otherwise: ${other.slice(0, 3).map((e) => `${grpc.status[e.code]} ${e.details}`).join('; ')}`);
        check(refused1 - refused0 === refused.length, `m0 counted ${refused1 - refused0} streams_per_client refusals, the client saw ${refused.length}`);
        check(stalled1 - stalled0 === accepted, `m0 counted ${stalled1 - stalled0} stalled streams, ${accepted} were accepted`);
        check(open === true, 'm0 still counts open streams after every stream ended');
      },
    };
  },
};

const readHammer: Scenario = {
  name: 'read-hammer', ci: false,
  async start(ctx) {
    const { fed, note } = ctx;
    const readLimit = 'read_per_client|read_total|read_cpu_per_client|read_cpu_total|reads_in_flight_per_client|reads_in_flight_total';
    const counted = () => refusedOn(fed, 'Get(Block|Transaction)|ListBlocks', readLimit);
    const refused0 = await counted();
    const top = Number((await fed.status(VICTIM)).committedHeight);
    const cpu = victimCpu(fed);
    const app = await launch(ctx, 'reader', { kind: 'hammer', connections: 3, loops: 8, top });
    let report: AttackReport | undefined;
    let cpuLine = '';
    return {
      stop: async () => { cpuLine = await cpu(); report = await app.stop(); },
      async check() {
        const r = report!;
        const refused1 = await counted();
        const refused = sum(r.refusedBy);
        note(`3 connections × 8 loops of GetBlock / ListBlocks(100) / GetTransaction(proof) for ${r.seconds.toFixed(0)} s: ${r.ok} answered (${(r.ok / r.seconds).toFixed(0)}/s, `
          + `${(r.blocks / r.seconds).toFixed(0)} blocks/s), ${refused} refused (${(refused / r.seconds).toFixed(0)}/s: ${byLimit(r.refusedBy)}), ${r.deadlines} past the attacker's own 10 s deadline, `
          + `${r.other} other errors; m0 counted ${refused1 - refused0}; ${cpuLine} during the attack; first refusal: "${r.firstRefusal}"`);
        check(refused > 0, 'the hammer was never refused');
        check(refused1 - refused0 === refused, `m0 counted ${refused1 - refused0} read refusals, the client saw ${refused}`);
        check(r.other === 0, `${r.other} calls failed otherwise than by the read limits: ${r.otherError.slice(0, 200)}`);
      },
    };
  },
};

/** The quota m0's operator gives each application in submit-flood (services.consensus.limits.submit_per_client). */
const APP_QUOTA = { rate: Number(process.env.BYZ_SUBMIT_QUOTA ?? 500), burst: 2000 };

/** Rewrites m0's conf.yaml (atomically) and waits for its consensus to log the reload; returns the text before. */
async function reconfigure(fed: Federation, edit: (text: string) => string): Promise<string> {
  const file = path.join(fed.memberDir(VICTIM), 'conf.yaml');
  const log = path.join(fed.memberDir(VICTIM), 'logs', 'consensus.log');
  const before = await fs.readFile(file, 'utf8');
  const reloads = async () => ((await fs.readFile(log, 'utf8')).match(/api limits reloaded/g) ?? []).length;
  const n0 = await reloads();
  await fs.writeFile(`${file}.tmp`, edit(before));
  await fs.rename(`${file}.tmp`, file);
  await until('m0\'s consensus to reload its API limits', async () => ((await reloads()) > n0 ? true : undefined), 20_000);
  return before;
}

const submitFlood: Scenario = {
  name: 'submit-flood', ci: false,
  async start(ctx) {
    const { fed, note } = ctx;
    const original = await reconfigure(fed, (text) => {
      const doc = parseDocument(text);
      doc.setIn(['services', 'consensus', 'limits', 'submit_per_client'], APP_QUOTA);
      return doc.toString();
    });
    note(`m0's operator set services.consensus.limits.submit_per_client to ${APP_QUOTA.rate} tx/s, bursts of ${APP_QUOTA.burst} (reloaded live)`);
    const refused0 = await refusedOn(fed, 'SubmitTransactions', 'submit_per_client');
    const cpu = victimCpu(fed);
    // Batches within the quota's burst, so the flood gets in whenever its bucket allows.
    const app = await launch(ctx, 'flood', { kind: 'flood', connections: 2, loops: 2, batch: 1000, txBytes: 64 });
    // An honest application (m0's own client certificate) submits during the flood.
    const ours = Array.from({ length: 30 }, (_, k) => new TextEncoder().encode(`honest-${k}-${randomBytes(4).toString('hex')}`));
    const honest = (async () => {
      await sleep(5000);
      const c = fed.clients[VICTIM]!;
      return Promise.all(ours.map((tx) => call(c.submitTransaction.bind(c), { tx }, { deadlineMs: 30_000 }).then(() => 'ok', (e: grpc.ServiceError) => `${grpc.status[e.code]} ${e.details}`)));
    })();
    let report: AttackReport | undefined;
    let cpuLine = '';
    return {
      stop: async () => {
        cpuLine = await cpu();
        try {
          report = await app.stop();
        } finally {
          await reconfigure(fed, () => original);
        }
      },
      async check() {
        const r = report!;
        const answers = await honest;
        const refused1 = await refusedOn(fed, 'SubmitTransactions', 'submit_per_client');
        const refused = r.refusedBy.submit_per_client ?? 0;
        note(`flood of SubmitTransactions of 1,000 × 64 B for ${r.seconds.toFixed(0)} s: ${r.accepted} transactions accepted (${(r.accepted / r.seconds).toFixed(0)}/s), ${r.refusedTxs} refused in answers, `
          + `${refused} calls refused (${byLimit(r.refusedBy)}; m0 counted ${refused1 - refused0}), ${r.other} other errors${r.otherError ? ` ("${r.otherError.slice(0, 120)}")` : ''}; `
          + `${cpuLine} during the attack; first refusal: "${r.firstRefusal}"`);
        check(refused > 0, 'the flood was never refused by its client limit');
        check(refused1 - refused0 === refused, `m0 counted ${refused1 - refused0} submit refusals, the client saw ${refused}`);
        check(r.other === 0, `${r.other} submissions failed otherwise: ${r.otherError.slice(0, 200)}`);
        const bad = answers.filter((a) => a !== 'ok');
        check(bad.length === 0, `the honest client's submissions were refused during the flood: ${bad.slice(0, 3).join('; ')}`);
        const t1 = Date.now();
        await until('the honest client\'s transactions committed on every honest member', async () => {
          for (const i of HONEST) {
            const c = fed.clients[i]!;
            for (const tx of ours) if ((await call(c.getTransaction.bind(c), { txHash: txHash(tx), withProof: false })).status !== TxStatus.TX_STATUS_COMMITTED) return undefined;
          }
          return true;
        }, 120_000);
        note(`the honest client's ${ours.length} transactions, submitted during the flood, committed on m0–m2 (${((Date.now() - t1) / 1000).toFixed(0)} s after the flood)`);
      },
    };
  },
};

export const CLIENT_SCENARIOS: Scenario[] = [streamsNeverRead, readHammer, submitFlood];
