// The workload: concurrent clients, each submitting unique transactions to one member
// (client c → member c mod N) through the public API, recording every transaction as
//   acked         — the member answered it accepted (no error code): it promised to commit it;
//   refused       — the member answered with an error code (MEMPOOL_FULL, …): not taken;
//   indeterminate — the call failed (deadline, connection lost, member down): it may or may not
//                   have been taken, so it may commit (once) or not at all.
// Transactions are ASCII, `tb/<run>/<client>/<seq>/` padded to a fixed size, so the checker can
// recognise them in the log.

import { randomBytes } from 'node:crypto';
import { call } from '#libs/rpc/index.ts';
import type { ConsensusServiceClient } from '#libs/gen/btcfed/v1/consensus.pb.ts';

export type Outcome = 'acked' | 'refused' | 'indeterminate';

export interface TxRecord {
  tx: string;
  member: number;
  outcome: Outcome;
  /** When the answer (or the failure) came, ms since the epoch. */
  at: number;
  /** The refusal code or the call's error. */
  why?: string;
}

export interface WorkloadOptions {
  clients: number;
  /** Transactions per SubmitTransactions call. */
  batch: number;
  /** Pause between one client's calls. */
  intervalMs: number;
  /** Bytes per transaction (at least 48). */
  txBytes?: number;
  /** Deadline of one call. */
  deadlineMs?: number;
  /** Stop submitting after this many transactions in all (a bound on memory). */
  maxTxs?: number;
}

export class Workload {
  readonly runId = randomBytes(4).toString('hex');
  readonly records: TxRecord[] = [];
  readonly #clients: readonly ConsensusServiceClient[];
  readonly #o: Required<WorkloadOptions>;
  #running = false;
  #loops: Promise<void>[] = [];
  #seq = 0;

  constructor(clients: readonly ConsensusServiceClient[], o: WorkloadOptions) {
    this.#clients = clients;
    this.#o = { txBytes: 64, deadlineMs: 5000, maxTxs: 2_000_000, ...o };
    if (this.#o.txBytes < 48) throw new Error('workload: txBytes must be at least 48');
  }

  #tx(client: number): string {
    const head = `tb/${this.runId}/${client}/${this.#seq++}/`;
    return head.padEnd(this.#o.txBytes, '.');
  }

  start(): void {
    this.#running = true;
    this.#loops = Array.from({ length: this.#o.clients }, (_, c) => this.#loop(c));
  }

  async #loop(c: number): Promise<void> {
    const member = c % this.#clients.length;
    const client = this.#clients[member]!;
    while (this.#running && this.records.length < this.#o.maxTxs) {
      const txs = Array.from({ length: this.#o.batch }, () => this.#tx(c));
      let ok = true;
      try {
        const r = await call(client.submitTransactions.bind(client), { txs: txs.map((t) => Buffer.from(t)) }, { deadlineMs: this.#o.deadlineMs });
        const at = Date.now();
        txs.forEach((tx, k) => {
          const res = r.results[k];
          if (!res) this.records.push({ tx, member, outcome: 'indeterminate', at, why: 'no result in the response' });
          else if (res.errorCode) this.records.push({ tx, member, outcome: 'refused', at, why: res.errorCode });
          else this.records.push({ tx, member, outcome: 'acked', at });
        });
      } catch (err) {
        ok = false;
        const at = Date.now();
        const why = (err as Error).message.slice(0, 200);
        for (const tx of txs) this.records.push({ tx, member, outcome: 'indeterminate', at, why });
      }
      // After a failure, back off a little: a down member is not hammered.
      await new Promise((r) => setTimeout(r, ok ? this.#o.intervalMs : Math.max(500, this.#o.intervalMs)));
    }
  }

  async stop(): Promise<void> {
    this.#running = false;
    await Promise.all(this.#loops);
  }

  count(outcome: Outcome): number {
    return this.records.filter((r) => r.outcome === outcome).length;
  }

  /** True for the transactions of this run (those the checker accounts for). */
  owns(tx: string): boolean {
    return tx.startsWith(`tb/${this.runId}/`);
  }
}
