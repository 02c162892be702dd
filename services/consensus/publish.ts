// What the consensus service tells the world over NATS: block.committed into the BTCFED_BLOCKS
// JetStream stream (deduplicated by member and height, so a retry never doubles a block), and
// view.changed, security.equivocation, security.invalid_signature as plain events. Publishing
// never blocks consensus: a NATS outage delays events, it does not stop commits. Committed
// blocks that fail to reach JetStream are retried in height order.

import type { Logger } from 'pino';
import { jetstream, jetstreamManager, type JetStreamClient } from '@nats-io/jetstream';
import { txHashesOf } from './tx-hashes.ts';
import { errorMessage } from '#libs/errors/index.ts';
import { blocksStreamSpec, connectEvents, ensureStream, publishDurable, subject, BLOCK_COMMITTED_EVENT, type Events, type EventsConnection } from '#libs/events/index.ts';
import { BlockCommitted, EquivocationEvidence, InvalidSignature, ViewChanged } from '#libs/gen/btcfed/v1/events.pb.ts';
import type { Metrics } from '#libs/metrics/index.ts';
import type { Block, QuorumCert } from '#libs/hotstuff/index.ts';
import type { Evidence } from '#libs/gen/btcfed/v1/consensus.pb.ts';
import { headerToWire, qcToWire } from '#libs/wire/index.ts';

const MAX_BACKLOG = 10_000;

export class ConsensusPublisher {
  readonly #member: string;
  readonly #conn: EventsConnection;
  readonly #events: Events;
  readonly #js: JetStreamClient;
  readonly #log: Logger;
  #backlog: Array<{ height: number; bytes: Uint8Array }> = [];
  #flushing = false;

  private constructor(member: string, conn: EventsConnection, js: JetStreamClient, log: Logger) {
    this.#member = member;
    this.#conn = conn;
    this.#events = conn.events(member, 'consensus');
    this.#js = js;
    this.#log = log;
  }

  static async connect(opts: { url: string; member: string; log: Logger; metrics?: Metrics }): Promise<ConsensusPublisher> {
    const conn = await connectEvents({ url: opts.url, name: `btcfed-consensus-${opts.member}`, log: opts.log, ...(opts.metrics ? { metrics: opts.metrics } : {}) });
    await ensureStream(await jetstreamManager(conn.nc), blocksStreamSpec());
    return new ConsensusPublisher(opts.member, conn, jetstream(conn.nc), opts.log);
  }

  committed(blocks: readonly Block[], qc: QuorumCert): void {
    const now = Date.now();
    for (const b of blocks) {
      const last = b === blocks.at(-1);
      const bytes = BlockCommitted.encode({
        member: this.#member, height: b.header.height, blockHash: b.hash, header: headerToWire(b.header),
        txCount: b.txs.length, txHashes: txHashesOf(b), commitQc: last ? qcToWire(qc) : undefined, atMs: now,
      }).finish();
      if (this.#backlog.length >= MAX_BACKLOG) {
        this.#log.error({ height: b.header.height }, 'JetStream backlog full: block.committed dropped (the block is in the store; replay from GetBlock)');
        continue;
      }
      this.#backlog.push({ height: b.header.height, bytes });
    }
    void this.#flush();
  }

  async #flush(): Promise<void> {
    if (this.#flushing) return;
    this.#flushing = true;
    const to = subject(this.#member, 'consensus', BLOCK_COMMITTED_EVENT);
    try {
      while (this.#backlog.length > 0) {
        const next = this.#backlog[0]!;
        try {
          await publishDurable(this.#js, to, next.bytes, { msgId: `${this.#member}:${next.height}` });
          this.#backlog.shift();
        } catch (err) {
          this.#log.warn({ height: next.height, err: errorMessage(err), backlog: this.#backlog.length }, 'block.committed not stored in JetStream yet; retrying');
          await new Promise((r) => setTimeout(r, 1000));
        }
      }
    } finally {
      this.#flushing = false;
    }
  }

  viewChanged(view: number, leader: number, reason: string): void {
    this.#safe(() => this.#events.publish('view.changed', ViewChanged, { member: this.#member, view, leader, reason, atMs: Date.now() }));
  }

  equivocation(e: Evidence): void {
    this.#safe(() => this.#events.publish('security.equivocation', EquivocationEvidence, {
      member: this.#member, offender: e.offender, view: e.view, phase: 0, first: e.first, second: e.second, atMs: e.seenAtMs,
    }));
  }

  invalidSignature(peerId: string, claimedSender: number, messageType: string, view: number): void {
    this.#safe(() => this.#events.publish('security.invalid_signature', InvalidSignature, {
      member: this.#member, peerId, claimedSender, messageType, view, atMs: Date.now(),
    }));
  }

  #safe(fn: () => void): void {
    try { fn(); } catch (err) { this.#log.warn({ err: errorMessage(err) }, 'event not published'); }
  }

  async close(): Promise<void> {
    await this.#conn.drain();
  }
}
