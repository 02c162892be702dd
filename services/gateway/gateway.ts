// One running gateway: the libp2p node with its peer table, dialer, peer exchange, consensus
// path and Attach point, built from Settings and rebuilt piecewise on reload (apply) without
// dropping connections. main.ts owns the process (flags, store client, gRPC, NATS); this owns
// the network. Must never close a connection because a config changed, except on stop().

import { networkList, type Peer } from '#libs/config/index.ts';
import { MAX_OP_ADDRESSES } from '#libs/crypto/index.ts';
import type { Logger } from '#libs/log/index.ts';
import type { Events } from '#libs/events/index.ts';
import { errorMessage } from '#libs/errors/index.ts';
import type { ValidatorSet } from '#libs/validators/index.ts';
import type { SetValidators } from '#libs/gen/btcfed/v1/gateway.pb.ts';
import { peerIdFromString } from '@libp2p/peer-id';
import { PeerState, type GatewayServiceListPeersResponse, type PeerStatus } from '#libs/gen/btcfed/v1/gateway.pb.ts';
import { AttachPoint } from './attach.ts';
import { ConsensusPath } from './consensus.ts';
import { Dialer } from './dialer.ts';
import { PeerExchange, publicKeyOf } from './exchange.ts';
import { Presence } from './presence.ts';
import type { GatewayMetrics } from './metrics.ts';
import { addListenAddresses, createNode, listenAddresses, type GatewayNode } from './node.ts';
import type { QueueLimits } from './outbound-queue.ts';
import { peerEventPublisher } from './peer-events.ts';
import { PeerTable, type BackoffOptions, type PeerEntry } from './peer-table.ts';
import { InboundGate, validatorHosts } from './inbound-gate.ts';
import { diffSettings, maxFrameBytes, type Settings } from './settings.ts';
import { toldSet } from './told-set.ts';

export interface GatewayOptions {
  /** --drop-private-addrs: refuse private addresses from peers even when conf.yaml allows them. */
  dropPrivate: boolean;
  backoff: BackoffOptions;
  /** Default: min(5 s, exchange interval). */
  pingIntervalMs?: number;
  streamWindowBytes?: number;
  queue?: Partial<QueueLimits>;
}

export interface GatewayDeps {
  log: Logger;
  metrics: GatewayMetrics;
  events?: Events | undefined;
  persist: (peers: Peer[]) => Promise<void>;
}

export interface ApplyReport { applied: string[]; needsRestart: string[] }

const dropPrivate = (s: Settings, o: GatewayOptions) => o.dropPrivate || !s.allowPrivate;
/** Connection slots kept from non-validators beyond one per validator. */
const SPARE_VALIDATOR_SLOTS = 4;
/**
 * Open connections one peer id may hold with us, validators included. An honest member holds one,
 * two for a moment when both ends dial at once or a restarted peer's old connection has not closed
 * yet; a peer that dials again and again without /p2p (libp2p then cannot find the connection it
 * has) or on purpose would otherwise hold one per dial, each a handshake and a slot.
 */
export const MAX_CONNECTIONS_PER_PEER = 4;
/**
 * How often libp2p's peer store is swept of peers this gateway neither knows (validators, the peer
 * table) nor is connected to. identify writes a record for every peer that connects and libp2p
 * drops one only when it is read more than six hours later: a stranger with a fresh key per
 * connection would grow it without bound. The gateway dials from its own table, never from the
 * peer store, so a stranger's record is of no use once it is gone.
 */
export const PEER_STORE_SWEEP_MS = 10_000;
const pingInterval = (s: Settings, o: GatewayOptions) => o.pingIntervalMs ?? Math.min(5_000, s.exchangeIntervalMs);
const queueLimits = (s: Settings, o: GatewayOptions): QueueLimits => ({
  maxFrames: o.queue?.maxFrames ?? 1024,
  maxBytes: o.queue?.maxBytes ?? Math.max(8 * 1024 * 1024, 2 * s.maxFrameBytes),
});

export class Gateway {
  readonly node: GatewayNode;
  readonly table: PeerTable;
  readonly path: ConsensusPath;
  readonly attach: AttachPoint;
  readonly exchange: PeerExchange;
  readonly presence: Presence;
  readonly dialer: Dialer;
  #settings: Settings;
  #deps: GatewayDeps;
  #stored = new Map<string, readonly string[]>();
  /** The set the consumer told (its current epoch's); until then conf.yaml's genesis set. */
  #told: ValidatorSet | undefined;
  /**
   * Whether the consumer told a set yet. Not `#told !== undefined`: a first set equal to conf.yaml's
   * leaves #told unset, and the set after it is a change.
   */
  #heardSet = false;
  #gauges: NodeJS.Timeout | undefined;
  #sweeper: NodeJS.Timeout | undefined;
  #sweeping = false;
  /** Addresses the told set's change cards gave its validators (none for genesis members). */
  #cardAddresses = new Map<string, readonly string[]>();
  #gate: InboundGate;
  /** Refused inbound connections by host since the last line about them (logged at most every 10 s). */
  #refusedSince = new Map<string, number>();
  #refusedLogAt = 0;
  #peerCapLogAt = 0;

  private constructor(parts: { node: GatewayNode; table: PeerTable; path: ConsensusPath; attach: AttachPoint; exchange: PeerExchange; presence: Presence; dialer: Dialer },
    settings: Settings, deps: GatewayDeps) {
    this.node = parts.node; this.table = parts.table; this.path = parts.path;
    this.attach = parts.attach; this.exchange = parts.exchange; this.presence = parts.presence; this.dialer = parts.dialer;
    this.#settings = settings;
    this.#deps = deps;
    this.#gate = new InboundGate(settings.inbound, [], Date.now());
  }

  get settings(): Settings { return this.#settings; }

  /**
   * The validator registry: the set of the consumer's current epoch once it told it
   * (SetValidators), else conf.yaml's genesis set (undefined before a genesis).
   */
  get validators(): ValidatorSet | undefined { return this.#told ?? this.#settings.validators; }

  /** A larger set's QCs make larger frames: the limit grows with the told set (never below conf.yaml's). */
  #frameLimit(s: Settings): number {
    return this.#told ? Math.max(s.maxFrameBytes, maxFrameBytes(s.maxBlockBytes, this.#told.n, s.paramSet)) : s.maxFrameBytes;
  }

  #isValidator(peerId: string): boolean { return this.validators?.hasPeer(peerId) ?? false; }

  /**
   * The consumer's current epoch's set (SetValidators): from now on its peers hold the validators'
   * slots, queues and indices; a member no longer in it is one more outside peer. Throws FedError
   * for a set the gateway cannot take (the attach point counts and logs it; nothing changes).
   */
  adoptValidators(req: SetValidators): void {
    const set = toldSet(req, this.#settings.peerId);
    // A member seated by a change is dialled where its card said, before anyone lists it in
    // peers.yaml (added to what peers.yaml says of it, never in its place).
    const dialable: string[] = [];
    for (const v of set.members) {
      if (v.addresses.length === 0 || v.peerId === this.#settings.peerId) continue;
      const known = this.table.get(v.peerId)?.addresses ?? [];
      if (v.addresses.some((a) => !known.includes(a))) dialable.push(v.name);
      this.table.upsertKnown(v.peerId, v.addresses, Math.max(MAX_OP_ADDRESSES, known.length));
    }
    if (dialable.length > 0) {
      this.#deps.log.info({ epoch: set.epoch, members: dialable }, 'validators dialled at the addresses their change carried');
      this.dialer.dialDue();
    }
    const before = this.validators;
    // After a restart in a later epoch the first set told is no change, however far it is from
    // genesis: members seated since then are not "added" (presence would report them absent).
    const first = !this.#heardSet;
    this.#heardSet = true;
    this.#cardAddresses = new Map(set.members.map((v) => [v.peerId, v.addresses]));
    if (before?.equals(set) && before.epoch === set.epoch) { this.#refreshGate(); return; }
    this.#told = set;
    this.#refreshGate();
    this.path.setValidators(set);
    this.path.maxFrameBytes = this.#frameLimit(this.#settings);
    this.#deps.metrics.epoch.set(set.epoch);
    this.#deps.metrics.validators.set(set.n);
    const gone = before?.members.filter((v) => !set.hasPeer(v.peerId)).map((v) => v.name) ?? [];
    const addedMembers = set.members.filter((v) => !before?.hasPeer(v.peerId));
    const added = addedMembers.map((v) => v.name);
    // Who is dialled follows the set: a member seated is dialled now, even one the peer exchange
    // held off as a stranger; one unseated (removed, or an old peer id after a rotation) is not
    // dialled any more unless peers.yaml lists it, else every departed member is redialled for ever.
    for (const v of addedMembers) if (v.peerId !== this.#settings.peerId) this.table.seated(v.peerId);
    const forgotten = before?.members.filter((v) => !set.hasPeer(v.peerId) && v.peerId !== this.#settings.peerId && this.table.unseat(v.peerId))
      .map((v) => v.peerId) ?? [];
    if (forgotten.length > 0) this.#deps.log.info({ epoch: set.epoch, peers: forgotten }, 'validators no longer in the set forgotten (not in peers.yaml): not dialled any more');
    // Those added: not heard taking part yet (presence.ts), absent until they are.
    this.presence.validatorsChanged(first ? [] : addedMembers.map((v) => v.peerId).filter((id) => id !== this.#settings.peerId));
    this.#deps.log.warn({ epoch: set.epoch, validators: set.n, selfIndex: set.selfIndex ?? null, added, gone }, 'validator set in force changed (told by consensus)');
    // A rotation moved this member to a new peer id: until this gateway runs with that key, the
    // others take its frames as an outsider's.
    const moved = set.members.find((v) => v.name === this.#settings.member && v.peerId !== this.#settings.peerId);
    if (moved) {
      this.#deps.log.error({ epoch: set.epoch, member: moved.name, seatedAs: moved.peerId, peerId: this.#settings.peerId },
        'this member is seated under another peer id: it takes no part until its gateway runs with that key (btcfed member rotate --apply, then restart the store and the gateway)');
    }
    this.dialer.dialDue();
  }

  /** Addresses peers.yaml holds for a peer, as of the last config version. */
  storedAddresses(peerId: string): readonly string[] | undefined { return this.#stored.get(peerId); }

  static async start(settings: Settings, opts: GatewayOptions, deps: GatewayDeps): Promise<Gateway> {
    const { log, metrics } = deps;
    const streamWindowBytes = opts.streamWindowBytes ?? 4 * 1024 * 1024;
    let gw: Gateway | undefined;
    const isValidator = (id: string): boolean => (gw ? gw.#isValidator(id) : settings.validators?.hasPeer(id) ?? false);
    const node = await createNode({
      privateKey: settings.privateKey, listen: settings.listen, dialTimeoutMs: settings.connectionTimeoutMs, streamWindowBytes,
      maxConnections: settings.maxConnections,
      admit: (peerId) => (gw ? gw.#admit(peerId) : true),
      accept: (host) => (gw ? gw.#accept(host) : true),
    });
    const table = new PeerTable({
      now: Date.now, random: Math.random, backoff: opts.backoff,
      onTransition: peerEventPublisher({ member: settings.member, log, metrics, events: deps.events }),
    });
    let path: ConsensusPath | undefined;
    let presence: Presence | undefined;
    const attach: AttachPoint = new AttachPoint({ log: log.child({ module: 'attach' }), metrics, peerId: settings.peerId, path: () => path!,
      adoptValidators: (req) => gw!.adoptValidators(req),
      onConsumer: () => presence?.consumerChanged(), absent: () => presence?.absent() ?? [],
      heard: (peerId, frame) => presence?.heard(peerId, frame) });
    presence = new Presence({ node, log: log.child({ module: 'presence' }), metrics, isValidator, attached: () => attach.takesPart, catchingUp: () => attach.catchingUp,
      tell: (peerId, present) => attach.presence(peerId, present), timeoutMs: settings.connectionTimeoutMs });
    metrics.validators.set(settings.validators?.n ?? 0);
    path = new ConsensusPath({ maxFrameBytes: settings.maxFrameBytes, queue: queueLimits(settings, opts), streamWindowBytes, openTimeoutMs: settings.connectionTimeoutMs },
      { node, table, log: log.child({ module: 'consensus-path' }), metrics, sink: attach });
    path.setValidators(settings.validators);
    const exchange = new PeerExchange({
      intervalMs: settings.exchangeIntervalMs, timeoutMs: settings.connectionTimeoutMs, dropPrivate: dropPrivate(settings, opts),
      networks: networkList(settings.learnedNetworks), maxNewPerInterval: 64, maxLearnedPeers: settings.maxLearnedPeers, bucket: { capacity: 10, perSecond: 0.5 },
    }, {
      node, table, log: log.child({ module: 'exchange' }), metrics, selfPeerId: settings.peerId,
      selfPublicKey: publicKeyOf(settings.peerId) ?? '', persist: deps.persist, stored: (id) => gw?.storedAddresses(id),
      storedLearned: () => (gw ? gw.#storedLearned() : 0),
      isValidator,
      hangUp: async (id) => { await node.hangUp(peerIdFromString(id)); },
    });
    const dialer = new Dialer({ connectionTimeoutMs: settings.connectionTimeoutMs, pingIntervalMs: pingInterval(settings, opts), maxParallelDials: 32, tickMs: 100 },
      { node, table, log: log.child({ module: 'dialer' }), metrics, selfPeerId: settings.peerId, isValidator });
    gw = new Gateway({ node, table, path, attach, exchange, presence, dialer }, settings, deps);
    gw.#wire();
    gw.#setPeers(settings.peers);
    await path.start();
    await exchange.start();
    await presence.start();
    dialer.start();
    log.info({ peerId: settings.peerId, listen: listenAddresses(node), maxFrameBytes: settings.maxFrameBytes,
      validators: settings.validators?.n ?? 0, selfIndex: settings.validators?.selfIndex ?? null }, 'libp2p node started');
    return gw;
  }

  #wire(): void {
    const { node, table, path, exchange, presence, dialer } = this;
    node.addEventListener('peer:connect', (evt) => {
      const id = evt.detail.toString();
      // A penalised stranger is refused by the connection gater, but a dial that was under way
      // when it was penalised (peer exchange's own requests dial too) can still land: hang up.
      if (!this.#isValidator(id) && exchange.penalised(id)) {
        this.#deps.metrics.connectionsRefused.inc({ reason: 'penalised' });
        void node.hangUp(evt.detail).catch(() => undefined);
        return;
      }
      const conn = node.getConnections(evt.detail)[0];
      table.connected(id, conn?.remoteAddr.toString() ?? '');
      path.connected(id);
      exchange.onConnected(id);
      presence.connected(id);
    });
    node.addEventListener('peer:disconnect', (evt) => {
      table.disconnected(evt.detail.toString(), 'connection closed');
      path.disconnected(evt.detail.toString());
      presence.disconnected(evt.detail.toString());
      dialer.dialDue();
    });
    node.addEventListener('peer:identify', (evt) => {
      const addrs = evt.detail.listenAddrs.map((m) => m.toString().replace(/\/p2p\/[^/]+$/, ''));
      exchange.onIdentified(evt.detail.peerId.toString(), addrs);
    });
    this.#refreshGauges();
    this.#gauges = setInterval(() => this.#refreshGauges(), 1000);
    this.#gauges.unref();
    this.#sweeper = setInterval(() => void this.#sweepPeerStore(), PEER_STORE_SWEEP_MS);
    this.#sweeper.unref();
  }

  /** One sweep of the peer store (PEER_STORE_SWEEP_MS); one at a time. */
  async #sweepPeerStore(): Promise<void> {
    if (this.#sweeping) return;
    this.#sweeping = true;
    const { metrics, log } = this.#deps;
    try {
      let kept = 0;
      let removed = 0;
      for (const p of await this.node.peerStore.all()) {
        const id = p.id.toString();
        if (this.#isValidator(id) || this.table.get(id) !== undefined || this.node.getConnections(p.id).length > 0) { kept++; continue; }
        await this.node.peerStore.delete(p.id);
        removed++;
      }
      // What the store held as this sweep began: after one sweep has cleared strangers, the next shows
      // only what is kept (validators, the peer table's, the connected) and newcomers since.
      metrics.peerStorePeers.set(kept + removed);
      if (removed > 0) metrics.peerStoreForgotten.inc({}, removed);
    } catch (err) {
      log.warn({ err: errorMessage(err) }, 'sweeping the libp2p peer store failed (tried again at the next sweep)');
    } finally {
      this.#sweeping = false;
    }
  }

  /** Peers in peers.yaml that are not validators. */
  #storedLearned(): number {
    let n = 0;
    for (const id of this.#stored.keys()) if (!this.#isValidator(id)) n++;
    return n;
  }

  /**
   * Whether an authenticated inbound connection may stay (or a dial start): no peer beyond
   * MAX_CONNECTIONS_PER_PEER connections; then validators always (their slots are reserved); anyone
   * else only while the others hold fewer than the budget minus the reserve, and never a penalised peer.
   */
  #admit(peerId: string): boolean {
    const { metrics, log } = this.#deps;
    const held = this.node.getConnections(peerIdFromString(peerId)).filter((c) => c.status === 'open').length;
    if (held >= MAX_CONNECTIONS_PER_PEER) {
      metrics.connectionsRefused.inc({ reason: 'peer_connections' });
      const now = Date.now();
      if (now - this.#peerCapLogAt >= 10_000) {
        this.#peerCapLogAt = now;
        log.warn({ peerId, held, validator: this.#isValidator(peerId) }, `connection refused: the peer already holds ${MAX_CONNECTIONS_PER_PEER} connections with us (logged at most every 10 s)`);
      }
      return false;
    }
    if (this.#isValidator(peerId)) return true;
    if (this.exchange.penalised(peerId)) {
      metrics.connectionsRefused.inc({ reason: 'penalised' });
      log.debug({ peerId }, 'connection refused: peer is penalised');
      return false;
    }
    const budget = this.#settings.maxConnections - (this.validators?.n ?? 0) - SPARE_VALIDATOR_SLOTS;
    let others = 0;
    for (const c of this.node.getConnections()) if (!this.#isValidator(c.remotePeer.toString())) others++;
    if (others < budget) return true;
    metrics.connectionsRefused.inc({ reason: 'budget' });
    log.warn({ peerId, others, budget }, 'connection refused: the budget for non-validators is full');
    return false;
  }

  /**
   * Whether a new inbound connection from `host` may go on to its handshake (inbound-gate.ts).
   * Refusals are counted by reason and logged at most every 10 s, with the hosts refused.
   */
  #accept(host: string): boolean {
    const now = Date.now();
    const verdict = this.#gate.admit(host, now);
    if (verdict === 'admit') return true;
    const { metrics, log } = this.#deps;
    metrics.connectionsRefused.inc({ reason: verdict });
    if (this.#refusedSince.has(host) || this.#refusedSince.size < 16) this.#refusedSince.set(host, (this.#refusedSince.get(host) ?? 0) + 1);
    if (now - this.#refusedLogAt >= 10_000) {
      log.warn({ reason: verdict, hosts: Object.fromEntries(this.#refusedSince), limits: this.#settings.inbound },
        'inbound connections refused before the handshake: over the rate for their host (peers.inbound_connections_per_host) or for hosts without a validator (peers.inbound_connections_unknown_hosts)');
      this.#refusedSince.clear();
      this.#refusedLogAt = now;
    }
    return false;
  }

  /** The gate's buckets follow where the validators are: peers.yaml's addresses and their change cards'. */
  #refreshGate(): void {
    this.#gate.setValidatorHosts(validatorHosts((this.validators?.members ?? [])
      .map((v) => [...(this.#stored.get(v.peerId) ?? []), ...(this.#cardAddresses.get(v.peerId) ?? [])])));
  }

  #refreshGauges(): void {
    const counts = { connected: 0, connecting: 0, disconnected: 0, delinquent: 0 };
    for (const e of this.table.all()) {
      if (e.delinquent) counts.delinquent++;
      counts[e.phase]++;
    }
    for (const [state, n] of Object.entries(counts)) this.#deps.metrics.peers.set({ state }, n);
    const { metrics } = this.#deps;
    const inbound = this.path.inbound;
    const depth = inbound.depth;
    metrics.inboundQueuedFrames.set(depth.frames);
    metrics.inboundQueuedBytes.set(depth.bytes);
    metrics.inboundPausedStreams.set(depth.pausedStreams);
    metrics.inboundMutedStreams.set(depth.mutedStreams);
    metrics.mutedPeers.set(inbound.mutes.size);
  }

  #setPeers(peers: readonly Peer[]): void {
    this.#stored = new Map(peers.map((p) => [p.peerId, p.addresses]));
    this.table.setKnown(peers);
    this.#refreshGate();
  }

  /** Applies a new config version live; what cannot change while running is reported. */
  async apply(next: Settings, opts: GatewayOptions): Promise<ApplyReport> {
    const change = diffSettings(this.#settings, next);
    const applied: string[] = [];
    const { log, metrics } = this.#deps;
    if (change.addedListen.length > 0) {
      try {
        await addListenAddresses(this.node, change.addedListen);
        applied.push('network.addresses (added)');
      } catch (err) {
        change.needsRestart.push('network.addresses (added)');
        log.error({ addresses: change.addedListen, err: errorMessage(err) }, 'cannot listen on the new addresses');
      }
    }
    if (change.peersChanged) { this.#setPeers(next.peers); this.dialer.dialDue(); applied.push('peers'); }
    // Once consensus told the epoch's set, conf.yaml's (genesis's) no longer decides who is a validator.
    if (change.validatorsChanged && !this.#told) { this.path.setValidators(next.validators); applied.push('validators'); }
    if (change.inboundChanged) { this.#gate.setLimits(next.inbound, Date.now()); applied.push('peers.inbound_connections_per_host/unknown_hosts'); }
    if (change.discoveryChanged) {
      this.exchange.dropPrivate = dropPrivate(next, opts);
      this.exchange.networks = networkList(next.learnedNetworks);
      this.exchange.maxLearnedPeers = next.maxLearnedPeers;
      applied.push('peers.allow_private_addresses/learned_networks/max_learned_peers');
    }
    if (change.frameLimitChanged) { this.path.maxFrameBytes = this.#frameLimit(next); applied.push('max_frame_bytes'); }
    if (change.timersChanged) {
      this.exchange.intervalMs = next.exchangeIntervalMs;
      this.exchange.timeoutMs = next.connectionTimeoutMs;
      this.dialer.connectionTimeoutMs = next.connectionTimeoutMs;
      this.dialer.pingIntervalMs = pingInterval(next, opts);
      this.path.openTimeoutMs = next.connectionTimeoutMs;
      applied.push('peers.exchange_interval/connection_timeout');
    }
    for (const field of change.needsRestart) metrics.unapplied.inc({ field });
    // Keep the running key and name: they did not change underneath the node.
    this.#settings = { ...next, privateKey: this.#settings.privateKey, peerId: this.#settings.peerId, member: this.#settings.member,
      listen: change.removedListen.length > 0 ? [...new Set([...next.listen, ...change.removedListen])] : next.listen };
    if (change.validatorsChanged || change.peersChanged) this.#refreshGate();
    // conf.yaml's set, before any is told, is no epoch change: what is held for those it lost goes.
    if (change.validatorsChanged && !this.#told) this.presence.validatorsChanged([]);
    return { applied, needsRestart: change.needsRestart };
  }

  status(): GatewayServiceListPeersResponse {
    return {
      peers: this.table.all().map((e) => this.#peerStatus(e)).sort((a, b) => (a.peerId < b.peerId ? -1 : 1)),
      peerId: this.#settings.peerId,
      listenAddresses: listenAddresses(this.node),
      refusedFrames: this.path.inbound.refused + this.path.inbound.outsideDropped + this.path.inbound.mutedDropped,
      maxFrameBytes: this.path.maxFrameBytes,
      attached: this.attach.attached,
    };
  }

  #peerStatus(e: PeerEntry): PeerStatus {
    const v = this.validators?.byPeer(e.peerId);
    const state = e.delinquent ? PeerState.PEER_STATE_DELINQUENT
      : e.phase === 'connected' ? PeerState.PEER_STATE_CONNECTED
        : e.phase === 'connecting' ? PeerState.PEER_STATE_CONNECTING : PeerState.PEER_STATE_DISCONNECTED;
    return {
      peerId: e.peerId, state, addresses: [...e.addresses], connectedAddress: e.connectedAddress,
      isValidator: v !== undefined, validatorIndex: v?.index ?? 0, latencyMs: e.latencyMs,
      consecutiveFailures: e.consecutiveFailures, ...e.counters,
      connectedSinceMs: e.connectedSinceMs, queuedFrames: this.path.queued(e.peerId),
      mutedUntilMs: this.path.inbound.mutes.untilMs(e.peerId), inboundQueuedFrames: this.path.inbound.queuedFrom(e.peerId),
    };
  }

  async stop(): Promise<void> {
    clearInterval(this.#gauges);
    clearInterval(this.#sweeper);
    this.dialer.stop();
    this.attach.close();
    await this.exchange.stop();
    this.presence.stop();
    await this.path.stop();
    await this.node.stop();
  }
}
