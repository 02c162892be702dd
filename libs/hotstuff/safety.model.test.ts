// The engine against a reference model of basic HotStuff's replica rules, on generated
// scenarios. The model is written from the paper, not from replica.ts: it keeps the lock as
// (view, block), the last vote as (view, phase), and answers "does this block descend from the
// locked one" by walking its own parent map. safeNode = extends the locked block OR justify
// newer than the lock; the lock is taken from a precommitQC and only moves up; a vote only for a
// (view, phase) after the last one; a commitQC commits its block's uncommitted ancestors,
// parents first, each once. Every scenario: the engine's vote requests, lock and commits must
// equal the model's.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { CHAIN, Kit, Phase, ofType, voteRequests } from './sim/test-kit.ts';
import { buildBlock } from './sim/members.ts';
import type { Block, QuorumCert } from './types.ts';

const OTHERS = [1, 2, 3];
/** Member 0 never leads: every view's leader is 1, 2 or 3, so member 0 is a pure replica. */
const leaderOf = (v: number) => 1 + (v % 3);

type Step = { kind: 'proposal' } | { kind: 'prepareQC' } | { kind: 'precommitQC' } | { kind: 'commitQC'; target: number };

interface Scenario {
  /** parents[i]: the parent of the block of view i+1, as an index into [genesis, block 1, …]. */
  parents: number[];
  /** The steps of each view, in order. */
  steps: Step[][];
}

const scenarioArb: fc.Arbitrary<Scenario> = fc.integer({ min: 2, max: 9 }).chain((views) => fc.record({
  parents: fc.tuple(...Array.from({ length: views }, (_, i) => fc.integer({ min: Math.max(0, i - 2), max: i }))),
  steps: fc.tuple(...Array.from({ length: views }, (_, i) => fc.subarray<Step>(
    [{ kind: 'proposal' }, { kind: 'prepareQC' }, { kind: 'precommitQC' }, { kind: 'commitQC', target: i + 1 }],
  ).chain((s) => fc.shuffledSubarray(s, { minLength: s.length, maxLength: s.length })))),
}));

// ------------------------------------------------------------------ the model

class Model {
  readonly parent = new Map<number, number>(); // block index → parent index (0 = genesis)
  lock = { view: 0, block: 0 };
  last = { view: 0, phase: 0 };
  committed = [0];
  votes: { phase: Phase; view: number }[] = [];

  descends(block: number, ancestor: number): boolean {
    for (let b: number | undefined = block; b !== undefined; b = this.parent.get(b)) if (b === ancestor) return true;
    return false;
  }

  vote(view: number, phase: Phase): void {
    if (view < this.last.view || (view === this.last.view && phase <= this.last.phase)) return;
    this.last = { view, phase };
    this.votes.push({ phase, view });
  }

  /** A proposal of `block` justified by a PREPARE QC of view `justifyView`. */
  proposal(view: number, block: number, justifyView: number): void {
    if (this.descends(block, this.lock.block) || justifyView > this.lock.view) this.vote(view, Phase.PREPARE);
  }

  precommitQC(view: number, block: number): void {
    if (view > this.lock.view) this.lock = { view, block };
    this.vote(view, Phase.COMMIT);
  }

  /** Returns the blocks newly committed, parents first. */
  commitQC(block: number): number[] {
    const tip = this.committed.at(-1)!;
    if (this.committed.includes(block)) return [];
    const chain: number[] = [];
    for (let b = block; b !== tip; b = this.parent.get(b)!) {
      if (b === 0 || this.committed.includes(b)) return []; // not above our tip: a conflict (the engine halts)
      chain.unshift(b);
    }
    this.committed.push(...chain);
    return chain;
  }
}

// ------------------------------------------------------------------ the comparison

function run(sc: Scenario): void {
  const k = new Kit(4);
  const d = k.engine(0, { leaderOf });
  d.step({ type: 'start' });
  const blocks: Block[] = [k.genesis];
  const model = new Model();
  const pqc = (i: number): QuorumCert => (i === 0 ? k.gqc : k.qc(Phase.PREPARE, i, blocks[i]!, OTHERS));
  sc.parents.forEach((p, i) => {
    const view = i + 1;
    const parent = blocks[p]!;
    blocks.push(buildBlock(k.scheme, CHAIN, leaderOf(view), 'm', view, parent.hash, parent.header.height, parent.header.stateHash, view));
    model.parent.set(view, p);
  });
  // Every block is known up front (certified blocks are accepted by sync): the decisions below
  // never wait for a fetch.
  d.step({ type: 'blocks-fetched', blocks: blocks.slice(1), qcs: blocks.slice(1).map((_, i) => pqc(i + 1)) });
  let halted = false;
  for (let i = 0; i < sc.steps.length; i++) {
    const view = i + 1;
    const b = blocks[view]!;
    const p = sc.parents[i]!;
    if (d.engine.view < view) for (const s of OTHERS) d.message(k.newView(view, pqc(p), s));
    if (d.engine.view !== view) return; // a commitQC moved the engine past this view: the rest is stale
    for (const step of sc.steps[i]!) {
      const leader = leaderOf(view);
      switch (step.kind) {
        case 'proposal':
          d.message(k.proposal(view, b, pqc(p), leader));
          model.proposal(view, view, p); // block i is of view i: the justify (parent's QC) is of view p
          break;
        case 'prepareQC':
          d.message({ type: 'qc', epoch: 0, qc: k.qc(Phase.PREPARE, view, b, OTHERS), sender: leader });
          model.vote(view, Phase.PRE_COMMIT);
          break;
        case 'precommitQC':
          d.message({ type: 'qc', epoch: 0, qc: k.qc(Phase.PRE_COMMIT, view, b, OTHERS), sender: leader });
          model.precommitQC(view, view);
          break;
        case 'commitQC': {
          const out = d.message({ type: 'qc', epoch: 0, qc: k.qc(Phase.COMMIT, view, b, OTHERS), sender: leader });
          const want = model.commitQC(view);
          const got = ofType(out, 'commit').flatMap((c) => c.blocks.map((x) => x.header.view));
          if (ofType(out, 'halted').length > 0) halted = true;
          else assert.deepEqual(got, want, `commit at view ${view}`);
          break;
        }
      }
      if (halted) return;
      if (d.engine.view !== view) break;
    }
    assert.deepEqual(voteRequests(d.log), model.votes, `votes after view ${view}`);
    assert.equal(d.engine.safety.lockedQC.view, model.lock.view, `lock view after view ${view}`);
    assert.deepEqual(d.engine.safety.lockedQC.blockHash, blocks[model.lock.block]!.hash, `locked block after view ${view}`);
  }
}

test('the engine votes, locks and commits exactly as the reference model on generated scenarios', () => {
  fc.assert(fc.property(scenarioArb, run), { numRuns: 300, seed: 9 });
});

test('a scenario the generator must cover: a fork justified by a QC newer than the lock gets a vote', () => {
  // 1 on genesis (locked), 2 on genesis (certified, not locked), 3 on 2: justify view 2 > lock view 1.
  run({ parents: [0, 0, 2], steps: [
    [{ kind: 'proposal' }, { kind: 'prepareQC' }, { kind: 'precommitQC' }],
    [],
    [{ kind: 'proposal' }],
  ] });
});
