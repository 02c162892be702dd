// Reconfiguration in the simulator (epochs.ts): the schedule (4 → 5 → 7 → 6 members, a key
// rotation) over rough networks with a member cut off across the boundaries and removed members
// that keep signing; a campaign of drawn schedules; the same seed replays the same run; and each
// checker, fed a crafted violation, reports it (so a clean campaign means something).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { toHex } from '../bytes.ts';
import { genesisBlock } from '../genesis.ts';
import { Phase, type Block, type QuorumCert } from '../types.ts';
import { EpochCheckers, applyChanges, changeTx, type Validator } from './epoch-checks.ts';
import { GROW_SHRINK_ROTATE, drawReconfig } from './epoch-scenarios.ts';
import { runReconfig } from './epochs.ts';
import { createFakeScheme } from './schemes.ts';
import { createSlhScheme } from './slh-scheme.ts';

const SEED = 20261125;

test('4 → 5 → 7 → 6 members and a key rotation, over lossy networks with a member cut off across boundaries', () => {
  const stalls: number[] = [];
  for (let i = 0; i < 40; i++) {
    const r = runReconfig({
      seed: SEED + i,
      n: 4,
      changes: GROW_SHRINK_ROTATE,
      dropRate: 0.1,
      roughUntilMs: 3000,
      isolate: { name: `m${i % 7}`, fromMs: 100 + (i % 5) * 100, toMs: 2500 },
      removedKeepSigning: true,
    });
    assert.deepEqual(r.violations, [], `seed ${SEED + i}`);
    assert.equal(r.finalEpoch, 4, `seed ${SEED + i}: every member of the final set reached epoch 4`);
    assert.deepEqual(r.sizes, [4, 5, 7, 6, 6]);
    assert.ok(r.lastHeights.every((h, e) => e === 0 || h > r.lastHeights[e - 1]!), `epochs end in order: ${r.lastHeights}`);
    stalls.push(...r.stallMs);
  }
  assert.ok(stalls.every((s) => Number.isFinite(s)), 'every boundary was crossed');
});

test('retired keys (a removed member\'s, a rotated-out one) that keep signing are refused, and a member cut off is answered with the epoch-change proof', () => {
  const r = runReconfig({ seed: SEED, n: 4, changes: GROW_SHRINK_ROTATE, removedKeepSigning: true, isolate: { name: 'm3', fromMs: 100, toMs: 3000 } });
  assert.deepEqual(r.violations, []);
  assert.ok(r.refusedOldKeys > 0, 'the retired keys signed for later epochs and were refused');
  assert.ok(r.proofsSent > 0, 'the cut-off member was sent proofs of the epochs it missed');
});

test('a clean network crosses each boundary within about one view', () => {
  const stalls: number[][] = GROW_SHRINK_ROTATE.map(() => []);
  for (let i = 0; i < 50; i++) {
    const r = runReconfig({ seed: SEED + i, n: 4, changes: GROW_SHRINK_ROTATE });
    assert.deepEqual(r.violations, []);
    r.stallMs.forEach((s, e) => stalls[e]!.push(s));
  }
  // Base timeout 100 ms, delays 1–15 ms: a boundary is one commit away, never a run of timeouts.
  for (const s of stalls) assert.ok(Math.max(...s) < 400, `stall per boundary (ms): max ${Math.max(...s).toFixed(0)}`);
});

test('campaign: 120 drawn schedules (adds, removals, rotations, 4–9 members) over rough networks', () => {
  let violations = 0;
  const failures: string[] = [];
  for (let i = 0; i < 120; i++) {
    const s = drawReconfig(SEED + i);
    const r = runReconfig(s);
    if (r.violations.length > 0) {
      violations++;
      failures.push(`seed ${s.seed}: ${r.violations.slice(0, 2).join('; ')}`);
    }
    if (r.violations.length === 0) assert.equal(r.finalEpoch, s.changes.length);
  }
  assert.equal(violations, 0, failures.slice(0, 3).join('\n'));
});

test('the same seed replays the same run', () => {
  const s = drawReconfig(SEED + 7);
  assert.deepEqual(runReconfig(s), runReconfig(s));
});

test('applyChanges: removals close up, adds go last, rotations keep the place', () => {
  const set: Validator[] = [0, 1, 2, 3].map((i) => ({ name: `m${i}`, identity: i }));
  const next = applyChanges(set, [{ kind: 'remove', name: 'm1' }, { kind: 'add', name: 'm9', identity: 9 }, { kind: 'rotate', name: 'm3', identity: 8 }]);
  assert.deepEqual(next, [{ name: 'm0', identity: 0 }, { name: 'm2', identity: 2 }, { name: 'm3', identity: 8 }, { name: 'm9', identity: 9 }]);
});

test('each checker reports a crafted violation', () => {
  const scheme = createFakeScheme('sim-epochs', 8, 1);
  const genesis = genesisBlock('sim-epochs', scheme.hashBlock);
  const set: Validator[] = [0, 1, 2, 3].map((i) => ({ name: `m${i}`, identity: i }));
  const block = (epoch: number, parent: Block, tag: string, txs: Uint8Array[] = []): Block => {
    const header = { chainId: 'sim-epochs', epoch, height: parent.header.height + 1, view: 1, parentHash: parent.hash, proposer: 0, timestampMs: 1,
      txRoot: scheme.digest(...txs, new TextEncoder().encode(tag)), stateHash: new Uint8Array(32) };
    return { header, hash: scheme.hashBlock(header), txs };
  };
  const qcOf = (epoch: number, b: Block, signers: number[], identities = signers): QuorumCert => ({
    phase: Phase.COMMIT, view: 1, blockHash: b.hash, signers,
    signatures: identities.map((id) => scheme.sign(id, { kind: 'vote', epoch, phase: Phase.COMMIT, view: 1, blockHash: b.hash })),
  });
  const tip0 = { height: 0, hex: toHex(genesis.hash) };
  const a = block(0, genesis, 'a');
  const b = block(0, genesis, 'b');

  const ok = new EpochCheckers(scheme, genesis);
  ok.onCommit('m0', tip0, 0, set, [a], qcOf(0, a, [0, 1, 2]));
  assert.deepEqual(ok.violations, [], 'a valid commit passes');

  const agreement = new EpochCheckers(scheme, genesis);
  agreement.onCommit('m0', tip0, 0, set, [a], qcOf(0, a, [0, 1, 2]));
  agreement.onCommit('m1', tip0, 0, set, [b], qcOf(0, b, [0, 1, 2]));
  assert.match(agreement.violations.join(), /agreement: m1 height 1/);

  const quorum = new EpochCheckers(scheme, genesis);
  quorum.onCommit('m0', tip0, 0, set, [a], qcOf(0, a, [0, 1]));
  assert.match(quorum.violations.join(), /quorum: m0/, 'two signers of four');
  const otherEpoch = new EpochCheckers(scheme, genesis);
  otherEpoch.onCommit('m0', tip0, 1, set, [block(1, genesis, 'c')], qcOf(0, a, [0, 1, 2]));
  assert.match(otherEpoch.violations.join(), /quorum: m0 .* epoch 1/, 'votes of epoch 0 do not make a QC of epoch 1');
  const oldKey = new EpochCheckers(scheme, genesis);
  oldKey.onCommit('m0', tip0, 0, [...set.slice(0, 3), { name: 'm3', identity: 7 }], [a], qcOf(0, a, [0, 1, 3], [0, 1, 3]));
  assert.match(oldKey.violations.join(), /quorum/, 'a rotated-out key does not count');
  const wrongEpochBlock = new EpochCheckers(scheme, genesis);
  wrongEpochBlock.onCommit('m0', tip0, 0, set, [block(1, genesis, 'd')], qcOf(0, a, [0, 1, 2]));
  assert.match(wrongEpochBlock.violations.join(), /epochs: m0 committed a block of epoch 1 in epoch 0/);
  const order = new EpochCheckers(scheme, genesis);
  order.onCommit('m0', tip0, 0, set, [block(0, a, 'skip')], qcOf(0, a, [0, 1, 2]));
  assert.match(order.violations.join(), /order: m0 committed height 2 after 0/);

  const change = [{ kind: 'remove' as const, name: 'm3' }];
  const last = block(0, genesis, 'end', [changeTx(0, change)]);
  const ends = new EpochCheckers(scheme, genesis);
  ends.onEpochEnded('m0', 0, last, change);
  assert.deepEqual(ends.violations, []);
  ends.onEpochEnded('m1', 0, block(0, a, 'later', [changeTx(0, change)]), change);
  assert.match(ends.violations.join(), /epochs: m1 ended epoch 0 at height 2, another member at 1/);
  ends.onEpochEnded('m2', 0, a, change);
  assert.match(ends.violations.join(), /does not carry its scheduled change/);

  const signs = new EpochCheckers(scheme, genesis);
  signs.onSign('m0', 0, { kind: 'vote', epoch: 0, phase: Phase.PREPARE, view: 3, blockHash: a.hash });
  signs.onSign('m0', 0, { kind: 'vote', epoch: 1, phase: Phase.PREPARE, view: 3, blockHash: b.hash });
  assert.deepEqual(signs.violations, [], 'the same view in another epoch is another slot');
  signs.onSign('m0', 0, { kind: 'vote', epoch: 0, phase: Phase.PREPARE, view: 3, blockHash: b.hash });
  assert.match(signs.violations.join(), /double-sign: m0 0:0:vote:3:1/);
});

test('the same schedule with real SLH-DSA keys: rotated and added keys sign over the canonical bytes of their epoch', () => {
  const scheme = createSlhScheme('sim-epochs', 8, 11);
  const r = runReconfig({ seed: 11, n: 4, changes: GROW_SHRINK_ROTATE, changeAfterMs: 0, finalCommits: 1 }, scheme);
  assert.deepEqual(r.violations, []);
  assert.equal(r.finalEpoch, 4);
});

test('a member withholding its proposals and QCs (the change\'s, the DECIDE that ends an epoch) from half the members', () => {
  for (let i = 0; i < 30; i++) {
    const withholder = `m${i % 4}`;
    const r = runReconfig({ seed: SEED + 100 + i, n: 4, changes: GROW_SHRINK_ROTATE, withholder, dropRate: 0.05, roughUntilMs: 2000 });
    assert.deepEqual(r.violations, [], `seed ${SEED + 100 + i}, withholder ${withholder}`);
    assert.equal(r.finalEpoch, 4);
  }
});
