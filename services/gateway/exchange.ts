// Peer exchange on /vtcp/btc-foundation/v1.0.0: one length-prefixed PeerExchangeMessage each way
// per stream. On connect and every peers.exchange_interval we ask connected peers for their
// lists; new connections are announced to the others (batched). What we learn is filtered
// (exchange-filter.ts), capped per interval and put in the peer table to dial. A record proves
// nothing until a connection to its peer does: a learned peer is persisted (the store's UpsertPeers,
// in batches) and relayed to others only once it has connected, and one whose dials keep failing is
// forgotten (peer-table.ts). Requests from one peer are limited by a token bucket.
// Bounds: MAX_ADDRESSES_PER_PEER per peer, maxLearnedPeers learned peers in the table (least
// recently useful evicted first) and in peers.yaml (new peers only while the file holds fewer);
// only brand-new peers are persisted, so a peers.yaml entry is never rewritten by discovery.
// A sender whose messages keep carrying bad records (STRIKE_REASONS) is penalised: its exchange
// is ignored for PENALTY_MS and, unless it is a validator, its connection is closed and it is not
// dialled for as long.
// Must never persist a record the filter refused or a peer that never connected, take a
// validator's address from a peer, nor answer a peer faster than its bucket allows.

import type { BlockList } from 'node:net';
import type { Connection, Stream } from '@libp2p/interface';
import { peerIdFromString } from '@libp2p/peer-id';
import { publicKeyToProtobuf } from '@libp2p/crypto/keys';
import type { Peer } from '#libs/config/index.ts';
import type { Logger } from '#libs/log/index.ts';
import { errorMessage } from '#libs/errors/index.ts';
import { PeerExchangeMessage, type PeerRecord } from '#libs/gen/btcfed/v1/gateway.pb.ts';
import { encodeFrame, readOne } from './framing.ts';
import {
  DiscoveryBudget, MAX_ADDRESSES_PER_PEER, MAX_RECORDS_PER_MESSAGE, STRIKE_REASONS, TokenBucket, filterRecords,
} from './exchange-filter.ts';
import { listenAddresses, type GatewayNode } from './node.ts';
import { abortQuietly } from './streams.ts';
import type { PeerTable } from './peer-table.ts';
import type { GatewayMetrics } from './metrics.ts';

export const EXCHANGE_PROTOCOL = '/vtcp/btc-foundation/v1.0.0';
/** 200 records × 32 addresses fits easily; anything bigger is not a peer list. */
export const MAX_EXCHANGE_MESSAGE_BYTES = 256 * 1024;
/** Messages with bad records within STRIKE_WINDOW_MS before the sender is penalised. */
export const STRIKES = 3;
const STRIKE_WINDOW_MS = 10 * 60_000;
/** How long a penalised peer's exchange is ignored. */
export const PENALTY_MS = 10 * 60_000;

export interface ExchangeOptions {
  intervalMs: number;
  timeoutMs: number;
  dropPrivate: boolean;
  /** peers.learned_networks (undefined: any network). */
  networks?: BlockList | undefined;
  /** New peers learned per interval, all sources together. */
  maxNewPerInterval: number;
  /** Learned peers kept in the table, and the most peers.yaml may hold besides validators. */
  maxLearnedPeers: number;
  /** Per remote peer: burst and refill of exchange messages it may send us. */
  bucket: { capacity: number; perSecond: number };
}

export interface ExchangeDeps {
  node: GatewayNode;
  table: PeerTable;
  log: Logger;
  metrics: GatewayMetrics;
  selfPeerId: string;
  selfPublicKey: string;
  /** Persists peers (the store's UpsertPeers); all or nothing. */
  persist: (peers: Peer[]) => Promise<void>;
  /** Addresses peers.yaml holds for a peer, as of the last config version. */
  stored: (peerId: string) => readonly string[] | undefined;
  /** Peers in peers.yaml that are not validators, as of the last config version. */
  storedLearned: () => number;
  /** Whether the peer id is a configured validator. */
  isValidator: (peerId: string) => boolean;
  /** Closes every connection to a peer (a penalty). */
  hangUp: (peerId: string) => Promise<void>;
}

export class PeerExchange {
  #opts: ExchangeOptions;
  #deps: ExchangeDeps;
  #buckets = new Map<string, TokenBucket>();
  #budget: DiscoveryBudget;
  #batch = new Map<string, Peer>();
  /** Sent to the store, not yet in the config version we hold: they count against the room too. */
  #persisting = new Set<string>();
  #announce = new Set<string>();
  #strikes = new Map<string, number[]>();
  #penalised = new Map<string, number>();
  #timers: NodeJS.Timeout[] = [];
  #flushing: Promise<void> = Promise.resolve();
  #stopped = false;

  constructor(opts: ExchangeOptions, deps: ExchangeDeps) {
    this.#opts = { ...opts };
    this.#deps = deps;
    this.#budget = new DiscoveryBudget(opts.maxNewPerInterval, opts.intervalMs, Date.now());
  }

  async start(): Promise<void> {
    await this.#deps.node.handle(EXCHANGE_PROTOCOL, (s, c) => { void this.#onStream(s, c); }, { maxInboundStreams: 8 });
    this.#schedule();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    for (const t of this.#timers) clearInterval(t);
    await this.#flush();
  }

  /** A new interval applies from now (hot reload). */
  set intervalMs(ms: number) {
    if (ms === this.#opts.intervalMs) return;
    this.#opts.intervalMs = ms;
    this.#budget.intervalMs = ms;
    for (const t of this.#timers) clearInterval(t);
    this.#schedule();
  }

  set timeoutMs(ms: number) { this.#opts.timeoutMs = ms; }
  set dropPrivate(on: boolean) { this.#opts.dropPrivate = on; }
  set networks(list: BlockList | undefined) { this.#opts.networks = list; }
  set maxLearnedPeers(n: number) { this.#opts.maxLearnedPeers = n; }

  /** Whether a peer's exchange is being ignored (a penalty for bad records). */
  penalised(peerId: string, now = Date.now()): boolean {
    const until = this.#penalised.get(peerId);
    if (until === undefined) return false;
    if (until > now) return true;
    this.#penalised.delete(peerId);
    return false;
  }

  #schedule(): void {
    const every = setInterval(() => { for (const id of this.#connected()) void this.ask(id); }, this.#opts.intervalMs);
    const announce = setInterval(() => { void this.#sendAnnouncements(); }, Math.min(1000, this.#opts.intervalMs));
    const flush = setInterval(() => { void this.#flush(); }, 250);
    for (const t of [every, announce, flush]) t.unref();
    this.#timers = [every, announce, flush];
  }

  #connected(): string[] {
    return this.#deps.node.getPeers().map((p) => p.toString());
  }

  /** A peer connected: ask for its list, tell the others about it, and keep it if it was learned. */
  onConnected(peerId: string): void {
    void this.ask(peerId);
    this.#announce.add(peerId);
    this.#persistProven(peerId, Date.now());
  }

  /**
   * A learned peer (not a validator, not in peers.yaml) that has connected goes to peers.yaml,
   * while it has room: only peers that proved real outlive a restart.
   */
  #persistProven(peerId: string, now: number): void {
    const e = this.#deps.table.get(peerId);
    if (!e?.known || !e.everConnected || e.configured || this.#deps.isValidator(peerId) || this.#deps.stored(peerId) || this.#batch.has(peerId)) return;
    for (const id of this.#persisting) if (this.#deps.stored(id)) this.#persisting.delete(id);
    const waiting = [...this.#persisting].filter((id) => !this.#deps.stored(id)).length + this.#batch.size;
    if (this.#deps.storedLearned() + waiting >= this.#opts.maxLearnedPeers) return;
    const publicKey = publicKeyOf(peerId);
    if (!publicKey || e.addresses.length === 0) return;
    this.#batch.set(peerId, { publicKey, peerId, addresses: [...e.addresses], lastSeenMs: now });
  }

  /** A peer identified itself: its listen addresses are a record like any learned one. */
  onIdentified(peerId: string, addresses: readonly string[]): void {
    const publicKey = publicKeyOf(peerId);
    // A validator is dialled only where peers.yaml or its card says; what it tells of itself changes nothing.
    if (publicKey && !this.#deps.isValidator(peerId)) this.learn([{ publicKey, addresses: [...addresses] }], peerId, 'identify');
  }

  async ask(peerId: string): Promise<void> {
    if (this.#stopped) return;
    const { metrics, log } = this.#deps;
    try {
      const stream = await this.#deps.node.dialProtocol(peerIdFromString(peerId), EXCHANGE_PROTOCOL, { signal: AbortSignal.timeout(this.#opts.timeoutMs) });
      send(stream, { body: { $case: 'request', value: { limit: MAX_RECORDS_PER_MESSAGE } } });
      const reply = await readOne(stream, this.#opts.timeoutMs, MAX_EXCHANGE_MESSAGE_BYTES, PeerExchangeMessage.decode);
      void stream.close().catch(() => undefined);
      if (reply.body?.$case !== 'list') throw new Error(`expected a peer list, got ${reply.body?.$case ?? 'nothing'}`);
      metrics.exchange.inc({ direction: 'out', result: 'ok' });
      this.learn(reply.body.value.peers, peerId, 'exchange');
    } catch (err) {
      metrics.exchange.inc({ direction: 'out', result: 'failed' });
      log.debug({ peerId, err: errorMessage(err) }, 'peer exchange request failed');
    }
  }

  /** Filters, caps, dials and persists what a peer told us. */
  learn(records: readonly PeerRecord[], from: string, source: 'exchange' | 'announce' | 'identify'): void {
    const { table, metrics, log } = this.#deps;
    const now = Date.now();
    if (this.penalised(from, now)) {
      metrics.rejectedRecords.inc({ reason: 'penalised' }, records.length);
      log.debug({ peerId: from, source, records: records.length }, 'peer records ignored: sender is penalised');
      return;
    }
    const known = (id: string): string[] | undefined => {
      const t = table.get(id);
      const s = this.#deps.stored(id);
      return t?.known || s ? [...new Set([...(s ?? []), ...(t?.known ? t.addresses : [])])] : undefined;
    };
    // Where we dial a validator: peers.yaml's addresses, and those of the card a set change seated
    // it with (the table's), which peers.yaml may not hold yet.
    const validator = (id: string) => (this.#deps.isValidator(id) ? known(id) ?? [] : undefined);
    const { fresh, rejected } = filterRecords(records, { selfPeerId: this.#deps.selfPeerId, known, dropPrivate: this.#opts.dropPrivate, networks: this.#opts.networks, validator }, now);
    for (const r of rejected) metrics.rejectedRecords.inc({ reason: r.reason });
    if (rejected.length > 0) {
      const reasons = [...new Set(rejected.map((r) => r.reason))];
      log.warn({ peerId: from, source, reasons, count: rejected.length, rejected: rejected.slice(0, 5) }, 'peer records rejected');
      // identify lists whatever the peer listens on (other transports too): not a strike.
      if (source !== 'identify' && reasons.some((r) => STRIKE_REASONS.has(r))) this.#strike(from, reasons.join(','), now);
    }
    const isNew = (p: Peer) => !known(p.peerId);
    // A peer forgotten after its dials failed is not taken again for a while, whoever announces it.
    const candidates = fresh.filter(isNew);
    const newOnes = candidates.filter((p) => !table.forgotten(p.peerId));
    if (newOnes.length < candidates.length) metrics.rejectedRecords.inc({ reason: 'unreachable' }, candidates.length - newOnes.length);
    const granted = this.#budget.grant(newOnes.length, now);
    if (granted < newOnes.length) {
      metrics.rejectedRecords.inc({ reason: 'cap' }, newOnes.length - granted);
      log.warn({ peerId: from, source, dropped: newOnes.length - granted, cap: this.#budget.cap }, 'discovery cap reached: new peers dropped this interval');
    }
    const take = [...fresh.filter((p) => !isNew(p)), ...newOnes.slice(0, granted)];
    const learned: string[] = [];
    for (const p of take) {
      if (isNew(p)) metrics.learned.inc();
      table.upsertKnown(p.peerId, p.addresses, MAX_ADDRESSES_PER_PEER);
      learned.push(p.peerId);
      // Already connected (it dialled us, then identified itself): it has proved itself.
      this.#persistProven(p.peerId, now);
    }
    // Peers waiting to be persisted stay: they become peers.yaml entries.
    const evicted = table.evictLearned(this.#opts.maxLearnedPeers, (id) => this.#deps.isValidator(id) || this.#batch.has(id));
    if (evicted.length > 0) {
      metrics.rejectedRecords.inc({ reason: 'table_full' }, evicted.length);
      log.info({ evicted: evicted.length, cap: this.#opts.maxLearnedPeers }, 'learned peers evicted (least recently useful)');
    }
    if (learned.length > 0) log.info({ peerId: from, source, peers: learned.slice(0, 20), count: learned.length }, 'peers learned');
  }

  /** One more message with bad records from `peerId`; at STRIKES within the window it is penalised. */
  #strike(peerId: string, reason: string, now: number): void {
    const recent = (this.#strikes.get(peerId) ?? []).filter((t) => now - t < STRIKE_WINDOW_MS);
    recent.push(now);
    if (this.#strikes.size > 4096 && !this.#strikes.has(peerId)) this.#strikes.clear(); // bounded
    this.#strikes.set(peerId, recent);
    if (recent.length < STRIKES) return;
    this.#strikes.delete(peerId);
    if (this.#penalised.size > 4096) this.#penalised.clear();
    this.#penalised.set(peerId, now + PENALTY_MS);
    const validator = this.#deps.isValidator(peerId);
    this.#deps.metrics.penalised.inc({ reason: 'bad_records' });
    this.#deps.log.warn({ peerId, reason, strikes: recent.length, forMs: PENALTY_MS, disconnected: !validator }, 'peer penalised: its peer exchange is ignored');
    if (!validator) {
      // Hung up on and not called back: a peer whose address we learned would be redialled at once.
      this.#deps.table.holdOff(peerId, now + PENALTY_MS);
      void this.#deps.hangUp(peerId).catch(() => undefined);
    }
  }

  async #onStream(stream: Stream, connection: Connection): Promise<void> {
    const from = connection.remotePeer.toString();
    const { metrics, log } = this.#deps;
    let bucket = this.#buckets.get(from);
    if (!bucket) {
      if (this.#buckets.size > 4096) this.#buckets.clear(); // bounded; a cleared bucket starts full
      bucket = new TokenBucket(this.#opts.bucket.capacity, this.#opts.bucket.perSecond, Date.now());
      this.#buckets.set(from, bucket);
    }
    if (this.penalised(from)) {
      metrics.exchange.inc({ direction: 'in', result: 'penalised' });
      abortQuietly(stream, new Error('penalised'));
      return;
    }
    if (!bucket.take(Date.now())) {
      metrics.exchange.inc({ direction: 'in', result: 'rate_limited' });
      log.debug({ from }, 'peer exchange refused: rate limited');
      abortQuietly(stream, new Error('rate limited'));
      return;
    }
    try {
      const msg = await readOne(stream, this.#opts.timeoutMs, MAX_EXCHANGE_MESSAGE_BYTES, PeerExchangeMessage.decode);
      const body = msg.body;
      switch (body?.$case) {
        case 'request':
          send(stream, { body: { $case: 'list', value: { peers: this.records(Math.min(body.value.limit || MAX_RECORDS_PER_MESSAGE, MAX_RECORDS_PER_MESSAGE)) } } });
          await stream.close();
          break;
        case 'announce':
          this.learn(body.value.peers, from, 'announce');
          await stream.close();
          break;
        case 'list':
        case undefined:
          throw new Error(`unexpected ${body?.$case ?? 'empty'} message`);
        default: { const never: never = body; throw new Error(`unknown message ${JSON.stringify(never)}`); }
      }
      metrics.exchange.inc({ direction: 'in', result: 'ok' });
    } catch (err) {
      metrics.exchange.inc({ direction: 'in', result: 'invalid' });
      log.warn({ from, err: errorMessage(err) }, 'peer exchange message refused');
      abortQuietly(stream, err);
    }
  }

  /** What we tell others: ourselves, then the peers we know with their addresses. */
  records(limit: number): PeerRecord[] {
    const self: PeerRecord = { publicKey: this.#deps.selfPublicKey, addresses: listenAddresses(this.#deps.node) };
    const others: PeerRecord[] = [];
    for (const e of this.#deps.table.all()) {
      // Validators' addresses are the operator's configuration, never relayed; a learned peer that
      // never connected is only a record someone told us, not passed on.
      if (this.#deps.isValidator(e.peerId)) continue;
      if (!e.everConnected && !this.#deps.stored(e.peerId)) continue;
      const publicKey = publicKeyOf(e.peerId);
      const addresses = e.addresses.length > 0 ? e.addresses : this.#deps.stored(e.peerId) ?? [];
      if (publicKey && addresses.length > 0) others.push({ publicKey, addresses: [...addresses] });
    }
    return [self, ...others].slice(0, limit);
  }

  async #sendAnnouncements(): Promise<void> {
    if (this.#announce.size === 0 || this.#stopped) return;
    const fresh = [...this.#announce].slice(0, MAX_RECORDS_PER_MESSAGE);
    this.#announce.clear();
    const peers = fresh.filter((id) => !this.#deps.isValidator(id)).flatMap((id) => {
      const e = this.#deps.table.get(id);
      const publicKey = publicKeyOf(id);
      return publicKey && e && e.addresses.length > 0 ? [{ publicKey, addresses: [...e.addresses] }] : [];
    });
    if (peers.length === 0) return;
    await Promise.all(this.#connected().map(async (to) => {
      const list = peers.filter((p) => publicKeyOf(to) !== p.publicKey);
      if (list.length === 0) return;
      try {
        const stream = await this.#deps.node.dialProtocol(peerIdFromString(to), EXCHANGE_PROTOCOL, { signal: AbortSignal.timeout(this.#opts.timeoutMs) });
        send(stream, { body: { $case: 'announce', value: { peers: list } } });
        await stream.close({ signal: AbortSignal.timeout(this.#opts.timeoutMs) });
        this.#deps.metrics.exchange.inc({ direction: 'announce', result: 'ok' });
      } catch (err) {
        this.#deps.metrics.exchange.inc({ direction: 'announce', result: 'failed' });
        this.#deps.log.debug({ to, err: errorMessage(err) }, 'announcement failed');
      }
    }));
  }

  /** Persists the batch; on failure the batch is dropped (the peers stay in the table to dial). */
  #flush(): Promise<void> {
    this.#flushing = this.#flushing.then(async () => {
      if (this.#batch.size === 0) return;
      const peers = [...this.#batch.values()].slice(0, 1000);
      for (const p of peers) { this.#batch.delete(p.peerId); this.#persisting.add(p.peerId); }
      try {
        await this.#deps.persist(peers);
      } catch (err) {
        for (const p of peers) this.#persisting.delete(p.peerId);
        this.#deps.log.warn({ peers: peers.length, err: errorMessage(err) }, 'discovered peers not persisted');
      }
    });
    return this.#flushing;
  }
}

function send(stream: Stream, msg: PeerExchangeMessage): void {
  stream.send(encodeFrame(PeerExchangeMessage.encode(msg).finish(), MAX_EXCHANGE_MESSAGE_BYTES));
}

/** The base64 protobuf public key embedded in an Ed25519/secp256k1 peer id. */
export function publicKeyOf(peerId: string): string | undefined {
  try {
    const key = peerIdFromString(peerId).publicKey;
    return key ? Buffer.from(publicKeyToProtobuf(key)).toString('base64') : undefined;
  } catch {
    return undefined;
  }
}
