// Model-based testing: traces of spec/hotstuff.qnt (quint run --mbt --out-itf) replayed step by
// step into libs/hotstuff's engine, one engine per honest member, driven the way
// libs/hotstuff/sim/test-kit.ts drives it (signatures answered at once, fetches answered with the
// blocks the spec knows). After every step of member i, engine i's view, lockedQC, prepareQC (the
// highQC), committed tip and every message it signed must equal the trace's. Every signature an
// engine asks for also goes through its member's signer rules (services/signer/rules.ts, with a
// safety state that outlives the engine's restarts, as the signer process does), which must sign
// (or return the same signature again) and never refuse an honest engine.
// docs/specification.md says what is compared and what is not.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { CHAIN, Kit, type Driven } from '../libs/hotstuff/sim/test-kit.ts';
import { quintTraces } from '../scripts/spec.ts';
import { itfValue as val, type Itf } from './support/itf.ts';
import { QcVerifier, qcRef } from '../libs/hotstuff/qc.ts';
import { roundRobinLeader } from '../libs/hotstuff/quorum.ts';
import * as signerRules from '../services/signer/rules.ts';
import { initialSafety, type RuleContext, type SignerSafety } from '../services/signer/rules.ts';
import { toHex } from '../libs/hotstuff/bytes.ts';
import type { Block, QuorumCert, Phase } from '../libs/hotstuff/types.ts';
import type { EngineAction, SignRequest } from '../libs/hotstuff/events.ts';

const root = path.join(import.meta.dirname, '..');
const N = 4;
const HONEST = [0, 1, 2];

// ------------------------------------------------------------------ ITF values

interface SQC { epoch: number; phase: number; view: number; block: number }
interface SBlock { id: number; parent: number; height: number; epoch: number; view: number; proposer: number; change: boolean }
interface SMsg { kind: string; sender: number; epoch: number; view: number; phase: number; block: number; justify: SQC }
interface SReplica { epoch: number; root: number; view: number; lockedQC: SQC; prepareQC: SQC; committed: number[]; halted: boolean }
interface SState { st: Map<number, SReplica>; blocks: Map<number, SBlock>; msgs: SMsg[]; action: string; picks: Record<string, { tag: string; value: any }> }

function states(file: string, text: string): SState[] {
  const t = JSON.parse(text) as { states: Record<string, Itf>[] };
  return t.states.map((s) => {
    const picks = val(s['mbt::nondetPicks']) as SState['picks'];
    return { st: val(s.st), blocks: val(s.blocks), msgs: val(s.msgs), action: val(s['mbt::actionTaken']) as string, picks };
  }).map((s, k) => (s.st instanceof Map ? s : assert.fail(`${file}: state ${k} has no st`)));
}

// ------------------------------------------------------------------ the replay

/** What the replay saw besides matching states. */
interface Tally { refusedUnsafe: number; equivocationAfterRefusal: number; suspicionNewViews: number }

type KitClass = typeof Kit;
/** The signer's rules the replay judges requests with (a broken copy in one test below). */
type Rules = Pick<typeof signerRules, 'decide' | 'applySigned'>;

class Replay {
  readonly kit: Kit;
  readonly tally: Omit<Tally, 'suspicionNewViews'> = { refusedUnsafe: 0, equivocationAfterRefusal: 0 };
  /** Votes the spec signs and the engine rightly does not: a second proposal of a leader in a view, refused as equivocation (above). */
  readonly excused = new Map<number, Set<string>>(HONEST.map((i) => [i, new Set<string>()]));
  /** Engines restored from their durable record. */
  restarts = 0;
  /** Engines started afresh at a checkpoint (the spec's rejoin). */
  rejoins = 0;
  /** NEW-VIEWs signed beyond the spec's because of leader suspicion, as "member:key" (the tally's count). */
  readonly suspicionNewViews = new Set<string>();
  /** Views in which a member was shown a proposal the spec refuses (its engine saw that leader's proposal). */
  readonly shownRefused = new Set<string>();
  readonly blocks: Map<number, Block>;
  readonly engines = new Map<number, Driven>();
  /** The payload each leader's engine asked for, by view. */
  readonly payloadAsked = new Map<number, number>();
  /** Everything each engine asked its signer to sign, as "vote/view/phase/block", "newview/view/qc view", "proposal/view/block". */
  readonly signed = new Map<number, Set<string>>(HONEST.map((i) => [i, new Set<string>()]));
  /**
   * NEW-VIEW targets each engine claimed because it suspected a view's leader (suspicion.ts, a
   * view given up at once): the spec does not model suspicion — giving up a view only sends a
   * NEW-VIEW, which a member may always do — so these are the one kind of message the engine may
   * sign beyond the spec's.
   */
  readonly skipped = new Map<number, Set<number>>(HONEST.map((i) => [i, new Set<number>()]));

  /** Each honest member's signer: its safety state (kept across engine restarts) and its rules' context. */
  readonly signers = new Map<number, { state: SignerSafety; ctx: RuleContext }>();
  /** What the signers answered: signed, or the stored signature again for an identical request. */
  readonly signerAnswers = { signed: 0, replayed: 0 };

  readonly rules: Rules;
  /** The engine blocks that carry a change (the spec's `change`): the engines' endsEpoch. */
  readonly changes = new Set<string>();
  /**
   * Members whose epoch 0 ended (their engine said `epoch-ended` at the spec's block): the replay
   * stops following them there. Epoch 1 is not replayed (docs/specification.md).
   */
  readonly done = new Set<number>();
  epochEnds = 0;

  constructor(K: KitClass, rules: Rules = signerRules) {
    this.rules = rules;
    this.kit = new K(N, (b) => this.changes.has(toHex(b.hash)));
    this.blocks = new Map<number, Block>([[0, this.kit.genesis]]);
    const qcs = new QcVerifier(N, this.kit.genesis.hash, this.kit.scheme.verify);
    for (const i of HONEST) {
      this.signers.set(i, {
        state: initialSafety(CHAIN, `signer-${i}`, this.kit.genesis.hash),
        ctx: {
          chainId: CHAIN, epoch: 0, self: i, mayLead: (v, who) => roundRobinLeader(v, N) === who, maxViewJump: 100_000, hashBlock: this.kit.scheme.hashBlock,
          qcError: (qc) => { const r = qcs.check(qc); return r.ok ? null : r.why; },
        },
      });
    }
    for (const i of HONEST) {
      const d = this.kit.engine(i);
      this.engines.set(i, d);
      this.feed(i, { type: 'start' });
    }
  }

  /** Engine blocks for every spec block (new ones built as the spec creates them). */
  learnBlocks(s: SState): void {
    for (const id of [...s.blocks.keys()].sort((a, b) => a - b)) {
      if (this.blocks.has(id)) continue;
      const b = s.blocks.get(id)!;
      const parent = this.blocks.get(b.parent)!;
      // A block above a change block of its epoch is in the suffix: no transactions (a change
      // block always carries its change, so one there is refused as the spec refuses it).
      let suffix = false;
      for (let up = b.parent; up >= 0 && !b.change; up = s.blocks.get(up)!.parent) {
        const a = s.blocks.get(up)!;
        if (a.change && a.epoch === b.epoch) suffix = true;
      }
      const built = this.kit.block(b.view, parent, `b${id}`, suffix);
      if (b.change) this.changes.add(toHex(built.hash));
      this.blocks.set(id, built);
    }
  }

  qc(q: SQC, s: SState): QuorumCert {
    if (q.view === 0) return this.kit.gqc;
    const signers = [...new Set(s.msgs.filter((m) => m.kind === 'vote' && m.epoch === q.epoch && m.phase === q.phase && m.view === q.view && m.block === q.block).map((m) => m.sender))];
    return this.kit.qc(q.phase as Phase, q.view, this.blocks.get(q.block)!, signers);
  }

  /** One event into engine i; fetches are answered from the spec's blocks (sync is not modelled). */
  feed(i: number, event: Parameters<Driven['step']>[0]): EngineAction[] {
    const d = this.engines.get(i)!;
    const all: EngineAction[] = [];
    let pending: Parameters<Driven['step']>[0][] = [event];
    while (pending.length > 0) {
      const out = d.step(pending.shift()!);
      all.push(...out);
      for (const a of out) {
        if (a.type === 'request-payload') this.payloadAsked.set(a.view, i);
        if (a.type === 'sign') {
          this.signed.get(i)!.add(signedKey(a.request));
          this.signerRules(i, a.request);
        }
        if (a.type === 'view-skipped') this.skipped.get(i)!.add(a.view + 1);
        if (a.type === 'fetch') {
          const chain: Block[] = [];
          let cur = [...this.blocks.values()].find((b) => toHex(b.hash) === toHex(a.hash));
          while (cur && cur.header.height > a.aboveHeight) {
            chain.push(cur);
            const parentHex = toHex(cur.header.parentHash);
            cur = [...this.blocks.values()].find((b) => toHex(b.hash) === parentHex);
          }
          if (chain.length > 0) pending.push({ type: 'blocks-fetched', blocks: chain, qcs: [], from: a.from });
        }
      }
    }
    return all;
  }

  /** Member i's signer judges what its engine asked: it must sign it, or answer with what it signed before. */
  signerRules(i: number, req: SignRequest): void {
    const signer = this.signers.get(i)!;
    const d = this.rules.decide(signer.state, req, signer.ctx);
    if (d.type === 'refuse') assert.fail(`member ${i}'s signer refuses what its engine asked (${signedKey(req)}): rule=${d.rule}: ${d.reason}`);
    if (d.type === 'replay') {
      this.signerAnswers.replayed++;
      return;
    }
    signer.state = this.rules.applySigned(signer.state, d, new Uint8Array([i, signer.state.signed & 0xff]));
    this.signerAnswers.signed++;
  }

  /** Carry out one step of the trace (`s` is the state it reached, `before` the one it left). */
  step(before: SState, s: SState): number | null {
    this.learnBlocks(s);
    const i = s.picks.i?.tag === 'Some' ? (s.picks.i.value as number) : null;
    // Member 4 only follows epoch 0 (no engine here); a member whose epoch 0 ended is followed no further.
    if (i !== null && (!this.engines.has(i) || this.done.has(i))) return null;
    const pick = <T>(k: string): T => s.picks[k]!.value as T;
    switch (s.action) {
      case 'propose': {
        const r = s.st.get(i!)!;
        const id = Math.max(...s.blocks.keys());
        assert.equal(this.payloadAsked.get(r.view), i, `engine ${i} did not ask for a payload in view ${r.view} (the spec proposes)`);
        const acts = this.feed(i!, { type: 'payload-ready', view: r.view, block: this.blocks.get(id)! });
        assert.ok(acts.some((a) => a.type === 'sign' && a.request.kind === 'proposal'), `engine ${i} refused its payload: ${JSON.stringify(acts.filter((a) => a.type === 'rejected'))}`);
        return i;
      }
      case 'onProposal': {
        const m = pick<SMsg>('m');
        const p = this.kit.proposal(m.view, this.blocks.get(m.block)!, this.qc(m.justify, before), m.sender);
        const acts = this.feed(i!, { type: 'message', message: p });
        if (this.shownRefused.has(`${i}:${m.view}`) && acts.some((a) => a.type === 'rejected' && a.reason === 'equivocation')) {
          // The engine refuses a leader's second proposal in a view even when it did not vote on the
          // first (here: the unsafe one shown below); the spec only refuses a second vote.
          this.tally.equivocationAfterRefusal++;
          this.excused.get(i!)!.add(`vote/${m.view}/1/${toHex(this.blocks.get(m.block)!.hash)}`);
          return i;
        }
        if (m.sender !== i) {
          const voted = acts.some((a) => a.type === 'sign' && a.request.kind === 'vote' && a.request.view === m.view && a.request.phase === 1);
          assert.ok(voted, `engine ${i} did not vote PREPARE in view ${m.view} for block ${m.block}: ${JSON.stringify(acts.filter((a) => a.type === 'rejected'))}`);
        }
        return i;
      }
      case 'onPrepareQC':
      case 'onPrecommitQC':
      case 'onCommitQC': {
        const q = pick<SQC>('q');
        const qc = this.qc(q, before);
        if (q.view === 0) return i; // the genesis QC: nothing new for anyone
        const acts = this.feed(i!, { type: 'message', message: { type: 'qc', epoch: 0, qc, sender: q.view % N } });
        const r = s.st.get(i!)!;
        if (r.epoch > before.st.get(i!)!.epoch) {
          // The commit reached a change block: the spec's member starts epoch 1 from it; the engine
          // must have committed up to it and no further, and said its epoch ended there.
          const ended = acts.find((a) => a.type === 'epoch-ended');
          const root = toHex(this.blocks.get(r.root)!.hash);
          assert.ok(ended, `member ${i} did not end epoch 0 (the spec's commit reached the change in block ${r.root}): ${JSON.stringify(acts.map((a) => a.type))}`);
          assert.equal(toHex(ended.last.hash), root, `member ${i} ended epoch 0 at another block than the spec (its block ${r.root})`);
          assert.equal(toHex(this.engines.get(i!)!.engine.committed.hash), root, `member ${i} committed past the block ending epoch 0`);
          this.done.add(i!);
          this.epochEnds++;
          return null;
        }
        return i;
      }
      case 'timeout':
        this.feed(i!, { type: 'timer-fired', view: before.st.get(i!)!.view });
        return i;
      case 'onNewView': {
        const m = pick<SMsg>('m');
        const full = this.kit.newView(m.view, this.qc(m.justify, before), m.sender);
        const nv = m.view % N === i ? full : { ...full, highQC: qcRef(full.highQC) };
        this.feed(i!, { type: 'message', message: nv });
        return i;
      }
      case 'restart': {
        // A crash: the engine goes, and a new one is restored from what its driver made durable
        // (the persist and commit actions), as a restarted consensus service is.
        const d = this.engines.get(i!)!;
        this.engines.set(i!, this.kit.restore(i!, d.record));
        this.restarts++;
        this.feed(i!, { type: 'start' });
        return i;
      }
      case 'rejoin': {
        // A join from a checkpoint: a fresh engine at the block the spec's member now has as its
        // committed tip; its signer keeps its record (the same signer, as on a real host).
        const r = s.st.get(i!)!;
        const tip = r.committed.reduce((a, b) => (s.blocks.get(b)!.height > s.blocks.get(a)!.height ? b : a), 0);
        this.engines.set(i!, this.kit.joined(i!, this.blocks.get(tip)!));
        this.rejoins++;
        this.feed(i!, { type: 'start' });
        return i;
      }
      case 'byzPropose':
        this.showUnsafe(before, s);
        return null;
      default:
        return null; // the Byzantine member's other moves only add messages
    }
  }

  /**
   * A Byzantine proposal that a member refuses only for safeNode (the lock) in the spec is shown
   * to that member's engine, which must not sign a PREPARE vote for it. Only while the member
   * has not voted PREPARE in that view (otherwise nothing would reach the lock check).
   */
  showUnsafe(before: SState, s: SState): void {
    const m = s.msgs.find((x) => x.kind === 'proposal' && x.sender === N - 1 && !before.msgs.some((y) => y.kind === 'proposal' && y.block === x.block && y.epoch === x.epoch && y.view === x.view && y.sender === x.sender && y.justify.epoch === x.justify.epoch && y.justify.view === x.justify.view && y.justify.block === x.justify.block));
    if (!m || m.epoch !== 0) return;
    const b = s.blocks.get(m.block)!;
    const anc = (id: number): number[] => (id < 0 ? [] : [id, ...anc(s.blocks.get(id)!.parent)]);
    for (const j of HONEST) {
      if (this.done.has(j)) continue;
      const r = s.st.get(j)! as SReplica & { votedView: number; votedPhase: number };
      const voteable = m.view > r.votedView || (m.view === r.votedView && 1 > r.votedPhase);
      const safe = anc(b.id).includes(r.lockedQC.block) || m.justify.view > r.lockedQC.view;
      if (r.halted || m.view !== r.view || !voteable || safe || this.shownRefused.has(`${j}:${m.view}`)) continue;
      const p = this.kit.proposal(m.view, this.blocks.get(m.block)!, this.qc(m.justify, before), m.sender);
      const acts = this.feed(j, { type: 'message', message: p });
      this.shownRefused.add(`${j}:${m.view}`);
      this.tally.refusedUnsafe++;
      const voted = acts.some((a) => a.type === 'sign' && a.request.kind === 'vote' && a.request.phase === 1 && a.request.view === m.view);
      assert.ok(!voted, `engine ${j} voted PREPARE in view ${m.view} for block ${m.block}, which conflicts with its lock (view ${r.lockedQC.view}, block ${r.lockedQC.block}) and is justified by a QC of view ${m.justify.view}`);
    }
  }

  compare(i: number, s: SState, where: string): void {
    const r = s.st.get(i)!;
    const e = this.engines.get(i)!.engine;
    const hex = (id: number) => toHex(this.blocks.get(id)!.hash);
    const tip = r.committed.reduce((a, b) => (s.blocks.get(b)!.height > s.blocks.get(a)!.height ? b : a), 0);
    const got = {
      view: e.view,
      locked: [e.safety.lockedQC.view, toHex(e.safety.lockedQC.blockHash)],
      high: [e.safety.prepareQC.view, toHex(e.safety.prepareQC.blockHash)],
      committed: toHex(e.committed.hash),
    };
    const want = { view: r.view, locked: [r.lockedQC.view, hex(r.lockedQC.block)], high: [r.prepareQC.view, hex(r.prepareQC.block)], committed: hex(tip) };
    assert.deepEqual(got, want, `${where}: member ${i} differs from the spec`);
    // What it signed: every vote, NEW-VIEW and proposal of member i the spec's messages hold, and no other.
    const specSigned: string[] = s.msgs.filter((m) => m.sender === i).map((m) => (m.kind === 'vote' ? `vote/${m.view}/${m.phase}/${hex(m.block)}`
      : m.kind === 'newview' ? `newview/${m.view}/${m.justify.view}` : `proposal/${m.view}/${hex(m.block)}`));
    // The one difference in timing: the engine's leader votes PREPARE for its own proposal as soon
    // as it is signed; the spec's, when it takes its own proposal from the network (onProposal).
    const mine = this.signed.get(i)!;
    const early = (k: string) => { const [kind, view, phase, block] = k.split('/'); return kind === 'vote' && phase === '1' && mine.has(`proposal/${view}/${block}`); };
    // A NEW-VIEW for a target given up by suspicion is the engine's one signed NEW-VIEW for it: when
    // the spec's later timeout signs one for that target (with the highQC it holds then), the
    // engine sends the one it has.
    const targetOf = (k: string) => (k.startsWith('newview/') ? Number(k.split('/')[1]) : undefined);
    const suspected = new Set([...mine].map(targetOf).filter((t) => t !== undefined && this.skipped.get(i)!.has(t)));
    const bySuspicion = (k: string) => suspected.has(targetOf(k));
    const specSet = new Set(specSigned.filter((k) => !this.excused.get(i)!.has(k) && !bySuspicion(k)));
    const extra = [...mine].filter((k) => !specSet.has(k) && (early(k) || bySuspicion(k)));
    for (const k of extra) if (bySuspicion(k)) this.suspicionNewViews.add(`${i}:${k}`);
    assert.deepEqual([...mine].filter((k) => !extra.includes(k)).sort(), [...specSet].sort(), `${where}: member ${i} signed other messages than the spec's`);
  }
}

/** One sign request as the spec names the message it signs. */
function signedKey(r: SignRequest): string {
  switch (r.kind) {
    case 'vote': return `vote/${r.view}/${r.phase}/${toHex(r.blockHash)}`;
    case 'new-view': return `newview/${r.view}/${r.highQC.view}`;
    case 'proposal': return `proposal/${r.view}/${toHex(r.block.hash)}`;
  }
}

function generate(dir: string, traces: number, seed: string, steps: number): string[] {
  return quintTraces(path.join(root, 'spec/hotstuff.qnt'), 'hotstuff', dir, { traces, seed, maxSteps: steps });
}

/** Replays one trace step by step, comparing the member that moved after each; the honest steps replayed. */
function replayTrace(replay: Replay, trace: SState[], name: string): number {
  let steps = 0;
  for (let k = 1; k < trace.length; k++) {
    const i = replay.step(trace[k - 1]!, trace[k]!);
    if (i !== null) {
      replay.compare(i, trace[k]!, `${name} step ${k} (${trace[k]!.action})`);
      steps++;
    }
  }
  return steps;
}

interface Outcome { traces: number; steps: number; commits: number; restarts: number; rejoins: number; epochEnds: number; tally: Tally; signer: { signed: number; replayed: number } }

async function replayTraces(traces: number, seed: string, maxSteps: number, K: KitClass = Kit, rules: Rules = signerRules): Promise<Outcome> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'btcfed-mbt-'));
  const out: Outcome = { traces, steps: 0, commits: 0, restarts: 0, rejoins: 0, epochEnds: 0, tally: { refusedUnsafe: 0, equivocationAfterRefusal: 0, suspicionNewViews: 0 }, signer: { signed: 0, replayed: 0 } };
  try {
    for (const file of generate(dir, traces, seed, maxSteps)) {
      const trace = states(file, await fs.readFile(file, 'utf8'));
      const replay = new Replay(K, rules);
      try {
        out.steps += replayTrace(replay, trace, path.basename(file));
      } finally {
        out.tally.refusedUnsafe += replay.tally.refusedUnsafe;
        out.tally.equivocationAfterRefusal += replay.tally.equivocationAfterRefusal;
        out.tally.suspicionNewViews += replay.suspicionNewViews.size;
        out.restarts += replay.restarts;
        out.rejoins += replay.rejoins;
        out.epochEnds += replay.epochEnds;
        out.signer.signed += replay.signerAnswers.signed;
        out.signer.replayed += replay.signerAnswers.replayed;
      }
      if (HONEST.some((i) => trace.at(-1)!.st.get(i)!.committed.length > 1)) out.commits++;
    }
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
  return out;
}

test('spec traces replayed into the engine: view, lock, highQC, committed tip and every message signed match after every step', async () => {
  const o = await replayTraces(40, '5', 60);
  console.log(`mbt: traces=${o.traces} honest-steps=${o.steps} traces-with-commits=${o.commits} restarts=${o.restarts} rejoins=${o.rejoins} epoch-ends=${o.epochEnds} unsafe-proposals-refused=${o.tally.refusedUnsafe} equivocation-after-refusal=${o.tally.equivocationAfterRefusal} suspicion-new-views=${o.tally.suspicionNewViews} signer-signed=${o.signer.signed} signer-replayed=${o.signer.replayed}`);
  assert.ok(o.signer.signed > 500, `the signers signed only ${o.signer.signed} of the engines' requests`);
  assert.ok(o.steps > 500, `only ${o.steps} honest steps replayed`);
  assert.ok(o.commits > 0, 'no trace committed: the replay never reached the commit rule');
  assert.ok(o.restarts > 0, 'no trace restarted a member: the replay never restored an engine from its record');
  assert.ok(o.epochEnds > 0, 'no member ended epoch 0: the replay never reached a change block\'s commit');
});

/**
 * A seed whose first trace reaches the spec's noVoteAfterRejoin witness: member 0 joins from a
 * checkpoint (rejoin) and then votes again. Random traces reach it about once in a thousand, too
 * rarely for the budget above; found with `quint run --invariants noVoteAfterRejoin --max-steps 80`.
 */
const REJOIN_SEED = '0x26663';

test('a trace in which a member joins from a checkpoint and votes again replays: the engine started at the checkpoint matches the spec at every step', async () => {
  // The trace ends at the rejoined member's first vote.
  const trace = await witnessTrace('noVoteAfterRejoin', REJOIN_SEED, 80);
  const at = trace.findIndex((st) => st.action === 'rejoin');
  assert.ok(at > 0, `seed ${REJOIN_SEED} no longer gives a rejoin (the spec changed): find another with quint run --invariants noVoteAfterRejoin --max-steps 80`);
  const replay = new Replay(Kit);
  const steps = replayTrace(replay, trace, `seed ${REJOIN_SEED}`);
  assert.equal(replay.rejoins, 1);
  const who = trace[at]!.picks.i!.value as number;
  const votedAfter = [...replay.signed.get(who)!].filter((k) => k.startsWith('vote/') && Number(k.split('/')[1]) > trace[at]!.st.get(who)!.view - 1);
  console.log(`mbt (rejoin): ${steps} honest steps; member ${who} joined at step ${at} (view ${trace[at]!.st.get(who)!.view - 1}) and then signed ${votedAfter.join(', ')}`);
  assert.ok(votedAfter.length > 0, 'the engine started at the checkpoint signed no vote above it');
});

/**
 * A copy of the engine with one line of one file replaced, in a temporary tree whose other libs/
 * are links to the real ones (libs/hotstuff itself is never edited); its test-kit drives the
 * broken engine through the same replay, which must go red with `expect`.
 */
async function replayBroken(file: string, line: string, replacement: string, expect: RegExp, label: string,
  replayWith: (K: KitClass) => Promise<unknown> = (K) => replayTraces(40, '5', 60, K)): Promise<void> {
  const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'btcfed-mbt-engine-'));
  try {
    await fs.mkdir(path.join(tmp, 'libs'));
    for (const e of await fs.readdir(path.join(root, 'libs'))) {
      if (e !== 'hotstuff') await fs.symlink(path.join(root, 'libs', e), path.join(tmp, 'libs', e));
    }
    await fs.cp(path.join(root, 'libs/hotstuff'), path.join(tmp, 'libs/hotstuff'), { recursive: true });
    await fs.writeFile(path.join(tmp, 'package.json'), JSON.stringify({ type: 'module', imports: { '#libs/*': './libs/*' } }));
    const target = path.join(tmp, 'libs/hotstuff', file);
    const text = await fs.readFile(target, 'utf8');
    assert.equal(text.split(line).length, 2, `the line this test replaces is no longer in libs/hotstuff/${file}`);
    await fs.writeFile(target, text.replace(line, replacement));
    const { Kit: BrokenKit } = (await import(path.join(tmp, 'libs/hotstuff/sim/test-kit.ts'))) as { Kit: KitClass };
    await assert.rejects(replayWith(BrokenKit), (e: Error) => {
      assert.match(e.message, expect);
      console.log(`mbt (${label}): ${e.message.split('\n')[0]}`);
      return true;
    });
  } finally {
    await fs.rm(tmp, { recursive: true, force: true });
  }
}

test('the replay goes red against an engine whose precommitQC no longer locks', () =>
  replayBroken('replica.ts', 'if (qc.view > core.safety.lockedQC.view) core.safety.lockedQC = qc;', '/* lock removed */', /differs from the spec/, 'lock removed'));

test('the replay goes red against an engine that signs NEW-VIEWs carrying its lock instead of its highQC (its state unchanged)', () =>
  replayBroken('synchronizer.ts', "core.requestSign({ kind: 'new-view', epoch: core.epoch, view, highQC: core.safety.prepareQC });",
    "core.requestSign({ kind: 'new-view', epoch: core.epoch, view, highQC: core.safety.lockedQC });", /signed other messages than the spec's/, 'NEW-VIEW carries the lock'));

/**
 * A seed whose first trace reaches the spec's noEndAboveChange witness: a member ends epoch 0 with a
 * commit QC on a block of the suffix above the change block (the commit must stop at the change).
 * Random traces rarely do; found with `quint run --invariants noEndAboveChange --max-steps 60`.
 */
const END_ABOVE_SEED = '0x123e0a';

/** The one trace of `seed` that ends where `invariant` (a witness) is first violated. */
async function witnessTrace(invariant: string, seed: string, steps = 60): Promise<SState[]> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'btcfed-mbt-witness-'));
  try {
    // The witness is violated on purpose (quint exits 1): the trace ends at the violation.
    spawnSync(path.join(root, 'node_modules/.bin/quint'), [
      'run', '--backend', 'typescript', path.join(root, 'spec/hotstuff.qnt'), '--main', 'hotstuff', '--invariants', invariant,
      '--max-samples', '1', '--n-traces', '1', '--max-steps', String(steps), '--seed', seed, '--mbt', '--out-itf', path.join(dir, 't{seq}.itf.json'), '--verbosity', '0',
    ], { encoding: 'utf8' });
    const file = path.join(dir, 't0.itf.json');
    return states(file, await fs.readFile(file, 'utf8'));
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}

test('a trace in which a member ends epoch 0 through a commit QC above the change replays; an engine that commits the suffix goes red on it', async () => {
  const trace = await witnessTrace('noEndAboveChange', END_ABOVE_SEED);
  const at = trace.findIndex((st) => [...st.st.values()].some((r) => r.epoch > 0 && (r as SReplica & { endedVia: number }).endedVia !== r.root));
  assert.ok(at > 0, `seed ${END_ABOVE_SEED} no longer ends an epoch above its change (the spec changed): find another with quint run --invariants noEndAboveChange`);
  const replay = new Replay(Kit);
  const steps = replayTrace(replay, trace, `seed ${END_ABOVE_SEED}`);
  assert.ok(replay.epochEnds > 0);
  console.log(`mbt (end above the change): ${steps} honest steps; ${replay.epochEnds} member(s) ended epoch 0, one at step ${at} through a QC above the change`);
  await replayBroken('sync.ts', 'const blocks = end < 0 ? path : path.slice(0, end + 1);', 'const blocks = path;',
    /ended epoch 0 at another block than the spec|committed past the block ending epoch 0/, 'suffix committed',
    async (K) => replayTrace(new Replay(K), trace, `seed ${END_ABOVE_SEED}`));
});

test('the replay goes red against a signer that will not give an engine the signature it already gave', async () => {
  // services/signer/rules.ts copied with the replay of an identical request removed: an engine asks
  // again for what it signed (a NEW-VIEW resent at a later timeout, what it signed before a crash),
  // and this signer refuses it.
  const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'btcfed-mbt-signer-'));
  try {
    await fs.symlink(path.join(root, 'libs'), path.join(tmp, 'libs'));
    await fs.mkdir(path.join(tmp, 'services/signer'), { recursive: true });
    await fs.writeFile(path.join(tmp, 'package.json'), JSON.stringify({ type: 'module', imports: { '#libs/*': './libs/*' } }));
    const line = "if (earlier.digest === digest) return { type: 'replay', slot, digest, blockHash, signature: earlier.signature };";
    const text = await fs.readFile(path.join(root, 'services/signer/rules.ts'), 'utf8');
    assert.equal(text.split(line).length, 2, 'the line this test replaces is no longer in services/signer/rules.ts');
    await fs.writeFile(path.join(tmp, 'services/signer/rules.ts'), text.replace(line, '/* no replay */'));
    const broken = (await import(path.join(tmp, 'services/signer/rules.ts'))) as Rules;
    await assert.rejects(replayTraces(40, '5', 60, Kit, broken), (e: Error) => {
      assert.match(e.message, /signer refuses what its engine asked .*rule=one-per-slot/);
      console.log(`mbt (signer without replay): ${e.message.split('\n')[0]}`);
      return true;
    });
  } finally {
    await fs.rm(tmp, { recursive: true, force: true });
  }
});
