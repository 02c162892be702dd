// Catch-up at scale, in process: a member thousands of blocks behind catches up from a peer's
// real LMDB block store, through the real wire encoding (every request and response is encoded
// and decoded with the production limits), a real ConsensusDriver and engine with the real block
// validity checks, and its own real LMDB store. What is fake: the transport (frames handed over
// with setImmediate instead of libp2p) and signatures (QCs carry placeholder signatures and the
// verifier accepts them: signing 3 votes for each of thousands of blocks with SLH-DSA would take
// minutes). The serving side sizes its responses to a 256 KiB frame limit, so the catch-up needs
// many partial answers, each committed before the next is asked for. Prints its figures.

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { blockHash, merkleRoot, nextStateHash, txHash } from '#libs/crypto/index.ts';
import { Phase, genesisBlock, type Block, type HotStuffEngine, type QuorumCert } from '#libs/hotstuff/index.ts';
import { decodeFrame, type FrameLimits } from '#libs/wire/index.ts';
import { BlockStore } from '../services/consensus/block-store.ts';
import { ConsensusDriver } from '../services/consensus/driver.ts';
import { Mempool } from '../services/consensus/mempool.ts';
import { systemClock } from '../services/consensus/ports.ts';
import { SyncClient } from '../services/consensus/sync.ts';
import type { SignatureVerifier } from '../services/consensus/verifier.ts';

const CHAIN = `catch-up-${process.pid}`;
const HEIGHTS = Number(process.env.CATCH_UP_BLOCKS ?? 3000);
/** Bytes per transaction (2 per block): CATCH_UP_TX_BYTES, to see what a catch-up holds in memory. */
const TX_BYTES = Number(process.env.CATCH_UP_TX_BYTES ?? 100);
const BATCH = 10; // the serving member committed in batches: only each batch's tip has its commitQC
const N = 4;
const SIG = 64;
const limits: FrameLimits = { chainId: CHAIN, validatorCount: N, signatureBytes: SIG, maxBlockTxs: 1000, maxBlockBytes: 1 << 20,
  maxFrameBytes: 64 << 20, maxSyncBlocks: 64, hashBlock: blockHash };
const log = pino({ level: process.env.TEST_LOG ?? 'silent' });
const dirs: string[] = [];
after(() => Promise.all(dirs.map((d) => fs.rm(d, { recursive: true, force: true }))));

function child(parent: Block): Block {
  const h = parent.header.height + 1;
  const txs = [0, 1].map((i) => { const t = new Uint8Array(TX_BYTES); t.set(new TextEncoder().encode(`tx-${h}-${i}`)); return t; });
  const txRoot = merkleRoot(txs.map((t) => txHash(t)));
  const header = { chainId: CHAIN, epoch: 0, height: h, view: h, parentHash: parent.hash, proposer: h % N, timestampMs: h, txRoot,
    stateHash: nextStateHash(parent.header.stateHash, txRoot) };
  return { header, hash: blockHash(header), txs };
}
const qcOf = (b: Block, phase: QuorumCert['phase'] = Phase.COMMIT): QuorumCert =>
  ({ phase, view: b.header.view, blockHash: b.hash, signers: [0, 1, 2], signatures: [1, 2, 3].map((i) => new Uint8Array(SIG).fill(i)) });

const acceptAll = { verifySync: () => true, verifyQc: async () => ({ ok: true }), trust: () => {}, verifyGrant: async () => false } as unknown as SignatureVerifier;

test(`a member ${HEIGHTS} blocks behind catches up through partial sync answers`, { timeout: 300_000 }, async () => {
  const mk = async (name: string) => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), `btcfed-catchup-${name}-`));
    dirs.push(dir);
    return new BlockStore({ path: dir, limits, hashBlock: blockHash });
  };
  const serverStore = await mk('server');
  const laggard = await mk('laggard');
  const chain = [genesisBlock(CHAIN, blockHash)];
  for (let h = 1; h <= HEIGHTS; h++) chain.push(child(chain[h - 1]!));
  for (let h = 1; h <= HEIGHTS; h += BATCH) {
    const batch = chain.slice(h, Math.min(h + BATCH, HEIGHTS + 1));
    await serverStore.commit(batch, qcOf(batch[batch.length - 1]!));
  }
  let requests = 0;
  let responseBytes = 0;
  let largest = 0;
  const frameLimit = 256 * 1024;
  let driver: ConsensusDriver | undefined;
  const server = new SyncClient({
    chainId: CHAIN, store: serverStore, engine: { halted: false, block: () => undefined } as unknown as HotStuffEngine, verifier: acceptAll, log,
    deliver: () => {},
    transport: {
      maxFrameBytes: frameLimit,
      broadcast: () => {},
      send: (_to, frame) => {
        responseBytes += frame.length;
        largest = Math.max(largest, frame.length);
        setImmediate(() => {
          const f = decodeFrame(frame, limits);
          if (f.type === 'block-response') void driver!.sync.onResponse(1, f.requestId, f.blocks);
        });
      },
    },
  });
  const committed: number[] = [];
  driver = new ConsensusDriver(
    { engine: { chainId: CHAIN, validatorCount: N, self: 0, timeouts: { baseMs: 500, multiplier: 1.5, capMs: 2000 } }, maxBlockTxs: 1000, maxBlockBytes: 1 << 20 },
    {
      store: laggard, pool: new Mempool({ maxTxs: 1000, maxBytes: 1 << 20, maxTxBytes: 1024 }), verifier: acceptAll,
      signer: { sign: async () => { throw new Error('no signing in this test'); } },
      transport: {
        broadcast: () => {},
        send: (to, frame) => setImmediate(() => {
          const f = decodeFrame(frame, limits);
          if (f.type !== 'block-request' || to !== 1) return;
          requests++;
          server.onRequest(0, f.requestId, f.hashes, f.fromHeight, f.maxBlocks);
        }),
      },
      clock: systemClock, log,
      observer: { committed: (bs) => committed.push(...bs.map((b) => b.header.height)) },
    },
  );
  try {
    driver.start();
    const heap0 = process.memoryUsage().heapUsed;
    const t0 = performance.now();
    // The laggard hears the commitQC of the tip (as from a DECIDE) and has none of its ancestors.
    driver.enqueue({ type: 'message', message: { type: 'qc', epoch: 0, qc: qcOf(chain[HEIGHTS]!), sender: 1 } });
    // What the consensus service polls to say it is catching up (catching-up.ts): behind at every
    // poll until the whole chain is committed, and not once it is.
    let polls = 0;
    let notBehind = 0;
    let behindFrom: number | undefined; // the poll at which the engine had taken the commitQC in
    while (laggard.committedHeight() < HEIGHTS) {
      polls++;
      if (driver.fetchingCommit) behindFrom ??= polls;
      else if (behindFrom !== undefined && driver.engine.committed.header.height < HEIGHTS) notBehind++;
      if (performance.now() - t0 > 280_000) assert.fail(`stuck at height ${laggard.committedHeight()} after ${requests} requests`);
      if (driver.failure) assert.fail(`driver failed: ${driver.failure.message}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    const ms = performance.now() - t0;
    assert.ok(behindFrom !== undefined && polls - behindFrom > 10, `behind from poll ${behindFrom} of ${polls}`);
    assert.equal(notBehind, 0, `not fetching a commit at ${notBehind} of ${polls} polls before the tip was committed`);
    assert.equal(driver.fetchingCommit, false, 'still fetching a commit once the tip is committed');
    assert.deepEqual(committed, chain.slice(1).map((b) => b.header.height), 'every height once, in order');
    assert.ok(largest <= frameLimit, `largest response ${largest} B within the ${frameLimit} B limit`);
    for (const h of [1, Math.floor(HEIGHTS / 2), HEIGHTS]) {
      assert.deepEqual(laggard.hashAtHeight(h), chain[h]!.hash, `height ${h} is the served chain`);
    }
    console.log(`catch-up: blocks=${HEIGHTS} ms=${ms.toFixed(0)} blocks_per_s=${(HEIGHTS / (ms / 1000)).toFixed(0)} requests=${requests} ` +
      `served=${server.served} refused=${[...server.refusals.values()].reduce((a, b) => a + b, 0)} response_bytes=${responseBytes} largest_frame=${largest} ` +
      `heap_growth_mib=${((process.memoryUsage().heapUsed - heap0) / 2 ** 20).toFixed(1)}`);
  } finally {
    await driver.stop();
    await serverStore.close();
    await laggard.close();
  }
});

test('a peer serving the right headers with forged transactions gets nothing stored; the member commits the real chain from another', { timeout: 120_000 }, async () => {
  const HEIGHT = 30;
  const mk = async (name: string) => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), `btcfed-forge-${name}-`));
    dirs.push(dir);
    return new BlockStore({ path: dir, limits, hashBlock: blockHash });
  };
  const chain = [genesisBlock(CHAIN, blockHash)];
  for (let h = 1; h <= HEIGHT; h++) chain.push(child(chain[h - 1]!));
  const stores = [await mk('laggard'), await mk('forger'), await mk('honest')];
  for (const s of stores.slice(1)) for (let h = 1; h <= HEIGHT; h += BATCH) {
    const batch = chain.slice(h, h + BATCH);
    await s.commit(batch, qcOf(batch[batch.length - 1]!));
  }
  let driver: ConsensusDriver | undefined;
  let forgedServed = 0;
  const serverFor = (peer: number) => new SyncClient({
    chainId: CHAIN, store: stores[peer]!, engine: { halted: false, block: () => undefined } as unknown as HotStuffEngine, verifier: acceptAll, log,
    deliver: () => {},
    transport: {
      broadcast: () => {},
      send: (_to, frame) => setImmediate(() => {
        const f = decodeFrame(frame, limits);
        if (f.type !== 'block-response') return;
        // The forger keeps every header (and so every hash) and swaps the transactions of height 5.
        const blocks = peer === 1 ? f.blocks.map((b) => (b.block.header.height === 5 ? (forgedServed++, { ...b, block: { ...b.block, txs: [new TextEncoder().encode('forged')] } }) : b)) : f.blocks;
        void driver!.sync.onResponse(peer, f.requestId, blocks);
      }),
    },
  });
  const servers = [undefined, serverFor(1), serverFor(2), undefined];
  const committed: Block[] = [];
  driver = new ConsensusDriver(
    { engine: { chainId: CHAIN, validatorCount: N, self: 0, timeouts: { baseMs: 300, multiplier: 1, capMs: 300 } }, maxBlockTxs: 1000, maxBlockBytes: 1 << 20 },
    {
      store: stores[0]!, pool: new Mempool({ maxTxs: 1000, maxBytes: 1 << 20, maxTxBytes: 1024 }), verifier: acceptAll,
      signer: { sign: async () => { throw new Error('no signing in this test'); } },
      transport: {
        broadcast: () => {},
        send: (to, frame) => setImmediate(() => {
          const f = decodeFrame(frame, limits);
          if (f.type === 'block-request') servers[to]?.onRequest(0, f.requestId, f.hashes, f.fromHeight, f.maxBlocks);
        }),
      },
      clock: systemClock, log,
      observer: { committed: (bs) => committed.push(...bs) },
    },
  );
  try {
    driver.start();
    driver.enqueue({ type: 'message', message: { type: 'qc', epoch: 0, qc: qcOf(chain[HEIGHT]!), sender: 1 } }); // the forger is asked first
    const t0 = Date.now();
    while (stores[0]!.committedHeight() < HEIGHT) {
      if (Date.now() - t0 > 60_000) assert.fail(`stuck at ${stores[0]!.committedHeight()}`);
      if (driver.failure) assert.fail(`driver failed (the forgery got in): ${driver.failure.message}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.ok(forgedServed > 0, 'the forger was asked and answered');
    assert.equal(driver.failure, undefined);
    assert.equal(driver.engine.halted, false);
    const five = stores[0]!.blockAtHeight(5)!;
    assert.deepEqual(five.txs, chain[5]!.txs, 'the stored block has the real transactions');
    assert.deepEqual(committed.map((b) => b.header.height), chain.slice(1).map((b) => b.header.height));
  } finally {
    await driver.stop();
    for (const s of stores) await s.close();
  }
});
