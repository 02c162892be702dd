// The checker: reads every member's committed log through the public API (ListBlocks) and the
// JetStream stream of committed blocks, and says
//   - where logs disagree (two members with different blocks at one height);
//   - which acked transactions never committed (lost) and which committed more than once;
//   - where the stream has a gap, a duplicate height, or a block that is not the log's;
//   - on a NATS cluster, where the stream's copies on its nodes differ.
// Every read is bounded by a deadline; a member that does not answer is reported, not waited for.

import { toHex } from '#libs/crypto/index.ts';
import { call, callPatiently } from '#libs/rpc/index.ts';
import { replay, BLOCKS_STREAM } from '#libs/events/index.ts';
import { BlockCommitted } from '#libs/gen/btcfed/v1/events.pb.ts';
import type { ConsensusServiceClient } from '#libs/gen/btcfed/v1/consensus.pb.ts';
import { jetstream, type JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Workload } from './workload.ts';

export interface LogEntry {
  height: number;
  hash: string;
  proposer: number;
  /** Validator indices in the block's QC. */
  signers: number[];
  txs: string[];
}

/** Indices whose bit is set in a QC's signers bitmap (bit i = byte i/8, least significant first). */
export function signersOf(bitmap: Uint8Array | undefined): number[] {
  const out: number[] = [];
  if (!bitmap) return out;
  for (let i = 0; i < bitmap.length * 8; i++) if (bitmap[i >> 3]! & (1 << (i & 7))) out.push(i);
  return out;
}

/** Blocks [from, to] of one member, in pages of 100. */
export async function readLog(client: ConsensusServiceClient, from: number, to: number, opts: { headersOnly?: boolean; deadlineMs?: number } = {}): Promise<LogEntry[]> {
  const out: LogEntry[] = [];
  for (let h = Math.max(1, from); h <= to;) {
    // A long campaign's log can outlast a member's read budget for one client: refusals wait and ask again.
    const r = await callPatiently(client.listBlocks.bind(client), { fromHeight: h, limit: 100, headersOnly: opts.headersOnly ?? false }, { deadlineMs: opts.deadlineMs ?? 15_000 });
    if (r.blocks.length === 0) break;
    for (const b of r.blocks) {
      const header = b.block?.header;
      if (!header) throw new Error(`ListBlocks from ${h}: a block without a header`);
      if (header.height > to) return out;
      out.push({
        height: Number(header.height), hash: toHex(b.blockHash), proposer: header.proposer,
        signers: signersOf(b.qc?.signers), txs: (b.block?.txs ?? []).map((t) => Buffer.from(t).toString('latin1')),
      });
      h = Number(header.height) + 1;
    }
  }
  return out;
}

export interface StreamEntry { member: string; height: number; hash: string; seq: number }

/** Every block.committed in the stream, in stream order. */
export async function readStream(nc: NatsConnection): Promise<StreamEntry[]> {
  const out: StreamEntry[] = [];
  for await (const m of replay(jetstream(nc), BLOCKS_STREAM)) {
    const e = BlockCommitted.decode(m.data);
    out.push({ member: e.member, height: Number(e.height), hash: toHex(e.blockHash), seq: m.seq });
  }
  return out;
}

/**
 * Whether the stream's copies on a NATS cluster agree. A read goes to the stream's leader, so the
 * stream is read whole with each node leading in turn (the leader is asked to step down until
 * every one of `nodes` has led, at most `tries` times), and the reads are compared message by
 * message (diffCopies). nats-server 2.9.10 let them differ: the same sequence numbers held different messages
 * on different nodes (docs/testing.md). Returns the differences in words and the nodes read.
 */
export async function compareCopies(nc: NatsConnection, jsm: JetStreamManager, opts: { nodes: number; tries?: number }): Promise<{ problems: string[]; read: string[] }> {
  const views = new Map<string, StreamEntry[]>();
  const leader = async () => (await jsm.streams.info(BLOCKS_STREAM).catch(() => undefined))?.cluster?.leader;
  for (let t = 0; t < (opts.tries ?? 3 * opts.nodes) && views.size < opts.nodes; t++) {
    const before = await leader();
    if (before && !views.has(before)) {
      const entries = await readStream(nc);
      // Counted only if the same node led the whole read.
      if ((await leader()) === before) views.set(before, entries);
    }
    if (views.size >= opts.nodes) break;
    await nc.request(`$JS.API.STREAM.LEADER.STEPDOWN.${BLOCKS_STREAM}`, undefined, { timeout: 5_000 }).catch(() => undefined);
    for (let w = 0; w < 100; w++) {
      const now = await leader();
      if (now && now !== before) break;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return { problems: diffCopies(views), read: [...views.keys()] };
}

/**
 * Where copies of the stream, read one after the other, differ: each against the first, message
 * by message, as far as both reads go (the federation keeps committing idle blocks meanwhile, so a
 * later read holds more). One line per copy that differs, at its first difference.
 */
export function diffCopies(views: ReadonlyMap<string, readonly StreamEntry[]>): string[] {
  const problems: string[] = [];
  const [first, ...others] = [...views];
  if (!first) return problems;
  const [refNode, ref] = first;
  const show = (e: StreamEntry) => `${e.member}:${e.height} at seq ${e.seq}`;
  for (const [node, entries] of others) {
    const n = Math.min(ref.length, entries.length);
    for (let i = 0; i < n; i++) {
      const a = ref[i]!;
      const b = entries[i]!;
      if (a.seq !== b.seq || a.member !== b.member || a.height !== b.height || a.hash !== b.hash) {
        problems.push(`the stream's copies differ: message ${i + 1} read from ${refNode} is ${show(a)}, from ${node} ${show(b)} (${ref.length} and ${entries.length} messages read)`);
        break;
      }
    }
  }
  return problems;
}

export interface Report {
  heights: number[];
  /** Heights at which two members hold different blocks. */
  disagreements: { height: number; hashes: Record<string, string> }[];
  acked: number;
  refused: number;
  indeterminate: number;
  /** Acked transactions in no member's log. */
  lost: string[];
  /** Transactions (of this run) committed more than once. */
  duplicated: string[];
  /** Gaps, duplicate heights and foreign blocks in the stream, in words. */
  streamProblems: string[];
  /** The stream as read (for the post-mortem of a failed run). */
  stream: StreamEntry[];
}

/**
 * What earlier checks of one federation read and found agreed, so that the next check reads only
 * what was committed since: a block's hash covers its parent's, so a member whose block at a
 * checked height has the checked hash holds the whole checked log below it. Reading every member's
 * chain at each check spent the members' read budget (read_cpu_per_client) within minutes of a
 * campaign, and the check then waited out the refusals.
 */
export class CheckedLogs {
  /** Heights 1..length, each held alike by every member when checked: its hash and transactions. */
  readonly #agreed: LogEntry[] = [];
  get height(): number { return this.#agreed.length; }

  /** A member's log up to `top`: the checked prefix, pinned by its block at the highest height both hold, and what it read past it. */
  async read(client: ConsensusServiceClient, top: number, opts: { headersOnly: boolean }): Promise<LogEntry[]> {
    const pin = Math.min(top, this.#agreed.length);
    if (pin >= 1) {
      const fresh = await readLog(client, pin, top, opts);
      if (fresh[0]?.height === pin && fresh[0].hash === this.#agreed[pin - 1]!.hash) return [...this.#agreed.slice(0, pin - 1), ...fresh];
    }
    // Nothing checked yet, or this member's block at the pin is not the checked one: all of it,
    // for the comparison to say where it differs.
    return readLog(client, 1, top, opts);
  }

  /** Keeps the heights below the first disagreement that every member holds (`full`: a log with its transactions). */
  record(full: readonly LogEntry[], heights: readonly number[], firstDisagreement: number | undefined): void {
    const upTo = Math.min(full.length, ...heights, (firstDisagreement ?? Infinity) - 1);
    for (let h = this.#agreed.length; h < upTo; h++) this.#agreed.push(full[h]!);
  }
}

/**
 * Compares the logs of all members (each up to its own height), accounts for the workload's
 * transactions, and checks the stream. `members` are the member names, in client order. With
 * `checked` (kept across the checks of one federation), reads only what it does not hold yet.
 */
export async function check(clients: readonly ConsensusServiceClient[], members: readonly string[], workload: Workload | undefined, nc: NatsConnection | undefined, checked = new CheckedLogs()): Promise<Report> {
  // Every member's headers (the hash covers the transactions), and the transactions of the tallest.
  const tops = await Promise.all(clients.map(async (c) => Number((await call(c.getStatus.bind(c), {}, { deadlineMs: 10_000 })).committedHeight)));
  const tallest = tops.indexOf(Math.max(...tops));
  const logs: LogEntry[][] = await Promise.all(clients.map((c, i) => checked.read(c, tops[i]!, { headersOnly: i !== tallest })));
  const heights = logs.map((l) => l.length);
  const disagreements: Report['disagreements'] = [];
  const top = Math.max(...heights);
  for (let h = 1; h <= top; h++) {
    const hashes: Record<string, string> = {};
    logs.forEach((l, i) => { const e = l[h - 1]; if (e) { if (e.height !== h) throw new Error(`${members[i]}: block ${h - 1} of its log has height ${e.height}`); hashes[members[i]!] = e.hash; } });
    if (new Set(Object.values(hashes)).size > 1) disagreements.push({ height: h, hashes });
  }
  // Transactions: counted in the tallest log (the logs agree, or the disagreements say so).
  const longest = logs[tallest] ?? [];
  checked.record(longest, heights, disagreements[0]?.height);
  const count = new Map<string, number>();
  for (const b of longest) for (const tx of b.txs) count.set(tx, (count.get(tx) ?? 0) + 1);
  const lost: string[] = [];
  const duplicated: string[] = [];
  if (workload) {
    for (const r of workload.records) if (r.outcome === 'acked' && !count.has(r.tx)) lost.push(r.tx);
    for (const [tx, n] of count) if (n > 1 && workload.owns(tx)) duplicated.push(tx);
  }
  const streamProblems: string[] = [];
  let entries: StreamEntry[] = [];
  if (nc) {
    entries = await readStream(nc);
    const byMember = new Map<string, StreamEntry[]>();
    for (const e of entries) byMember.set(e.member, [...(byMember.get(e.member) ?? []), e]);
    members.forEach((m, i) => {
      const es = byMember.get(m) ?? [];
      const seen = new Set<number>();
      for (const e of es) {
        if (seen.has(e.height)) streamProblems.push(`${m}: height ${e.height} twice (stream seq ${e.seq})`);
        seen.add(e.height);
        const mine = logs[i]![e.height - 1];
        if (mine && mine.hash !== e.hash) streamProblems.push(`${m}: height ${e.height} in the stream is ${e.hash.slice(0, 16)}…, the log has ${mine.hash.slice(0, 16)}…`);
      }
      const max = Math.max(0, ...seen);
      if (max < heights[i]!) streamProblems.push(`${m}: the stream has its blocks up to ${max}, its log up to ${heights[i]}`);
      for (let h = 1; h <= max; h++) if (!seen.has(h)) { streamProblems.push(`${m}: height ${h} missing from the stream (it has up to ${max})`); break; }
      for (let k = 1; k < es.length; k++) if (es[k]!.height < es[k - 1]!.height) { streamProblems.push(`${m}: height ${es[k]!.height} after ${es[k - 1]!.height} in the stream`); break; }
    });
  }
  return {
    heights, disagreements,
    acked: workload?.count('acked') ?? 0, refused: workload?.count('refused') ?? 0, indeterminate: workload?.count('indeterminate') ?? 0,
    lost, duplicated, streamProblems, stream: entries,
  };
}

/**
 * After the load stops: waits (bounded) until every member answers with the same height and an
 * empty mempool, and the stream has every member's blocks up to that height.
 */
export async function settle(clients: readonly ConsensusServiceClient[], members: readonly string[], nc: NatsConnection | undefined, ms: number): Promise<void> {
  const t0 = Date.now();
  while (Date.now() - t0 < ms) {
    const s = await Promise.all(clients.map((c) => call(c.getStatus.bind(c), {}, { deadlineMs: 3000 }).catch(() => undefined)));
    const hs = s.map((x) => (x ? Number(x.committedHeight) : -1));
    const calm = s.every((x) => x && x.mempoolSize === 0) && new Set(hs).size === 1;
    const published = !nc || (await streamHeights(nc, members).catch(() => [])).every((h, i) => h >= hs[i]!);
    if (calm && published) return;
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** Published heights per member in the stream (the last block.committed of each), for "the stream caught up". */
export async function streamHeights(nc: NatsConnection, members: readonly string[]): Promise<number[]> {
  const { jetstreamManager } = await import('@nats-io/jetstream');
  const jsm = await jetstreamManager(nc);
  return Promise.all(members.map(async (m) => {
    const last = await jsm.streams.getMessage(BLOCKS_STREAM, { last_by_subj: `btcfed.${m}.consensus.block.committed` }).catch(() => null);
    return last ? Number(BlockCommitted.decode(last.data).height) : 0;
  }));
}
