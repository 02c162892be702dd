// The gateway's view of every known peer: addresses, connection state, the consecutive-failure
// counter of the PBFT requirement (15 in a row → delinquent: probed, not sent to; one success
// resets it), redial backoff with jitter, latency and counters. Pure bookkeeping: no sockets, the
// clock and randomness are passed in; it reports state transitions for the caller to publish.
// Must never decide anything about consensus: delinquency only changes whom we send to.

export const DELINQUENT_AFTER = 15;
/**
 * Failed dials after which a learned peer that never connected is forgotten. Peer exchange hands
 * us addresses anyone may make up: a record proves nothing until a dial to it succeeds. Fake peers
 * a stranger announced were kept and redialled on the usual backoff for ever (and persisted, so
 * they outlived the stranger): dialling them took each honest gateway from 0.05 to 0.1–0.2 of a
 * core and the honest commit rate to 63 % of the rate before.
 */
export const UNPROVEN_DIALS = 3;
/** How long a forgotten peer is not learned again. */
export const FORGOTTEN_MS = 10 * 60_000;
/** Forgotten peers remembered at once (the oldest go first). */
export const MAX_FORGOTTEN = 4096;

export type PeerPhase = 'disconnected' | 'connecting' | 'connected';
export type FailureKind = 'dial' | 'send' | 'ping';

/** What a caller publishes (peer.connected, ...) after a change. */
export type PeerTransition =
  | { type: 'connected'; peerId: string; address: string }
  | { type: 'disconnected'; peerId: string; reason: string }
  | { type: 'delinquent'; peerId: string; failures: number; reason: string }
  | { type: 'recovered'; peerId: string };

export interface PeerEntry {
  peerId: string;
  addresses: string[];
  /** From peers.yaml / discovery (dialled); false for peers that only dialled us. */
  known: boolean;
  /** In peers.yaml (operator-configured or persisted): never evicted, addresses never reordered by discovery. */
  configured: boolean;
  /** Connected at least once (either way) since it entered the table: a real peer, not only a record. */
  everConnected: boolean;
  /** Last time the peer was useful (added, connected, any success): eviction picks the oldest. */
  usefulAtMs: number;
  phase: PeerPhase;
  delinquent: boolean;
  consecutiveFailures: number;
  nextAttemptAt: number;
  backoffMs: number;
  /** Never dialled before this time (a penalty), whatever the backoff says. */
  heldUntilMs: number;
  latencyMs: number;
  connectedAddress: string;
  connectedSinceMs: number;
  /** Last time anything came from the peer (connect, a ping answered, a frame): the dialer closes a connection silent for long. */
  heardAtMs: number;
  counters: {
    framesSent: number; framesReceived: number; framesDropped: number;
    bytesSent: number; bytesReceived: number;
    /** Inbound frames dropped at the edge while the consumer had the peer muted. */
    framesMuted: number;
    dialFailures: number; sendFailures: number; pingFailures: number;
  };
}

export interface BackoffOptions {
  baseMs: number;
  maxMs: number;
  /** 0.2 → each delay is multiplied by a factor in [0.8, 1.2]. */
  jitter: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { baseMs: 500, maxMs: 30_000, jitter: 0.2 };

export interface PeerTableDeps {
  now: () => number;
  random: () => number;
  backoff: BackoffOptions;
  onTransition: (t: PeerTransition) => void;
}

function blank(peerId: string, addresses: string[], known: boolean, now: number): PeerEntry {
  return {
    peerId, addresses, known, configured: false, everConnected: false, usefulAtMs: now, phase: 'disconnected', delinquent: false, consecutiveFailures: 0,
    nextAttemptAt: 0, backoffMs: 0, heldUntilMs: 0, latencyMs: 0, connectedAddress: '', connectedSinceMs: 0, heardAtMs: 0,
    counters: { framesSent: 0, framesReceived: 0, framesDropped: 0, bytesSent: 0, bytesReceived: 0, framesMuted: 0, dialFailures: 0, sendFailures: 0, pingFailures: 0 },
  };
}

export class PeerTable {
  #peers = new Map<string, PeerEntry>();
  /** Learned peers forgotten after failed dials (or unseated), with when they may be learned again. */
  #forgotten = new Map<string, number>();
  #deps: PeerTableDeps;

  constructor(deps: PeerTableDeps) {
    this.#deps = deps;
  }

  set backoff(b: BackoffOptions) { this.#deps.backoff = b; }

  get(peerId: string): PeerEntry | undefined { return this.#peers.get(peerId); }
  all(): PeerEntry[] { return [...this.#peers.values()]; }
  get size(): number { return this.#peers.size; }

  /**
   * Adds or updates a peer to dial. Addresses are united, the ones already held first (a learned
   * address never goes before a known one), at most `maxAddresses`.
   */
  upsertKnown(peerId: string, addresses: readonly string[], maxAddresses = Infinity): PeerEntry {
    const e = this.#peers.get(peerId);
    if (!e) {
      const fresh = blank(peerId, [...new Set(addresses)].slice(0, maxAddresses), true, this.#deps.now());
      this.#peers.set(peerId, fresh);
      return fresh;
    }
    e.known = true;
    e.addresses = [...new Set([...e.addresses, ...addresses])].slice(0, Math.max(maxAddresses, e.configured ? e.addresses.length : 0));
    return e;
  }

  /** A dial to `address` failed: it goes last, so the next dial tries the others first. */
  demote(peerId: string, address: string): void {
    const e = this.#peers.get(peerId);
    if (!e || e.addresses.length < 2 || !e.addresses.includes(address)) return;
    e.addresses = [...e.addresses.filter((a) => a !== address), address];
  }

  /** Learned peers: known, not in peers.yaml. */
  learnedCount(): number {
    let n = 0;
    for (const e of this.#peers.values()) if (e.known && !e.configured) n++;
    return n;
  }

  /**
   * Forgets learned peers (never configured ones, never connected ones, never `keep`) until at
   * most `max` remain: those whose last dial failed first, then the least recently useful.
   * Returns the evicted peer ids.
   */
  evictLearned(max: number, keep: (peerId: string) => boolean): string[] {
    let over = this.learnedCount() - max;
    if (over <= 0) return [];
    const candidates = this.all()
      .filter((e) => e.known && !e.configured && e.phase === 'disconnected' && !keep(e.peerId))
      // Peers whose last dial failed go first (a fake peer never answers), then the least recently useful.
      .sort((a, b) => Number(b.consecutiveFailures > 0) - Number(a.consecutiveFailures > 0) || a.usefulAtMs - b.usefulAtMs);
    const evicted: string[] = [];
    for (const e of candidates) {
      if (over-- <= 0) break;
      this.#peers.delete(e.peerId);
      evicted.push(e.peerId);
    }
    return evicted;
  }

  /**
   * A dial to `peerId` failed: a learned peer (not in peers.yaml) that has never connected is
   * forgotten once UNPROVEN_DIALS dials to it failed, and not learned again for FORGOTTEN_MS.
   * Returns whether it was forgotten. The caller never asks this for a validator.
   */
  forgetUnproven(peerId: string): boolean {
    const e = this.#peers.get(peerId);
    if (!e || !e.known || e.configured || e.everConnected || e.phase !== 'disconnected' || e.counters.dialFailures < UNPROVEN_DIALS) return false;
    this.#peers.delete(peerId);
    this.#remember(peerId);
    return true;
  }

  /**
   * A validator a set change unseated (removed, or its member rotated to another peer id). Its
   * card was the only reason to dial it: a peer not in peers.yaml is forgotten as one that never
   * proved itself is (redialled on backoff for ever otherwise: `forgetUnproven` spares a peer that
   * once connected, and eviction only runs past max_learned_peers), also not learned again for
   * FORGOTTEN_MS (others still list it in their exchange, it was connected to them), and while
   * connected it stays, unknown, until it disconnects: a set change closes no connection. A
   * peers.yaml entry is the operator's and stays as it is. Returns whether it was dialled until now.
   */
  unseat(peerId: string): boolean {
    const e = this.#peers.get(peerId);
    if (e?.configured) return false;
    this.#remember(peerId);
    if (!e) return false;
    const was = e.known;
    e.known = false;
    if (e.phase !== 'connected') this.#peers.delete(peerId);
    return was;
  }

  /**
   * A peer a set change seated: dialled at once, whatever hold-off the peer exchange put on it as
   * a non-validator (a validator is never held off: until it expired we would not call a member the
   * quorum may need) or the backoff of its dials from before. Its failure count stays: a dead member is
   * still delinquent.
   */
  seated(peerId: string): void {
    this.#forgotten.delete(peerId);
    const e = this.#peers.get(peerId);
    if (!e) return;
    e.heldUntilMs = 0;
    e.nextAttemptAt = 0;
  }

  #remember(peerId: string): void {
    this.#forgotten.delete(peerId);
    if (this.#forgotten.size >= MAX_FORGOTTEN) this.#forgotten.delete(this.#forgotten.keys().next().value!);
    this.#forgotten.set(peerId, this.#deps.now() + FORGOTTEN_MS);
  }

  /** Whether a peer was forgotten (failed dials, or unseated) and may not be learned yet. */
  forgotten(peerId: string): boolean {
    const until = this.#forgotten.get(peerId);
    if (until === undefined) return false;
    if (until > this.#deps.now()) return true;
    this.#forgotten.delete(peerId);
    return false;
  }

  /** Replaces the set of known peers (a reload): unknown ones stay only while connected. */
  setKnown(peers: ReadonlyArray<{ peerId: string; addresses: readonly string[] }>): { added: string[]; removed: string[] } {
    const ids = new Set(peers.map((p) => p.peerId));
    const added = peers.filter((p) => !this.#peers.get(p.peerId)?.known).map((p) => p.peerId);
    for (const p of peers) {
      const e = this.upsertKnown(p.peerId, []);
      // peers.yaml is authoritative for its peers; a dial order learned from failures is kept.
      const next = [...new Set(p.addresses)];
      const same = e.configured && e.addresses.length === next.length && next.every((a) => e.addresses.includes(a));
      if (!same) e.addresses = next;
      e.configured = true;
    }
    const removed: string[] = [];
    for (const e of this.#peers.values()) {
      if (e.configured && !ids.has(e.peerId)) {
        e.configured = false;
        e.known = false;
        removed.push(e.peerId);
        if (e.phase !== 'connected') this.#peers.delete(e.peerId);
      }
    }
    return { added, removed };
  }

  /** Peers whose redial or probe is due. */
  due(): PeerEntry[] {
    const now = this.#deps.now();
    return this.all().filter((e) => e.known && e.phase === 'disconnected' && e.addresses.length > 0 && e.nextAttemptAt <= now && e.heldUntilMs <= now);
  }

  /** Not to be dialled before `untilMs` (a penalised peer: we hung up on it, we do not call it back). */
  holdOff(peerId: string, untilMs: number): void {
    const e = this.#peers.get(peerId);
    if (e) e.heldUntilMs = Math.max(e.heldUntilMs, untilMs);
  }

  connecting(peerId: string): void {
    const e = this.#peers.get(peerId);
    if (e && e.phase === 'disconnected') e.phase = 'connecting';
  }

  connected(peerId: string, address: string): void {
    const e = this.#peers.get(peerId) ?? this.#insert(peerId);
    const was = e.phase;
    e.phase = 'connected';
    e.everConnected = true;
    this.#forgotten.delete(peerId);
    e.connectedAddress = address;
    e.usefulAtMs = this.#deps.now();
    if (was !== 'connected') {
      e.connectedSinceMs = this.#deps.now();
      e.heardAtMs = e.connectedSinceMs;
      this.#deps.onTransition({ type: 'connected', peerId, address });
    }
    this.success(peerId);
  }

  disconnected(peerId: string, reason: string): void {
    const e = this.#peers.get(peerId);
    if (!e) return;
    const was = e.phase;
    e.phase = 'disconnected';
    e.connectedAddress = '';
    e.connectedSinceMs = 0;
    if (!e.known) { this.#peers.delete(peerId); }
    else this.#schedule(e);
    if (was === 'connected') this.#deps.onTransition({ type: 'disconnected', peerId, reason });
  }

  /** Something came from the peer (a frame): it is alive, whatever its pings do. */
  heard(peerId: string): void {
    const e = this.#peers.get(peerId);
    if (e) e.heardAtMs = this.#deps.now();
  }

  /** How long nothing has come from the peer (0 for a peer not in the table). */
  silentMs(peerId: string): number {
    const e = this.#peers.get(peerId);
    return e ? this.#deps.now() - e.heardAtMs : 0;
  }

  /** Any success (dial, send, ping) resets the counter and clears delinquency. */
  success(peerId: string, latencyMs?: number): void {
    const e = this.#peers.get(peerId);
    if (!e) return;
    if (latencyMs !== undefined) { e.latencyMs = latencyMs; e.heardAtMs = this.#deps.now(); }
    e.usefulAtMs = this.#deps.now();
    e.consecutiveFailures = 0;
    e.backoffMs = 0;
    e.nextAttemptAt = 0;
    if (e.delinquent) {
      e.delinquent = false;
      this.#deps.onTransition({ type: 'recovered', peerId });
    }
  }

  failure(peerId: string, kind: FailureKind, reason: string): void {
    const e = this.#peers.get(peerId);
    if (!e) return;
    switch (kind) {
      case 'dial': e.counters.dialFailures++; e.phase = e.phase === 'connecting' ? 'disconnected' : e.phase; break;
      case 'send': e.counters.sendFailures++; break;
      case 'ping': e.counters.pingFailures++; break;
      default: { const never: never = kind; throw new Error(`unknown failure kind ${String(never)}`); }
    }
    e.consecutiveFailures++;
    if (kind === 'dial') this.#schedule(e);
    if (!e.delinquent && e.consecutiveFailures >= DELINQUENT_AFTER) {
      e.delinquent = true;
      this.#deps.onTransition({ type: 'delinquent', peerId, failures: e.consecutiveFailures, reason: `${kind}: ${reason}` });
    }
  }

  /** Next redial: exponential in the consecutive failures, capped, with jitter. */
  #schedule(e: PeerEntry): void {
    const { baseMs, maxMs, jitter } = this.#deps.backoff;
    const exp = Math.min(maxMs, baseMs * 2 ** Math.min(30, Math.max(0, e.consecutiveFailures - 1)));
    const factor = 1 - jitter + 2 * jitter * this.#deps.random();
    e.backoffMs = Math.round(exp * factor);
    e.nextAttemptAt = this.#deps.now() + e.backoffMs;
  }

  #insert(peerId: string): PeerEntry {
    const e = blank(peerId, [], false, this.#deps.now());
    this.#peers.set(peerId, e);
    return e;
  }
}
