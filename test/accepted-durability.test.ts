// ACCEPTED survives a kill -9 of the member that gave it (issue 10: m1 answered ACCEPTED, its
// consensus service was killed ~60 ms later and the transaction was never committed anywhere).
// A 4-member federation of real processes. m1's gateway is stopped first, so nothing m1 accepts
// can leave it (no hand-off to the leaders, no proposal reaching anyone): without the journal,
// the kill -9 right after the answers loses every one of them, deterministically. m1 comes back,
// and every transaction it acknowledged must be committed exactly once. A second test kills m1's
// consensus while it holds another member's batch (no quorum: nothing commits) and checks the
// batch is read back from disk at the restart (batch-disk.ts).

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { toHex, txHash } from '#libs/crypto/index.ts';
import { call, callPatiently } from '#libs/rpc/index.ts';
import { TxStatus, type ConsensusServiceClient } from '#libs/gen/btcfed/v1/consensus.pb.ts';
import { consensusClient } from '../cli/client.ts';
import { initFederation, memberPorts } from '../cli/init.ts';
import { runDevnet, type Devnet } from '../cli/devnet.ts';
import { NATS_URL } from './support/store.ts';
import { freePortBlock } from './support/ports.ts';

const N = 4;
const M1 = 1;
const basePort = await freePortBlock(20_000, 120);
let dir: string;
let net: Devnet | undefined;
const clients: ConsensusServiceClient[] = [];
let failed = false;

async function until<T>(what: string, fn: () => Promise<T | undefined>, ms: number): Promise<T> {
  const t0 = Date.now();
  let lastErr: unknown;
  while (Date.now() - t0 < ms) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (err) { lastErr = err; }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}${lastErr ? `: ${String(lastErr)}` : ''}`);
}

const proc = (member: number, service: string) => net!.procs.find((p) => p.member === `m${member}` && p.service === service)!;
async function kill9(member: number, service: string): Promise<void> {
  const p = proc(member, service);
  if (p.exited) return;
  const gone = new Promise((r) => p.child.once('exit', r));
  p.child.kill('SIGKILL');
  await gone;
}

before(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'btcfed-accepted-'));
  await initFederation({ members: N, out: dir, basePort, chainId: `acc-${randomBytes(3).toString('hex')}`, paramSet: 'slh-dsa-sha2-128f', baseTimeout: '1s', logFormat: 'json', natsUrl: NATS_URL });
  net = await runDevnet({ dir, members: N, basePort, natsUrl: NATS_URL, quiet: true });
  for (let i = 0; i < N; i++) clients.push(consensusClient(path.join(dir, `m${i}`)));
});

after(async () => {
  for (const c of clients) c.close();
  await net?.stop();
  if (failed || process.env.KEEP_E2E) console.log(`kept ${dir}`);
  else await fs.rm(dir, { recursive: true, force: true });
});

test('every transaction m1 answered ACCEPTED is committed exactly once after a kill -9 of m1\'s consensus right after the answers', { timeout: 180_000 }, async (t) => {
  const t0 = Date.now();
  const mark = (what: string) => t.diagnostic(`${what} at ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  try {
    // Nothing m1 takes can leave it: no gateway, so no hand-off and no proposal gets out.
    await kill9(M1, 'gateway');
    const tag = randomBytes(4).toString('hex');
    const singles = Array.from({ length: 40 }, (_, i) => new TextEncoder().encode(`accepted-${tag}-single-${i}`));
    const batch = Array.from({ length: 300 }, (_, i) => new TextEncoder().encode(`accepted-${tag}-batch-${i}`));
    const c = clients[M1]!;
    const [answers, batchAnswer] = await Promise.all([
      Promise.all(singles.map((tx) => call(c.submitTransaction.bind(c), { tx }, { deadlineMs: 10_000 }))),
      call(c.submitTransactions.bind(c), { txs: batch }, { deadlineMs: 10_000 }),
    ]);
    // The moment the last ACCEPTED is in: kill -9.
    await kill9(M1, 'consensus');
    mark('m1 consensus killed after the answers');
    assert.equal(answers.filter((a) => !a.duplicate).length, singles.length, 'every single submit ACCEPTED');
    assert.equal(batchAnswer.accepted, batch.length, 'every batched transaction ACCEPTED');
    assert.deepEqual(batchAnswer.results.filter((r) => r.errorCode !== ''), []);
    const want = new Set([...singles, ...batch].map((tx) => toHex(txHash(tx))));

    // m1 comes back: gateway, then consensus (which replays its journal and proposes when it leads).
    await net!.restart(M1, 'gateway');
    await net!.restart(M1, 'consensus');
    mark('m1 restarted');
    const restored = await until('m1 to report its journal replay', async () => {
      const text = await (await fetch(`http://127.0.0.1:${memberPorts(basePort, M1).consensusMetrics}/metrics`)).text();
      const m = /btcfed_consensus_mempool_journal_replayed_total\{[^}]*outcome="restored"[^}]*\} (\d+)/.exec(text);
      return m ? Number(m[1]) : undefined;
    }, 10_000);
    assert.equal(restored, want.size, 'the restarted m1 restored every acknowledged transaction from its journal');

    const hashes = [...want];
    // Per member, what is not seen committed yet; each poll asks only about those, stopping at the first still pending.
    const pending = clients.map(() => new Set(hashes));
    await until('every acknowledged transaction committed on every member', async () => {
      await Promise.all(clients.map(async (client, i) => {
        for (const h of pending[i]!) {
          const r = await call(client.getTransaction.bind(client), { txHash: Buffer.from(h, 'hex'), withProof: false }, { deadlineMs: 5000 });
          if (r.status !== TxStatus.TX_STATUS_COMMITTED) return;
          pending[i]!.delete(h);
        }
      }));
      return pending.every((p) => p.size === 0) ? true : undefined;
    }, 45_000).catch((err: unknown) => {
      throw new Error(`${String(err)}; not committed per member: ${pending.map((p, i) => `m${i}=${p.size}`).join(' ')}`);
    });
    mark('all committed everywhere');

    // Exactly once, in m0's committed log (the others agree: the same transaction index says where).
    const m0 = clients[0]!;
    const top = Number((await call(m0.getStatus.bind(m0), {})).committedHeight);
    const seen = new Map<string, number>();
    for (let from = 1; from <= top; from += 100) {
      const r = await callPatiently(m0.listBlocks.bind(m0), { fromHeight: from, limit: 100, headersOnly: false });
      for (const b of r.blocks) for (const tx of b.block!.txs) {
        const h = toHex(txHash(tx));
        if (want.has(h)) seen.set(h, (seen.get(h) ?? 0) + 1);
      }
    }
    assert.equal(seen.size, want.size, 'every acknowledged transaction is in the log');
    assert.deepEqual([...seen.values()].filter((n) => n !== 1), [], 'none twice');
    for (const h of hashes.slice(0, 20)) {
      const where = await Promise.all(clients.map(async (cl) => {
        const r = await call(cl.getTransaction.bind(cl), { txHash: Buffer.from(h, 'hex'), withProof: false });
        return `${r.height}:${toHex(r.blockHash)}:${r.index}`;
      }));
      assert.equal(new Set(where).size, 1, `members agree where ${h} is`);
    }
  } catch (err) {
    failed = true;
    throw err;
  }
});

/** A counter or gauge of m`member`'s consensus metrics (the sum over its label sets matching `labels`). */
async function metric(member: number, name: string, labels = ''): Promise<number | undefined> {
  const text = await (await fetch(`http://127.0.0.1:${memberPorts(basePort, member).consensusMetrics}/metrics`)).text();
  let sum: number | undefined;
  for (const m of text.matchAll(new RegExp(`^btcfed_${name}(\\{[^}]*\\})? (\\S+)$`, 'gm'))) {
    if (labels && !(m[1] ?? '').includes(labels)) continue;
    sum = (sum ?? 0) + Number(m[2]);
  }
  return sum;
}

test('the batches a member holds survive a kill -9 of its consensus: read back from disk at the restart, then committed once', { timeout: 180_000 }, async (t) => {
  const t0 = Date.now();
  const mark = (what: string) => t.diagnostic(`${what} at ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  try {
    // No quorum (m2 and m3 down): nothing commits, so the batches m0 sends m1 stay held there.
    await kill9(2, 'consensus');
    await kill9(3, 'consensus');
    // Batches m1 holds from the first test (its own, whose transactions went inline after its restart) wait for their TTL.
    const before = (await metric(M1, 'consensus_batch_disk_entries')) ?? 0;
    const writesBefore = (await metric(M1, 'consensus_batch_disk_writes_total', 'result="done"')) ?? 0;
    const tag = randomBytes(4).toString('hex');
    const txs = Array.from({ length: 200 }, (_, i) => new TextEncoder().encode(`held-${tag}-${i}`));
    const c0 = clients[0]!;
    const r = await call(c0.submitTransactions.bind(c0), { txs }, { deadlineMs: 10_000 });
    assert.equal(r.accepted, txs.length);
    const onDisk = await until('m1 to hold m0\'s batch on disk', async () => {
      const n = await metric(M1, 'consensus_batch_disk_entries');
      return n !== undefined && n > before ? n : undefined;
    }, 20_000);
    // A batch is written once held for 2 s (batch-disk.ts WRITE_AFTER_MS): wait for that write.
    await until('m1 to write it', async () => {
      const n = await metric(M1, 'consensus_batch_disk_writes_total', 'result="done"');
      return n !== undefined && n > writesBefore ? n : undefined;
    }, 20_000);
    await kill9(M1, 'consensus');
    mark(`m1 consensus killed holding ${onDisk} batches on disk`);
    await net!.restart(M1, 'consensus');
    const held = await until('m1 to report the batches read back', async () => metric(M1, 'consensus_batch_disk_loaded_total', 'outcome="held"'), 20_000);
    assert.ok(held >= onDisk, `m1 holds again the ${onDisk} batches it had on disk (${held})`);
    assert.equal(await metric(M1, 'consensus_batch_disk_loaded_total', 'outcome="corrupt"'), 0);
    mark('m1 restarted with its batches');

    await net!.restart(2, 'consensus');
    await net!.restart(3, 'consensus');
    const want = txs.map((tx) => toHex(txHash(tx)));
    const c1 = clients[M1]!;
    await until('every transaction committed, as m1 sees it', async () => {
      for (const h of want) {
        const g = await call(c1.getTransaction.bind(c1), { txHash: Buffer.from(h, 'hex'), withProof: false }, { deadlineMs: 5000 });
        if (g.status !== TxStatus.TX_STATUS_COMMITTED) return undefined;
      }
      return true;
    }, 60_000);
    mark('all committed');
  } catch (err) {
    failed = true;
    throw err;
  }
});
