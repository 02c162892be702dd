// Block sync's specification (spec/sync.qnt, docs/specification.md "Block sync"): its invariants
// hold and its liveness witness is reached over random traces; two copies of the spec with an
// acceptance rule broken violate an invariant within the budget; and the traces replayed step by
// step into libs/hotstuff's engine: after every step the engine holds exactly the blocks the spec
// holds from the committed tip up (each one's bytes hashing to its hash: no forgery kept), has committed up to the same
// height, asks for the same blocks and waits with the same commit QC. The answers are arbitrary —
// any subset of the chain's blocks, each genuine or forged, with any subset of the QCs, a QC with
// signatures that do not verify among them — as a Byzantine peer may send them.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Kit } from '../libs/hotstuff/sim/test-kit.ts';
import { toHex } from '../libs/hotstuff/bytes.ts';
import { Phase, type Block, type QuorumCert } from '../libs/hotstuff/types.ts';
import { SYNC_INVARIANTS as INVARIANTS, quintRun, quintTraces } from '../scripts/spec.ts';
import { itfValue, type Itf } from './support/itf.ts';

const root = path.join(import.meta.dirname, '..');
const SPEC = path.join(root, 'spec/sync.qnt');

test('spec/sync.qnt: every invariant holds over random traces, and the member can commit the top of the chain', () => {
  const r = quintRun(SPEC, INVARIANTS, { samples: 300, seed: '3', maxSteps: 12, main: 'sync' });
  assert.equal(r.violated, false, r.output.slice(-3000));
  const w = quintRun(SPEC, ['notAtTop'], { samples: 300, seed: '3', maxSteps: 12, main: 'sync' });
  assert.equal(w.violated, true, 'the witness was never reached: no trace committed block 4');
});

/** The acceptance rule taken out: every block of an answer is a seed, asked for or not. */
const SEEDS = 'val seeds0 = m.wanted.union(qcs.filter(q => q.valid).map(q => q.block))';
const SEEDS_ANY = 'val seeds0 = m.wanted.union(qcs.filter(q => q.valid).map(q => q.block)).union(answer.keys())';
/** The commit rule's wait taken out: a commit QC commits whatever is missing below it. */
const GAP = 'if (gap != -1) want(';
const NO_GAP = 'if (false) want(';

for (const [name, from, to, invariant] of [
  ['unsolicited blocks taken', SEEDS, SEEDS_ANY, 'noUnsolicited'],
  ['a commit that does not wait for its ancestry', GAP, NO_GAP, 'committedHeld'],
] as const) {
  test(`a spec with ${name} violates ${invariant} within the budget`, async () => {
    const text = await fs.readFile(SPEC, 'utf8');
    assert.equal(text.split(from).length, 2, `the rule this test breaks is no longer in spec/sync.qnt: ${from}`);
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'btcfed-spec-sync-'));
    try {
      const mutant = path.join(dir, 'sync.qnt');
      await fs.writeFile(mutant, text.replace(from, to));
      const r = quintRun(mutant, [invariant], { samples: 300, seed: '3', maxSteps: 12, main: 'sync' });
      assert.ok(r.violated, `${invariant} held on the mutant:\n${r.output.slice(-2000)}`);
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
}

// ------------------------------------------------------------------ the replay

interface SQC { phase: number; view: number; block: number; valid: boolean }
interface SSync { tree: number[]; tip: number; lastCommitView: number; wanted: number[]; pending: SQC }
interface Step { s: SSync; action: string; picks: Record<string, { tag: string; value: any }> }

function steps(text: string): Step[] {
  const t = JSON.parse(text) as { states: Record<string, Itf>[] };
  return t.states.map((x) => ({ s: itfValue(x.s) as SSync, action: itfValue(x['mbt::actionTaken']) as string, picks: itfValue(x['mbt::nondetPicks']) }));
}

/** The spec's chain as real blocks and QCs (the fake scheme: real hashes, signatures checked). */
function chain(kit: Kit) {
  const blocks: Block[] = [kit.genesis];
  for (let k = 1; k <= 4; k++) blocks.push(kit.block(k, blocks[k - 1]!));
  blocks.push(kit.block(5, blocks[4]!, 'unsolicited'));
  // The same hash over other bytes: what a peer serving a forgery under a wanted hash sends.
  const forged = (b: Block): Block => ({ ...b, header: { ...b.header, timestampMs: b.header.timestampMs + 1 } });
  const byKey = new Map<string, QuorumCert>([
    ['3/2', kit.qc(Phase.COMMIT, 2, blocks[2]!, [0, 1, 2])],
    ['1/3', kit.qc(Phase.PREPARE, 3, blocks[3]!, [1, 2, 3])],
    ['3/4', kit.qc(Phase.COMMIT, 4, blocks[4]!, [0, 2, 3])],
    // Signatures of another view: the QC does not verify.
    ['3/5', { ...kit.qc(Phase.COMMIT, 5, blocks[5]!, [0, 1, 2]), signatures: kit.qc(Phase.COMMIT, 6, blocks[5]!, [0, 1, 2]).signatures }],
  ]);
  const qc = (q: SQC): QuorumCert => byKey.get(`${q.phase}/${q.view}`) ?? assert.fail(`no QC ${q.phase}/${q.view} in the replay`);
  return { blocks, forged, qc };
}

/** Replays one trace into a fresh engine (member 0), comparing after every step. */
function replay(trace: Step[], name: string): { steps: number; forgeriesServed: number; committedTop: boolean } {
  const kit = new Kit(4);
  const { blocks, forged, qc } = chain(kit);
  const d = kit.engine(0);
  d.step({ type: 'start' });
  let forgeriesServed = 0;
  for (let k = 1; k < trace.length; k++) {
    const { s, action, picks } = trace[k]!;
    const at = `${name} step ${k} (${action})`;
    if (action === 'announce') {
      d.message({ type: 'qc', epoch: 0, qc: qc(picks.q!.value as SQC), sender: 1 });
    } else if (action === 'serve') {
      const ids = picks.ids!.value as number[];
      const bad = new Set(picks.forged!.value as number[]);
      forgeriesServed += bad.size;
      const qcs = (picks.qcs!.value as SQC[]).sort((a, b) => a.view - b.view).map(qc);
      d.step({ type: 'blocks-fetched', blocks: ids.map((x) => (bad.has(x) ? forged(blocks[x]!) : blocks[x]!)), qcs, from: 2 });
    } else {
      assert.fail(`${at}: an action the replay does not know`);
    }
    const e = d.engine;
    // The engine shows blocks from its committed tip up (below it, the log has them).
    for (const [id, b] of blocks.entries()) {
      if (id < s.tip) continue;
      const held = e.block(toHex(b.hash));
      assert.equal(held !== undefined, s.tree.includes(id), `${at}: block ${id} held by the engine ${held !== undefined}, by the spec ${s.tree.includes(id)}`);
      if (held) assert.equal(toHex(kit.scheme.hashBlock(held.header)), toHex(b.hash), `${at}: block ${id} held with bytes that do not hash to it`);
    }
    assert.equal(e.committed.header.height, s.tip, `${at}: committed tip`);
    const wanted = new Set(s.wanted.map((id) => toHex(blocks[id]!.hash)));
    assert.deepEqual(new Set(e.fetching.wanted), wanted, `${at}: blocks asked for (spec: ${s.wanted.join(', ') || 'none'})`);
    const p = e.fetching.pendingCommit;
    assert.deepEqual(p ? [p.view, toHex(p.blockHash)] : null, s.pending.block === -1 ? null : [s.pending.view, toHex(blocks[s.pending.block]!.hash)], `${at}: the commit waiting`);
  }
  return { steps: trace.length - 1, forgeriesServed, committedTop: d.engine.committed.header.height === 4 };
}

test('spec/sync.qnt traces replayed into the engine: held blocks, committed tip, blocks asked for and the waiting commit match after every step', async () => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'btcfed-mbt-sync-'));
  try {
    const files = quintTraces(SPEC, 'sync', dir, { traces: 60, seed: '11', maxSteps: 12 });
    let total = 0;
    let forgeries = 0;
    let top = 0;
    for (const f of files) {
      const r = replay(steps(await fs.readFile(f, 'utf8')), path.basename(f));
      total += r.steps;
      forgeries += r.forgeriesServed;
      if (r.committedTop) top++;
    }
    console.log(`mbt (sync): traces=${files.length} steps=${total} forgeries-served=${forgeries} traces-committing-the-top=${top}`);
    assert.ok(total >= 60 * 10, `only ${total} steps replayed`);
    assert.ok(forgeries > 50, 'the traces served few forgeries');
    assert.ok(top > 0, 'no trace committed the top of the chain: the replay never reached a whole commit path');
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
});
