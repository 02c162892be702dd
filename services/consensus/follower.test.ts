// The observer's follower against a real LMDB block store and real SLH-DSA signatures: what a
// source serves is appended only when it proves itself against the validator set; a forged
// block or QC is refused, counted, blamed on its sender, and that sender is passed over; late,
// unsolicited or silent answers cost nothing but a move to another source.

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { blockHash, createSlhDsa, merkleRoot, nextStateHash, paramSpec, reconfigSigningBytes, toHex, txHash, voteSigningBytes } from '#libs/crypto/index.ts';
import { ValidatorSet, encodeReconfigTx, type Reconfiguration } from '#libs/validators/index.ts';
import { ConsensusEpochs } from './epochs.ts';
import { Phase, genesisBlock, type Block, type QuorumCert } from '#libs/hotstuff/index.ts';
import { decodeFrame, type CertifiedBlock } from '#libs/wire/index.ts';
import { BlockStore } from './block-store.ts';
import { ANCHOR_EVERY, BAD_SOURCE_MS, Follower, IDLE_POLL_MS, REQUEST_TIMEOUT_MS } from './follower.ts';
import { OUTSIDE_BASE } from './ports.ts';
import { manualClock } from './manual-clock.ts';

const CHAIN = `follow-${process.pid}`;
const dsa = createSlhDsa();
const keys = Array.from({ length: 4 }, () => dsa.generateKeyPair());
const outsider = dsa.generateKeyPair();
const limits = { validatorCount: 4, signatureBytes: paramSpec('slh-dsa-sha2-128f').signatureBytes, maxBlockTxs: 100, maxBlockBytes: 1 << 20 };
const frameLimits = { ...limits, chainId: CHAIN, maxFrameBytes: 64 << 20, maxSyncBlocks: 64, hashBlock: blockHash };
const enc = (s: string) => new TextEncoder().encode(s);
const dirs: string[] = [];
after(() => Promise.all(dirs.map((d) => fs.rm(d, { recursive: true, force: true }))));

const genesis = genesisBlock(CHAIN, blockHash);
function child(parent: Block, txs: Uint8Array[], epoch = 0): Block {
  const txRoot = merkleRoot(txs.map((t) => txHash(t)));
  const view = parent.header.height + 1;
  const header = { chainId: CHAIN, epoch, height: parent.header.height + 1, view, parentHash: parent.hash, proposer: view % 4, timestampMs: view,
    txRoot, stateHash: nextStateHash(parent.header.stateHash, txRoot) };
  return { header, hash: blockHash(header), txs };
}
async function commitQc(b: Block, signWith = (i: number) => keys[i]!.secretKey): Promise<QuorumCert> {
  const bytes = voteSigningBytes({ chainId: CHAIN, epoch: b.header.epoch, phase: Phase.COMMIT, view: b.header.view, blockHash: b.hash });
  const signers = [0, 1, 2];
  return { phase: Phase.COMMIT, view: b.header.view, blockHash: b.hash, signers, signatures: await Promise.all(signers.map((i) => dsa.sign(signWith(i), bytes))) };
}
const genesisSet = ValidatorSet.fromConfig(keys.map((k, i) => ({ name: `m${i}`, peer_id: `peer-${i}`, public_key: toHex(k.publicKey) })));
const b1 = child(genesis, [enc('alice pays bob')]);
const b2 = child(b1, [enc('carol pays dan')]);
const b3 = child(b2, [enc('erin pays frank')]);

async function follower(sources = [0, 1, 2, 3], anchors: number[] = [], withEpochs = false) {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'btcfed-follow-'));
  dirs.push(dir);
  const store = new BlockStore({ path: dir, limits, hashBlock: blockHash, chainId: CHAIN });
  const clock = manualClock();
  const sent: { to: number; requestId: number; fromHeight: number }[] = [];
  const refused: { from: number; reason: string; detail: string }[] = [];
  const committed: number[] = [];
  const transport = {
    send: (to: number, frame: Uint8Array) => {
      const f = decodeFrame(frame, frameLimits);
      if (f.type === 'block-request') sent.push({ to, requestId: f.requestId, fromHeight: f.fromHeight });
    },
    broadcast: () => undefined,
  };
  const epochs = withEpochs ? ConsensusEpochs.open({ chainId: CHAIN, genesis: genesisSet, member: 'o0', dsa, store }) : undefined;
  const started: number[] = [];
  /** What the follower told, in order: `committed <heights>` and `epoch <number>`. */
  const told: string[] = [];
  const f = new Follower({ chainId: CHAIN, store, genesis, root: { chainId: CHAIN, publicKeys: keys.map((k) => k.publicKey), dsa }, transport, clock,
    ...(epochs ? { epochs, epochStarted: (e: number) => { started.push(e); told.push(`epoch ${e}`); } } : {}),
    log: pino({ level: process.env.TEST_LOG ?? 'silent' }), sources: () => sources, anchors: () => anchors,
    committed: (bs) => { committed.push(...bs.map((b) => b.header.height)); told.push(`committed ${bs.map((b) => b.header.height).join(',')}`); },
    refused: (from, reason, detail) => refused.push({ from, reason, detail }) });
  f.start();
  clock.advance(0);
  return { f, store, clock, sent, refused, committed, epochs, started, told, last: () => sent.at(-1)!, close: () => { f.stop(); return store.close(); } };
}

test('an honest source: its committed log is verified and appended, and the next request starts above it', async () => {
  const o = await follower();
  try {
    assert.deepEqual(o.sent.map((s) => s.fromHeight), [0], 'asks for the log above its tip (genesis)');
    const run: CertifiedBlock[] = [{ block: b1, qc: undefined }, { block: b2, qc: await commitQc(b2) }, { block: b3, qc: undefined }];
    await o.f.onResponse(o.last().to, o.last().requestId, run);
    assert.equal(o.store.committedHeight(), 2, 'b3 has no COMMIT QC in the run: not appended yet');
    assert.deepEqual(o.committed, [1, 2]);
    assert.equal(o.store.qcFor(b2.hash)?.phase, Phase.COMMIT, 'the proof is kept, so this observer can serve it on');
    assert.deepEqual(o.f.status(), { view: 0, phase: 'observer', leader: 0, lockedQcView: 0, highQcView: 0, paused: false, halted: false,
      observer: true, sourceHeight: 3, behind: 1, epoch: 0 });
    o.clock.advance(0);
    assert.deepEqual(o.sent.map((s) => s.fromHeight), [0, 2], 'asks again at once, from its new tip');
    assert.notEqual(o.sent[1]!.to, o.sent[0]!.to, 'sources are asked in turn');
    // Nothing new: the next poll waits IDLE_POLL_MS.
    await o.f.onResponse(o.last().to, o.last().requestId, []);
    o.clock.advance(IDLE_POLL_MS - 1);
    assert.equal(o.sent.length, 2);
    o.clock.advance(1);
    assert.equal(o.sent.length, 3);
  } finally {
    await o.close();
  }
});

test('a Byzantine source: forged blocks or QCs are refused, counted, blamed on it, and it is passed over', async () => {
  const o = await follower();
  try {
    const forgeries: [string, CertifiedBlock[]][] = [
      ['a changed transaction', [{ block: { ...b1, txs: [enc('alice pays mallory')] }, qc: await commitQc(b1) }]],
      ['a QC signed by a key outside the set', [{ block: b1, qc: await commitQc(b1, (i) => (i === 2 ? outsider.secretKey : keys[i]!.secretKey)) }]],
      ['a QC with too few signers', [{ block: b1, qc: { ...(await commitQc(b1)), signers: [0, 1], signatures: (await commitQc(b1)).signatures.slice(0, 2) } }]],
      ['a block that does not extend the tip', [{ block: b2, qc: await commitQc(b2) }]],
    ];
    const blamed: number[] = [];
    for (const [what, run] of forgeries) {
      const ask = o.last();
      await o.f.onResponse(ask.to, ask.requestId, run);
      assert.equal(o.store.committedHeight(), 0, `${what}: nothing appended`);
      assert.equal(o.refused.at(-1)?.from, ask.to, `${what}: blamed on its sender`);
      assert.equal(o.refused.at(-1)?.reason, 'invalid_blocks');
      blamed.push(ask.to);
      o.clock.advance(0);
      if (blamed.length < 4) assert.ok(!blamed.includes(o.last().to), `${what}: the next request goes to a source not caught lying`);
    }
    assert.equal(o.f.stats.refused, 4);
    // Every source lied: nobody is asked until BAD_SOURCE_MS has passed.
    const asked = o.sent.length;
    o.clock.advance(BAD_SOURCE_MS - IDLE_POLL_MS);
    assert.equal(o.sent.length, asked, 'no liar is asked again within BAD_SOURCE_MS');
    o.clock.advance(IDLE_POLL_MS);
    assert.equal(o.sent.length, asked + 1, 'then they are tried again');
    await o.f.onResponse(o.last().to, o.last().requestId, [{ block: b1, qc: await commitQc(b1) }]);
    assert.equal(o.store.committedHeight(), 1, 'an honest answer is taken from anyone');
  } finally {
    await o.close();
  }
});

test('unsolicited, late or silent: dropped, and a silent source is passed over after REQUEST_TIMEOUT_MS', async () => {
  const o = await follower([1, 2]);
  try {
    const ask = o.last();
    const qc = await commitQc(b1);
    await o.f.onResponse(ask.to === 1 ? 2 : 1, ask.requestId, [{ block: b1, qc }]);
    await o.f.onResponse(ask.to, ask.requestId + 7, [{ block: b1, qc }]);
    assert.equal(o.store.committedHeight(), 0, 'an answer from another peer, or to another request, is not taken');
    assert.equal(o.f.stats.unsolicited, 2);
    assert.equal(o.refused.length, 0, 'and is no offence');
    o.clock.advance(REQUEST_TIMEOUT_MS);
    assert.equal(o.sent.length, 2);
    assert.notEqual(o.last().to, ask.to, 'the silent source is passed over');
    assert.equal(o.f.stats.timeouts, 1);
    await o.f.onResponse(ask.to, ask.requestId, [{ block: b1, qc }]);
    assert.equal(o.store.committedHeight(), 0, 'its late answer is dropped');
  } finally {
    await o.close();
  }
});

test('a "pruned" answer that contradicts itself (oldest_height at or below the first height asked for): refused and blamed, no join, another source asked', async () => {
  const o = await follower([1, 2], [], true);
  try {
    const first = o.last();
    assert.equal(first.fromHeight, 0);
    await o.f.onResponse(first.to, first.requestId, [], undefined, 1);
    o.clock.advance(0);
    assert.equal(o.f.stats.pruned, 0, 'not taken as pruning');
    assert.deepEqual(o.refused.map((r) => [r.from, r.reason]), [[first.to, 'invalid_blocks']]);
    assert.match(o.refused[0]!.detail, /oldest_height 1/);
    assert.equal(o.f.status().joining, undefined, 'no join from a checkpoint started on its word');
    const second = o.last();
    assert.notEqual(second.to, first.to, 'another source is asked at once');
    await o.f.onResponse(second.to, second.requestId, [{ block: b1, qc: await commitQc(b1) }]);
    assert.equal(o.store.committedHeight(), 1);
  } finally {
    await o.close();
  }
});

test('a source that pruned what we lack (oldest_height above our tip): no offence, passed over for BAD_SOURCE_MS, another asked at once; with none left, it waits', async () => {
  const o = await follower([1, 2]);
  try {
    const first = o.last();
    await o.f.onResponse(first.to, first.requestId, [], undefined, 500);
    o.clock.advance(0);
    assert.equal(o.f.stats.pruned, 1);
    assert.equal(o.refused.length, 0, 'pruning is no offence');
    const second = o.last();
    assert.notEqual(second.to, first.to, 'another source is asked at once');
    await o.f.onResponse(second.to, second.requestId, [], undefined, 500);
    o.clock.advance(IDLE_POLL_MS * 3);
    assert.equal(o.sent.length, 2, 'every source pruned above us: nobody is asked until one is due again');
    o.clock.advance(BAD_SOURCE_MS);
    assert.equal(o.sent.length, 3, 'then asked again (it may have been restored from an archive)');
    const again = o.last();
    await o.f.onResponse(again.to, again.requestId, [{ block: b1, qc: await commitQc(b1) }]);
    assert.equal(o.store.committedHeight(), 1, 'a source that serves the blocks is followed as before');
  } finally {
    await o.close();
  }
});

test('a followed observer that falls behind holds this one back by at most ANCHOR_EVERY requests: a validator (an anchor) is asked now and then', async () => {
  const stale = OUTSIDE_BASE + 1;
  const o = await follower([stale], [0, 1]);
  try {
    // The followed observer has nothing new, ever.
    for (let k = 0; k < ANCHOR_EVERY - 1; k++) {
      assert.equal(o.last().to, stale, `request ${k + 1} goes to the followed observer`);
      await o.f.onResponse(o.last().to, o.last().requestId, []);
      o.clock.advance(IDLE_POLL_MS);
    }
    const ask = o.last();
    assert.ok(ask.to === 0 || ask.to === 1, `the ${ANCHOR_EVERY}th request goes to a validator, not ${ask.to}`);
    await o.f.onResponse(ask.to, ask.requestId, [{ block: b1, qc: undefined }, { block: b2, qc: await commitQc(b2) }]);
    assert.equal(o.store.committedHeight(), 2, 'and what the validator serves is followed');
    o.clock.advance(0);
    assert.equal(o.last().to, stale, 'then back to the followed observer');
  } finally {
    await o.close();
  }
});

test('without epochs, the chain moving on to epoch 1: the follower appends epoch 0 up to it, then stops saying why, and blames no source', async () => {
  const o = await follower();
  try {
    const e1 = child(b2, [enc('in epoch 1')], 1);
    // A run that crosses the boundary: epoch 0's blocks are taken (b2's COMMIT QC proves them), the rest left out.
    await o.f.onResponse(o.last().to, o.last().requestId, [{ block: b1, qc: undefined }, { block: b2, qc: await commitQc(b2) }, { block: e1, qc: undefined }]);
    assert.equal(o.store.committedHeight(), 2);
    assert.equal(o.f.failure, undefined);
    o.clock.advance(0);
    await o.f.onResponse(o.last().to, o.last().requestId, [{ block: e1, qc: undefined }]);
    assert.match((o.f.failure as Error | undefined)?.message ?? '', /moved on to epoch 1 at height 3; this follower follows epoch 0 only/);
    assert.deepEqual(o.refused, [], 'no source is blamed for blocks of another epoch');
    const asked = o.sent.length;
    o.clock.advance(10_000);
    assert.equal(o.sent.length, asked, 'it asks nobody any more');
  } finally {
    await o.close();
  }
});

test('across an epoch: the run ends at the epoch\'s last block with its proof; checked against the ending set, recorded, and the next set follows', async () => {
  const o = await follower([0, 1, 2, 3], [], true);
  try {
    // Epoch 0 ends at height 2 with a rotation of m3's key, approved by three of four.
    const m3New = dsa.generateKeyPair();
    const change: Reconfiguration = { chainId: CHAIN, epoch: 0, ops: [{ kind: 'rotate', name: 'm3', peerId: 'peer-3', publicKey: m3New.publicKey }] };
    const tx = encodeReconfigTx({ change, approvals: [0, 1, 2].map((validator) => ({ validator, signature: dsa.signSync(keys[validator]!.secretKey, reconfigSigningBytes(change)) })) });
    const end = child(b1, [tx]);
    const e1 = child(end, [enc('in epoch 1')], 1);
    const endQc = await commitQc(end);
    // A forged proof (a signature flipped): the run is refused, its source blamed and passed over; nothing stored.
    const forged = { ...endQc, signatures: endQc.signatures.map((sig, i) => (i === 0 ? Uint8Array.from(sig, (b, k) => (k === 0 ? b ^ 1 : b)) : sig)) };
    const first = o.last();
    await o.f.onResponse(first.to, first.requestId, [{ block: b1, qc: undefined }, { block: end, qc: undefined }], { suffix: [], qc: forged });
    assert.equal(o.store.committedHeight(), 0);
    assert.equal(o.refused.length, 1);
    assert.match(o.refused[0]!.detail, /epoch end: epoch 0 cannot end with this proof/);
    assert.equal(o.epochs!.current.number, 0);
    // An epoch end that the run goes past: refused as well.
    o.clock.advance(0);
    await o.f.onResponse(o.last().to, o.last().requestId, [{ block: b1, qc: undefined }, { block: end, qc: undefined }, { block: e1, qc: undefined }], { suffix: [], qc: endQc });
    assert.equal(o.refused.length, 2);
    assert.match(o.refused[1]!.detail, /epoch_end: the run goes on past/);
    // The honest source: b1 and the epoch's last block committed by the proof, epoch 1 recorded with m3's new key.
    o.clock.advance(0);
    await o.f.onResponse(o.last().to, o.last().requestId, [{ block: b1, qc: undefined }, { block: end, qc: undefined }], { suffix: [], qc: endQc });
    assert.equal(o.store.committedHeight(), 2);
    assert.deepEqual(o.started, [1]);
    // As a validator's driver: the blocks and their QC (of epoch 0's signers) are told before the
    // epoch moves on, so the metrics count those signers against epoch 0's indices, not epoch 1's.
    assert.deepEqual(o.told, ['committed 1,2', 'epoch 1']);
    assert.equal(o.epochs!.current.number, 1);
    assert.equal(o.epochs!.current.set.byIndex(3).publicKey, toHex(m3New.publicKey));
    assert.equal(o.store.endedEpochs().length, 1, 'the proof is recorded: a restart replays it, and this follower serves it on');
    assert.equal(o.f.status().epoch, 1);
    // Epoch 1's blocks are checked against epoch 1's keys: a QC by the old m3 key does not count.
    o.clock.advance(0);
    const e2 = child(e1, [enc('more in epoch 1')], 1);
    const oldKeyQc = await commitQc(e2, (i) => keys[i === 2 ? 3 : i]!.secretKey);
    await o.f.onResponse(o.last().to, o.last().requestId, [{ block: e1, qc: undefined }, { block: e2, qc: { ...oldKeyQc, signers: [0, 1, 3] } }]);
    assert.equal(o.store.committedHeight(), 2, 'signed by the rotated-out key: not proven');
    assert.equal(o.refused.length, 3);
    o.clock.advance(BAD_SOURCE_MS);
    const newKeyQc = await commitQc(e2, (i) => (i === 2 ? m3New.secretKey : keys[i]!.secretKey));
    await o.f.onResponse(o.last().to, o.last().requestId, [{ block: e1, qc: undefined }, { block: e2, qc: { ...newKeyQc, signers: [0, 1, 3] } }]);
    assert.equal(o.store.committedHeight(), 4, 'signed with epoch 1\'s keys: followed');
  } finally {
    await o.close();
  }
});

test('stopped between appending an epoch\'s last block and recording its proof: it asks for its tip again, which comes with the proof, and goes on', async () => {
  const change: Reconfiguration = { chainId: CHAIN, epoch: 0, ops: [{ kind: 'rotate', name: 'm2', peerId: 'peer-2', publicKey: dsa.generateKeyPair().publicKey }] };
  const tx = encodeReconfigTx({ change, approvals: [0, 1, 2].map((validator) => ({ validator, signature: dsa.signSync(keys[validator]!.secretKey, reconfigSigningBytes(change)) })) });
  const end = child(b1, [tx]);
  const endQc = await commitQc(end);
  const o = await follower([0, 1, 2, 3], [], true);
  try {
    // What a stop after the commit and before the proof leaves: the epoch's blocks, no proof.
    await o.store.commit([b1, end], endQc);
    o.clock.advance(0);
    const e1 = child(end, [enc('in epoch 1')], 1);
    await o.f.onResponse(o.last().to, o.last().requestId, [{ block: e1, qc: undefined }]);
    assert.deepEqual(o.refused, [], 'nobody is blamed for the next epoch\'s blocks');
    assert.equal(o.f.failure, undefined);
    o.clock.advance(IDLE_POLL_MS);
    assert.equal(o.last().fromHeight, 1, 'asks again from below its tip');
    await o.f.onResponse(o.last().to, o.last().requestId, [{ block: end, qc: undefined }], { suffix: [], qc: endQc });
    assert.equal(o.epochs!.current.number, 1);
    assert.deepEqual(o.started, [1]);
    assert.equal(o.store.committedHeight(), 2);
    o.clock.advance(0);
    assert.equal(o.last().fromHeight, 2, 'and from its tip after that');
  } finally {
    await o.close();
  }
});

/** Epoch 0 ending at height 2 (b1, then `end` carrying a rotation of m2's key), with `end`'s COMMIT QC. */
async function epoch0End() {
  const change: Reconfiguration = { chainId: CHAIN, epoch: 0, ops: [{ kind: 'rotate', name: 'm2', peerId: 'peer-2', publicKey: dsa.generateKeyPair().publicKey }] };
  const tx = encodeReconfigTx({ change, approvals: [0, 1, 2].map((validator) => ({ validator, signature: dsa.signSync(keys[validator]!.secretKey, reconfigSigningBytes(change)) })) });
  const end = child(b1, [tx]);
  return { end, endQc: await commitQc(end) };
}
const flipped = (qc: QuorumCert): QuorumCert => ({ ...qc, signatures: qc.signatures.map((sig, i) => (i === 0 ? Uint8Array.from(sig, (b, k) => (k === 0 ? b ^ 1 : b)) : sig)) });

test('stopped between appending an epoch\'s last block and recording its proof, a source serving a block of that epoch above it (its retired keys\' QC, no epoch_end): refused, blamed, nothing appended', async () => {
  const { end, endQc } = await epoch0End();
  const o = await follower([0, 1, 2, 3], [], true);
  try {
    await o.store.commit([b1, end], endQc);
    o.clock.advance(0);
    // Epoch 0's keys (retired once it ended: they may have signed anything) certify a block of
    // epoch 0 on top of its last, served from the tip…
    const x1 = child(end, [enc('forged above the end')]);
    const x1Qc = await commitQc(x1);
    let ask = o.last();
    await o.f.onResponse(ask.to, ask.requestId, [{ block: x1, qc: x1Qc }]);
    assert.equal(o.store.committedHeight(), 2, 'nothing appended above the epoch\'s last block');
    assert.deepEqual(o.refused.map((r) => [r.from, r.reason]), [[ask.to, 'invalid_blocks']]);
    assert.match(o.refused[0]!.detail, /height 3 is above its epoch's last block \(2\)/);
    // …and once asked from below the tip (an honest source's next-epoch block sent it there), as
    // [the epoch's last block, the forged one], without the proof.
    o.clock.advance(0);
    await o.f.onResponse(o.last().to, o.last().requestId, [{ block: child(end, [enc('in epoch 1')], 1), qc: undefined }]);
    assert.equal(o.refused.length, 1, 'nobody is blamed for the next epoch\'s blocks');
    o.clock.advance(IDLE_POLL_MS);
    ask = o.last();
    assert.equal(ask.fromHeight, 1, 'asks again from below its tip');
    await o.f.onResponse(ask.to, ask.requestId, [{ block: end, qc: undefined }, { block: x1, qc: x1Qc }]);
    assert.equal(o.store.committedHeight(), 2, 'the forged block is not appended: the observer does not fork');
    assert.deepEqual(o.refused.map((r) => r.from), [o.refused[0]!.from, ask.to], 'its source is blamed');
    assert.match(o.refused[1]!.detail, /height 3 is above its epoch's last block \(2\)/);
    assert.equal(o.epochs!.current.number, 0);
    assert.deepEqual(o.committed, []);
    // An honest source: the tip with its proof, and on to epoch 1.
    o.clock.advance(0);
    ask = o.last();
    assert.equal(ask.fromHeight, 1);
    await o.f.onResponse(ask.to, ask.requestId, [{ block: end, qc: undefined }], { suffix: [], qc: endQc });
    assert.deepEqual(o.started, [1]);
  } finally {
    await o.close();
  }
});

test('a write failed after the epoch\'s end was verified: a second source\'s proof of the same block is checked again (a forged QC refused), and the proof recorded is a valid one', async () => {
  const { end, endQc } = await epoch0End();
  const o = await follower([0, 1, 2, 3], [], true);
  try {
    const commit = o.store.commit.bind(o.store);
    o.store.commit = async () => { o.store.commit = commit; throw new Error('no space left on device'); };
    let ask = o.last();
    await o.f.onResponse(ask.to, ask.requestId, [{ block: b1, qc: undefined }, { block: end, qc: undefined }], { suffix: [], qc: endQc });
    assert.equal(o.store.committedHeight(), 0);
    assert.match(o.f.storageError ?? '', /no space left/);
    assert.equal(o.refused.length, 0);
    // The retry goes to another source, which serves the same blocks with a QC whose signature is forged.
    o.clock.advance(1000);
    ask = o.last();
    await o.f.onResponse(ask.to, ask.requestId, [{ block: b1, qc: undefined }, { block: end, qc: undefined }], { suffix: [], qc: flipped(endQc) });
    assert.deepEqual(o.refused.map((r) => r.from), [ask.to], 'refused, not taken on the first proof\'s word');
    assert.match(o.refused[0]!.detail, /epoch end: epoch 0 cannot end with this proof: qc: bad signature/);
    assert.equal(o.store.committedHeight(), 0, 'nothing stored with the forged QC');
    assert.equal(o.store.endedEpochs().length, 0);
    o.clock.advance(0);
    ask = o.last();
    await o.f.onResponse(ask.to, ask.requestId, [{ block: b1, qc: undefined }, { block: end, qc: undefined }], { suffix: [], qc: endQc });
    assert.equal(o.store.committedHeight(), 2);
    assert.deepEqual(o.started, [1]);
    assert.deepEqual(o.store.endedEpochs()[0]!.qc.signatures, endQc.signatures, 'the proof recorded is the valid one');
    assert.deepEqual(o.store.qcFor(end.hash)?.signatures, endQc.signatures);
    // What a restart checks again: the recorded proof verifies (a forged one would be STORE_CORRUPT).
    assert.equal(ConsensusEpochs.open({ chainId: CHAIN, genesis: genesisSet, member: 'o0', dsa, store: o.store }).current.number, 1);
  } finally {
    await o.close();
  }
});

test('the epoch\'s end not recorded (a failed write) after its blocks were: they are told once, before the epoch moves on when it is recorded', async () => {
  const { end, endQc } = await epoch0End();
  const o = await follower([0, 1, 2, 3], [], true);
  try {
    const endEpoch = o.store.endEpoch.bind(o.store);
    o.store.endEpoch = async () => { o.store.endEpoch = endEpoch; throw new Error('no space left on device'); };
    await o.f.onResponse(o.last().to, o.last().requestId, [{ block: b1, qc: undefined }, { block: end, qc: undefined }], { suffix: [], qc: endQc });
    assert.equal(o.store.committedHeight(), 2);
    assert.deepEqual(o.told, ['committed 1,2'], 'the blocks are committed: told so at once');
    assert.match(o.f.storageError ?? '', /no space left/);
    o.clock.advance(1000);
    assert.equal(o.last().fromHeight, 1, 'asks for its tip again, to record how its epoch ended');
    await o.f.onResponse(o.last().to, o.last().requestId, [{ block: end, qc: undefined }], { suffix: [], qc: endQc });
    assert.deepEqual(o.told, ['committed 1,2', 'epoch 1']);
    assert.equal(o.f.storageError, undefined);
    assert.equal(o.store.endedEpochs().length, 1);
  } finally {
    await o.close();
  }
});
