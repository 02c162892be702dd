// What the consensus service tells the world over NATS: block.committed into the BTCFED_BLOCKS
// JetStream stream (deduplicated by member and height, so a retry never doubles a block), and
// view.changed, security.equivocation, security.invalid_signature as plain events. Publishing
// never blocks consensus: a NATS outage delays events, it does not stop commits.
//
// No gap, no duplicate, also across crashes: nothing waits in memory. The block store is the
// backlog and the stream is the high-water mark — at start the last block.committed of this
// member in the stream says where publishing stopped, and blocks are read back from the store
// and published in height order from there. A crash between a publish and anything else only
// repeats a publish that JetStream de-duplicates by its message id (<member>:<height>:<hash prefix>).
// A "duplicate" answer is checked against the stream before it counts (nats-server 2.9 can give
// one for a message it lost in a leader change); if the stream does not hold it, the block goes
// out again under a fresh id. No other ack is trusted alone either: each block.committed expects
// the sequence number the stream gave the one before (Nats-Expected-Last-Subject-Sequence), so a
// block acked and then lost in a leader change makes the next one refused, and publishing rewinds
// to the last block the stream really holds (#resync).

import type { Logger } from 'pino';
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import { txHashesOf } from './tx-hashes.ts';
import { bytesEqual, toHex } from '#libs/crypto/index.ts';
import { errorMessage, isFedError } from '#libs/errors/index.ts';
import { ackHolds, blocksStreamSpec, BLOCKS_STREAM, connectEvents, ensureStream, publishDurable, subject, BLOCK_COMMITTED_EVENT, type Events, type EventsConnection , type NatsConnectOptions } from '#libs/events/index.ts';
import { BlockCommitted, EquivocationEvidence, InvalidSignature, ViewChanged } from '#libs/gen/btcfed/v1/events.pb.ts';
import type { Metrics } from '#libs/metrics/index.ts';
import { Phase, type Block, type QuorumCert } from '#libs/hotstuff/index.ts';
import type { Evidence } from '#libs/gen/btcfed/v1/consensus.pb.ts';

/** An evidence item's kind as the event's phase (two proposals have none). */
const PHASE_OF_KIND: Readonly<Record<string, Phase>> = { prepare: Phase.PREPARE, 'pre-commit': Phase.PRE_COMMIT, commit: Phase.COMMIT };
import { headerToWire, qcToWire } from '#libs/wire/index.ts';

/** An epoch's validator set as far as naming goes (a ValidatorSet is one). */
export interface NamedSet {
  has(index: number): boolean;
  byIndex(index: number): { readonly name: string };
}

/** The member name validator `index` has in `set`, or '' where the set is not known or has no such index. */
function nameIn(set: NamedSet | undefined, index: number): string {
  return set?.has(index) ? set.byIndex(index).name : '';
}

/** Where committed blocks are read back from (the block store). */
export interface CommittedSource {
  committedHeight(): number;
  blockAtHeight(height: number): Block | undefined;
  qcFor(hash: Uint8Array): QuorumCert | undefined;
  /** The highest height last seen stored in the stream, kept beside the blocks (absent: only the stream says). */
  publishedMark?(): number;
  setPublishedMark?(height: number): void;
  /** Heights 1..prunedTo() have no block to read (a store that joined from a checkpoint; retention never prunes past the mark). */
  prunedTo?(): number;
}

/** A block.committed of ours where the stream said it stored it. */
interface AckedBlock { height: number; seq: number; msgId: string }

/** BTCFED_BLOCKS's retention (conf consensus.blocks_stream_max_age / _max_bytes; 0: no limit). */
export interface BlocksRetention { maxAgeMs: number; maxBytes: number }

/** Committed blocks kept in memory for publishing (a few seconds of blocks; more are read from the store). */
export const RECENT_BLOCKS = 64;

/** How long a JetStream stream-management request (create, update, read the last event) may take. */
const STREAM_ADMIN_TIMEOUT_MS = 60_000;

export class ConsensusPublisher {
  readonly #member: string;
  readonly #conn: EventsConnection;
  readonly #events: Events;
  readonly #js: JetStreamClient;
  readonly #log: Logger;
  readonly #source: CommittedSource;
  /** The highest height of this member known to be in the stream. */
  #published: number;
  #flushing = false;
  #closed = false;
  /** A height whose msgId the stream claimed but did not hold, re-published under `:r<count>`. */
  #reissue = { height: 0, count: 0 };
  /** The sequence number of the stream's last message on this member's subject, as acks said (0: none; undefined: to be read): every publish expects it. */
  #lastSeq: number | undefined;
  /** The last block of ours the stream acknowledged or was read holding: what a refusal checks first. */
  #lastOurs: AckedBlock | undefined;
  /** Publishes refused because the stream's last message was not the one expected, in a row (for the back-off). */
  #refusals = 0;
  readonly #republished: ((reason: 'unheld_duplicate_ack' | 'chain_broken', blocks?: number) => void) | undefined;
  /**
   * Blocks just committed, by height, handed over by the driver (the last with the QC that
   * decided it): published from memory, where their transaction ids are already computed, instead
   * of read back and decoded from the store and every transaction hashed again. Bounded: when
   * the stream is down the oldest are dropped and read from the store once it is back.
   */
  readonly #recent = new Map<number, { block: Block; qc: QuorumCert | undefined }>();
  readonly #jsm: JetStreamManager;

  private constructor(member: string, conn: EventsConnection, js: JetStreamClient, jsm: JetStreamManager, log: Logger, source: CommittedSource,
    start: { published: number; lastSeq: number | undefined; lastOurs: AckedBlock | undefined }, metrics: Metrics | undefined) {
    this.#jsm = jsm;
    this.#lastSeq = start.lastSeq;
    this.#lastOurs = start.lastOurs;
    const republished = metrics?.counter('consensus_stream_republished_total',
      'block.committed published again because the stream did not hold what it had acknowledged, by how that was found', ['reason']);
    republished?.inc({ reason: 'unheld_duplicate_ack' }, 0);
    republished?.inc({ reason: 'chain_broken' }, 0);
    this.#republished = republished ? (reason, blocks = 1) => republished.inc({ reason }, blocks) : undefined;
    this.#member = member;
    this.#conn = conn;
    this.#events = conn.events(member, 'consensus');
    this.#js = js;
    this.#log = log;
    this.#source = source;
    this.#published = start.published;
  }

  static async connect(opts: { url: string; member: string; log: Logger; source: CommittedSource; metrics?: Metrics; auth?: NatsConnectOptions; retention?: BlocksRetention }): Promise<ConsensusPublisher> {
    const conn = await connectEvents({ url: opts.url, name: `btcfed-consensus-${opts.member}`, log: opts.log, ...(opts.metrics ? { metrics: opts.metrics } : {}), ...(opts.auth ? { auth: opts.auth } : {}) });
    try {
      return await ConsensusPublisher.#open(conn, opts);
    } catch (err) {
      // A start that fails here (the stream refused, JetStream not answering) must not leave the
      // connection open behind it: it would keep the process alive, reconnecting for ever.
      await conn.drain().catch(() => undefined);
      throw err;
    }
  }

  static async #open(conn: EventsConnection, opts: Parameters<typeof ConsensusPublisher.connect>[0]): Promise<ConsensusPublisher> {
    // Stream management may take longer than a JetStream request's default 5 s: lowering the
    // retention of a large stream (consensus.blocks_stream_max_bytes, _max_age) makes the server
    // delete what is over the limit within the update (1.1 s for 170 MB on an idle machine).
    const jsm = await jetstreamManager(conn.nc, { timeout: STREAM_ADMIN_TIMEOUT_MS });
    const r = opts.retention;
    const spec = blocksStreamSpec(r ? { ...(r.maxAgeMs > 0 ? { maxAgeMs: r.maxAgeMs } : {}), ...(r.maxBytes > 0 ? { maxBytes: r.maxBytes } : {}) } : {});
    await ensureStream(jsm, spec);
    // A read that fails is taken as no message (as before the chain): the first publish learns the sequence to expect.
    let readFailed = false;
    const last = await jsm.streams.getMessage(spec.name, { last_by_subj: subject(opts.member, 'consensus', BLOCK_COMMITTED_EVENT) })
      .catch((err: unknown) => { readFailed = true; opts.log.warn({ err: errorMessage(err) }, 'cannot read the stream\'s last block.committed of this member at start'); return null; });
    const decoded = last ? ConsensusPublisher.#decodeLast(last.data, opts.log) : undefined;
    let published = decoded ? ConsensusPublisher.#mark(decoded, opts.source, opts.log) : 0;
    const lastOurs = last && published > 0 ? { height: published, seq: last.seq, msgId: last.header?.get('Nats-Msg-Id') ?? '' } : undefined;
    // The stream's retention may have dropped every block of ours (a long idle or downtime, or
    // others' blocks filling max_bytes): without the mark kept beside the blocks, the whole chain
    // would be published again from height 1 — and push out everything newer.
    const kept = Math.min(opts.source.publishedMark?.() ?? 0, opts.source.committedHeight());
    if (kept > published) {
      opts.log.info({ streamHeight: published, kept }, 'the stream holds none of this member\'s latest blocks (retention): publishing from the height recorded as published');
      published = kept;
    }
    const p = new ConsensusPublisher(opts.member, conn, jetstream(conn.nc), jsm, opts.log, opts.source,
      { published, lastSeq: readFailed ? undefined : last?.seq ?? 0, lastOurs }, opts.metrics);
    if (published < opts.source.committedHeight()) {
      opts.log.info({ published, committed: opts.source.committedHeight() }, 'publishing committed blocks the stream does not have yet');
    }
    void p.#flush();
    return p;
  }

  /** The highest height of this member known to be in the stream. */
  get published(): number { return this.#published; }

  /** BTCFED_BLOCKS's size and byte limit (-1: none), for the metrics; undefined when NATS does not answer. */
  async streamSize(): Promise<{ bytes: number; maxBytes: number } | undefined> {
    try {
      const info = await this.#jsm.streams.info(blocksStreamSpec().name);
      return { bytes: info.state.bytes, maxBytes: info.config.max_bytes };
    } catch {
      return undefined;
    }
  }

  /**
   * The stream's last block.committed under this member's name, decoded; undefined (and said) when it
   * is not one — anyone who may publish on NATS can put bytes there, and a start must not fail on them.
   */
  static #decodeLast(data: Uint8Array, log: Logger): BlockCommitted | undefined {
    try {
      return BlockCommitted.decode(data);
    } catch (err) {
      log.warn({ err: errorMessage(err), bytes: data.length }, 'the stream\'s last block.committed under this member name does not decode: taken as none');
      return undefined;
    }
  }

  /** The stream's last block of this member counts only if it is this chain's block at that height. */
  static #mark(last: BlockCommitted, source: CommittedSource, log: Logger): number {
    if (ConsensusPublisher.#ours(last, source)) return last.height;
    log.warn({ streamHeight: last.height, committed: source.committedHeight() },
      'the stream\'s last block.committed under this member name is not a block of this chain: publishing from height 1');
    return 0;
  }

  static #ours(m: BlockCommitted, source: CommittedSource): boolean {
    const block = source.blockAtHeight(m.height);
    return block !== undefined && Buffer.from(block.hash).equals(Buffer.from(m.blockHash));
  }

  /**
   * The stream refused a block.committed: its last message on this member's subject is not the
   * one the last ack named. Find where the stream really is and go on from there.
   * - That message is this chain's block at height H: publish from H + 1. Below what was
   *   acknowledged, this is a rewind: blocks after H were acked and then lost (a stream leader
   *   replaced while it answered).
   * - It is not a block of ours (a stranger's bytes under our name, or nothing: retention dropped
   *   ours): the last block acked here is read back by its sequence number. Held, or below the
   *   stream's first sequence (retention took it): go on after that message. Not held: it was lost,
   *   and goes out again.
   */
  async #resync(to: string): Promise<void> {
    const last = await this.#jsm.streams.getMessage(BLOCKS_STREAM, { last_by_subj: to });
    const seq = last?.seq ?? 0;
    const decoded = last ? ConsensusPublisher.#decodeLast(last.data, this.#log) : undefined;
    if (last && decoded && ConsensusPublisher.#ours(decoded, this.#source)) {
      const height = decoded.height;
      if (height < this.#published) {
        this.#log.warn({ acked: this.#published, streamHeight: height, seq },
          'the stream does not hold block.committed it acknowledged: publishing again from the height after its last');
        this.#republished?.('chain_broken', this.#published - height);
      }
      this.#published = height;
      this.#source.setPublishedMark?.(height);
      this.#lastOurs = { height, seq, msgId: last.header?.get('Nats-Msg-Id') ?? '' };
    } else {
      const mine = this.#lastOurs;
      let lost = false;
      if (mine && mine.height === this.#published) {
        const holds = await ackHolds(this.#jsm, { stream: BLOCKS_STREAM, seq: mine.seq, duplicate: false }, to, mine.msgId);
        if (holds === undefined) throw new Error(`cannot read stream seq ${mine.seq} to check the last block.committed acknowledged`);
        lost = !holds && mine.seq >= (await this.#jsm.streams.info(BLOCKS_STREAM)).state.first_seq;
      }
      if (mine && lost) {
        this.#log.warn({ height: mine.height, seq: mine.seq, last: seq },
          'the stream does not hold the last block.committed it acknowledged, and its last message under this member name is not ours: publishing that block again');
        this.#published = mine.height - 1;
        this.#source.setPublishedMark?.(this.#published);
        this.#lastOurs = undefined;
        this.#republished?.('chain_broken');
      } else {
        this.#log.warn({ seq, published: this.#published },
          'the stream\'s last message under this member name is not a block of this chain: publishing after it');
      }
    }
    this.#lastSeq = seq;
  }

  /**
   * New blocks are in the store: publish what the stream lacks, in height order. `blocks` (parents
   * first) and the `qc` that decided the last of them spare reading them back.
   */
  committed(blocks: readonly Block[] = [], qc?: QuorumCert): void {
    blocks.forEach((block, i) => {
      if (block.header.height <= this.#published) return;
      this.#recent.set(block.header.height, { block, qc: i === blocks.length - 1 ? qc : undefined });
    });
    for (const h of this.#recent.keys()) {
      if (this.#recent.size <= RECENT_BLOCKS) break;
      this.#recent.delete(h);
    }
    void this.#flush();
  }

  /** How many handed-over blocks are waiting to be published (for tests and metrics). */
  get recentBlocks(): number { return this.#recent.size; }

  #encode(b: Block, decidedBy?: QuorumCert): Uint8Array {
    // The QC handed over certifies the last block committed, except at an epoch's end with a
    // suffix: there it certifies the suffix's top, above this block (the epoch's last). That QC is
    // left out rather than the suffix headers added: without them no consumer can link it to this
    // block, the proof is served whole by GetEpochs (what btcfed verify walks), and the block read
    // back from the store — whose QC is kept under the block it certifies — goes out the same.
    const qc = decidedBy && bytesEqual(decidedBy.blockHash, b.hash) ? decidedBy : this.#source.qcFor(b.hash);
    const decided = qc?.phase === Phase.COMMIT && bytesEqual(qc.blockHash, b.hash);
    return BlockCommitted.encode({
      member: this.#member, height: b.header.height, blockHash: b.hash, header: headerToWire(b.header),
      txCount: b.txs.length, txHashes: txHashesOf(b), commitQc: decided ? qcToWire(qc) : undefined, atMs: Date.now(),
    }).finish();
  }

  async #flush(): Promise<void> {
    if (this.#flushing) return;
    this.#flushing = true;
    const to = subject(this.#member, 'consensus', BLOCK_COMMITTED_EVENT);
    try {
      while (!this.#closed && this.#published < this.#source.committedHeight()) {
        const height = this.#published + 1;
        const handed = this.#recent.get(height);
        const block = handed?.block ?? this.#source.blockAtHeight(height);
        const pruned = this.#source.prunedTo?.() ?? 0;
        if (!block && height <= pruned) {
          // Never stored here whole (the member joined from a checkpoint above it): nothing to publish.
          this.#log.info({ from: height, to: pruned }, 'committed heights this member holds no block of (joined from a checkpoint): not published');
          this.#published = pruned;
          this.#source.setPublishedMark?.(pruned);
          continue;
        }
        if (!block) {
          this.#log.error({ height }, 'committed block missing from the store: block.committed not published');
          return;
        }
        try {
          if (this.#lastSeq === undefined) {
            // Not read at start: the stream's last message on our subject is what the first publish expects.
            this.#lastSeq = (await this.#jsm.streams.getMessage(BLOCKS_STREAM, { last_by_subj: to }))?.seq ?? 0;
          }
          // The hash in the id keeps another chain's member of the same name from de-duplicating ours.
          const base = `${this.#member}:${height}:${toHex(block.hash).slice(0, 16)}`;
          const msgId = this.#reissue.height === height ? `${base}:r${this.#reissue.count}` : base;
          const ack = await publishDurable(this.#js, to, this.#encode(block, handed?.qc), { msgId, expectLastSubjectSeq: this.#lastSeq });
          if (ack.duplicate) {
            // "Already stored": believed only once the stream is seen to hold it (see ackHolds).
            const holds = await ackHolds(this.#jsm, ack, to, msgId);
            if (holds === undefined) throw new Error(`cannot read stream seq ${ack.seq} to confirm a duplicate ack`);
            if (!holds) {
              this.#reissue = { height, count: this.#reissue.height === height ? this.#reissue.count + 1 : 1 };
              this.#log.warn({ height, msgId, seq: ack.seq }, 'JetStream answered "duplicate" for a block.committed it does not hold: publishing it again under a new id');
              this.#republished?.('unheld_duplicate_ack');
              continue;
            }
          }
          this.#published = height;
          this.#lastSeq = ack.seq;
          this.#lastOurs = { height, seq: ack.seq, msgId };
          this.#refusals = 0;
          this.#source.setPublishedMark?.(height);
          this.#recent.delete(height);
        } catch (err) {
          if (isFedError(err, 'EVENTS_PUBLISH_OUT_OF_ORDER')) {
            // The chain is broken (or a stranger wrote under our name): find where the stream is.
            // Repeated refusals wait like any failure, so a stranger writing there cannot spin us.
            try {
              await this.#resync(to);
              if (++this.#refusals < 3) continue;
            } catch (resyncErr) {
              err = resyncErr;
            }
          }
          const behind = this.#source.committedHeight() - this.#published;
          this.#log.warn({ height, err: errorMessage(err), behind }, 'block.committed not stored in JetStream yet; retrying');
          await new Promise((r) => setTimeout(r, 1000));
        }
      }
    } finally {
      this.#flushing = false;
    }
  }

  /**
   * `view` of `epoch`, led by `leader` of `set` (epoch's recorded set): views start again every
   * epoch and a removal renumbers, so the view and index alone place nothing.
   */
  viewChanged(view: number, leader: number, reason: string, epoch: number, set: NamedSet | undefined): void {
    this.#safe(() => this.#events.publish('view.changed', ViewChanged, {
      member: this.#member, view, leader, reason, atMs: Date.now(), epoch, leaderName: nameIn(set, leader),
    }));
  }

  equivocation(e: Evidence): void {
    this.#safe(() => this.#events.publish('security.equivocation', EquivocationEvidence, {
      member: this.#member, offender: e.offender, view: e.view, phase: PHASE_OF_KIND[e.kind] ?? 0, first: e.first, second: e.second, atMs: e.seenAtMs,
      epoch: e.epoch, offenderName: e.offenderName,
    }));
  }

  /** A message of `epoch` from `claimedSender` of `set` (that epoch's recorded set, never what the frame says) failed its signature check. */
  invalidSignature(peerId: string, claimedSender: number, messageType: string, view: number, epoch: number, set: NamedSet | undefined): void {
    this.#safe(() => this.#events.publish('security.invalid_signature', InvalidSignature, {
      member: this.#member, peerId, claimedSender, messageType, view, atMs: Date.now(), epoch, claimedSenderName: nameIn(set, claimedSender),
    }));
  }

  #safe(fn: () => void): void {
    try { fn(); } catch (err) { this.#log.warn({ err: errorMessage(err) }, 'event not published'); }
  }

  async close(): Promise<void> {
    this.#closed = true;
    await this.#conn.drain();
  }
}
