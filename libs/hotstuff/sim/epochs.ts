// The reconfiguration simulator: members that join, leave and rotate keys through consensus,
// one engine per epoch, over a seeded lossy network with virtual time. A leader of epoch e puts
// the scheduled change for e into a block; when that block commits the epoch ends (the engine's
// `epoch-ended`), each member of the next set starts its engine of e + 1 from that block, members
// added by the change bootstrap from the epoch-change proof (checked like a light client would:
// the commitQC verified against epoch e's keys), removed members retire and only answer laggards
// with that proof. A member that hears a message of an epoch it has ended answers with the proof,
// so a member cut off across a boundary catches up. Checked on every step:
//  - agreement and order: one block per height across all members, each member's commits extend
//    its tip by exactly one;
//  - epochs: every member ends each epoch at the same height, with the scheduled change;
//  - quorum of its own epoch: every commitQC a member commits with has a quorum of that epoch's
//    validators, each signature verified against that epoch's key of that validator;
//  - one signature: an honest identity signs at most one thing per (epoch, kind, view, phase);
//  - liveness: the final epoch is reached and every member of its set commits in it.
// The change's authorisation (approvals of a quorum) is libs/validators' and tested there; here a
// block's change must equal the schedule. Must never read the wall clock or Math.random.

import { bytesEqual, toHex } from '../bytes.ts';
import { createEngine, type HotStuffEngine } from '../engine.ts';
import type { EngineAction, EngineEvent } from '../events.ts';
import { genesisBlock } from '../genesis.ts';
import { QcVerifier } from '../qc.ts';
import { Phase, type Block, type ConsensusMessage, type Hash, type QuorumCert } from '../types.ts';
import { Prng } from './prng.ts';
import { EventQueue, type Timed } from './queue.ts';
import { DEFAULT_TIMEOUTS } from './scenario.ts';
import { contentOfRequest, createFakeScheme, type SimScheme } from './schemes.ts';
import { EpochCheckers, applyChanges, changeOf, changeTx, type SimChange, type Validator } from './epoch-checks.ts';

export interface ReconfigScenario {
  seed: number;
  /** Epoch 0's validators: m0 … m(n−1), identity i for mi. */
  n: number;
  /** changes[e]: the operations that end epoch e (in one reconfiguration). */
  changes: SimChange[][];
  /** How long a member runs an epoch before its leader views include the change. */
  changeAfterMs?: number;
  /** Messages are lost with this probability until `roughUntilMs`, then none are. */
  dropRate?: number;
  roughUntilMs?: number;
  /** One-way delays are uniform in [min, max] ms. */
  delayMs?: [number, number];
  /** A member cut off from everyone for a while (across a boundary, typically). */
  isolate?: { name: string; fromMs: number; toMs: number };
  /** Retired keys (removed members', rotated-out ones) keep signing NEW-VIEWs for the newest epoch. */
  removedKeepSigning?: boolean;
  /**
   * A Byzantine member that withholds: its proposals and QC announcements (the change's among
   * them, and the DECIDE that ends an epoch) reach only the members whose names sort in the first
   * half, in every epoch — some members cross each boundary only by catching up.
   */
  withholder?: string;
  /** Blocks every member of the final set must commit in the final epoch. */
  finalCommits?: number;
  maxTimeMs?: number;
}

export interface ReconfigResult {
  violations: string[];
  /** The epoch every member of the final set reached. */
  finalEpoch: number;
  /** Validators per epoch, as committed. */
  sizes: number[];
  /** Height of each epoch's last block. */
  lastHeights: number[];
  /** Per boundary: virtual ms from the first commit of the change to the first commit of the next epoch. */
  stallMs: number[];
  /** Messages refused as signed by a key that is not the sender's in that epoch (removed/rotated keys). */
  refusedOldKeys: number;
  /** Epoch-change proofs sent to members behind. */
  proofsSent: number;
  endMs: number;
  steps: number;
}

interface Proof {
  last: Block;
  qc: QuorumCert;
  suffix: Block[];
}

interface SimMember {
  name: string;
  engine: HotStuffEngine | null;
  /** The epoch it runs (or would: a retired member has no engine). */
  epoch: number;
  startedAt: number;
  timerGen: number;
  blocks: Map<string, Block>;
  tip: { height: number; hex: string };
  proofs: Map<number, Proof>;
  retired: boolean;
  lastProofTo: Map<string, number>;
}

type Ev = Timed &
  (
    | { k: 'msg'; to: string; from: string; m: ConsensusMessage }
    | { k: 'local'; to: string; epoch: number; e: EngineEvent }
    | { k: 'timer'; to: string; epoch: number; gen: number; view: number }
    | { k: 'fetch'; to: string; from: string; epoch: number; hash: Hash; above: number }
    | { k: 'join'; to: string; epoch: number; proof: Proof }
    | { k: 'byz-tick' }
  );

export function runReconfig(s: ReconfigScenario, scheme?: SimScheme): ReconfigResult {
  return new ReconfigSim(s, scheme).run();
}

class ReconfigSim {
  readonly s: ReconfigScenario;
  readonly chainId = 'sim-epochs';
  readonly scheme: SimScheme;
  readonly rng: Prng;
  readonly q = new EventQueue<Ev>();
  /** sets[e]: the validators of epoch e (known from the schedule; checked against what commits). */
  readonly sets: Validator[][];
  readonly members = new Map<string, SimMember>();
  readonly checks: EpochCheckers;
  readonly changeCommittedAt = new Map<number, number>();
  readonly firstCommitAt = new Map<number, number>();
  refusedOldKeys = 0;
  proofsSent = 0;
  now = 0;
  steps = 0;
  done = false;

  constructor(s: ReconfigScenario, scheme?: SimScheme) {
    this.s = s;
    this.sets = [Array.from({ length: s.n }, (_, i) => ({ name: `m${i}`, identity: i }))];
    for (const ops of s.changes) this.sets.push(applyChanges(this.sets.at(-1)!, ops));
    const identities = 1 + Math.max(...this.sets.flat().map((v) => v.identity));
    this.scheme = scheme ?? createFakeScheme(this.chainId, identities, s.seed);
    this.rng = new Prng(s.seed);
    const genesis = genesisBlock(this.chainId, this.scheme.hashBlock);
    this.checks = new EpochCheckers(this.scheme, genesis);
    for (const v of this.sets.flat()) {
      if (this.members.has(v.name)) continue;
      this.members.set(v.name, {
        name: v.name, engine: null, epoch: 0, startedAt: 0, timerGen: 0, blocks: new Map([[toHex(genesis.hash), genesis]]),
        tip: { height: 0, hex: toHex(genesis.hash) }, proofs: new Map(), retired: false, lastProofTo: new Map(),
      });
    }
    for (const v of this.sets[0]!) this.startEpoch(this.members.get(v.name)!, 0, genesis);
    if (s.removedKeepSigning) this.q.push({ at: 20, k: 'byz-tick' });
  }

  run(): ReconfigResult {
    const maxTime = this.s.maxTimeMs ?? 60_000;
    while (!this.done) {
      const ev = this.q.pop();
      if (!ev || ev.at > maxTime) {
        this.checks.violations.push(`liveness: ${ev ? `time budget ${maxTime} ms` : 'no events left'} at epoch ${this.finalEpoch()}`);
        break;
      }
      this.now = ev.at;
      this.handle(ev);
      this.checkDone();
    }
    const boundaries = this.s.changes.map((_, e) => {
      const a = this.changeCommittedAt.get(e);
      const b = this.firstCommitAt.get(e + 1);
      return a !== undefined && b !== undefined ? b - a : NaN;
    });
    return {
      violations: this.checks.violations,
      finalEpoch: this.finalEpoch(),
      sizes: this.sets.map((set) => set.length),
      lastHeights: this.s.changes.map((_, e) => this.checks.lastHeight.get(e) ?? -1),
      stallMs: boundaries,
      refusedOldKeys: this.refusedOldKeys,
      proofsSent: this.proofsSent,
      endMs: this.now,
      steps: this.steps,
    };
  }

  finalEpoch(): number {
    const last = this.s.changes.length;
    return Math.min(...this.sets[last]!.map((v) => this.members.get(v.name)!.epoch));
  }

  checkDone(): void {
    const last = this.s.changes.length;
    const need = this.s.finalCommits ?? 3;
    const lastEnd = this.checks.lastHeight.get(last - 1) ?? 0;
    for (const v of this.sets[last]!) {
      const m = this.members.get(v.name)!;
      if (m.epoch !== last || m.tip.height < lastEnd + need) return;
    }
    this.done = true;
  }

  // ------------------------------------------------------------------ epochs

  startEpoch(m: SimMember, epoch: number, root: Block): void {
    const set = this.sets[epoch]!;
    const self = set.findIndex((v) => v.name === m.name);
    m.epoch = epoch;
    m.startedAt = this.now;
    if (self < 0) {
      m.engine = null;
      m.retired = true;
      return;
    }
    const identities = set.map((v) => v.identity);
    const verify = (msg: Parameters<SimScheme['verify']>[0]): boolean => {
      const ok = msg.sender < identities.length && this.scheme.verifyAs(identities[msg.sender]!, msg);
      if (!ok) this.refusedOldKeys++;
      return ok;
    };
    m.engine = createEngine(
      { chainId: this.chainId, validatorCount: set.length, self, timeouts: DEFAULT_TIMEOUTS, ...(epoch > 0 ? { epoch, root } : {}) },
      { hashBlock: this.scheme.hashBlock, verify, endsEpoch: (b) => changeOf(b) !== null, checkBlock: (b) => this.blockError(b) },
    );
    this.feed(m, { type: 'start' });
  }

  /** Content: the tx root, and a change only for the block's own epoch and as scheduled. */
  blockError(b: Block): string | null {
    if (!bytesEqual(this.scheme.digest(...b.txs), b.header.txRoot)) return 'tx_root does not match';
    const change = changeOf(b);
    if (!change) return null;
    if (change.epoch !== b.header.epoch) return `change for epoch ${change.epoch} in a block of epoch ${b.header.epoch}`;
    if (JSON.stringify(change.ops) !== JSON.stringify(this.s.changes[change.epoch] ?? null)) return 'change is not the scheduled one';
    return null;
  }

  onEpochEnded(m: SimMember, a: Extract<EngineAction, { type: 'epoch-ended' }>): void {
    const proof: Proof = { last: a.last, qc: a.qc, suffix: a.suffix };
    m.proofs.set(a.epoch, proof);
    this.checks.onEpochEnded(m.name, a.epoch, a.last, this.s.changes[a.epoch]);
    const next = a.epoch + 1;
    if (next >= this.sets.length) {
      this.checks.violations.push(`epochs: epoch ${a.epoch} ended, but no change was scheduled for it`);
      return;
    }
    this.startEpoch(m, next, a.last);
    // Members the change adds bootstrap from the proof (an operator starts them with a checkpoint).
    for (const v of this.sets[next]!) {
      const j = this.members.get(v.name)!;
      if (j.epoch < next && !j.engine && !this.sets[a.epoch]!.some((o) => o.name === v.name)) {
        this.q.push({ at: this.now + this.delay(), k: 'join', to: v.name, epoch: a.epoch, proof });
      }
    }
  }

  /** A joining member checks the proof as a light client does before starting the next epoch. */
  join(m: SimMember, epoch: number, proof: Proof): void {
    if (m.epoch > epoch || m.engine) return;
    const set = this.sets[epoch]!;
    const qcs = new QcVerifier(set.length, new Uint8Array(32), (msg) => msg.sender < set.length && this.scheme.verifyAs(set[msg.sender]!.identity, msg), epoch);
    const checked = qcs.check(proof.qc);
    const chain = [proof.last, ...proof.suffix];
    let linked = chain.every((b, i) => i === 0 || bytesEqual(b.header.parentHash, chain[i - 1]!.hash));
    linked &&= bytesEqual(chain.at(-1)!.hash, proof.qc.blockHash) && chain.every((b) => bytesEqual(this.scheme.hashBlock(b.header), b.hash));
    if (!checked.ok || proof.qc.phase !== Phase.COMMIT || !linked || changeOf(proof.last) === null) {
      this.checks.violations.push(`join: ${m.name} was handed a proof of epoch ${epoch} that does not verify`);
      return;
    }
    for (const b of chain) m.blocks.set(toHex(b.hash), b);
    m.tip = { height: proof.last.header.height, hex: toHex(proof.last.hash) };
    m.proofs.set(epoch, proof);
    this.startEpoch(m, epoch + 1, proof.last);
  }

  // ------------------------------------------------------------------ events

  handle(ev: Ev): void {
    switch (ev.k) {
      case 'msg':
        return this.receive(this.members.get(ev.to)!, ev.from, ev.m);
      case 'local': {
        const m = this.members.get(ev.to)!;
        if (m.engine && m.epoch === ev.epoch) this.feed(m, ev.e);
        return;
      }
      case 'timer': {
        const m = this.members.get(ev.to)!;
        if (m.engine && m.epoch === ev.epoch && ev.gen === m.timerGen) this.feed(m, { type: 'timer-fired', view: ev.view });
        return;
      }
      case 'fetch':
        return this.serve(this.members.get(ev.to)!, ev.from, ev.epoch, ev.hash, ev.above);
      case 'join':
        return this.join(this.members.get(ev.to)!, ev.epoch, ev.proof);
      case 'byz-tick':
        this.removedSign();
        this.q.push({ at: this.now + 20, k: 'byz-tick' });
        return;
    }
  }

  receive(m: SimMember, from: string, msg: ConsensusMessage): void {
    const epoch = msg.type === 'proposal' ? msg.block.header.epoch : msg.epoch;
    if (epoch < m.epoch || (m.retired && m.proofs.has(epoch))) return this.sendProof(m, from, epoch);
    if (m.engine && epoch === m.epoch) this.feed(m, { type: 'message', message: msg });
  }

  /** Answer a member still in `epoch` with its end: the commitQC, which it can check and act on. */
  sendProof(m: SimMember, to: string, epoch: number): void {
    const proof = m.proofs.get(epoch);
    if (!proof) return;
    const key = `${to}:${epoch}`;
    if ((m.lastProofTo.get(key) ?? -Infinity) > this.now - 50) return;
    m.lastProofTo.set(key, this.now);
    const index = Math.max(0, this.sets[epoch]!.findIndex((v) => v.name === m.name));
    this.proofsSent++;
    this.transmit(m.name, [to], { type: 'qc', epoch, qc: proof.qc, sender: index });
  }

  feed(m: SimMember, e: EngineEvent): void {
    const engine = m.engine!;
    const epoch = m.epoch;
    const actions = engine.step(e);
    this.steps++;
    for (const a of actions) this.apply(m, epoch, a);
  }

  apply(m: SimMember, epoch: number, a: EngineAction): void {
    const set = this.sets[epoch]!;
    switch (a.type) {
      case 'persist':
        for (const b of a.blocks) m.blocks.set(toHex(b.hash), b);
        return;
      case 'sign': {
        const identity = set.find((v) => v.name === m.name)!.identity;
        const content = contentOfRequest(a.request);
        this.checks.onSign(m.name, identity, content);
        const signature = this.scheme.sign(identity, content);
        this.q.push({ at: this.now + 0.05, k: 'local', to: m.name, epoch, e: { type: 'signature-ready', requestId: a.requestId, signature } });
        return;
      }
      case 'send':
        return this.transmit(m.name, [set[a.to]!.name], a.message);
      case 'broadcast':
        return this.transmit(m.name, set.filter((v) => v.name !== m.name).map((v) => v.name), a.message);
      case 'commit':
        return this.onCommit(m, epoch, a.blocks, a.qc);
      case 'set-timer':
        m.timerGen++;
        this.q.push({ at: this.now + a.ms, k: 'timer', to: m.name, epoch, gen: m.timerGen, view: a.view });
        return;
      case 'fetch': {
        const server = set[a.from];
        if (!server || server.name === m.name) return;
        this.q.push({ at: this.now + this.delay(), k: 'fetch', to: server.name, from: m.name, epoch, hash: a.hash, above: a.aboveHeight });
        return;
      }
      case 'request-payload': {
        const txs: Uint8Array[] = a.empty ? [] : [new TextEncoder().encode(`tx|${m.name}|${epoch}|${a.view}`)];
        const ops = this.s.changes[epoch];
        if (!a.empty && ops && this.now - m.startedAt >= (this.s.changeAfterMs ?? 300)) txs.push(changeTx(epoch, ops));
        const txRoot = this.scheme.digest(...txs);
        const header = {
          chainId: this.chainId, epoch, height: a.parentHeight + 1, view: a.view, parentHash: a.parentHash,
          proposer: set.findIndex((v) => v.name === m.name), timestampMs: Math.max(Math.floor(this.now), a.parentTimestampMs + 1),
          txRoot, stateHash: this.scheme.digest(a.parentStateHash, txRoot),
        };
        const block = { header, hash: this.scheme.hashBlock(header), txs };
        this.q.push({ at: this.now + 0.05, k: 'local', to: m.name, epoch, e: { type: 'payload-ready', view: a.view, block } });
        return;
      }
      case 'epoch-ended':
        return this.onEpochEnded(m, a);
      case 'halted':
        this.checks.violations.push(`halted: ${m.name} at height ${a.height}`);
        return;
      default:
        return;
    }
  }

  onCommit(m: SimMember, epoch: number, blocks: Block[], qc: QuorumCert): void {
    m.tip = this.checks.onCommit(m.name, m.tip, epoch, this.sets[epoch]!, blocks, qc);
    for (const b of blocks) {
      m.blocks.set(toHex(b.hash), b);
      if (!this.firstCommitAt.has(epoch)) this.firstCommitAt.set(epoch, this.now);
      if (changeOf(b) && !this.changeCommittedAt.has(epoch)) this.changeCommittedAt.set(epoch, this.now);
    }
  }

  serve(server: SimMember, to: string, epoch: number, hash: Hash, above: number): void {
    const out: Block[] = [];
    for (let b = server.blocks.get(toHex(hash)); b && b.header.height > above && out.length < 64; b = server.blocks.get(toHex(b.header.parentHash))) {
      out.push(b);
    }
    if (out.length === 0 || this.cut(server.name, to)) return;
    const index = this.sets[epoch]!.findIndex((v) => v.name === server.name);
    this.q.push({ at: this.now + this.delay(), k: 'local', to, epoch, e: { type: 'blocks-fetched', blocks: out, qcs: [], ...(index >= 0 ? { from: index } : {}) } });
  }

  /**
   * Retired keys keep signing for the newest epoch: a removed member's (with its old index), and a
   * rotated member's old key (with the member's index) — a key stolen after its rotation. Each is
   * refused: the index names another key, or none, in that epoch.
   */
  removedSign(): void {
    const epoch = this.s.changes.length; // aim at the newest epoch
    const current = [...this.members.values()].find((x) => x.engine && x.epoch === epoch);
    const view = (current?.engine?.view ?? 1) + 1;
    const highQC = { phase: Phase.PREPARE, view: 0, blockHash: new Uint8Array(32), signers: [], signatures: [] };
    const targets = this.sets[epoch]!.map((v) => v.name);
    for (let e = 0; e + 1 < this.sets.length; e++) {
      if (!this.checks.lastHeight.has(e)) break; // epoch e has not ended anywhere yet
      this.sets[e]!.forEach((v, index) => {
        const after = this.sets[e + 1]!.find((x) => x.name === v.name);
        if (after && after.identity === v.identity) return;
        const claimed = after ? this.sets[epoch]!.findIndex((x) => x.name === v.name) : index;
        if (claimed < 0) return;
        const signature = this.scheme.sign(v.identity, { kind: 'new-view', epoch, view, highQC });
        this.transmit(v.name, targets.filter((n) => n !== v.name), { type: 'new-view', epoch, view, highQC, sender: claimed, signature });
      });
    }
  }

  // ------------------------------------------------------------------ network

  delay(): number {
    const [lo, hi] = this.s.delayMs ?? [1, 15];
    return this.rng.range(lo, hi);
  }

  cut(a: string, b: string): boolean {
    const iso = this.s.isolate;
    return !!iso && (a === iso.name || b === iso.name) && this.now >= iso.fromMs && this.now < iso.toMs;
  }

  transmit(from: string, to: string[], m: ConsensusMessage): void {
    const withheld = from === this.s.withholder && (m.type === 'proposal' || m.type === 'qc');
    const names = withheld ? [...this.members.keys()].sort() : [];
    for (const t of to) {
      if (this.cut(from, t)) continue;
      if (withheld && names.indexOf(t) >= names.length / 2) continue;
      if (this.now < (this.s.roughUntilMs ?? 0) && this.rng.chance(this.s.dropRate ?? 0)) continue;
      this.q.push({ at: this.now + this.delay(), k: 'msg', to: t, from, m });
    }
  }
}
