// Four drivers in one process over an in-memory transport, with real SLH-DSA signatures,
// real LMDB stores and real mempools. The signer here is a plain key (no safety rules): the
// real signer service is exercised by the end-to-end tests.

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { writeSync, openSync, closeSync } from 'node:fs';
import { pino } from 'pino';
import { blockHash, createSlhDsa, toHex, txHash, voteSigningBytes, type KeyPair } from '#libs/crypto/index.ts';
import { Phase, genesisBlock, type Block, type SignRequest } from '#libs/hotstuff/index.ts';
import { decodeFrame, encodeFrame, signingBytesOfRequest, type FrameLimits } from '#libs/wire/index.ts';
import { BlockStore } from './block-store.ts';
import { ConsensusDriver } from './driver.ts';
import { Inbound } from './inbound.ts';
import { Mempool } from './mempool.ts';
import { OUTSIDE_BASE, systemClock, type TransportPort } from './ports.ts';
import { SignatureVerifier } from './verifier.ts';

const N = 4;
const CHAIN = 'driver-test';
const dsa = createSlhDsa();
const keys: KeyPair[] = Array.from({ length: N }, () => dsa.generateKeyPair());
/** Warnings and worse are kept (for the tests that check what an operator is told); TEST_LOG=level prints them too. */
const warnings: Record<string, unknown>[] = [];
const log = pino({ level: process.env.TEST_LOG ?? 'warn' }, {
  write: (line: string) => {
    const entry = JSON.parse(line) as Record<string, unknown>;
    if (Number(entry['level']) >= 40) warnings.push(entry);
    if (process.env.TEST_LOG) process.stderr.write(line);
  },
});
const dirs: string[] = [];
after(() => Promise.all(dirs.map((d) => fs.rm(d, { recursive: true, force: true }))));

/** Frames the members sent to peers outside the validator set. */
const toOutside: { from: number; to: number; frame: Uint8Array }[] = [];

interface Member { driver: ConsensusDriver; inbound: Inbound; pool: Mempool; store: BlockStore; commits: Block[]; sent: number; down: boolean }

/** `keyOf(i)`: whose key member i's signer holds (its own unless a test says otherwise). */
/** Stops every member's driver and closes its block store. */
async function stopAll(members: readonly Member[]): Promise<void> {
  members.forEach((m) => m.driver.stop());
  await Promise.all(members.map((m) => m.store.close()));
}

async function federation(keyOf: (i: number) => number = (i) => i, dirOf: (i: number) => string | undefined = () => undefined): Promise<{ members: Member[]; restart(i: number): Promise<void> }> {
  const members: Member[] = [];
  const memberDirs: string[] = [];
  const limits: FrameLimits = { chainId: CHAIN, validatorCount: N, signatureBytes: dsa.signatureBytes, maxBlockTxs: 1000,
    maxBlockBytes: 1 << 20, maxFrameBytes: 8 << 20, maxSyncBlocks: 64, hashBlock: blockHash };
  const deliver = (from: number, to: number, frame: Uint8Array) => {
    if (to >= N) { toOutside.push({ from, to, frame }); return; } // an answer to a peer outside the set (an observer)
    setImmediate(() => { if (!members[to]!.down && !members[from]!.down) members[to]!.inbound.onFrame(from, frame); });
  };
  const build = (i: number, dir: string): Member => {
    const transport: TransportPort = {
      send: (to, frame) => deliver(i, to, frame),
      broadcast: (frame) => { for (let j = 0; j < N; j++) if (j !== i) deliver(i, j, frame); },
    };
    const store = new BlockStore({ path: dir, limits, hashBlock: blockHash });
    const pool = new Mempool({ maxTxs: 10_000, maxBytes: 1 << 24, maxTxBytes: 1024 });
    const verifier = new SignatureVerifier({ chainId: CHAIN, publicKeys: keys.map((k) => k.publicKey), dsa, genesisHash: genesisBlock(CHAIN, blockHash).hash });
    const signer = { sign: (req: SignRequest) => dsa.sign(keys[keyOf(i)]!.secretKey, signingBytesOfRequest(CHAIN, req)) };
    const commits: Block[] = [];
    let member: Member | undefined;
    const driver = new ConsensusDriver(
      { engine: { chainId: CHAIN, validatorCount: N, self: i, timeouts: { baseMs: 1500, multiplier: 1.5, capMs: 10_000 } }, maxBlockTxs: 1000, maxBlockBytes: 1 << 20 },
      { store, pool, verifier, signer, transport, clock: systemClock, log: log.child({ member: i }),
        observer: { committed: (bs) => commits.push(...bs), sent: () => { member!.sent++; } } },
    );
    const inbound = new Inbound({ limits, self: i, leaderOf: (v) => v % N, driver, pool, verifier, transport, clock: systemClock, log });
    member = { driver, inbound, pool, store, commits, sent: 0, down: false };
    return member;
  };
  for (let i = 0; i < N; i++) {
    const dir = dirOf(i) ?? await fs.mkdtemp(path.join(os.tmpdir(), 'btcfed-driver-'));
    dirs.push(dir);
    memberDirs.push(dir);
    members.push(build(i, dir));
  }
  return {
    members,
    async restart(i) {
      await members[i]!.store.close();
      members[i] = build(i, memberDirs[i]!);
      members[i]!.driver.start();
    },
  };
}

async function until(what: string, cond: () => boolean, ms = 30_000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

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
    ...Array.from({ length: 40 }, (_, k) => encodeFrame(CHAIN, { type: 'consensus', message: { type: 'vote', phase: Phase.PREPARE, view: view + k, blockHash: new Uint8Array(32).fill(k), sender: 3, signature: garbage } })),
    ...Array.from({ length: 5 }, (_, k) => encodeFrame(CHAIN, { type: 'consensus', message: { type: 'vote', phase: Phase.PREPARE, view: view + k, blockHash: new Uint8Array(32).fill(k), sender: 1, signature: garbage } })),
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
    assert.equal(victim.pool.has(toHex(txHash(tx))), true, 'its transaction is taken');
    // A real vote of validator 1, correctly signed, relayed by an outsider: refused before any check.
    const view = victim.driver.engine.view;
    const vote = { type: 'vote' as const, phase: Phase.PREPARE, view, blockHash: new Uint8Array(32).fill(1), sender: 1 };
    const signature = await dsa.sign(keys[1]!.secretKey, voteSigningBytes({ chainId: CHAIN, phase: vote.phase, view, blockHash: vote.blockHash }));
    for (let k = 0; k < 16; k++) victim.inbound.onFrame(relayer, encodeFrame(CHAIN, { type: 'consensus', message: { ...vote, signature } }));
    assert.equal(victim.inbound.penalties.muted(relayer), true, 'refused each time (a strike), then muted');
    assert.equal(victim.inbound.penalties.muted(reader), false);
    assert.equal(victim.inbound.penalties.muted(1), false, 'the validator whose vote it relayed is not punished');
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
  const voteBytes = voteSigningBytes({ chainId: CHAIN, phase: Phase.PREPARE, view: 1, blockHash: forged.hash });
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
  }
});
