// Drivers across epochs (docs/reconfiguration.md): four members in one process over an in-memory
// transport, real LMDB stores and real SLH-DSA. An operator's change (approved by a quorum) is
// submitted, the leader proposes it, and the block carrying it ends the epoch everywhere at the
// same height; each member records the proof, shows its signer, and runs the next epoch's engine
// with the next set: first a fifth member is added (who stays away, like a crashed one), then a
// member's key is rotated, after which that member signs with its new key only. A restarted member
// comes back in the epoch it left. The signer here is a plain key per epoch (the real signer's
// AdvanceEpoch has its own tests, test/signer-epochs.test.ts).

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { blockHash, createSlhDsa, reconfigSigningBytes, toHex, txHash, voteSigningBytes, type KeyPair } from '#libs/crypto/index.ts';
import { Phase, type Block, type QuorumCert, type SignRequest } from '#libs/hotstuff/index.ts';
import { ValidatorSet, encodeReconfigTx, type Reconfiguration } from '#libs/validators/index.ts';
import { decodeFrame, encodeFrame, signingBytesOfRequest, type FrameLimits } from '#libs/wire/index.ts';
import type { EpochChangeProof } from '#libs/verify/index.ts';
import { isFedError } from '#libs/errors/index.ts';
import { BlockStore } from './block-store.ts';
import { ConsensusDriver } from './driver.ts';
import { ConsensusEpochs } from './epochs.ts';
import { Inbound } from './inbound.ts';
import { Mempool } from './mempool.ts';
import { OUTSIDE_BASE, systemClock, type TransportPort } from './ports.ts';
import { NO_IDS } from './mempool.ts';

const N = 4;
const CHAIN = 'driver-epochs';
const dsa = createSlhDsa();
const seed = (k: number) => new Uint8Array(dsa.seedBytes).fill(k);
const keys: KeyPair[] = Array.from({ length: 6 }, (_, i) => dsa.generateKeyPair(seed(60 + i)));
const NEW_M3 = keys[5]!;
const genesis = ValidatorSet.fromConfig(keys.slice(0, N).map((k, i) => ({ name: `m${i}`, peer_id: `peer-${i}`, public_key: toHex(k.publicKey) })));
const log = pino({ level: process.env.TEST_LOG ?? 'silent' });
/** How long each member's signer takes to take an ended epoch's proof (AdvanceEpoch). */
let advanceDelayMs = 0;
const dirs: string[] = [];
after(() => Promise.all(dirs.map((d) => fs.rm(d, { recursive: true, force: true }))));

interface Member { driver: ConsensusDriver; inbound: Inbound; store: BlockStore; commits: Block[]; qcs: QuorumCert[]; epochs: number[]; down: boolean; key: () => KeyPair;
  /** Signature checks that failed: the sender's number, what, the view, and the epoch it was checked in. */
  invalid: Array<[number, string, number, number]>;
  /** Called as the member's next engine starts, before the rest of the step that ended the epoch runs. */
  onEpoch?: (epoch: number) => void;
  /** Frames to it that are lost on the way while this says so. */
  drop?: (frame: Uint8Array) => boolean }

/** Whose key each member's signer holds from which epoch on (a rotation): default m3's new key from epoch 2. */
interface Rotation { member: number; fromEpoch: number; key: KeyPair }

async function federation(rotation: Rotation = { member: 3, fromEpoch: 2, key: NEW_M3 }) {
  const members: Member[] = [];
  const limits: FrameLimits = { chainId: CHAIN, validatorCount: N, signatureBytes: dsa.signatureBytes, maxBlockTxs: 1000,
    maxBlockBytes: 1 << 20, maxFrameBytes: 8 << 20, maxSyncBlocks: 64, hashBlock: blockHash };
  // Members are addressed by peer id, as gateways do: a number names a member in its epoch's set
  // (a removal renumbers those behind it), and a receiver numbers the sender by its own set.
  const setOf = (i: number) => members[i]!.driver.currentEpoch!.set;
  const memberAt = (i: number, index: number) => (index >= OUTSIDE_BASE ? index - OUTSIDE_BASE : index < setOf(i).n ? Number(setOf(i).byIndex(index).peerId.slice('peer-'.length)) : -1);
  const deliver = (from: number, to: number, frame: Uint8Array) => {
    setImmediate(() => {
      const m = members[to];
      if (m && !m.down && !members[from]!.down && !m.drop?.(frame)) m.inbound.onFrame(setOf(to).indexOfPeer(`peer-${from}`) ?? OUTSIDE_BASE + from, frame);
    });
  };
  const memberDirs: string[] = [];
  const build = (i: number, dir: string): Member => {
    const transport: TransportPort = {
      send: (to, frame) => deliver(i, memberAt(i, to), frame),
      broadcast: (frame) => { for (let j = 0; j < members.length; j++) if (j !== i) deliver(i, j, frame); },
    };
    const store = new BlockStore({ path: dir, limits, hashBlock: blockHash, chainId: CHAIN });
    const epochs = ConsensusEpochs.open({ chainId: CHAIN, genesis, member: `m${i}`, dsa, store });
    // The signer's key per epoch: the rotated member's new key from the rotation on, everybody else's own.
    let epoch = epochs.current.number;
    const key = () => (i === rotation.member && epoch >= rotation.fromEpoch ? rotation.key : keys[i]!);
    const signer = {
      sign: (req: SignRequest) => dsa.sign(key().secretKey, signingBytesOfRequest(CHAIN, req)),
      advanceEpoch: async (proof: EpochChangeProof) => { await new Promise((r) => setTimeout(r, advanceDelayMs)); epoch = proof.last.header.epoch + 1; return { epoch, seated: true }; },
    };
    const m: Member = { driver: undefined as unknown as ConsensusDriver, inbound: undefined as unknown as Inbound, store, commits: [], qcs: [], epochs: [], down: false, key, invalid: [] };
    m.driver = new ConsensusDriver(
      { engine: { chainId: CHAIN, validatorCount: N, self: i, timeouts: { baseMs: 1500, multiplier: 1.5, capMs: 10_000 } }, maxBlockTxs: 1000, maxBlockBytes: 1 << 20 },
      { store, pool: new Mempool({ maxTxs: 10_000, maxBytes: 1 << 24, maxTxBytes: 1024 }), epochs, signer, transport, clock: systemClock, log: log.child({ member: i }),
        observer: { committed: (bs, qc) => { m.commits.push(...bs); m.qcs.push(qc); }, epochStarted: (e) => { m.epochs.push(e); m.onEpoch?.(e); } } },
    );
    m.inbound = new Inbound({ limits, driver: m.driver, pool: m.driver.pool, transport, clock: systemClock, log, blockTime: { driftMs: 2000, maxDelayMs: 30_000 },
      observer: { invalidSignature: (from, what, view, epoch) => { m.invalid.push([from, what, view, epoch]); } } });
    return m;
  };
  for (let i = 0; i < N; i++) {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'btcfed-epochs-'));
    dirs.push(dir);
    memberDirs.push(dir);
    members.push(build(i, dir));
  }
  return {
    members,
    async restart(i: number) {
      members[i]!.down = true;
      await members[i]!.driver.stop();
      await new Promise((r) => setTimeout(r, 250)); // what is in flight sees it stopped before its store closes
      await members[i]!.store.close();
      members[i] = build(i, memberDirs[i]!);
      members[i]!.driver.start();
    },
  };
}

/**
 * Stops every member, lets what is in flight (frames queued with setImmediate, signature checks on
 * the thread pool) see them stopped, then closes their stores: a store closed under a read still
 * in flight threw after the test ended ("Can not renew a transaction from a closed database").
 */
async function shutdown(members: Member[]): Promise<void> {
  const drained = members.map((m) => { m.down = true; return m.driver.stop(); });
  await Promise.all(drained);
  await new Promise((r) => setTimeout(r, 250));
  await Promise.all(members.map((m) => m.store.close()));
}

async function until(what: string, cond: () => boolean, ms = 60_000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The change's transaction, approved by `by` (validator indices of its epoch) with `keyOf(index)`. */
function changeTx(change: Reconfiguration, by: number[], keyOf: (i: number) => KeyPair): Uint8Array {
  return encodeReconfigTx({ change, approvals: by.map((validator) => ({ validator, signature: dsa.signSync(keyOf(validator).secretKey, reconfigSigningBytes(change)) })) });
}

test('a committed change ends the epoch at one height everywhere; the next epoch runs with the next set, and a rotated key is the only one used after', async () => {
  const { members, restart } = await federation();
  members.forEach((m) => m.driver.start());
  await until('a first commit', () => members.every((m) => m.commits.length > 0));

  // Epoch 0 → 1: add m4 (who never runs: the four others are epoch 1's quorum of 5).
  const add: Reconfiguration = { chainId: CHAIN, epoch: 0, ops: [{ kind: 'add', name: 'm4', peerId: 'peer-4', publicKey: keys[4]!.publicKey }] };
  const tx1 = changeTx(add, [0, 1, 2], (i) => keys[i]!);
  // Refused before it is ever proposed: approvals below quorum, or a change of a later epoch.
  assert.throws(() => members[0]!.driver.submitChange(changeTx(add, [0, 1], (i) => keys[i]!)), (e: unknown) => isFedError(e) && /2 approvals, a quorum of epoch 0 is 3/.test(e.message));
  assert.throws(() => members[0]!.driver.submitChange(changeTx({ ...add, epoch: 1 }, [0, 1, 2], (i) => keys[i]!)), (e: unknown) => isFedError(e) && /epoch/.test(e.message));
  for (const m of members) m.driver.submitChange(tx1);
  await until('epoch 1 everywhere', () => members.every((m) => m.driver.epoch === 1));
  const proofs = members.map((m) => m.store.endedEpochs());
  for (const p of proofs) {
    assert.equal(p.length, 1);
    assert.equal(toHex(p[0]!.last.hash), toHex(proofs[0]![0]!.last.hash), 'every member ended epoch 0 with the same block');
  }
  const end0 = proofs[0]![0]!.last.header.height;
  for (const m of members) {
    assert.equal(m.store.committedHeight() >= end0, true);
    assert.equal(m.driver.validatorCount, 5);
    assert.deepEqual(m.epochs, [1]);
  }
  await until('blocks of epoch 1 committed', () => members.every((m) => m.commits.some((b) => b.header.epoch === 1)));
  // Epoch 1's QCs: four of five, signed as epoch 1's votes.
  const qc1 = members[0]!.qcs.find((q) => members[0]!.commits.find((b) => toHex(b.hash) === toHex(q.blockHash))?.header.epoch === 1)!;
  assert.equal(qc1.signers.length, 4);

  // Epoch 1 → 2: m3 gets a new key (approved by four of epoch 1's five).
  const rotate: Reconfiguration = { chainId: CHAIN, epoch: 1, ops: [{ kind: 'rotate', name: 'm3', peerId: 'peer-3', publicKey: NEW_M3.publicKey }] };
  const tx2 = changeTx(rotate, [0, 1, 2, 3], (i) => keys[i]!);
  for (const m of members) m.driver.submitChange(tx2);
  await until('epoch 2 everywhere', () => members.every((m) => m.driver.epoch === 2));
  await until('blocks of epoch 2 committed', () => members.every((m) => m.commits.filter((b) => b.header.epoch === 2).length >= 2));

  // Every commit QC of epoch 2 that m3 signed verifies with its new key, none with its old one.
  const epoch2 = members[0]!.qcs.filter((q) => members[0]!.commits.find((b) => toHex(b.hash) === toHex(q.blockHash))?.header.epoch === 2);
  const byM3 = epoch2.filter((q) => q.signers.includes(3));
  assert.ok(byM3.length > 0, 'm3 took part in epoch 2');
  for (const q of byM3) {
    const sig = q.signatures[q.signers.indexOf(3)]!;
    const bytes = voteSigningBytes({ chainId: CHAIN, epoch: 2, phase: q.phase, view: q.view, blockHash: q.blockHash });
    assert.equal(dsa.verifySync(NEW_M3.publicKey, bytes, sig), true);
    assert.equal(dsa.verifySync(keys[3]!.publicKey, bytes, sig), false);
  }
  // The stored proofs walk from genesis alone to epoch 2's set.
  const walked = ConsensusEpochs.open({ chainId: CHAIN, genesis, member: 'nobody', dsa, store: members[1]!.store });
  assert.equal(walked.current.number, 2);
  assert.equal(walked.current.set.byIndex(3).publicKey, toHex(NEW_M3.publicKey));
  // The chain is one chain: every member's committed log agrees, across both boundaries.
  const logs = members.map((m) => m.commits.map((b) => toHex(b.hash)));
  const shortest = Math.min(...logs.map((l) => l.length));
  for (const l of logs) assert.deepEqual(l.slice(0, shortest), logs[0]!.slice(0, shortest));

  // A restart comes back in epoch 2 from the store alone and goes on committing.
  await restart(2);
  assert.equal(members[2]!.driver.epoch, 2);
  const h = members[2]!.store.committedHeight();
  await until('the restarted member commits again', () => members[2]!.store.committedHeight() > h + 1);
  await shutdown(members);
});

test('a forged proof ends no epoch: the store and the epochs stay where they were', async () => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'btcfed-epochs-'));
  dirs.push(dir);
  const store = new BlockStore({ path: dir, limits: { validatorCount: N }, hashBlock: blockHash, chainId: CHAIN });
  try {
    const epochs = ConsensusEpochs.open({ chainId: CHAIN, genesis, member: 'm0', dsa, store });
    const g = epochs.current.root;
    const header = { ...g.header, height: 1, view: 1, parentHash: g.hash };
    const last = { header, hash: blockHash(header), txs: [] };
    await assert.rejects(epochs.end({ last, suffix: [], qc: { phase: 3, view: 1, blockHash: last.hash, signers: [0, 1, 2], signatures: [0, 1, 2].map(() => new Uint8Array(dsa.signatureBytes)) } }),
      (e: unknown) => isFedError(e, 'EPOCH_PROOF_INVALID') && /epoch 0 cannot end/.test(e.message));
    assert.equal(epochs.current.number, 0);
    assert.deepEqual(store.endedEpochs(), []);
  } finally {
    await store.close();
  }
});

test('a member away while the epoch ended follows when it is back: told how the epoch ended, it fetches and commits its end, then runs the next epoch', async () => {
  const { members } = await federation({ member: 1, fromEpoch: 1, key: NEW_M3 });
  members.forEach((m) => m.driver.start());
  try {
  await until('a first commit', () => members.every((m) => m.commits.length > 0));
  const away = members[3]!;
  away.down = true;
  const rotate: Reconfiguration = { chainId: CHAIN, epoch: 0, ops: [{ kind: 'rotate', name: 'm1', peerId: 'peer-1', publicKey: NEW_M3.publicKey }] };
  const tx = changeTx(rotate, [0, 1, 2], (i) => keys[i]!);
  for (const m of members.slice(0, 3)) m.driver.submitChange(tx);
  await until('epoch 1 on the three present', () => members.slice(0, 3).every((m) => m.driver.epoch === 1));
  await until('blocks of epoch 1 committed by the three', () => members.slice(0, 3).every((m) => m.commits.filter((b) => b.header.epoch === 1).length >= 3));
  assert.equal(away.driver.epoch, 0, 'the absent member is still in epoch 0');
  away.down = false;
  await until('the member that was away reaches epoch 1', () => away.driver.epoch === 1, 60_000);
  await until('and commits in it', () => away.commits.filter((b) => b.header.epoch === 1).length >= 3, 60_000);
  assert.equal(away.store.endedEpochs().length, 1);
  assert.equal(toHex(away.store.endedEpochs()[0]!.last.hash), toHex(members[0]!.store.endedEpochs()[0]!.last.hash), 'it ended epoch 0 with the same block');
  const logs = members.map((m) => m.commits.map((b) => toHex(b.hash)));
  const shortest = Math.min(...logs.map((l) => l.length));
  for (const l of logs) assert.deepEqual(l.slice(0, shortest), logs[0]!.slice(0, shortest));
  } finally {
    await shutdown(members);
  }
});

test('a parameter change: from the next epoch every member runs the committed base timeout and idle heartbeat (no block without work until the heartbeat), and a restart comes back with them', async () => {
  const { members, restart } = await federation();
  members.forEach((m) => m.driver.start());
  try {
    await until('a first commit', () => members.every((m) => m.commits.length > 0));
    for (const m of members) assert.deepEqual([m.driver.timing.timeouts.baseMs, m.driver.timing.idleHeartbeatMs], [1500, 0], 'epoch 0: conf\'s (the options\')');
    const change: Reconfiguration = { chainId: CHAIN, epoch: 0, ops: [{ kind: 'params', baseTimeoutMs: 2500, idleHeartbeatMs: 1000 }] };
    const tx = changeTx(change, [0, 1, 2], (i) => keys[i]!);
    for (const m of members) m.driver.submitChange(tx);
    await until('epoch 1 everywhere', () => members.every((m) => m.driver.epoch === 1));
    for (const m of members) {
      assert.equal(m.driver.timing.timeouts.baseMs, 2500);
      assert.equal(m.driver.timing.timeouts.multiplier, 1.5, 'the back-off stays this member\'s');
      assert.equal(m.driver.timing.idleHeartbeatMs, 1000);
      assert.equal(m.driver.validatorCount, N, 'the set is unchanged');
    }
    // Idle views: with no transaction, a block only once the heartbeat is due after the last commit,
    // so the proposer's timestamps of consecutive epoch-1 blocks lie at least a heartbeat apart.
    await until('four blocks of epoch 1', () => members[0]!.commits.filter((b) => b.header.epoch === 1).length >= 4, 30_000);
    const times = members[0]!.commits.filter((b) => b.header.epoch === 1).map((b) => b.header.timestampMs);
    const gaps = times.slice(1).map((t, i) => t - times[i]!);
    assert.ok(gaps.every((g) => g >= 1000), `gaps between idle blocks ${gaps.join(', ')} ms: each at least the heartbeat`);

    await restart(1);
    assert.equal(members[1]!.driver.epoch, 1);
    assert.deepEqual([members[1]!.driver.timing.timeouts.baseMs, members[1]!.driver.timing.idleHeartbeatMs], [2500, 1000], 'from the stored proof, not the options');
  } finally {
    await shutdown(members);
  }
});

test('a change submitted to one member survives its restart: kept on disk, passed on and proposed again, and forgotten once its epoch ends', async () => {
  const { members, restart } = await federation();
  members.forEach((m) => m.driver.start());
  try {
    await until('a first commit', () => members.every((m) => m.commits.length > 0));
    const change: Reconfiguration = { chainId: CHAIN, epoch: 0, ops: [{ kind: 'params', baseTimeoutMs: 2500, idleHeartbeatMs: 1000 }] };
    const tx = changeTx(change, [0, 1, 2], (i) => keys[i]!);
    // Only m1 holds it: cut off (what it sends reaches nobody, so its forward is lost) and proposing nothing before its restart.
    members[1]!.driver.setPaused(true);
    members[1]!.down = true;
    await members[1]!.driver.submitChangeDurably(tx);
    assert.deepEqual(members[1]!.store.pendingChange(), tx, 'on disk before the submit returned');
    await new Promise((r) => setTimeout(r, 500));
    assert.ok([0, 2, 3].every((i) => members[i]!.driver.pendingChange === undefined), 'nobody else holds it before the restart');
    await restart(1);
    await until('epoch 1 everywhere', () => members.every((m) => m.driver.epoch === 1), 90_000);
    const last = members[0]!.store.endedEpochs()[0]!.last;
    assert.ok(last.txs.some((t) => Buffer.from(t).equals(tx)), 'the epoch\'s last block carries the change');
    await until('m1 forgot it on disk', () => members[1]!.store.pendingChange() === undefined, 10_000);
    // A change left on disk whose epoch has ended is dropped at the next start, not proposed.
    await members[1]!.store.setPendingChange(tx);
    await restart(1);
    await until('an ended epoch\'s change forgotten at start', () => members[1]!.store.pendingChange() === undefined, 10_000);
    assert.equal(members[1]!.driver.epoch, 1);
  } finally {
    await shutdown(members);
  }
});

test('a change submitted to a member that proposes nothing is passed on: another leader proposes it, and every member that took it forgets it once its epoch ends', async () => {
  const { members } = await federation();
  members.forEach((m) => m.driver.start());
  try {
    await until('a first commit', () => members.every((m) => m.commits.length > 0));
    const change: Reconfiguration = { chainId: CHAIN, epoch: 0, ops: [{ kind: 'params', baseTimeoutMs: 2000, idleHeartbeatMs: 1000 }] };
    const tx = changeTx(change, [1, 2, 3], (i) => keys[i]!);
    // m1 signs nothing (no proposal, no vote): only the others can put the change in a block.
    members[1]!.driver.setPaused(true);
    await members[1]!.driver.submitChangeDurably(tx);
    await until('the change passed on to m0', () => members[0]!.driver.pendingChange !== undefined || members[0]!.driver.epoch === 1, 10_000);
    if (members[0]!.driver.epoch === 0) assert.equal(members[0]!.driver.pendingChange?.from, 1, 'm0 holds it from m1');
    assert.equal(members[1]!.driver.pendingChange?.from, undefined, 'submitted to m1 itself');
    await until('epoch 1 everywhere', () => members.every((m) => m.driver.epoch === 1), 60_000);
    const last = members[0]!.store.endedEpochs()[0]!.last;
    assert.notEqual(last.header.proposer, 1);
    assert.ok(last.txs.some((t) => Buffer.from(t).equals(tx)), 'the epoch\'s last block carries the change');
    await until('every member forgot it on disk', () => members.every((m) => m.store.pendingChange() === undefined), 10_000);
  } finally {
    await shutdown(members);
  }
});

test('epochs one after another: each new epoch commits in its first views (what a sender said in an earlier epoch\'s view of the same number is no duplicate of what it says now)', async () => {
  const { members } = await federation();
  members.forEach((m) => m.driver.start());
  try {
    // Three parameter changes back to back, each epoch running some views first: views restart
    // at every epoch, so each view number recurs. Found on the namespace test bed (an add, then a
    // removal a minute later): the third epoch's votes were refused as duplicates of the first two
    // epochs' and it committed nothing for as long as its views' numbers had been used before.
    for (let epoch = 0; epoch < 3; epoch++) {
      await until(`six blocks of epoch ${epoch}`, () => members.every((m) => m.commits.filter((b) => b.header.epoch === epoch).length >= 6), 30_000);
      const change: Reconfiguration = { chainId: CHAIN, epoch, ops: [{ kind: 'params', baseTimeoutMs: 1500 + 100 * (epoch + 1), idleHeartbeatMs: 0 }] };
      for (const m of members) m.driver.submitChange(changeTx(change, [0, 1, 2], (i) => keys[i]!));
      await until(`epoch ${epoch + 1} everywhere`, () => members.every((m) => m.driver.epoch === epoch + 1));
    }
    await until('three blocks of epoch 3', () => members[0]!.commits.filter((b) => b.header.epoch === 3).length >= 3, 30_000);
    for (let epoch = 1; epoch <= 3; epoch++) {
      const first = members[0]!.commits.find((b) => b.header.epoch === epoch)!;
      assert.ok(first.header.view <= 3, `epoch ${epoch}'s first committed block is of view ${first.header.view}: its first views committed nothing`);
    }
  } finally {
    await shutdown(members);
  }
});

test('a restart just after an epoch began comes back in it afresh: what the ended epoch\'s engine had left to write is not written over the next epoch\'s start', async () => {
  const { members, restart } = await federation();
  members.forEach((m) => m.driver.start());
  try {
    await until('blocks of epoch 0', () => members.every((m) => m.commits.length >= 4), 30_000);
    // m2 is cut off the moment its epoch-1 engine starts: that engine writes nothing of its own
    // (no vote, no view change), so its store holds what the switch left there. The step that
    // committed epoch 0's last block also moved the ended engine's commit mark, and its safety
    // state was queued for writing after the switch had cleared it: restored from it, m2 came
    // back in epoch 1 at epoch 0's view with epoch 0's lock, voting for nothing until epoch 1's
    // views passed epoch 0's, and its NEW-VIEWs carried a QC of epoch 0's keys.
    const cut = members[2]!;
    const ended = cut.driver.engine;
    cut.onEpoch = (e) => { if (e === 1) cut.down = true; };
    const change: Reconfiguration = { chainId: CHAIN, epoch: 0, ops: [{ kind: 'params', baseTimeoutMs: 1600, idleHeartbeatMs: 0 }] };
    for (const m of members) m.driver.submitChange(changeTx(change, [0, 1, 2], (i) => keys[i]!));
    await until('epoch 1 at m2', () => cut.driver.epoch === 1);
    const root = cut.store.endedEpochs()[0]!.last;
    await new Promise((r) => setTimeout(r, 300)); // the rest of that step runs
    const stored = cut.store.load(root)?.safety.lockedQC;
    assert.ok(stored === undefined || stored.view === 0, `the store holds a safety state locked at view ${stored?.view}: the ended engine's, written after the switch`);
    // And should such a state be there all the same (a write that raced the switch), a restart
    // starts the epoch afresh from its root rather than from it.
    assert.equal(ended.epoch, 0);
    await cut.store.persist({ ...ended.safety }, [], [], []);
    await restart(2);
    const engine = members[2]!.driver.engine;
    assert.equal(engine.epoch, 1);
    assert.equal(engine.safety.lockedQC.view, 0, `m2 came back locked on a QC of view ${engine.safety.lockedQC.view}: epoch 0's lock`);
    assert.equal(toHex(engine.safety.lockedQC.blockHash), toHex(root.hash), 'locked on the block that ended epoch 0');
    assert.ok(engine.view < root.header.view, `m2 came back at view ${engine.view}, epoch 0 ended at view ${root.header.view}`);
    await until('m2 commits in epoch 1 again', () => members[2]!.commits.some((b) => b.header.epoch === 1), 30_000);
  } finally {
    await shutdown(members);
  }
});

/** Four members running epoch 1 of five: m4 added by epoch 0's change, and away (no key rotated). */
async function fiveWithOneAway(): Promise<Member[]> {
  const { members } = await federation({ member: 3, fromEpoch: 99, key: NEW_M3 });
  members.forEach((m) => m.driver.start());
  try {
    await until('blocks of epoch 0', () => members.every((m) => m.commits.length >= 2), 30_000);
    const add: Reconfiguration = { chainId: CHAIN, epoch: 0, ops: [{ kind: 'add', name: 'm4', peerId: 'peer-4', publicKey: keys[4]!.publicKey }] };
    for (const m of members) m.driver.submitChange(changeTx(add, [0, 1, 2], (i) => keys[i]!));
    await until('epoch 1 everywhere', () => members.every((m) => m.driver.epoch === 1));
    return members;
  } catch (err) {
    await shutdown(members);
    throw err;
  }
}

/** Every member of epoch 1 submits the change that removes m1 (approved by m0–m3): m2, m3 and m4 move up a number. */
function removeM1(members: Member[]): void {
  const remove: Reconfiguration = { chainId: CHAIN, epoch: 1, ops: [{ kind: 'remove', name: 'm1' }] };
  for (const m of members) m.driver.submitChange(changeTx(remove, [0, 1, 2, 3], (i) => keys[i]!));
}

test('what was queued for the ended engine does not reach the next one under the new numbers: a removed member\'s absence, told while the signer is shown the proof, lands on nobody', async () => {
  // m4 is added (and stays away) in epoch 1; the test then removes m1: m2, m3 and m4 move up a number.
  const members = await fiveWithOneAway();
  try {
    advanceDelayMs = 600;
    removeM1(members);
    const watcher = members[0]!;
    await until('m0 shows its signer the proof', () => watcher.driver.switching?.includes('showing the signer') === true);
    // m1 (number 1 of epoch 1) goes as the change removes it: the gateway says so by the numbers
    // it still uses. Carried into epoch 2, that absence named m2, whose views m0 then gave up at
    // once for the rest of the epoch.
    watcher.driver.peerPresence(1, false);
    await until('epoch 2 at m0', () => watcher.driver.epoch === 2);
    await until('m0 commits in epoch 2', () => watcher.commits.some((b) => b.header.epoch === 2), 30_000);
    assert.ok(!watcher.driver.engine.suspectedLeaders.includes(1), `m0 suspects validator 1 (m2) of epoch 2: ${watcher.driver.engine.suspectedLeaders}`);
  } finally {
    advanceDelayMs = 0;
    await shutdown(members);
  }
});

test('a member removed that missed its epoch\'s end learns it when it speaks: its old epoch\'s messages are answered with how that epoch ended, not struck', async () => {
  const members = await fiveWithOneAway();
  try {
    // Epoch 1 (five, m4 away) needs m1's votes to commit its removal, but m1 never gets the
    // commit QCs that end epoch 1: it is left in epoch 1 as the others start epoch 2 without it.
    const removed = members[1]!;
    const limits: FrameLimits = { chainId: CHAIN, validatorCount: 8, signatureBytes: dsa.signatureBytes, maxBlockTxs: 1000, maxBlockBytes: 1 << 20, maxFrameBytes: 8 << 20, maxSyncBlocks: 64, hashBlock: blockHash };
    removed.drop = (frame) => {
      const f = decodeFrame(frame, limits);
      return f.type === 'consensus' && f.message.type === 'qc' && f.message.qc.phase === Phase.COMMIT;
    };
    removeM1(members);
    await until('epoch 2 at the others', () => [0, 2, 3].every((i) => members[i]!.driver.epoch === 2), 30_000);
    removed.drop = undefined;
    // Its epoch-1 messages (NEW-VIEWs as its views time out) reach members to whom it is outside
    // the set: each answers, at most once a second, with epoch 1's commit QC.
    await until('m1 learns it was removed', () => removed.driver.epoch === 2 && removed.driver.retired, 30_000);
  } finally {
    await shutdown(members);
  }
});

test('a signature check that answers after its epoch ended strikes the sender under its new number, and is told with the epoch it was checked in', async () => {
  // m4 is added (and stays away) in epoch 1; the test then removes m1: m2, m3 and m4 move up a number.
  const members = await fiveWithOneAway();
  try {
    const watcher = members[0]!;
    // m0 checks a message of m2 (number 2 of epoch 1) with epoch 1's keys; the check answers, failed,
    // only once m0 runs epoch 2, where number 2 is m3's. (A slow verifier, as a loaded thread pool is.)
    const verifier = watcher.driver.verifier;
    const real = verifier.verifyMessage.bind(verifier);
    let held: string | undefined;
    verifier.verifyMessage = async (m) => {
      if (held !== undefined || m.type === 'qc' || m.sender !== 2) return real(m);
      held = m.type;
      await until('epoch 2 at m0', () => watcher.driver.epoch === 2);
      return { ok: false, what: m.type, sender: 2 };
    };
    const struck: number[] = [];
    const strike = watcher.driver.penalties.strike.bind(watcher.driver.penalties);
    watcher.driver.penalties.strike = (peer, n) => { if (watcher.driver.epoch === 2) struck.push(peer); return strike(peer, n); };
    await until('a message of m2 held in its check', () => held !== undefined);
    removeM1(members);
    await until('the held check answered', () => watcher.invalid.length > 0);
    const [from, what, , epoch] = watcher.invalid[0]!;
    assert.deepEqual([from, what, epoch], [2, held, 1], 'told as m2\'s, number 2 of epoch 1, checked in epoch 1');
    assert.ok(!struck.includes(2), `m3, number 2 of epoch 2, was struck for m2's message: ${struck}`);
    assert.ok(struck.includes(1), `m2, number 1 of epoch 2, was not struck: ${struck}`);
  } finally {
    await shutdown(members);
  }
});

test('the swap moves the pool\'s sources, the batches\' holders and authors and the hand-off budgets with their members: a removal\'s renumbering charges nobody for another', async () => {
  const members = await fiveWithOneAway();
  try {
    advanceDelayMs = 600;
    removeM1(members);
    const watcher = members[0]!;
    await until('m0 shows its signer the proof', () => watcher.driver.switching?.includes('showing the signer') === true);
    // Handed over by m1 and m2 (numbers 1 and 2 of epoch 1) while no engine runs: nothing commits them.
    const tx = (s: string) => new TextEncoder().encode(s);
    watcher.driver.pool.offer(tx('from-m1'), Date.now(), () => false, 1);
    watcher.driver.pool.offer(tx('from-m2'), Date.now(), () => false, 2);
    const batch = watcher.driver.batches.add(2, [tx('batch-of-m2')], [txHash(tx('batch-of-m2'))], Date.now());
    // m3 (number 3 of epoch 1) hands over its whole second's worth (handoff_txs_per_second, 5,000)
    // in the swap step, just before the store renumbers (a refill of the time between would need a
    // quiet machine). A hand-off of 4,500 after it is within the budget of m4 (number 3 of epoch 2,
    // new), not within m3's (number 2 of epoch 2, m2's before).
    let n = 0;
    const handOff = (from: number, count: number) => {
      const before = watcher.inbound.handoffRefused;
      watcher.inbound.onFrame(from, encodeFrame(CHAIN, { type: 'tx-batch', txs: Array.from({ length: count }, () => tx(`handoff-${n++}`)) }));
      return watcher.inbound.handoffRefused - before;
    };
    const spentBefore: number[] = [];
    const renumber = watcher.driver.batches.renumber.bind(watcher.driver.batches);
    watcher.driver.batches.renumber = (to, epoch, self) => { spentBefore.push(handOff(3, 5_000)); renumber(to, epoch, self); };
    let seen: Array<[string, number]> = [];
    let refused: number[] = [];
    watcher.onEpoch = (e) => {
      if (e !== 2) return;
      seen = watcher.driver.pool.batch(100_000, 1 << 24, NO_IDS).map((p): [string, number] => [new TextDecoder().decode(p.tx), p.source]).filter(([t]) => t.startsWith('from-'));
      refused = [handOff(3, 4_500), handOff(2, 4_500)];
    };
    await until('epoch 2 at m0', () => watcher.driver.epoch === 2);
    assert.deepEqual(spentBefore, [0], 'm3 handed over its whole budget, as number 3, once, in the swap step');
    assert.deepEqual(seen.sort(), [['from-m1', OUTSIDE_BASE], ['from-m2', 1]], 'm2 is number 1 of epoch 2; m1, seated no more, is an outsider');
    assert.deepEqual([batch.holder, batch.ref.author], [1, 1], 'm2\'s batch names it by its new number');
    assert.equal(refused[0], 0, 'm4, new at number 3, does not inherit m3\'s spent budget');
    assert.ok(refused[1]! >= 1_000, `m3, number 2 now, had its spent budget still (refused ${refused[1]})`);
  } finally {
    advanceDelayMs = 0;
    await shutdown(members);
  }
});
