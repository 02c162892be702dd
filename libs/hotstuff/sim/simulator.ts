// The deterministic simulator: a seeded Prng, virtual time and one event queue drive every
// member's engine; actions become simulated disk writes, signatures, network sends, timers
// and fetches. The safety checkers run on every step, liveness is judged after the heal.
// The same scenario and seed always give the same trace (and trace hash).
// Must never read the wall clock or Math.random.

import { toHex } from '../bytes.ts';
import type { EngineAction, EngineConfig, EngineEvent } from '../events.ts';
import { genesisQC } from '../genesis.ts';
import { quorumSize, roundRobinLeader } from '../quorum.ts';
import { Phase, type ConsensusMessage, type Hash, type Proposal, type Vote } from '../types.ts';
import { ForkingLeader, doubleVotes, equivocate } from './byzantine.ts';
import { Checkers, type Violation } from './checkers.ts';
import { boot, buildBlock, genesisFor, newMember, serveFetch, type Member } from './members.ts';
import { DEFAULT_NETWORK, Network, messageView } from './network.ts';
import { Prng } from './prng.ts';
import { EventQueue, type Timed } from './queue.ts';
import { DEFAULT_TIMEOUTS, healTime, identities, isHonestIdentity, type Scenario } from './scenario.ts';
import { contentOfRequest, createFakeScheme, type SimScheme } from './schemes.ts';
import { Trace, describeActions, describeEvent } from './trace.ts';

/** From a member's crash (or restart) to the others hearing of it from its gateway. */
export const PRESENCE_DELAY_MS = 20;

type SimEvent = Timed &
  (
    | { k: 'msg'; to: number; from: number; m: ConsensusMessage }
    | { k: 'local'; to: number; epoch: number; e: EngineEvent }
    | { k: 'timer'; to: number; epoch: number; gen: number; view: number }
    | { k: 'fetch'; to: number; from: number; hash: Hash; above: number; view: number }
    | { k: 'crash'; to: number; announced: boolean }
    | { k: 'restart'; to: number; announced: boolean }
    | { k: 'heal' }
    | { k: 'heartbeat'; to: number; epoch: number; gen: number }
    | { k: 'work'; to: number }
  );

export interface SimOptions {
  scheme?: SimScheme;
  /** Keep a readable line per step (slower); the hash is always computed. */
  trace?: boolean;
}

export interface SimStats {
  messages: number;
  dropped: number;
  rejections: Record<string, number>;
  evidence: number;
  signatures: number;
}

export interface SimResult {
  violations: Violation[];
  steps: number;
  endMs: number;
  /** Committed height per instance. */
  heights: number[];
  maxView: number;
  livenessMet: boolean;
  /** Views the highest honest member moved past the heal before liveness was met. */
  viewsAfterHeal: number;
  traceHash: string;
  trace: string[];
  stats: SimStats;
}

const DEFAULT_LIVENESS = { commits: 2, views: 40 };

/**
 * The 'no-lock' mutant's test, outside the engine: the proposal is one safeNode refuses — its
 * justify is no newer than the member's lock and its block does not extend the locked block (as far
 * as the member's tree shows). The engine itself has no switch for it.
 */
function ignoresLock(m: Member, p: Proposal): boolean {
  const engine = m.engine;
  if (!engine) return false;
  const locked = engine.safety.lockedQC;
  if (p.justify.view > locked.view) return false;
  const lockedHex = toHex(locked.blockHash);
  for (let b = engine.block(toHex(p.block.header.parentHash)); b; b = engine.block(toHex(b.header.parentHash))) {
    if (toHex(b.hash) === lockedHex) return false;
    if (b.header.height === 0) break;
  }
  return true;
}

export function runScenario(s: Scenario, opts: SimOptions = {}): SimResult {
  return new Simulation(s, opts).run();
}

class Simulation {
  readonly s: Scenario;
  readonly chainId: string;
  readonly scheme: SimScheme;
  readonly rng: Prng;
  readonly net: Network;
  readonly q = new EventQueue<SimEvent>();
  readonly members: Member[];
  readonly byIdentity: Member[][];
  readonly checkers: Checkers;
  readonly trace: Trace;
  readonly configs: EngineConfig[];
  readonly stats: SimStats = { messages: 0, dropped: 0, rejections: {}, evidence: 0, signatures: 0 };
  readonly signDelay: number;
  readonly liveness;
  readonly forkers = new Map<number, ForkingLeader>();
  /** Idle views: each member's heartbeat generation (a commit starts a new one). */
  readonly workGen = new Map<number, number>();
  now = 0;
  steps = 0;
  healed = false;
  healView = 0;
  maxHonestView = 1;
  done = false;
  livenessMet = false;

  constructor(s: Scenario, opts: SimOptions) {
    this.s = s;
    this.chainId = s.chainId ?? 'sim';
    this.scheme = opts.scheme ?? createFakeScheme(this.chainId, s.n, s.seed);
    this.rng = new Prng(s.seed);
    const heal = healTime(s);
    this.net = new Network({ ...DEFAULT_NETWORK, ...s.network }, this.rng, s.partitions ?? [], s.cuts ?? [], s.rounds ?? []);
    const genesis = genesisFor(this.chainId, this.scheme);
    this.checkers = new Checkers((id) => isHonestIdentity(s, id), genesis);
    this.trace = new Trace(opts.trace ?? false);
    this.signDelay = s.signDelayMs ?? 0.05;
    this.liveness = s.liveness === false ? null : (s.liveness ?? DEFAULT_LIVENESS);
    const ids = identities(s);
    this.members = ids.map((identity, id) =>
      newMember(id, identity, s.byzantine?.[identity] ?? null, isHonestIdentity(s, identity), genesis),
    );
    this.byIdentity = Array.from({ length: s.n }, () => []);
    for (const m of this.members) this.byIdentity[m.identity]!.push(m);
    const rounds = s.rounds ?? [];
    const leaderOf = rounds.length > 0 ? (v: number) => (v >= 1 && v <= rounds.length ? rounds[v - 1]!.leader : roundRobinLeader(v, s.n))
      : s.leaders === 'round-robin' ? (v: number) => roundRobinLeader(v, s.n) : undefined;
    this.configs = this.members.map((m) => ({
      chainId: this.chainId,
      validatorCount: s.n,
      self: m.identity,
      timeouts: s.timeouts ?? DEFAULT_TIMEOUTS,
      ...(leaderOf ? { leaderOf } : {}),
      ...(s.idle ? { waitForWork: true } : {}),
    }));
    for (const w of s.idle?.work ?? []) this.q.push({ at: w.atMs, k: 'work', to: w.instance });
    for (const m of this.members) {
      if (m.byzantine === 'forking-leader') this.forkers.set(m.id, new ForkingLeader(m, this.scheme, quorumSize(s.n), genesisQC(genesis)));
    }
    for (const c of s.crashes ?? []) {
      this.q.push({ at: c.atMs, k: 'crash', to: c.instance, announced: !c.unannounced });
      if (c.restartAtMs !== undefined) this.q.push({ at: c.restartAtMs, k: 'restart', to: c.instance, announced: !c.unannounced });
    }
    if (rounds.length === 0) this.q.push({ at: heal, k: 'heal' });
  }

  run(): SimResult {
    for (const m of this.members) if (m.byzantine !== 'silent') this.start(m);
    const maxTime = this.s.maxTimeMs ?? 120_000;
    const maxSteps = this.s.maxSteps ?? 2_000_000;
    while (!this.done) {
      const ev = this.q.pop();
      if (!ev || ev.at > maxTime || this.steps >= maxSteps) {
        this.finish(ev ? `budget exhausted at ${ev.at.toFixed(0)} ms / ${this.steps} steps` : 'no events left');
        break;
      }
      this.now = ev.at;
      this.handle(ev);
    }
    return {
      violations: this.checkers.violations,
      steps: this.steps,
      endMs: this.now,
      heights: this.members.map((m) => this.checkers.committedHeight(m.id)),
      maxView: this.maxHonestView,
      livenessMet: this.livenessMet,
      viewsAfterHeal: this.maxHonestView - this.healView,
      traceHash: this.trace.hash(),
      trace: this.trace.lines,
      stats: this.stats,
    };
  }

  finish(why: string): void {
    this.done = true;
    if (this.liveness && !this.livenessMet && this.s.judgeLiveness !== false) this.checkers.onLiveness(`${why}; healed=${this.healed} heal view ${this.healView}`);
  }

  start(m: Member): void {
    m.epoch++;
    boot(m, this.configs[m.id]!, this.scheme);
    this.feed(m, { type: 'start' });
    if (this.s.idle) this.setWork(m, false);
  }

  /** Idle views: the member's work level, told to its engine; no work arms the next heartbeat. */
  setWork(m: Member, available: boolean): void {
    const next = (this.workGen.get(m.id) ?? 0) + 1;
    this.workGen.set(m.id, next);
    if (!available) this.q.push({ at: this.now + this.s.idle!.heartbeatMs, k: 'heartbeat', to: m.id, epoch: m.epoch, gen: next });
    if (m.engine) this.q.push({ at: this.now, k: 'local', to: m.id, epoch: m.epoch, e: { type: 'work', available } });
  }

  handle(ev: SimEvent): void {
    switch (ev.k) {
      case 'msg': {
        const m = this.members[ev.to]!;
        if (!m.engine) return;
        if (m.byzantine === 'double-voter' || (m.honest && this.s.mutation === 'double-vote')) this.sendDoubleVotes(m, ev.m);
        if (m.honest && this.s.mutation === 'no-lock' && ev.m.type === 'proposal' && ignoresLock(m, ev.m)) this.sendLockFreeVote(m, ev.m);
        const forker = this.forkers.get(m.id);
        if (forker) for (const a of forker.observe(ev.m)) this.deliverAll(m, this.others(m), a);
        return this.feed(m, { type: 'message', message: ev.m });
      }
      case 'local': {
        const m = this.members[ev.to]!;
        if (m.engine && (ev.epoch === m.epoch || ev.epoch < 0)) this.feed(m, ev.e);
        return;
      }
      case 'timer': {
        const m = this.members[ev.to]!;
        if (m.engine && ev.epoch === m.epoch && ev.gen === m.timerGen) this.feed(m, { type: 'timer-fired', view: ev.view });
        return;
      }
      case 'fetch':
        return this.serve(ev.to, ev.from, ev.hash, ev.above, ev.view);
      case 'crash': {
        const m = this.members[ev.to]!;
        m.engine = null;
        m.epoch++;
        this.trace.note(this.now, m.id, 'CRASH');
        if (ev.announced) this.announce(m.id, true);
        return;
      }
      case 'restart': {
        const m = this.members[ev.to]!;
        if (m.engine || m.byzantine === 'silent') return;
        this.trace.note(this.now, m.id, 'RESTART from disk');
        this.start(m);
        if (ev.announced) this.announce(m.id, false);
        return;
      }
      case 'heal':
        return this.heal();
      case 'heartbeat': {
        const m = this.members[ev.to]!;
        if (m.engine && ev.epoch === m.epoch && ev.gen === this.workGen.get(m.id)) this.setWork(m, true);
        return;
      }
      case 'work': {
        // A client's transaction: at the member it reached and at the leaders it hands it to.
        const m = this.members[ev.to]!;
        if (!m.engine) return;
        const view = m.engine.view;
        const to = new Set([m.identity, m.engine.leaderOf(view), m.engine.leaderOf(view + 1)]);
        for (const x of this.members) if (x.engine && to.has(x.identity)) this.setWork(x, true);
        return;
      }
    }
  }

  /** The others hear, PRESENCE_DELAY_MS on, that instance `id`'s consensus is gone (or back). */
  announce(id: number, absent: boolean): void {
    const peer = this.members[id]!.identity;
    for (const x of this.members) {
      if (x.id !== id) this.q.push({ at: this.now + PRESENCE_DELAY_MS, k: 'local', to: x.id, epoch: -1, e: { type: 'peer-absent', peer, absent } });
    }
  }

  heal(): void {
    if (this.healed) return;
    this.healed = true;
    this.healView = this.maxHonestView;
    for (const m of this.members) m.commitsAfterHeal = 0;
    this.trace.note(this.now, -1, `HEAL at view ${this.healView}`);
  }

  feed(m: Member, e: EngineEvent): void {
    const actions = m.engine!.step(e);
    this.steps++;
    this.checkers.step = this.steps;
    this.checkers.now = this.now;
    this.trace.step(this.now, m.id, e, actions);
    if (this.trace.enabled) this.trace.line(this.now, m.id, describeEvent(e), describeActions(actions));
    for (const a of actions) this.apply(m, a);
    this.checkLiveness();
  }

  apply(m: Member, a: EngineAction): void {
    switch (a.type) {
      case 'persist':
        m.disk.safety = a.safety;
        for (const b of a.blocks) m.disk.blocks.set(toHex(b.hash), b);
        for (const h of a.dropped) m.disk.blocks.delete(toHex(h));
        return;
      case 'sign': {
        const r = a.request;
        if (r.kind === 'vote') this.checkers.onVoteRequest(m.id, m.identity, r.view, r.phase);
        const signature = this.scheme.sign(m.identity, contentOfRequest(r));
        this.stats.signatures++;
        this.q.push({ at: this.now + this.signDelay, k: 'local', to: m.id, epoch: m.epoch, e: { type: 'signature-ready', requestId: a.requestId, signature } });
        return;
      }
      case 'send':
        return this.transmit(m, this.byIdentity[a.to]!.filter((x) => x !== m).map((x) => x.id), a.message);
      case 'broadcast':
        return this.transmit(m, this.others(m), a.message);
      case 'commit':
        m.disk.committed = a.blocks[a.blocks.length - 1]!;
        for (const b of a.blocks) m.disk.blocks.set(toHex(b.hash), b);
        this.checkers.onCommit(m.id, m.identity, a.blocks);
        m.commitsAfterHeal += a.blocks.length;
        if (this.s.idle) this.setWork(m, false); // what it held is committed (the engine cleared its level)
        return;
      case 'set-timer':
        m.timerGen++;
        this.q.push({ at: this.now + a.ms, k: 'timer', to: m.id, epoch: m.epoch, gen: m.timerGen, view: a.view });
        return;
      case 'fetch':
        return this.requestFetch(m, a.from, a.hash, a.aboveHeight);
      case 'request-payload': {
        const block = buildBlock(this.scheme, this.chainId, m.identity, `m${m.id}`, a.view, a.parentHash, a.parentHeight, a.parentStateHash, Math.max(this.now, a.parentTimestampMs + 1));
        this.q.push({ at: this.now + this.signDelay, k: 'local', to: m.id, epoch: m.epoch, e: { type: 'payload-ready', view: a.view, block } });
        return;
      }
      case 'rejected':
        this.stats.rejections[a.reason] = (this.stats.rejections[a.reason] ?? 0) + 1;
        return;
      case 'evidence':
        this.stats.evidence++;
        return;
      case 'view-changed':
        if (m.honest && a.view > this.maxHonestView) this.onHonestView(a.view);
        return;
      case 'halted':
        return this.checkers.onHalt(m.id, m.identity, `conflicting commit at height ${a.height}`);
    }
  }

  onHonestView(view: number): void {
    this.maxHonestView = view;
    const rounds = this.s.rounds?.length ?? 0;
    if (rounds > 0 && view > rounds) this.heal();
  }

  checkLiveness(): void {
    if (!this.healed || !this.liveness) return;
    if (this.maxHonestView > this.healView + this.liveness.views) {
      return this.finish(`no commits within ${this.liveness.views} views after the heal`);
    }
    for (const m of this.members) if (m.honest && m.engine && m.commitsAfterHeal < this.liveness.commits) return;
    this.livenessMet = true;
    this.done = true;
  }

  transmit(from: Member, targets: number[], message: ConsensusMessage): void {
    // A stalling leader proposes and collects the votes, then never announces a QC: its views
    // are alive (members voted) and still time out.
    if (from.byzantine === 'stalling-leader' && message.type === 'qc') return;
    if (from.byzantine === 'equivocator' && message.type === 'proposal') {
      for (const o of equivocate(from, message, targets, this.scheme)) this.deliverAll(from, o.to, o.message);
      return;
    }
    const forker = this.forkers.get(from.id);
    if (forker && message.type === 'proposal') return this.deliverAll(from, targets, forker.fork(message) ?? message);
    this.deliverAll(from, targets, message);
  }

  deliverAll(from: Member, targets: number[], message: ConsensusMessage): void {
    const view = messageView(message);
    for (const to of targets) {
      this.stats.messages++;
      if (!this.net.connected(from.id, to, this.now, view)) {
        this.stats.dropped++;
        continue;
      }
      const delays = this.net.delays(!this.healed);
      if (delays.length === 0) this.stats.dropped++;
      for (const d of delays) this.q.push({ at: this.now + d, k: 'msg', to, from: from.id, m: message });
    }
  }

  others(m: Member): number[] {
    return this.members.filter((x) => x !== m).map((x) => x.id);
  }

  /** The 'no-lock' mutant: the PREPARE vote its engine refused because of its lock, sent anyway. */
  sendLockFreeVote(m: Member, p: Proposal): void {
    const signature = this.scheme.sign(m.identity, { kind: 'vote', epoch: 0, phase: Phase.PREPARE, view: p.view, blockHash: p.block.hash });
    const vote: Vote = { type: 'vote', epoch: 0, phase: Phase.PREPARE, view: p.view, blockHash: p.block.hash, sender: m.identity, signature };
    this.deliverAll(m, this.byIdentity[p.sender]!.filter((x) => x !== m).map((x) => x.id), vote);
  }

  sendDoubleVotes(m: Member, msg: ConsensusMessage): void {
    for (const v of doubleVotes(m, msg, this.scheme)) {
      const leader = m.engine?.leaderOf(v.view) ?? this.configs[m.id]!.leaderOf?.(v.view) ?? roundRobinLeader(v.view, this.s.n);
      this.deliverAll(m, this.byIdentity[leader]!.filter((x) => x !== m).map((x) => x.id), v);
    }
  }

  requestFetch(m: Member, identity: number, hash: Hash, above: number): void {
    const server = this.byIdentity[identity]!.find((x) => x !== m);
    if (!server) return;
    const view = m.engine?.view ?? 0;
    if (!this.net.connected(m.id, server.id, this.now, view)) return;
    for (const d of this.net.delays(!this.healed)) this.q.push({ at: this.now + d, k: 'fetch', to: server.id, from: m.id, hash, above, view });
  }

  serve(serverId: number, requester: number, hash: Hash, above: number, view: number): void {
    const server = this.members[serverId]!;
    if (!server.engine) return;
    const blocks = serveFetch(server.disk, hash, above);
    if (blocks.length === 0 || !this.net.connected(serverId, requester, this.now, view)) return;
    for (const d of this.net.delays(!this.healed)) {
      this.q.push({ at: this.now + d, k: 'local', to: requester, epoch: -1, e: { type: 'blocks-fetched', blocks, qcs: [] } });
    }
  }
}
