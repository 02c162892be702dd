// The attacking application of the client scenarios (clients.ts), as a process of its own: a real
// application would not share an event loop with m3, whose consensus runs in the test process, and
// the runner puts this process into the attacker's CPU budget. It takes its orders and its
// client certificate over IPC, attacks m0's public API with a raw grpc-js client until told to
// stop, then reports what it saw and exits.
//   { kind: 'streams', streams }       StreamCommits from height 1, each paused, never read
//   { kind: 'hammer', connections, loops, top }   GetBlock / ListBlocks(100) / GetTransaction(proof)
//   { kind: 'flood', connections, loops, batch, txBytes }   SubmitTransactions as fast as it can

import { randomBytes } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { call, errorCodeOf } from '#libs/rpc/index.ts';
import { ConsensusServiceClient } from '#libs/gen/btcfed/v1/consensus.pb.ts';

export type AttackOrder =
  | { kind: 'streams'; streams: number }
  | { kind: 'hammer'; connections: number; loops: number; top: number }
  | { kind: 'flood'; connections: number; loops: number; batch: number; txBytes: number };

export interface AttackSetup { address: string; ca: string; cert: string; key: string; order: AttackOrder }

/** One call's end as the attacker saw it. */
export interface Ended { code: number; details: string; errorCode: string | undefined; ms: number }

export interface AttackReport {
  seconds: number;
  /** streams: how each stream ended (before the attack stopped). */
  ends: Ended[];
  ok: number;
  blocks: number;
  accepted: number;
  refusedTxs: number;
  /** Refusals by the limit their message names (services.consensus.limits.<key>). */
  refusedBy: Record<string, number>;
  firstRefusal: string;
  deadlines: number;
  other: number;
  otherError: string;
}

/** The limit a RESOURCE_EXHAUSTED refusal names, with the FedError code in its trailer; undefined for anything else. */
export function limitOf(e: { code: number; details: string; errorCode?: string | undefined }): string | undefined {
  if (e.code !== grpc.status.RESOURCE_EXHAUSTED || e.errorCode === undefined) return undefined;
  return /\(services\.consensus\.limits\.(\w+)\)/.exec(e.details)?.[1];
}

async function attack(setup: AttackSetup, stopped: Promise<void>): Promise<AttackReport> {
  const creds = grpc.credentials.createSsl(Buffer.from(setup.ca), Buffer.from(setup.key), Buffer.from(setup.cert));
  const connect = () => new ConsensusServiceClient(setup.address, creds, { 'grpc.max_receive_message_length': 64 << 20, 'grpc.use_local_subchannel_pool': 1 });
  const r: AttackReport = { seconds: 0, ends: [], ok: 0, blocks: 0, accepted: 0, refusedTxs: 0, refusedBy: {}, firstRefusal: '', deadlines: 0, other: 0, otherError: '' };
  const t0 = Date.now();
  let on = true;
  void stopped.then(() => { on = false; });
  const failed = (err: unknown): void => {
    const e = err as grpc.ServiceError;
    const limit = limitOf({ code: e.code, details: e.details ?? '', errorCode: errorCodeOf(e) });
    if (limit) {
      r.refusedBy[limit] = (r.refusedBy[limit] ?? 0) + 1;
      r.firstRefusal ||= e.details;
    } else if (e.code === grpc.status.DEADLINE_EXCEEDED) {
      r.deadlines++; // its own deadline: on half a core it reads large answers slowly
    } else {
      r.other++;
      r.otherError ||= String(e.message);
    }
  };
  const o = setup.order;
  const clients: ConsensusServiceClient[] = [];
  if (o.kind === 'streams') {
    const c = connect();
    clients.push(c);
    const streams = Array.from({ length: o.streams }, () => {
      const s = c.streamCommits({ fromHeight: 1, headersOnly: false });
      s.on('error', (e: grpc.ServiceError) => { if (on) r.ends.push({ code: e.code, details: e.details, errorCode: errorCodeOf(e), ms: Date.now() - t0 }); });
      // Paused: grpc-js fills its 16-message buffer and then takes nothing more from HTTP/2.
      s.pause();
      s.read(0);
      return s;
    });
    await stopped;
    for (const s of streams) s.cancel();
  } else if (o.kind === 'hammer') {
    const loop = async (c: ConsensusServiceClient, k: number): Promise<void> => {
      for (let i = k; on; i++) {
        const from = 1 + Math.floor(Math.random() * Math.max(1, o.top - 100));
        try {
          if (i % 3 === 0) {
            await call(c.getBlock.bind(c), { by: { $case: 'height', value: from } }, { deadlineMs: 10_000 });
            r.blocks++;
          } else if (i % 3 === 1) {
            const page = await call(c.listBlocks.bind(c), { fromHeight: from, limit: 100, headersOnly: false }, { deadlineMs: 10_000 });
            r.blocks += page.blocks.length;
          } else {
            await call(c.getTransaction.bind(c), { txHash: randomBytes(32), withProof: true }, { deadlineMs: 10_000 });
          }
          r.ok++;
        } catch (err) { failed(err); }
      }
    };
    for (let k = 0; k < o.connections; k++) clients.push(connect());
    await Promise.all(clients.flatMap((c) => Array.from({ length: o.loops }, (_, k) => loop(c, k))));
  } else {
    const loop = async (c: ConsensusServiceClient): Promise<void> => {
      while (on) {
        const pool = randomBytes(o.batch * o.txBytes);
        const txs = Array.from({ length: o.batch }, (_, k) => pool.subarray(k * o.txBytes, (k + 1) * o.txBytes));
        try {
          const res = await call(c.submitTransactions.bind(c), { txs }, { deadlineMs: 30_000 });
          r.accepted += res.accepted;
          r.refusedTxs += txs.length - res.accepted;
          r.ok++;
        } catch (err) { failed(err); }
      }
    };
    for (let k = 0; k < o.connections; k++) clients.push(connect());
    await Promise.all(clients.flatMap((c) => Array.from({ length: o.loops }, () => loop(c))));
  }
  r.seconds = (Date.now() - t0) / 1000;
  await new Promise((resolve) => setTimeout(resolve, 300));
  for (const c of clients) c.close();
  return r;
}

if (process.send) {
  process.once('message', (setup: AttackSetup) => {
    let stop!: () => void;
    const stopped = new Promise<void>((resolve) => { stop = resolve; });
    process.once('message', () => stop());
    void attack(setup, stopped).then((report) => process.send!(report, () => process.exit(0)));
    process.send!('started');
  });
}
