// Four drivers in one process over an in-memory transport, with real SLH-DSA signatures,
// real LMDB stores and real mempools. The signer here is a plain key (no safety rules): the
// real signer service is exercised by the end-to-end tests.

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { blockHash, createSlhDsa, toHex, txHash, type KeyPair } from '#libs/crypto/index.ts';
import { genesisBlock, type Block, type SignRequest } from '#libs/hotstuff/index.ts';
import { signingBytesOfRequest, type FrameLimits } from '#libs/wire/index.ts';
import { BlockStore } from './block-store.ts';
import { ConsensusDriver } from './driver.ts';
import { Inbound } from './inbound.ts';
import { Mempool } from './mempool.ts';
import { systemClock, type TransportPort } from './ports.ts';
import { SignatureVerifier } from './verifier.ts';

const N = 4;
const CHAIN = 'driver-test';
const dsa = createSlhDsa();
const keys: KeyPair[] = Array.from({ length: N }, () => dsa.generateKeyPair());
const log = pino({ level: process.env.TEST_LOG ?? 'silent' });
const dirs: string[] = [];
after(() => Promise.all(dirs.map((d) => fs.rm(d, { recursive: true, force: true }))));

interface Member { driver: ConsensusDriver; inbound: Inbound; pool: Mempool; store: BlockStore; commits: Block[]; down: boolean }

async function federation(): Promise<Member[]> {
  const members: Member[] = [];
  const limits: FrameLimits = { chainId: CHAIN, validatorCount: N, signatureBytes: dsa.signatureBytes, maxBlockTxs: 1000,
    maxBlockBytes: 1 << 20, maxFrameBytes: 8 << 20, maxSyncBlocks: 64, hashBlock: blockHash };
  const deliver = (from: number, to: number, frame: Uint8Array) => setImmediate(() => { if (!members[to]!.down && !members[from]!.down) members[to]!.inbound.onFrame(from, frame); });
  for (let i = 0; i < N; i++) {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'btcfed-driver-'));
    dirs.push(dir);
    const transport: TransportPort = {
      send: (to, frame) => deliver(i, to, frame),
      broadcast: (frame) => { for (let j = 0; j < N; j++) if (j !== i) deliver(i, j, frame); },
    };
    const store = new BlockStore({ path: dir, limits, hashBlock: blockHash });
    const pool = new Mempool({ maxTxs: 10_000, maxBytes: 1 << 24, maxTxBytes: 1024 });
    const verifier = new SignatureVerifier({ chainId: CHAIN, publicKeys: keys.map((k) => k.publicKey), dsa, genesisHash: genesisBlock(CHAIN, blockHash).hash });
    const signer = { sign: (req: SignRequest) => dsa.sign(keys[i]!.secretKey, signingBytesOfRequest(CHAIN, req)) };
    const commits: Block[] = [];
    const driver = new ConsensusDriver(
      { engine: { chainId: CHAIN, validatorCount: N, self: i, timeouts: { baseMs: 1500, multiplier: 1.5, capMs: 10_000 } }, maxBlockTxs: 1000, maxBlockBytes: 1 << 20 },
      { store, pool, verifier, signer, transport, clock: systemClock, log: log.child({ member: i }), observer: { committed: (bs) => commits.push(...bs) } },
    );
    const inbound = new Inbound({ limits, driver, pool, verifier, transport, clock: systemClock, log });
    members.push({ driver, inbound, pool, store, commits, down: false });
  }
  return members;
}

async function until(what: string, cond: () => boolean, ms = 30_000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

test('four drivers commit submitted transactions, identically and exactly once', async () => {
  const members = await federation();
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
  members.forEach((m) => m.driver.stop());
  await Promise.all(members.map((m) => m.store.close()));
});
