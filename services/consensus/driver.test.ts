// Four drivers in one process over an in-memory transport (driver-harness.ts), with real SLH-DSA
// signatures, real LMDB stores and real mempools.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeSync, openSync, closeSync } from 'node:fs';
import { blockHash, toHex, txHash, voteSigningBytes } from '#libs/crypto/index.ts';
import { Phase, mayLead, type Block } from '#libs/hotstuff/index.ts';
import { decodeFrame, encodeFrame, signingBytesOf } from '#libs/wire/index.ts';
import { OUTSIDE_BASE } from './ports.ts';
import { CHAIN, N, dsa, federation, keys, stopAll, toOutside, until, warnings, type Member } from './driver-harness.ts';



test('four drivers commit submitted transactions, identically and exactly once', async () => {
  const { members } = await federation();
  members.forEach((m) => m.driver.start());
  const txs = Array.from({ length: 50 }, (_, i) => new TextEncoder().encode(`tx-${i}`));
  for (const [i, tx] of txs.entries()) {
    const m = members[i % N]!;
    m.pool.add(tx, Date.now(), m.driver.isCommitted);
    m.inbound.gossip(tx);
  }
  const want = new Set(txs.map((t) => toHex(txHash(t))));
  const committedTxs = (m: Member) => m.commits.flatMap((b) => b.txs.map((t) => toHex(txHash(t))));
  await until('all transactions committed everywhere', () => members.every((m) => want.size === new Set(committedTxs(m)).size));
  const logs = members.map((m) => m.commits.map((b) => toHex(b.hash)));
  const shortest = Math.min(...logs.map((l) => l.length));
  for (const l of logs) assert.deepEqual(l.slice(0, shortest), logs[0]!.slice(0, shortest), 'identical logs');
  for (const m of members) {
    const c = committedTxs(m);
    assert.equal(c.length, new Set(c).size, 'each transaction once');
    assert.equal(m.pool.size, 0, 'mempool drained');
    assert.equal(m.store.committedHeight(), m.commits.length);
  }
  await stopAll(members);
});

test('a member that was down catches up through block sync after a restart, and a silent leader is replaced', async () => {
  const { members, restart } = await federation();
  members.forEach((m) => m.driver.start());
  const submit = (m: Member, s: string) => { const tx = new TextEncoder().encode(s); m.pool.add(tx, Date.now(), m.driver.isCommitted); m.inbound.gossip(tx); };
  submit(members[0]!, 'before');
  await until('first commit', () => members.every((m) => m.store.committedHeight() >= 1));
  members[1]!.down = true;
  members[1]!.driver.stop();
  const h0 = members[0]!.store.committedHeight();
  for (let i = 0; i < 20; i++) submit(members[2]!, `while-down-${i}`);
  await until('three members commit on without the fourth (and past its views as leader)', () => members[0]!.store.committedHeight() >= h0 + 6, 60_000);
  await restart(1);
  members[1]!.down = false;
  submit(members[3]!, 'after');
  const target = () => members[0]!.store.committedHeight();
  await until('the restarted member catches up', () => members[1]!.store.committedHeight() >= target() && target() > h0 + 6, 60_000);
  for (let h = 1; h <= members[1]!.store.committedHeight(); h++) {
    assert.deepEqual(members[1]!.store.hashAtHeight(h), members[0]!.store.hashAtHeight(h), `height ${h}`);
  }
  await stopAll(members);
});

test('a member that stays down is taken out of the rotation: its views are led by the next member, and a restarted member reads the record from its store', async () => {
  const { members, restart } = await federation();
  members.forEach((m) => m.driver.start());
  try {
    members[3]!.down = true;
    members[3]!.driver.stop();
    const submit = (m: Member, s: string) => { const tx = new TextEncoder().encode(s); m.pool.add(tx, Date.now(), m.driver.isCommitted); m.inbound.gossip(tx); };
    let k = 0;
    // Not to a member going down for its restart: its store is being closed (a read of a closed
    // LMDB store leaves lmdb-js a timer that throws).
    const load = setInterval(() => { const m = members[k % 3]!; if (!m.down) submit(m, `load-${k}`); k++; }, 20);
    try {
      // Validator 3's own views (3 mod 4) with a block of validator 0's: the schedule gave them on.
      const substituted = () => members[0]!.commits.filter((b) => b.header.view % N === 3 && b.header.proposer === 0).length;
      await until('blocks of views 3 mod 4 proposed by validator 0', () => substituted() >= 3, 90_000);
      const view = members[0]!.driver.engine.view;
      assert.deepEqual([...members[0]!.driver.engine.skippedLeaders(view + 1)], [3]);
      await restart(1);
      const v = members[0]!.driver.engine.view + 1;
      assert.deepEqual([...members[1]!.driver.engine.skippedLeaders(v)], [...members[0]!.driver.engine.skippedLeaders(v)], 'the restarted member skips whom the others skip');
      for (let w = v; w < v + 8; w++) assert.equal(members[1]!.driver.engine.leaderOf(w), members[0]!.driver.engine.leaderOf(w), `view ${w}`);
      const h = members[0]!.store.committedHeight();
      await until('the three commit on with the restarted member', () => members[1]!.store.committedHeight() >= h + 4, 60_000);
    } finally {
      clearInterval(load);
    }
    for (const b of members[0]!.commits) assert.notEqual(b.header.proposer, 3, 'validator 3 proposed nothing');
  } finally {
    await stopAll(members);
  }
});

test('a signer that answers with the wrong key gets nothing sent; the other three commit on', async () => {
  const { members } = await federation((i) => (i === 3 ? 0 : i));
  members.forEach((m) => m.driver.start());
  try {
  const tx = new TextEncoder().encode('with a broken signer');
  members[0]!.pool.add(tx, Date.now(), members[0]!.driver.isCommitted);
  members[0]!.inbound.gossip(tx);
  await until('three members commit past the broken member\'s views', () => members.slice(0, 3).every((m) => m.store.committedHeight() >= 6), 60_000);
  // Member 3 learns blocks only through QCs it can check; it signs nothing that others would see.
  assert.equal(members[3]!.sent, 0, 'no message with a signature that does not verify left member 3');
  } finally {
    await stopAll(members);
  }
});

test('forged frames from one validator are refused cheaply, then muted; the others commit on', async () => {
  const { members } = await federation();
  members.forEach((m) => m.driver.start());
  try {
  await until('first commit', () => members.every((m) => m.store.committedHeight() >= 1));
  // Validator 3 turns Byzantine towards member 0: votes with garbage signatures, votes claiming
  // to be from validator 1, proposals for views it does not lead.
  const victim = members[0]!;
  const garbage = new Uint8Array(dsa.signatureBytes).fill(9);
  const view = victim.driver.engine.view;
  const frames = [
    ...Array.from({ length: 40 }, (_, k) => encodeFrame(CHAIN, { type: 'consensus', message: { type: 'vote', epoch: 0, phase: Phase.PREPARE, view: view + (k % 2), blockHash: new Uint8Array(32).fill(k), sender: 3, signature: garbage } })),
    ...Array.from({ length: 5 }, (_, k) => encodeFrame(CHAIN, { type: 'consensus', message: { type: 'vote', epoch: 0, phase: Phase.PREPARE, view: view + (k % 2), blockHash: new Uint8Array(32).fill(k), sender: 1, signature: garbage } })),
  ];
  for (const f of frames) victim.inbound.onFrame(3, f);
  await until('validator 3 muted at member 0', () => victim.inbound.penalties.muted(3), 10_000);
  assert.equal(victim.inbound.penalties.muted(1), false, 'the validator it impersonated is not punished');
  const h = victim.store.committedHeight();
  await until('member 0 keeps committing', () => victim.store.committedHeight() >= h + 3, 60_000);
  } finally {
    await stopAll(members);
  }
});

test('replayed old, validly signed messages are refused before any signature check, free at an honest rate, then muted; the mute reaches the gateway and the muted leader\'s views are given up', async () => {
  const { members } = await federation();
  members.forEach((m) => m.driver.start());
  try {
    await until('a few commits', () => members.every((m) => m.store.committedHeight() >= 12), 60_000);
    const victim = members[0]!;
    const view = victim.driver.engine.view;
    // Validator 3's own votes for views long gone, properly signed with its key: nothing forged.
    const old = await Promise.all(Array.from({ length: 8 }, async (_, k) => {
      const v = { phase: Phase.PREPARE, view: k + 1, blockHash: new Uint8Array(32).fill(k) };
      const signature = await dsa.sign(keys[3]!.secretKey, voteSigningBytes({ chainId: CHAIN, epoch: 0, ...v }));
      return encodeFrame(CHAIN, { type: 'consensus', message: { type: 'vote', epoch: 0, ...v, sender: 3, signature } });
    }));
    assert.ok(view > 8 + 4, `the federation moved past the replayed views (at ${view})`);
    const verified0 = victim.driver.verifier.stats.verifications;
    // An honest rate of late messages (a few a view) is free: no strike, no mute.
    for (let k = 0; k < 40; k++) victim.inbound.onFrame(3, old[k % old.length]!);
    assert.equal(victim.inbound.penalties.muted(3), false, 'a few stale messages are no offence');
    // A flood is: the budget runs out and every further one is a strike.
    let sent = 40;
    while (!victim.inbound.penalties.muted(3) && sent < 2000) { victim.inbound.onFrame(3, old[sent % old.length]!); sent++; }
    assert.ok(victim.inbound.penalties.muted(3), `muted after ${sent} replays`);
    assert.ok(sent < 400, `muted within the budget plus the strikes that mute (${sent} replays)`);
    assert.ok(victim.refused.filter(([from, why]) => from === 3 && why === 'refused:stale').length >= 40, 'each was refused as stale');
    assert.equal(victim.driver.verifier.stats.verifications, verified0, 'not one signature was checked for them');
    // The mute goes to the transport (the gateway drops its frames at the edge)…
    const mute = victim.mutes.find(([peer]) => peer === 3);
    assert.ok(mute && mute[1] > 0, `the transport was told to mute validator 3: ${JSON.stringify(victim.mutes)}`);
    // …and views it leads are given up at once while it is muted.
    await until('member 0 gives up a view of its muted leader 3', () => victim.skipped.some(([, leader, why]) => leader === 3 && why === 'muted'), 30_000);
    const h = victim.store.committedHeight();
    await until('member 0 keeps committing', () => victim.store.committedHeight() >= h + 3, 60_000);
    // The first mute lasts 5 s, which a loaded machine can spend in the waits above: flooded again
    // if it ran out (the next mute is longer), so the operator below forgives a mute that holds.
    while (!victim.inbound.penalties.muted(3) && sent < 4000) { victim.inbound.onFrame(3, old[sent % old.length]!); sent++; }
    // An operator forgives it: unmuted here and at the transport.
    assert.equal(victim.driver.forgive(3), true, 'it was muted');
    assert.equal(victim.inbound.penalties.muted(3), false);
    assert.deepEqual(victim.mutes.at(-1), [3, 0], 'the transport is told to lift the mute');
  } finally {
    await stopAll(members);
  }
});

test('forged votes for one view and phase, each naming another block: two are checked (the second for its evidence), the rest refused unread', async () => {
  const { members } = await federation();
  members.forEach((m) => m.driver.start());
  try {
    await until('a few commits', () => members.every((m) => m.store.committedHeight() >= 3), 60_000);
    const victim = members[0]!;
    // A view member 0 leads by its record, now or next (a vote further ahead is refused as far_future).
    let view = 0;
    await until('a view member 0 leads, now or next', () => {
      const at = victim.driver.engine.view;
      view = [at, at + 1].find((v) => victim.driver.engine.settledLeaderOf(v) === 0) ?? 0;
      return view > 0;
    }, 30_000);
    const from3 = (why: string) => victim.refused.filter(([from, w]) => from === 3 && w === why).length;
    const [bad0, dup0] = [from3('refused:invalid_signature'), from3('refused:duplicate')];
    for (let k = 0; k < 10; k++) {
      victim.inbound.onFrame(3, encodeFrame(CHAIN, { type: 'consensus', message: {
        type: 'vote', epoch: 0, phase: Phase.PREPARE, view, blockHash: randomBytes(32), sender: 3, signature: randomBytes(dsa.signatureBytes) } }));
    }
    await until('the checked ones struck', () => from3('refused:invalid_signature') - bad0 >= 2, 10_000);
    assert.ok(from3('refused:duplicate') - dup0 >= 8, `the rest refused unread as duplicates (${from3('refused:duplicate') - dup0})`);
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(from3('refused:invalid_signature') - bad0, 2, 'only the first vote and one conflicting with it had their signatures checked');
  } finally {
    await stopAll(members);
  }
});

test('validly signed proposals from a member that does not lead a view the record settles are refused before any signature check, as useless, then muted', async () => {
  const { members } = await federation();
  members.forEach((m) => m.driver.start());
  try {
    await until('a few commits', () => members.every((m) => m.store.committedHeight() >= 6), 60_000);
    const victim = members[0]!;
    // A view validator 3 may lead under some record (mayLead: the one after validator 2's turn) but
    // does not lead under the record member 0 holds, which settles it.
    let view = 0;
    await until('a view validator 3 may lead but does not', () => {
      const at = victim.driver.engine.view;
      for (let v = at; v <= at + 1; v++) {
        const leader = victim.driver.engine.settledLeaderOf(v);
        if (leader !== undefined && leader !== 3 && mayLead(v, 3, N)) { view = v; return true; }
      }
      return false;
    }, 30_000);
    const justify = victim.driver.engine.safety.prepareQC;
    const frames = await Promise.all(Array.from({ length: 8 }, async (_, k) => {
      const header = { chainId: CHAIN, epoch: 0, height: 1_000 + k, view, parentHash: justify.blockHash, proposer: 3, timestampMs: Date.now(), txRoot: new Uint8Array(32), stateHash: new Uint8Array(32) };
      const unsigned = { type: 'proposal' as const, view, block: { header, hash: blockHash(header), txs: [] }, justify, sender: 3, signature: new Uint8Array(0) };
      const signature = await dsa.sign(keys[3]!.secretKey, signingBytesOf(CHAIN, unsigned));
      return encodeFrame(CHAIN, { type: 'consensus', message: { ...unsigned, signature } });
    }));
    const verified0 = victim.driver.verifier.stats.verifications;
    let sent = 0;
    while (!victim.inbound.penalties.muted(3) && sent < 2000) { victim.inbound.onFrame(3, frames[sent % frames.length]!); sent++; }
    assert.ok(victim.inbound.penalties.muted(3), `muted after ${sent} proposals`);
    assert.ok(sent > 8, `a few are no offence (muted after ${sent})`);
    assert.ok(victim.refused.filter(([from, why]) => from === 3 && why === 'refused:not_leader').length >= 8, `each was refused as not the leader: ${JSON.stringify(victim.refused.slice(-3))}`);
    assert.equal(victim.driver.verifier.stats.verifications, verified0, 'not one signature was checked for them');
    const h = victim.store.committedHeight();
    await until('member 0 keeps committing', () => victim.store.committedHeight() >= h + 3, 60_000);
  } finally {
    await stopAll(members);
  }
});

test('a proposal stamped beyond the drift is refused before its signature is checked, and its sender struck', async () => {
  const { members } = await federation();
  members.forEach((m) => m.driver.start());
  try {
    await until('first commit', () => members.every((m) => m.store.committedHeight() >= 1));
    const victim = members[0]!;
    const view = victim.driver.engine.view;
    let v = view;
    while (v % N !== 3) v++;
    const parent = victim.store.blockAtHeight(victim.store.committedHeight())!;
    const header = { ...parent.header, height: parent.header.height + 1, view: v, parentHash: parent.hash, proposer: 3, timestampMs: Date.now() + 10 * 365 * 86_400_000 };
    const block: Block = { header, hash: blockHash(header), txs: [] };
    const verified0 = victim.driver.verifier.stats.verifications;
    victim.inbound.onFrame(3, encodeFrame(CHAIN, { type: 'consensus', message: { type: 'proposal', view: v, block, justify: victim.driver.engine.safety.prepareQC, sender: 3, signature: new Uint8Array(dsa.signatureBytes) } }));
    assert.deepEqual(victim.refused.filter(([from]) => from === 3), [[3, 'refused:bad_block_time']]);
    assert.equal(victim.driver.verifier.stats.verifications, verified0, 'refused before its signature was checked');
  } finally {
    await stopAll(members);
  }
});

test('a peer outside the validator set gets blocks and hands over transactions, and nothing else: even a validly signed vote it relays is refused, then it is muted', async () => {
  const { members } = await federation();
  members.forEach((m) => m.driver.start());
  try {
    await until('first commits', () => members.every((m) => m.store.committedHeight() >= 2));
    const victim = members[0]!;
    const [reader, submitter, relayer] = [OUTSIDE_BASE + 1, OUTSIDE_BASE + 2, OUTSIDE_BASE + 3];
    victim.inbound.onFrame(reader, encodeFrame(CHAIN, { type: 'block-request', requestId: 7, hashes: [], fromHeight: 0, maxBlocks: 64 }));
    await until('the reader answered', () => toOutside.some((x) => x.to === reader));
    const answer = decodeFrame(toOutside.find((x) => x.to === reader)!.frame, { chainId: CHAIN, validatorCount: N, signatureBytes: dsa.signatureBytes,
      maxBlockTxs: 1000, maxBlockBytes: 1 << 20, maxFrameBytes: 8 << 20, maxSyncBlocks: 64, hashBlock: blockHash });
    assert.ok(answer.type === 'block-response' && answer.requestId === 7 && answer.blocks.length >= 2 && answer.blocks[0]!.block.header.height === 1,
      'the committed log from its height, answered to it');
    const tx = new TextEncoder().encode(`from-outside-${process.pid}`);
    victim.inbound.onFrame(submitter, encodeFrame(CHAIN, { type: 'tx-batch', txs: [tx] }));
    assert.equal(victim.pool.has(txHash(tx)), true, 'its transaction is taken');
    // A real vote of validator 1, correctly signed, relayed by an outsider: refused before any check.
    const view = victim.driver.engine.view;
    const vote = { type: 'vote' as const, epoch: 0, phase: Phase.PREPARE, view, blockHash: new Uint8Array(32).fill(1), sender: 1 };
    const signature = await dsa.sign(keys[1]!.secretKey, voteSigningBytes({ chainId: CHAIN, epoch: 0, phase: vote.phase, view, blockHash: vote.blockHash }));
    for (let k = 0; k < 16; k++) victim.inbound.onFrame(relayer, encodeFrame(CHAIN, { type: 'consensus', message: { ...vote, signature } }));
    assert.equal(victim.inbound.penalties.muted(relayer), true, 'refused each time (a strike), then muted');
    assert.equal(victim.inbound.penalties.muted(reader), false);
    assert.equal(victim.inbound.penalties.muted(1), false, 'the validator whose vote it relayed is not punished');
    // Refused by its kind before it is decoded: a proposal with a signature of the wrong size
    // (undecodable) is still "not a validator", never "undecodable" (which would mean it was decoded first).
    const outsider = OUTSIDE_BASE + 4;
    const header = { chainId: CHAIN, epoch: 0, height: 9, view, parentHash: new Uint8Array(32), proposer: view % N, timestampMs: Date.now(), txRoot: new Uint8Array(32), stateHash: new Uint8Array(32) };
    const proposal = encodeFrame(CHAIN, { type: 'consensus', message: { type: 'proposal', view, block: { header, hash: blockHash(header), txs: [new Uint8Array(50_000)] },
      justify: victim.driver.engine.safety.prepareQC, sender: view % N, signature: new Uint8Array(5) } });
    assert.throws(() => decodeFrame(proposal, { chainId: CHAIN, validatorCount: N, signatureBytes: dsa.signatureBytes, maxBlockTxs: 1000, maxBlockBytes: 1 << 20,
      maxFrameBytes: 8 << 20, maxSyncBlocks: 64, hashBlock: blockHash }), /signature/, 'the proposal does not decode');
    victim.inbound.onFrame(outsider, proposal);
    assert.deepEqual(victim.refused.filter(([from]) => from === outsider).map(([, why]) => why), ['refused:not_validator']);
    const h = victim.store.committedHeight();
    await until('member 0 keeps committing', () => victim.store.committedHeight() >= h + 2, 60_000);
  } finally {
    await stopAll(members);
  }
});

test('a validator that serves forged blocks or floods block requests is struck and muted; the others commit on', async () => {
  const { members } = await federation();
  members.forEach((m) => m.driver.start());
  try {
  await until('first commit', () => members.every((m) => m.store.committedHeight() >= 1));
  const victim = members[0]!;
  // A block with transactions its header does not commit to, certified by a real QC (the
  // test holds every key), served by validator 3 again and again.
  const g = victim.driver.genesis;
  const header = { ...g.header, height: 1, view: 1, proposer: 1, parentHash: g.hash, timestampMs: 1 };
  const forged: Block = { header, hash: blockHash(header), txs: [new TextEncoder().encode('not in the tx root')] };
  const voteBytes = voteSigningBytes({ chainId: CHAIN, epoch: 0, phase: Phase.PREPARE, view: 1, blockHash: forged.hash });
  const qc = { phase: Phase.PREPARE, view: 1, blockHash: forged.hash, signers: [0, 1, 2],
    signatures: await Promise.all([0, 1, 2].map((i) => dsa.sign(keys[i]!.secretKey, voteBytes))) };
  for (let k = 0; k < 20; k++) victim.driver.enqueue({ type: 'blocks-fetched', blocks: [forged], qcs: [qc], from: 3 });
  await until('validator 3 muted for serving forged blocks', () => victim.driver.penalties.muted(3), 10_000);
  assert.equal(victim.driver.penalties.muted(1), false);
  const said = warnings.find((w) => w['msg'] === 'validator muted' && w['member'] === 0 && w['from'] === 3);
  assert.equal(said?.['reason'], 'invalid_block', 'the warning names the offence');
  assert.match(String(said?.['detail']), /^fetched block [0-9a-f]+.*: tx_root does not match/, 'and what was wrong with it');
  // Member 1: a flood of block requests from validator 2 (each one within the frame limits).
  const target = members[1]!;
  const request = (k: number) => encodeFrame(CHAIN, { type: 'block-request', requestId: k, hashes: [g.hash], fromHeight: k % 7, maxBlocks: 64 });
  for (let k = 0; k < 2000 && !target.driver.penalties.muted(2); k++) target.inbound.onFrame(2, request(k));
  assert.ok(target.driver.penalties.muted(2), 'a flood of block requests mutes its sender');
  const h = victim.store.committedHeight();
  await until('the federation keeps committing', () => victim.store.committedHeight() >= h + 3, 60_000);
  } finally {
    await stopAll(members);
  }
});

test('a member whose disk fills up stops voting (no crash), says why, and goes on where it stopped once there is room', async (t) => {
  const mnt = await fs.mkdtemp(path.join(os.tmpdir(), 'btcfed-driver-full-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', mnt], { stdio: 'ignore' });
  } catch {
    await fs.rm(mnt, { recursive: true, force: true });
    t.skip('cannot mount a tmpfs here (needs root)');
    return;
  }
  const unhandled: unknown[] = [];
  const onUnhandled = (r: unknown) => { unhandled.push(r); };
  process.on('unhandledRejection', onUnhandled);
  const { members } = await federation(undefined, (i) => (i === 0 ? path.join(mnt, 'blocks') : undefined));
  members.forEach((m) => m.driver.start());
  const submit = (m: Member, s: string) => { const tx = new TextEncoder().encode(s.padEnd(900, '.')); m.pool.add(tx, Date.now(), m.driver.isCommitted); m.inbound.gossip(tx); };
  const full = members[0]!;
  const filler = path.join(mnt, 'filler');
  try {
    submit(members[1]!, 'before');
    await until('first commit everywhere', () => members.every((m) => m.store.committedHeight() >= 1));
    // Fill the disk, to the last page.
    const fd = openSync(filler, 'a');
    try {
      for (let size = 1 << 20; size >= 512;) {
        try { writeSync(fd, Buffer.alloc(size)); } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
          size >>= 1;
        }
      }
    } finally { closeSync(fd); }
    for (let k = 0; k < 200; k++) submit(members[1 + (k % 3)]!, `while-full-${k}`);
    await until('member 0 cannot write its store and says so', () => full.driver.storageError !== undefined, 60_000);
    assert.match(full.driver.storageError!, /not written/);
    assert.equal(full.driver.failure, undefined, 'the driver has not given up');
    const stuck = full.store.committedHeight();
    const h = members[1]!.store.committedHeight();
    await until('the other three commit on', () => members[1]!.store.committedHeight() >= h + 3, 60_000);
    assert.equal(full.store.committedHeight(), stuck, 'nothing is committed (or voted) on a full disk');
    await fs.rm(filler);
    submit(members[2]!, 'after');
    await until('member 0 goes on and catches up', () => full.driver.storageError === undefined && full.store.committedHeight() >= members[1]!.store.committedHeight() - 1 && full.store.committedHeight() > h + 3, 60_000);
    for (let height = 1; height <= full.store.committedHeight(); height++) {
      assert.deepEqual(full.store.hashAtHeight(height), members[1]!.store.hashAtHeight(height), `height ${height}`);
    }
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(unhandled, [], 'no promise rejection left unhandled (it would end the service)');
  } finally {
    process.off('unhandledRejection', onUnhandled);
    await stopAll(members);
    execFileSync('umount', [mnt], { stdio: 'ignore' });
    await fs.rm(mnt, { recursive: true, force: true });
  }
});

test('hand-offs beyond handoff_txs_per_second are refused before they are hashed and get a flooder muted; an honest member paces its own below the limit and is never refused', async () => {
  const { members } = await federation();
  try {
    const victim = members[0]!;
    // Validator 3 hands over 20 batches of 512 transactions at once: 10,240 against 5,000 a second.
    let n = 0;
    const batch = () => Array.from({ length: 512 }, () => new TextEncoder().encode(`junk-${process.pid}-${n++}`));
    for (let k = 0; k < 20 && !victim.inbound.penalties.muted(3); k++) victim.inbound.onFrame(3, encodeFrame(CHAIN, { type: 'tx-batch', txs: batch() }));
    assert.ok(victim.inbound.handoffRefused > 0, 'transactions beyond the limit refused');
    assert.ok(victim.pool.size <= 5_200, `at most about a second's worth taken (${victim.pool.size})`);
    assert.ok(victim.refused.some(([from, why]) => from === 3 && why === 'refused:handoff_rate'));
    assert.equal(victim.inbound.penalties.muted(3), true, 'each refused transaction is a useless token: the flood is muted');
    // Validator 1's clients submit 9,000 transactions at once: it hands each leader at most 80 % of the limit, keeps the rest.
    const honest = members[1]!;
    for (let k = 0; k < 9_000; k++) {
      const tx = new TextEncoder().encode(`client-${process.pid}-${k}`);
      honest.pool.add(tx, Date.now(), () => false);
      honest.inbound.gossip(tx);
    }
    await new Promise((r) => setTimeout(r, 200));
    assert.ok(honest.inbound.handoffWithheld > 0, 'beyond its share, hand-offs stay with the member that took them');
    for (const m of members) {
      assert.equal(m.refused.some(([from, why]) => from === 1 && why === 'refused:handoff_rate'), false, 'the honest member was never refused');
      assert.equal(m.inbound.penalties.muted(1), false);
    }
  } finally {
    await stopAll(members);
  }
});

test('useless frames cost their size: far-future proposals of a megabyte get their sender muted within a few dozen, not hundreds', async () => {
  const { members } = await federation();
  try {
    const victim = members[0]!;
    let v = victim.driver.engine.view + 1000;
    while (v % N !== 3) v++;
    const header = { chainId: CHAIN, epoch: 0, height: 5, view: v, parentHash: new Uint8Array(32), proposer: 3, timestampMs: Date.now(), txRoot: new Uint8Array(32), stateHash: new Uint8Array(32) };
    const txs = Array.from({ length: 15 }, () => new Uint8Array(60_000).fill(7));
    const frame = encodeFrame(CHAIN, { type: 'consensus', message: { type: 'proposal', view: v, block: { header, hash: blockHash(header), txs }, justify: victim.driver.engine.safety.prepareQC, sender: 3, signature: new Uint8Array(dsa.signatureBytes) } });
    assert.ok(frame.length > 800_000);
    let sent = 0;
    while (!victim.inbound.penalties.muted(3) && sent < 400) { victim.inbound.onFrame(3, frame); sent++; }
    assert.ok(victim.refused.some(([from, why]) => from === 3 && why === 'refused:far_future'));
    assert.equal(victim.inbound.penalties.muted(3), true);
    assert.ok(sent < 40, `muted after ${sent} proposals of ${(frame.length / 1e6).toFixed(1)} MB (one token each would take ${256 + 16})`);
  } finally {
    await stopAll(members);
  }
});

test('messages of another epoch, validly signed, are refused before any signature is checked, and their flood is muted', async () => {
  const { members } = await federation();
  try {
    members.forEach((m) => m.driver.start());
    const victim = members[0]!;
    await until('the victim commits before the flood', () => victim.commits.length >= 2);
    assert.equal(victim.inbound.penalties.muted(3), false);
    const verifications = victim.driver.verifier.stats.verifications;
    // Signed before the flood: signing in the loop made it as slow as the budget's refill on a
    // loaded machine (the count to a mute then depended on the machine, and the test failed once).
    const frames = [0, 1].map((k) => {
      const unsigned = { type: 'new-view' as const, epoch: 7, view: victim.driver.engine.view + k, highQC: victim.driver.engine.safety.prepareQC, sender: 3, signature: new Uint8Array(0) };
      return encodeFrame(CHAIN, { type: 'consensus', message: { ...unsigned, signature: dsa.signSync(keys[3]!.secretKey, signingBytesOf(CHAIN, unsigned)) } });
    });
    let sent = 0;
    while (!victim.inbound.penalties.muted(3) && sent < 2000) {
      victim.inbound.onFrame(3, frames[sent % 2]!);
      sent++;
    }
    assert.ok(victim.refused.some(([from, why]) => from === 3 && why === 'refused:wrong_epoch'));
    assert.equal(victim.inbound.penalties.muted(3), true, `muted after ${sent}`);
    assert.ok(sent < 400, `muted after ${sent} messages`);
    assert.equal(victim.driver.verifier.stats.verifications, verifications, 'no signature was verified');
    const height = victim.commits.length;
    await until('the victim keeps committing after the flood', () => victim.commits.length >= height + 2);
  } finally {
    await stopAll(members);
  }
});

test('stop() resolves once the step under way has ended, so its write ends before the store is closed', async () => {
  const { members } = await federation();
  members.forEach((m) => m.driver.start());
  const tx = new TextEncoder().encode('stop-mid-write');
  members[0]!.pool.add(tx, Date.now(), members[0]!.driver.isCommitted);
  members[0]!.inbound.gossip(tx);
  await until('a first commit', () => members.every((m) => m.store.committedHeight() >= 1));
  // Member 0's next persist waits for the gate before it writes: its step stands in the middle of a write.
  const m = members[0]!;
  let open = (): void => undefined;
  const gate = new Promise<void>((resolve) => { open = resolve; });
  let writing = false;
  let written = false;
  const persist = m.store.persist.bind(m.store);
  m.store.persist = async (...args: Parameters<typeof persist>) => {
    writing = true;
    await gate;
    await persist(...args);
    written = true;
  };
  let stopped = false;
  try {
    await until('member 0 in the middle of a write', () => writing);
    const stop = m.driver.stop().then(() => { stopped = true; });
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(stopped, false, 'stop() waits while the write is under way');
    open();
    await stop;
    assert.equal(written, true, 'the write ended before stop() resolved');
  } finally {
    open();
    await stopAll(members);
  }
  assert.deepEqual(warnings.filter((w) => /stopped during a write|can no longer trust its state/.test(String(w['msg']))).map((w) => w['msg']), [],
    'no write was cut short by a store closing');
});
