// Observers as real processes: 4 validators (16 processes) and 2 observers (store, gateway and
// consensus each, no signer) over real libp2p, gRPC with mutual TLS and NATS. o0 follows the
// validators, o1 follows o0. Their logs equal the validators'; a transaction submitted to an
// observer reaches the validators and commits; StreamCommits from an observer replays and
// follows; an observer killed and restarted catches up; btcfed verify accepts a block an
// observer serves; o1's reads never touch the validators (o0 serves it).

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { parseDocument } from 'yaml';
import { toHex, txHash } from '#libs/crypto/index.ts';
import { call } from '#libs/rpc/index.ts';
import { TxStatus, type ConsensusServiceClient } from '#libs/gen/btcfed/v1/consensus.pb.ts';
import { consensusClient } from '../cli/client.ts';
import { initFederation, memberPorts } from '../cli/init.ts';
import { runDevnet, type Devnet } from '../cli/devnet.ts';
import { NATS_URL } from './support/store.ts';
import { until } from './support/until.ts';
import { freePortBlock } from './support/ports.ts';
import { WARN_OR_WORSE, logTail } from './support/logs.ts';

const N = 4;
const basePort = await freePortBlock(20_000, 120);
const chainId = `obs-${randomBytes(3).toString('hex')}`;
const ROOT = path.resolve(import.meta.dirname, '..');
const NAMES = ['m0', 'm1', 'm2', 'm3', 'o0', 'o1'] as const;
let dir: string;
let net: Devnet;
const clients = new Map<string, ConsensusServiceClient>();
const client = (name: string) => clients.get(name)!;
const status = (name: string) => call(client(name).getStatus.bind(client(name)), {}, { deadlineMs: 5000 });
const hashAt = async (name: string, height: number) =>
  toHex((await call(client(name).getBlock.bind(client(name)), { by: { $case: 'height', value: height } }, { deadlineMs: 5000 })).blockHash);

/** A counter of a service's /metrics (summed over label sets matching `labels`). */
async function metric(port: number, name: string, labels = ''): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  return text.split('\n').filter((l) => l.startsWith(name) && l.includes(labels)).reduce((n, l) => n + Number(l.split(' ').at(-1)), 0);
}

let failed = false;
function step(name: string, fn: () => Promise<void>): void {
  test(name, async () => {
    try { await fn(); } catch (err) { failed = true; throw err; }
  });
}

describe('observers: 4 validators and 2 observers as real processes', { timeout: 600_000 }, () => {
  before(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'btcfed-obs-'));
    await initFederation({ members: N, observers: 2, out: dir, basePort, chainId, paramSet: 'slh-dsa-sha2-128f', baseTimeout: '1s', logFormat: 'json', natsUrl: NATS_URL });
    net = await runDevnet({ dir, members: N, observers: 2, basePort, natsUrl: NATS_URL, quiet: true });
    for (const name of NAMES) clients.set(name, consensusClient(path.join(dir, name)));
  });
  after(async () => {
    for (const c of clients.values()) c.close();
    await net?.stop();
    if (failed) {
      for (const name of ['o0', 'o1']) {
        for (const l of await logTail(path.join(dir, name, 'logs', 'consensus.log'), (x) => WARN_OR_WORSE.test(x), 10)) console.log(`[${name}] ${l}`);
      }
    }
    if (process.env.KEEP_E2E || failed) console.log(`kept ${dir}`); else await fs.rm(dir, { recursive: true, force: true });
  });

  step('observers are observers: no signer, never a validator, and they say how far behind they are', async () => {
    assert.equal(net.procs.filter((p) => p.member.startsWith('o') && p.service === 'signer').length, 0, 'no signer runs for an observer');
    await fs.access(path.join(dir, 'o0', 'signer')).then(() => assert.fail('an observer keeps no signing key'), () => undefined);
    const s = await until('o1 to follow a few blocks', async () => { const x = await status('o1'); return x.committedHeight >= 3 ? x : undefined; });
    assert.equal(s.observer, true);
    assert.equal(s.sourceHeight, s.committedHeight + s.behind);
    const v = await status('m0');
    assert.equal(v.observer, false);
  });

  step('a transaction submitted to an observer reaches the validators and commits; every log is the same', async () => {
    const txs = Array.from({ length: 40 }, (_, i) => new TextEncoder().encode(`via-observer-${i}-${randomBytes(4).toString('hex')}`));
    for (const [i, tx] of txs.entries()) {
      const r = await call(client(i % 2 ? 'o1' : 'o0').submitTransaction.bind(client(i % 2 ? 'o1' : 'o0')), { tx });
      assert.equal(toHex(r.txHash), toHex(txHash(tx)));
    }
    await assert.rejects(call(client('o0').submitTransaction.bind(client('o0')), { tx: new Uint8Array() }),
      (e: grpc.ServiceError) => e.code === grpc.status.INVALID_ARGUMENT && /empty/.test(e.details));
    for (const name of NAMES) {
      await until(`every transaction committed as ${name} sees it`, async () => {
        for (const tx of txs) {
          const r = await call(client(name).getTransaction.bind(client(name)), { txHash: txHash(tx), withProof: false });
          if (r.status !== TxStatus.TX_STATUS_COMMITTED) return undefined;
        }
        return true;
      });
    }
    const top = Math.min(...await Promise.all(NAMES.map(async (n) => Number((await status(n)).committedHeight))));
    assert.ok(top >= 3);
    for (let h = 1; h <= top; h++) {
      const hashes = await Promise.all(NAMES.map((n) => hashAt(n, h)));
      assert.equal(new Set(hashes).size, 1, `height ${h}: ${NAMES.map((n, i) => `${n}=${hashes[i]!.slice(0, 8)}`).join(' ')}`);
    }
  });

  step('o1 follows o0 (o0 serves it its log); btcfed verify accepts what an observer serves', async () => {
    const o0 = memberPorts(basePort, N);
    const served = await until('o0 to have served o1', async () => ((await metric(o0.consensusMetrics, 'btcfed_observer_served_requests')) > 0 ? true : undefined));
    assert.ok(served);
    const top = Number((await status('o1')).committedHeight);
    const r = spawnSync(process.execPath, ['cli/main.ts', 'verify', '--member', path.join(dir, 'o1'), '--height', String(top)], { cwd: ROOT, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.match(r.stdout, new RegExp(`^verified: block ${top} is committed on chain ${chainId}`));
  });

  step('an application in another language reads an observer: the Python example client, stubs generated from proto/ alone, with a certificate from btcfed cert issue', async () => {
    const apps = path.join(dir, 'apps');
    const issued = spawnSync(process.execPath, ['cli/main.ts', 'cert', 'issue', '--client', 'py', '--member-name', 'o0', '--ca-dir', path.join(dir, 'ca', 'o0'), '--out', apps],
      { cwd: ROOT, encoding: 'utf8' });
    assert.equal(issued.status, 0, issued.stdout + issued.stderr);
    const port = memberPorts(basePort, N).consensus;
    const r = spawnSync('/usr/bin/python3', ['examples/python/client.py', '--address', `127.0.0.1:${port}`, '--ca', path.join(apps, 'o0-ca.pem'),
      '--cert', path.join(apps, 'o0-client-py.pem'), '--key', path.join(apps, 'o0-client-py-key.pem')], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 0, `python client: ${r.stdout}${r.stderr}`);
    const [statusLine, blockLine, streamLine] = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, any>);
    assert.equal(statusLine!.status.member, 'o0');
    assert.equal(statusLine!.status.observer, true);
    const height = Number(blockLine!.block.height);
    assert.equal(height, Number(statusLine!.status.committed_height));
    assert.equal(blockLine!.block.hash, await hashAt('m0', height), 'the block it read is the validators\' block');
    assert.equal(blockLine!.block.qc.phase, 3, 'with its COMMIT QC');
    assert.ok(blockLine!.block.qc.signers.length >= 3, 'a quorum of signers');
    assert.deepEqual(streamLine!.streamed, [1, 2, 3]);
  });

  step('StreamCommits from an observer replays the log and follows it', async () => {
    const tip = Number((await status('o0')).committedHeight);
    const stream = client('o0').streamCommits({ fromHeight: 1, headersOnly: true });
    const seen: number[] = [];
    await new Promise<void>((resolve, reject) => {
      stream.on('data', (x: { block?: { block?: { header?: { height: number } } } }) => {
        seen.push(x.block!.block!.header!.height);
        if (seen.at(-1)! > tip + 1) resolve();
      });
      stream.on('error', (e: grpc.ServiceError) => { if (e.code !== grpc.status.CANCELLED) reject(e); });
    });
    stream.cancel();
    assert.deepEqual(seen, Array.from({ length: seen.length }, (_, i) => i + 1), 'every height once, in order, past the tip at the start');
  });

  step('an observer killed and restarted catches up', async () => {
    const p = net.procs.find((x) => x.member === 'o0' && x.service === 'consensus')!;
    p.child.kill('SIGKILL');
    await new Promise((r) => p.child.once('exit', r));
    const at = Number((await status('m0')).committedHeight);
    await until('the validators to commit on', async () => (Number((await status('m0')).committedHeight) >= at + 3 ? true : undefined));
    await net.restart('o0', 'consensus');
    const target = Number((await status('m0')).committedHeight);
    await until('o0 to catch up', async () => (Number((await status('o0')).committedHeight) >= target ? true : undefined));
    assert.equal(await hashAt('o0', target), await hashAt('m0', target));
  });

  step('every peer prunes (keep_blocks 32): o1, its store lost, joins from a checkpoint — epochs, tip, history as summaries — and still knows every committed transaction', async () => {
    const early = new TextEncoder().encode(`before-pruning-${randomBytes(4).toString('hex')}`);
    await call(client('m0').submitTransaction.bind(client('m0')), { tx: early });
    const at = await until('the early transaction committed', async () => {
      const r = await call(client('m0').getTransaction.bind(client('m0')), { txHash: txHash(early), withProof: false });
      return r.status === TxStatus.TX_STATUS_COMMITTED ? Number(r.height) : undefined;
    });
    const o0Log = path.join(dir, 'o0', 'logs', 'consensus.log');
    const o0From = (await fs.stat(o0Log)).size;
    const o0Ports = memberPorts(basePort, N);
    const appliedBefore = await metric(o0Ports.consensusMetrics, 'btcfed_consensus_config_version');
    const keep = async (name: string) => {
      const confPath = path.join(dir, name, 'conf.yaml');
      const doc = parseDocument(await fs.readFile(confPath, 'utf8'));
      doc.setIn(['consensus', 'keep_blocks'], 32);
      // o0's readers get a smaller share of its read CPU, and its log says more: one edit, all reloaded.
      if (name === 'o0') {
        doc.setIn(['services', 'consensus', 'limits', 'read_cpu_per_client'], { rate: 150 });
        doc.setIn(['logging', 'level'], 'debug');
      }
      await fs.writeFile(confPath, doc.toString());
    };
    // Validators and observers alike reload conf.yaml live: no member is restarted for it.
    for (const name of ['m0', 'm1', 'm2', 'm3', 'o0']) await keep(name);
    const reloaded = await until('o0 to reload its retention and its read limits', async () => {
      const lines = (await fs.readFile(o0Log, 'utf8')).slice(o0From).split('\n');
      const parsed = (msg: string) => {
        const line = lines.find((l) => l.includes(`"msg":"${msg}"`));
        return line === undefined ? undefined : JSON.parse(line) as { keepBlocks?: number; limits?: { read_cpu_per_client?: { rate: number; burst: number } } };
      };
      const keepLine = parsed('block retention changed');
      const limitsLine = parsed('api limits reloaded');
      // A debug line (info is the devnet's level): the reloaded logging.level is in force.
      const debugLine = parsed('pruned committed blocks') ?? parsed('followed');
      return keepLine && limitsLine && debugLine ? { keepLine, limitsLine } : undefined;
    }, 60_000);
    assert.equal(reloaded.keepLine.keepBlocks, 32);
    // The rate as set; the burst left out of the edit is the observer's default (2,000), not a validator's (600).
    assert.deepEqual(reloaded.limitsLine.limits?.read_cpu_per_client, { rate: 150, burst: 2000 });
    await until('o0\'s btcfed_consensus_config_version to reach its store\'s', async () => {
      const [applied, inForce] = [await metric(o0Ports.consensusMetrics, 'btcfed_consensus_config_version'), await metric(o0Ports.storeMetrics, 'btcfed_store_config_version')];
      return applied > appliedBefore && applied === inForce ? true : undefined;
    }, 30_000);
    const pruned = (name: string) => call(client(name).getBlock.bind(client(name)), { by: { $case: 'height', value: at } }, { deadlineMs: 5000 })
      .then(() => false, (e: grpc.ServiceError) => e.code === grpc.status.OUT_OF_RANGE);
    await until(`every validator and o0 to prune height ${at}`, async () => ((await Promise.all(['m0', 'm1', 'm2', 'm3', 'o0'].map(pruned))).every(Boolean) ? true : undefined), 180_000);

    // o1 loses its store (a new disk): started again, it finds only pruned peers and joins from a checkpoint.
    const o1 = net.procs.find((x) => x.member === 'o1' && x.service === 'consensus')!;
    o1.child.kill('SIGKILL');
    await new Promise((r) => o1.child.once('exit', r));
    await fs.rm(path.join(dir, 'o1', 'consensus'), { recursive: true, force: true });
    const logPath = path.join(dir, 'o1', 'logs', 'consensus.log');
    const logFrom = (await fs.stat(logPath)).size;
    const t0 = Date.now();
    await net.restart('o1', 'consensus');
    const target = Number((await status('m0')).committedHeight);
    await until('o1 to join and follow', async () => (Number((await status('o1')).committedHeight) >= target ? true : undefined), 120_000);
    const ms = Date.now() - t0;
    const top = Number((await status('o1')).committedHeight);
    assert.equal(await hashAt('o1', top), await hashAt('m0', top));
    const r = await call(client('o1').getTransaction.bind(client('o1')), { txHash: txHash(early), withProof: false });
    assert.deepEqual([r.status, Number(r.height)], [TxStatus.TX_STATUS_COMMITTED, at], 'a transaction of the skipped history is known as committed');
    assert.equal(await pruned('o1'), true, 'its block is not there: o1 started from a checkpoint above it');
    const log = (await fs.readFile(logPath, 'utf8')).slice(logFrom);
    const joined = log.split('\n').find((l) => l.includes('joined from a checkpoint'));
    assert.ok(joined, 'o1 says it joined from a checkpoint');
    const f = JSON.parse(joined) as { checkpointHeight: number; heights: number; transactions: number; ms: number };
    console.log(`checkpoint join: o1 started at height ${f.checkpointHeight} after ${f.heights} heights (${f.transactions} transactions) of history in ${f.ms} ms; restart to following the tip ${ms} ms`);
  });
});
