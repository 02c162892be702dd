// Batches off the critical path (docs/consensus.md, "Batches"): each member sends the transactions
// its clients give it once to every validator, in batches; receivers keep each batch by its digest
// (libs/blocks batchDigest), and a leader's proposal names the whole batches it proposes instead
// of carrying their bytes. A replica that lacks a named batch waits a moment for it (it is usually
// on its way), then asks the proposer and the batch's author; what it cannot get in time costs the
// view, never the proposer a strike — a batch honestly lost on the way looks the same.
//
// Bounded everywhere outside input reaches: the store by bytes and count per sender of batches
// (a flooder evicts only its own), requests by digests per frame and outstanding per peer, serving
// by bytes a second per peer, resolutions waiting at once. A batch served under a digest it does
// not have is a strike for the server; asking for batches nobody named, or more than the budget,
// is a useless token.

import { batchTree, resolveParts, type BatchRef, type BlockPart, type HeldBatch, type PartLimits, type Resolved } from '#libs/blocks/index.ts';
import { toHex, txHash } from '#libs/crypto/index.ts';
import type { Hash } from '#libs/hotstuff/index.ts';
import { encodeFrame } from '#libs/wire/index.ts';
import type { PoolBatch } from './mempool.ts';
import { OUTSIDE_BASE, isOutside, type Clock, type TransportPort } from './ports.ts';
import { HandoffBudget } from './handoff.ts';
import { renumberPeers } from './epoch-switch.ts';

/** A batch held here: what the pool groups by (`ids`), what resolves a reference (`txs`, `ids`), and its reference. */
export interface StoredBatch extends PoolBatch, HeldBatch {
  readonly hex: string;
  /** Its author by its number in the current epoch's set (BatchStore.renumber moves it). */
  ref: BatchRef;
  /** Who it is charged to: its author, or the peer that served it; by its number in the current epoch's set. */
  holder: number;
  readonly atMs: number;
  /** This member's own batch reached every validator (its budget to none was spent): it may be proposed by reference. */
  everyone: boolean;
}

/** How long an unproposed batch is kept. */
export const BATCH_TTL_MS = 300_000;
/** How long a replica waits for a named batch to arrive by itself before it asks for it. */
export const FETCH_GRACE_MS = 40;
/** How long a proposal waits for its batches in all. */
export const FETCH_DEADLINE_MS = 2_000;
/** Proposals waiting for batches at once; more are dropped (an honest leader has one a view). */
const MAX_RESOLVING = 4;
/** Requests to one peer outstanding at once; the oldest is forgotten beyond. */
const MAX_REQUESTS_PER_PEER = 8;
/** Committed blocks whose batches are remembered, to forget the batches at commit. */
const MAX_NOTED_BLOCKS = 64;
/** Per asker: how long, and for how many batches, what it was served is remembered (and not served again). */
export const SERVED_MEMORY_MS = 30_000;
const MAX_SERVED_PER_PEER = 4096;

/**
 * Where the batches held are kept beyond memory (batch-disk.ts): told of each batch held and
 * forgotten. `epoch`: the epoch whose set numbers `holder` and `author` (read back in a later one,
 * they are renumbered from it).
 */
export interface BatchKeeper {
  put(hex: string, b: { holder: number; author: number; epoch: number; atMs: number; txs: readonly Uint8Array[] }): void;
  forget(hex: string): void;
  /** A set change renumbered the holders (BatchStore.renumber's `to`): what the keeper keeps per holder follows them. */
  renumber(to: (index: number) => number | undefined): void;
}

export interface BatchStoreOptions {
  /** Per holder: most bytes and batches kept; beyond, its oldest go. */
  maxBytesPerHolder: number;
  maxBatchesPerHolder: number;
  ttlMs?: number;
  /** The epoch whose set numbers the holders and authors given (default 0); renumber() moves it on. */
  epoch?: number;
}

export class BatchStore {
  readonly #o: BatchStoreOptions;
  readonly #byHex = new Map<string, StoredBatch>();
  readonly #byHolder = new Map<number, { batches: Map<string, StoredBatch>; bytes: number }>();
  readonly #arrival = new Set<(hex: string) => void>();
  readonly #renumbered = new Set<(to: (index: number) => number | undefined) => void>();
  /** Block hash (hex) → the batches it named (leader or replica), forgotten when it commits. */
  readonly #blocks = new Map<string, string[]>();
  /** Batch digest (hex) → how many of the noted blocks name it. */
  readonly #named = new Map<string, number>();
  #bytes = 0;
  #keeper: BatchKeeper | undefined;
  /** The epoch whose set numbers holders and authors here. */
  #epoch: number;

  constructor(o: BatchStoreOptions) {
    this.#o = o;
    this.#epoch = o.epoch ?? 0;
  }

  /** From now on, each batch held is also given to `keeper`, and each one forgotten is taken from it. */
  keepOn(keeper: BatchKeeper): void { this.#keeper = keeper; }

  get size(): number { return this.#byHex.size; }
  get bytes(): number { return this.#bytes; }

  get(hex: string): StoredBatch | undefined { return this.#byHex.get(hex); }

  /**
   * Keeps a batch (its ids computed by the caller, once) charged to `holder`; the one already held
   * under the same digest if any. The holder's oldest batches make room. `kept`: the keeper has it
   * already (read back from it at start).
   */
  add(holder: number, txs: readonly Uint8Array[], ids: readonly Hash[], nowMs: number, o: { author?: number; tree?: { digest: Hash; leaves: Uint8Array }; kept?: boolean } = {}): StoredBatch {
    const { digest, leaves } = o.tree ?? batchTree(ids);
    const hex = toHex(digest);
    const known = this.#byHex.get(hex);
    if (known) return known;
    let bytes = 0;
    for (const tx of txs) bytes += tx.length;
    const b: StoredBatch = { hex, txs, ids, leaves, bytes, holder, atMs: nowMs, everyone: true,
      ref: { digest, author: o.author ?? holder, count: txs.length, bytes } };
    let h = this.#byHolder.get(holder);
    if (!h) this.#byHolder.set(holder, (h = { batches: new Map(), bytes: 0 }));
    while (h.batches.size > 0 && (h.batches.size >= this.#o.maxBatchesPerHolder || h.bytes + bytes > this.#o.maxBytesPerHolder)) {
      this.forget(h.batches.keys().next().value!);
    }
    h.batches.set(hex, b);
    h.bytes += bytes;
    this.#byHex.set(hex, b);
    this.#bytes += bytes;
    if (!o.kept) this.#keeper?.put(hex, { holder, author: b.ref.author, epoch: this.#epoch, atMs: nowMs, txs });
    for (const fn of [...this.#arrival]) fn(hex);
    return b;
  }

  forget(hex: string): void {
    const b = this.#byHex.get(hex);
    if (!b) return;
    this.#byHex.delete(hex);
    this.#bytes -= b.bytes;
    const h = this.#byHolder.get(b.holder)!;
    h.batches.delete(hex);
    h.bytes -= b.bytes;
    if (h.batches.size === 0) this.#byHolder.delete(b.holder);
    this.#keeper?.forget(hex);
  }

  /**
   * Epoch `epoch` began with another set: holders and authors move to their numbers in it (`to`).
   * Else a fetch asked whoever holds an author's old number now, and a member renumbered into a
   * removed one's number was charged that one's batches. A holder seated no more is charged as an
   * outsider (OUTSIDE_BASE); an author seated no more is named by the holder, else by this member
   * (`self`), which holds the batch: a proposal of its then names its proposer. A member seated no
   * more itself proposes nothing, and keeps nothing. Then the keeper and those listening
   * (onRenumber: the fetches' requests and served-to records, the hand-off budgets) renumber what
   * they keep per peer with the same `to`, in the same step.
   */
  renumber(to: (index: number) => number | undefined, epoch: number, self: number | undefined): void {
    this.#epoch = epoch;
    this.#renumberHeld(to, self);
    this.#keeper?.renumber(to);
    for (const fn of [...this.#renumbered]) fn(to);
  }

  /** Calls `fn` with the renumbering at each renumber(), until the returned function is called. */
  onRenumber(fn: (to: (index: number) => number | undefined) => void): () => void {
    this.#renumbered.add(fn);
    return () => this.#renumbered.delete(fn);
  }

  #renumberHeld(to: (index: number) => number | undefined, self: number | undefined): void {
    if (self === undefined) {
      for (const hex of [...this.#byHex.keys()]) this.forget(hex);
      return;
    }
    const moved = new Map<number, StoredBatch[]>();
    for (const [holder, h] of this.#byHolder) {
      const n = isOutside(holder) ? holder : to(holder) ?? OUTSIDE_BASE;
      const joined = moved.get(n);
      // Holders joined keep arrival order: expire() stops at a holder's first batch not due.
      moved.set(n, joined ? [...joined, ...h.batches.values()].sort((a, b) => a.atMs - b.atMs) : [...h.batches.values()]);
    }
    this.#byHolder.clear();
    for (const [holder, batches] of moved) {
      const h = { batches: new Map<string, StoredBatch>(), bytes: 0 };
      for (const b of batches) {
        b.holder = holder;
        b.ref = { ...b.ref, author: to(b.ref.author) ?? (isOutside(holder) ? self : holder) };
        h.batches.set(b.hex, b);
        h.bytes += b.bytes;
      }
      this.#byHolder.set(holder, h);
    }
  }

  /** Forgets what has waited longer than the TTL (oldest first per holder). */
  expire(nowMs: number): number {
    const ttl = this.#o.ttlMs ?? BATCH_TTL_MS;
    let n = 0;
    for (const h of [...this.#byHolder.values()]) {
      for (const b of [...h.batches.values()]) {
        if (b.atMs > nowMs - ttl) break;
        this.forget(b.hex);
        n++;
      }
    }
    return n;
  }

  /** Calls `fn` with the digest (hex) of each batch that arrives, until the returned function is called. */
  onArrival(fn: (hex: string) => void): () => void {
    this.#arrival.add(fn);
    return () => this.#arrival.delete(fn);
  }

  /** Remembers the batches a block named, to serve them to those who ask and forget them when it commits. */
  noteBlock(blockHex: string, batchHexes: readonly string[]): void {
    if (batchHexes.length === 0 || this.#blocks.has(blockHex)) return;
    this.#blocks.set(blockHex, [...batchHexes]);
    for (const h of batchHexes) this.#named.set(h, (this.#named.get(h) ?? 0) + 1);
    if (this.#blocks.size > MAX_NOTED_BLOCKS) this.#unnote(this.#blocks.keys().next().value!);
  }

  /** Whether a block noted here (and not committed) names the batch: only such a batch is served. */
  named(hex: string): boolean { return this.#named.has(hex); }

  /** A block committed: the batches it named are in the log now, and no honest proposal names them again. */
  committed(blockHex: string): void {
    for (const h of this.#unnote(blockHex)) this.forget(h);
  }

  #unnote(blockHex: string): readonly string[] {
    const hexes = this.#blocks.get(blockHex);
    if (!hexes) return [];
    this.#blocks.delete(blockHex);
    for (const h of hexes) {
      const n = this.#named.get(h)! - 1;
      if (n > 0) this.#named.set(h, n);
      else this.#named.delete(h);
    }
    return hexes;
  }
}

export interface BatchFetchDeps {
  store: BatchStore;
  chainId: string;
  self: () => number;
  clock: Clock;
  transport: Pick<TransportPort, 'send'>;
  limits: PartLimits & { maxFrameBytes: number };
  /** An offence (a strike) / a valid but useless frame (`cost` tokens), counted and logged by the caller. */
  refuse(from: number, reason: string, detail: Record<string, unknown>): void;
  useless(from: number, reason: string, detail: Record<string, unknown>, cost: number): void;
}

interface Pending { digests: Map<string, BatchRef>; atMs: number }

export type Resolution = Resolved | { ok: false; unavailable: BatchRef[] } | { ok: false; busy: true };

/** Asking for batches, answering such asks, and resolving a proposal's parts with what arrives. */
export class BatchFetch {
  readonly #d: BatchFetchDeps;
  /** Per peer: its outstanding requests by id. */
  readonly #pending = new Map<number, Map<number, Pending>>();
  /** Bytes served a second per peer: some four blocks' worth. */
  readonly #serve: HandoffBudget;
  /** Per asker: the batches served to it (hex → when), oldest first. */
  readonly #served = new Map<number, Map<string, number>>();
  #nextId = 1;
  /** The proposals waiting for batches (at most MAX_RESOLVING): whether each is still worth it, and how to give it up. */
  readonly #waiting = new Set<{ useful: () => boolean; giveUp: () => void }>();
  /** Counters for the metrics: batches asked for, received in answers, served; proposals that waited, and that gave up. */
  readonly counts = { asked: 0, received: 0, served: 0, waited: 0, unavailable: 0 };

  constructor(d: BatchFetchDeps) {
    this.#d = d;
    this.#serve = new HandoffBudget({ rate: 4 * d.limits.maxBlockBytes, now: () => d.clock.now() });
    // Renumbered in the step that swaps the engine, with the store's holders and authors.
    d.store.onRenumber((to) => this.renumber(to));
  }

  /**
   * A set change renumbered the validators (`to`, epoch-switch.ts renumbering): the requests
   * outstanding to each peer, what it was served and its serving budget follow it to its new
   * number. Else a member's answer to a request made before the change was taken as unsolicited
   * (a bad one escaping its strike), and a member renumbered into another's old number could
   * answer that one's requests, was refused what that one had been served and spent its budget.
   * A member seated no more loses all three: its answers are unsolicited from now on, and a
   * proposal waiting for what it was asked gets it from the other one asked (the proposer or the
   * author), or gives up at its deadline, as for a silent peer.
   */
  renumber(to: (index: number) => number | undefined): void {
    renumberPeers(this.#pending, to);
    // What an answer brings is kept under its author's number: the new one (an author seated no
    // more is named by the member that serves it, as BatchStore.renumber names it).
    for (const [peer, mine] of this.#pending) {
      for (const p of mine.values()) for (const [hex, r] of p.digests) p.digests.set(hex, { ...r, author: to(r.author) ?? peer });
    }
    renumberPeers(this.#served, to);
    this.#serve.renumber(to);
  }

  /**
   * The transactions of a proposal's parts: at once when every named batch is here; else after
   * waiting FETCH_GRACE_MS for those on their way, asking `from` (the proposer) and each missing
   * batch's author, and waiting for the answers until FETCH_DEADLINE_MS or `useful()` says no.
   */
  resolve(from: number, parts: readonly BlockPart[], useful: () => boolean): Promise<Resolution> {
    const { store, clock, limits } = this.#d;
    const now = resolveParts(parts, (h) => store.get(h), limits);
    if (now.ok || 'error' in now) return Promise.resolve(now);
    // A slot held by a proposal no longer worth resolving (its view passed, its epoch ended) is
    // given up for this one, not kept until its deadline.
    if (this.#waiting.size >= MAX_RESOLVING) for (const w of [...this.#waiting]) if (!w.useful()) w.giveUp();
    if (this.#waiting.size >= MAX_RESOLVING) return Promise.resolve({ ok: false, busy: true });
    this.counts.waited++;
    return new Promise<Resolution>((done) => {
      let missing = now.missing;
      const waiter = { useful, giveUp: () => finish({ ok: false, unavailable: missing }) };
      this.#waiting.add(waiter);
      // Only the arrival of a batch still missing is worth resolving again: the parts may hold
      // thousands of inline transactions, hashed at each resolution.
      const waiting = new Set(missing.map((r) => toHex(r.digest)));
      const timers: { cancel(): void }[] = [];
      const finish = (r: Resolution): void => {
        if (!this.#waiting.delete(waiter)) return;
        stop();
        for (const t of timers) t.cancel();
        if (!r.ok && 'unavailable' in r) this.counts.unavailable++;
        done(r);
      };
      const stop = store.onArrival((hex) => {
        if (!waiting.delete(hex)) return;
        missing = missing.filter((r) => waiting.has(toHex(r.digest)));
        if (waiting.size > 0) return;
        const r = resolveParts(parts, (h) => store.get(h), limits);
        if (r.ok || 'error' in r) return finish(r);
        // One arrived and another went meanwhile (its holder's oldest made room): wait for those.
        missing = r.missing;
        for (const m of missing) waiting.add(toHex(m.digest));
      });
      timers.push(clock.setTimeout(() => {
        if (!useful()) return finish({ ok: false, unavailable: missing });
        this.ask(from, missing);
        const self = this.#d.self();
        const authors = new Map<number, BatchRef[]>();
        for (const ref of missing) if (ref.author !== from && ref.author !== self) authors.set(ref.author, [...(authors.get(ref.author) ?? []), ref]);
        for (const [author, refs] of authors) this.ask(author, refs);
      }, FETCH_GRACE_MS));
      timers.push(clock.setTimeout(() => finish({ ok: false, unavailable: missing }), FETCH_DEADLINE_MS));
    });
  }

  /** Asks `peer` for the batches `refs` name. */
  ask(peer: number, refs: readonly BatchRef[]): void {
    if (refs.length === 0) return;
    let mine = this.#pending.get(peer);
    if (!mine) this.#pending.set(peer, (mine = new Map()));
    if (mine.size >= MAX_REQUESTS_PER_PEER) mine.delete(mine.keys().next().value!);
    const requestId = this.#nextId++;
    mine.set(requestId, { digests: new Map(refs.map((r) => [toHex(r.digest), r])), atMs: this.#d.clock.now() });
    this.counts.asked += refs.length;
    this.#d.transport.send(peer, encodeFrame(this.#d.chainId, { type: 'batch-request', requestId, digests: refs.map((r) => r.digest) }));
  }

  /** Whether `peer` was asked request `requestId` and has not answered it all yet. */
  expects(peer: number, requestId: number): boolean {
    const p = this.#pending.get(peer)?.get(requestId);
    if (p && p.atMs < this.#d.clock.now() - FETCH_DEADLINE_MS) {
      this.#pending.get(peer)!.delete(requestId);
      return false;
    }
    return p !== undefined;
  }

  /** Batches `peer` served for request `requestId`: each must be one asked for, by its bytes. */
  onResponse(peer: number, requestId: number, batches: readonly Uint8Array[][]): void {
    const mine = this.#pending.get(peer);
    const p = mine?.get(requestId);
    if (!mine || !p) return this.#d.useless(peer, 'unsolicited', { kind: 'batch-response', requestId }, 1);
    const now = this.#d.clock.now();
    for (const [i, txs] of batches.entries()) {
      const ids = txs.map(txHash);
      const tree = batchTree(ids);
      const hex = toHex(tree.digest);
      const ref = p.digests.get(hex);
      if (!ref) {
        mine.delete(requestId);
        return this.#d.refuse(peer, 'batch_mismatch', { requestId, batch: i, digest: hex.slice(0, 16), detail: 'its bytes are no batch that was asked for' });
      }
      p.digests.delete(hex);
      this.counts.received++;
      this.#d.store.add(peer, txs, ids, now, { author: ref.author, tree });
    }
    if (p.digests.size === 0) mine.delete(requestId);
    // The server sent what fit one frame: what it still owes is asked for again, within the deadline.
    else if (batches.length > 0) {
      mine.delete(requestId);
      this.ask(peer, [...p.digests.values()]);
    }
  }

  /**
   * `peer` asks for batches: those held that a proposal seen here named, and not served to it
   * before, are served, as many as fit a frame and its byte budget. A batch it was served already
   * costs a useless token each (an honest asker keeps what it is served); an ask that gets nothing
   * costs one more.
   */
  onRequest(peer: number, requestId: number, digests: readonly Hash[]): void {
    const { store, limits, clock } = this.#d;
    const now = clock.now();
    const served = this.#servedTo(peer, now);
    const out: Uint8Array[][] = [];
    let bytes = 0;
    let unknown = 0;
    let again = 0;
    let over = 0;
    // Room for the frame's own fields and each transaction's few bytes of protobuf framing.
    const room = limits.maxFrameBytes - 1024;
    for (const d of digests) {
      const hex = toHex(d);
      if (served.has(hex)) { again++; continue; }
      const b = store.get(hex);
      if (!b || !store.named(hex)) { unknown++; continue; }
      const size = b.bytes + 8 * b.txs.length + 16;
      if (bytes + size > room || !this.#serve.takeAll(peer, b.bytes)) { over++; continue; }
      served.set(hex, now);
      out.push([...b.txs]);
      bytes += size;
    }
    while (served.size > MAX_SERVED_PER_PEER) served.delete(served.keys().next().value!);
    const detail = { requestId, asked: digests.length, unknown, again, over };
    if (again > 0) this.#d.useless(peer, 'batch_asked_again', detail, again);
    if (out.length === 0) {
      // Nothing to serve: no answer (the asker gives up at its deadline), a useless token.
      this.#d.useless(peer, over > 0 ? 'batch_serve_budget' : 'unknown_batches', detail, 1);
      return;
    }
    this.counts.served += out.length;
    this.#d.transport.send(peer, encodeFrame(this.#d.chainId, { type: 'batch-response', requestId, batches: out }));
  }

  /** What `peer` was served within SERVED_MEMORY_MS (older entries dropped). */
  #servedTo(peer: number, now: number): Map<string, number> {
    let m = this.#served.get(peer);
    if (!m) this.#served.set(peer, (m = new Map()));
    for (const [hex, at] of m) {
      if (at > now - SERVED_MEMORY_MS) break;
      m.delete(hex);
    }
    return m;
  }
}
