// The whole product: a 4-member federation as 16 real processes (store, signer, gateway,
// consensus per member) over real libp2p, gRPC with mutual TLS, and the real NATS.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { parseDocument } from 'yaml';
import { toHex, txHash } from '#libs/crypto/index.ts';
import { call, callPatiently } from '#libs/rpc/index.ts';
import { Phase } from '#libs/hotstuff/index.ts';
import { PROBE_EVERY } from '#libs/hotstuff/schedule.ts';
import { MAX_SUSPICION_LEVEL, suspicionWindow } from '#libs/hotstuff/suspicion.ts';
import { bitmapToSigners, encodeFrame } from '#libs/wire/index.ts';
import { AdminServiceClient, ConsensusServiceClient, TxStatus } from '#libs/gen/btcfed/v1/consensus.pb.ts';
import { GatewayServiceClient, type AttachResponse } from '#libs/gen/btcfed/v1/gateway.pb.ts';
import { EquivocationEvidence, InvalidSignature } from '#libs/gen/btcfed/v1/events.pb.ts';
import { createSlhDsa, voteSigningBytes } from '#libs/crypto/index.ts';
import { openKey } from '../services/signer/keyfile.ts';
import { createClient } from '#libs/rpc/index.ts';
import { memberSecurityFromDir } from '#libs/service/index.ts';
import { adminClient, consensusClient } from '../cli/client.ts';
import { initFederation, memberPorts } from '../cli/init.ts';
import { signerPassphrasePath } from '../cli/member.ts';
import { runDevnet, type Devnet, type Service } from '../cli/devnet.ts';
import { NATS_URL, recordEvents } from './support/store.ts';
import { until } from './support/until.ts';
import { prometheusInstalled, startPrometheus, type RunningPrometheus } from './support/prometheus.ts';
import { memberTargets, scrapeConfig } from '../cli/prometheus.ts';
import { freePortBlock } from './support/ports.ts';
import { WARN_OR_WORSE, logTail } from './support/logs.ts';

const N = 4;
// Below Linux's ephemeral range (32768+), where outgoing connections could already hold a port.
const basePort = await freePortBlock(20_000, 120);
const chainId = `e2e-${randomBytes(3).toString('hex')}`;
let dir: string;
let net: Devnet;
const clients: ConsensusServiceClient[] = [];

const status = (i: number) => call(clients[i]!.getStatus.bind(clients[i]!), {}, { deadlineMs: 5000 });
async function heights(): Promise<number[]> {
  return Promise.all(clients.map(async (_, i) => Number((await status(i)).committedHeight)));
}
let failed = false;
/** The Prometheus scraping this federation (started by the monitoring step, stopped at the end). */
let prom: RunningPrometheus | undefined;
/** A test whose failure keeps the member dirs and prints their warnings, for whoever reads CI's output. */
function step(name: string, fn: (t: import('node:test').TestContext) => Promise<void>): void {
  test(name, async (t) => {
    try {
      await fn(t);
    } catch (err) {
      failed = true;
      throw err;
    }
  });
}

async function reportLogs(): Promise<void> {
  for (let i = 0; i < N; i++) {
    for (const service of ['consensus', 'gateway', 'signer']) {
      for (const l of await logTail(path.join(dir, `m${i}`, 'logs', `${service}.log`), (x) => WARN_OR_WORSE.test(x), 8)) console.log(`[m${i}/${service}] ${l}`);
    }
  }
}

function proc(member: number, service: string) {
  return net.procs.find((p) => p.member === `m${member}` && p.service === service)!;
}

/** Stops a member's service (if it still runs) and waits for it to exit. */
async function stop(member: number, service: Service, signal: NodeJS.Signals): Promise<void> {
  const { child } = proc(member, service);
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill(signal);
  await exited;
}

/**
 * Runs `fn` with a member's service stopped, and starts it again whatever `fn` did: a step that
 * fails leaves the federation whole for the steps after it (one failure, not a cascade of them).
 */
async function stopped(member: number, service: Service, signal: NodeJS.Signals, fn: () => Promise<void>): Promise<void> {
  await stop(member, service, signal);
  try {
    await fn();
  } finally {
    await net.restart(member, service);
  }
}

/** Whether member i's consensus logged a line matching msg about validator v. */
async function said(i: number, msg: RegExp, v: number): Promise<boolean> {
  return (await fs.readFile(path.join(dir, `m${i}`, 'logs', 'consensus.log'), 'utf8'))
    .split('\n').filter((l) => msg.test(l)).map((l) => JSON.parse(l) as { validator?: number }).some((l) => l.validator === v);
}

/** What the gateways logged about presence: the sender's (of its consensus going) and the receiver's, for a failure's message. */
async function presenceLines(from: number, to: number): Promise<string> {
  const lines = async (i: number) => (await fs.readFile(path.join(dir, `m${i}`, 'logs', 'gateway.log'), 'utf8').catch(() => ''))
    .split('\n').filter((l) => /presence|absent|consumer|attach/i.test(l)).slice(-12).map((l) => `  [m${i}/gateway] ${l.slice(0, 300)}`);
  return [...(await lines(from)), ...(await lines(to))].join('\n');
}

describe('a 4-member federation of real processes', { timeout: 1_200_000 }, () => {
  before(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'btcfed-e2e-'));
    await initFederation({ members: N, out: dir, basePort, chainId, paramSet: 'slh-dsa-sha2-128f', baseTimeout: '1s', logFormat: 'json', natsUrl: NATS_URL });
    net = await runDevnet({ dir, members: N, basePort, natsUrl: NATS_URL, quiet: true });
    for (let i = 0; i < N; i++) clients.push(consensusClient(path.join(dir, `m${i}`)));
  });
  after(async () => {
    await prom?.stop();
    for (const c of clients) c.close();
    await net?.stop();
    if (failed) await reportLogs();
    if (process.env.KEEP_E2E || failed) console.log(`kept ${dir}`); else await fs.rm(dir, { recursive: true, force: true });
  });

  step('a stream of transactions commits identically everywhere, each exactly once', async () => {
    const txs = Array.from({ length: 200 }, (_, i) => new TextEncoder().encode(`e2e-tx-${i}-${randomBytes(4).toString('hex')}`));
    await Promise.all(txs.map((tx, i) => call(clients[i % N]!.submitTransaction.bind(clients[i % N]!), { tx })));
    const dup = await call(clients[0]!.submitTransaction.bind(clients[0]!), { tx: txs[0]! });
    assert.equal(dup.duplicate, true, 'resubmitting to the same member is idempotent');
    // Another member may not have seen it yet (its batch may be on the way): it takes it again, in
    // a batch of its own, and it must still be committed exactly once (checked below).
    await call(clients[3]!.submitTransaction.bind(clients[3]!), { tx: txs[1]! });
    await assert.rejects(call(clients[0]!.submitTransaction.bind(clients[0]!), { tx: new Uint8Array() }),
      (e: grpc.ServiceError) => e.code === grpc.status.INVALID_ARGUMENT);
    await until('every transaction committed on every member', async () => {
      for (const c of clients) {
        for (const tx of txs) {
          const r = await call(c.getTransaction.bind(c), { txHash: txHash(tx), withProof: false });
          if (r.status !== TxStatus.TX_STATUS_COMMITTED) return undefined;
        }
      }
      return true;
    });
    const top = Math.min(...(await heights()));
    const logs = await Promise.all(clients.map(async (c) => {
      const out: string[] = [];
      for (let from = 1; from <= top; from += 100) {
        const r = await callPatiently(c.listBlocks.bind(c), { fromHeight: from, limit: 100, headersOnly: false });
        for (const b of r.blocks) if (b.block!.header!.height <= top) out.push(`${toHex(b.blockHash)}:${b.block!.txs.map((t) => toHex(txHash(t))).join(',')}`);
      }
      return out;
    }));
    for (const l of logs) assert.deepEqual(l, logs[0], 'identical committed logs');
    const committed = logs[0]!.flatMap((e) => e.split(':')[1]!.split(',').filter(Boolean));
    const want = new Set(txs.map((t) => toHex(txHash(t))));
    const ours = committed.filter((h) => want.has(h));
    assert.equal(ours.length, want.size, 'every accepted transaction committed exactly once');
    assert.equal(new Set(ours).size, ours.length);
    // They travelled in batches the proposals named (docs/consensus.md, Batches), not in the proposals.
    let named = 0;
    for (let i = 0; i < N; i++) {
      const text = await (await fetch(`http://127.0.0.1:${memberPorts(basePort, i).consensusMetrics}/metrics`)).text();
      named += Number(/^btcfed_consensus_proposed_transactions_total\{[^}]*travel="batch"[^}]*\} (\d+)$/m.exec(text)?.[1] ?? 0);
    }
    assert.ok(named > 0, 'no proposal named a batch (btcfed_consensus_proposed_transactions_total{travel="batch"})');
    const peers = await until('GetStatus to list the three other validators as connected', async () => {
      const p = (await status(0)).peers.filter((x) => x.state === 'connected');
      return p.length === N - 1 ? p : undefined;
    }, 10_000);
    assert.deepEqual(peers.map((p) => p.validatorIndex).sort(), [1, 2, 3]);
  });

  step('a real Prometheus scrapes every service with the generated configuration; every metric the shipped alert rules read exists', async (t) => {
    if (!prometheusInstalled()) {
      if (process.env.CI) assert.fail('prometheus is not installed (bash scripts/ensure-tools.sh installs it)');
      t.skip('prometheus not installed');
      return;
    }
    const rules = await fs.readFile(path.join(import.meta.dirname, '..', 'deploy', 'prometheus', 'alerts.yml'), 'utf8');
    const members = Array.from({ length: N }, (_, i) => memberTargets(path.join(dir, `m${i}`)));
    const p = await startPrometheus(scrapeConfig(members, { ruleFiles: ['alerts.yml'], scrapeInterval: '1s' }), { 'alerts.yml': rules });
    prom = p;
    {
      await until('every service scraped', async () => {
        const up = await p.query('up == 1');
        return up.length === 4 * N ? true : undefined;
      }, 30_000);
      // Every btcfed metric an alert expression names has a series (histograms through _bucket).
      const names = [...new Set([...rules.matchAll(/\b(btcfed_[a-z_]+)/g)].map((m) => m[1]!))];
      assert.ok(names.length >= 10, `${names.length} metrics named by the rules`);
      const missing: string[] = [];
      for (const name of names) {
        const series = await p.query(`count({__name__=~"${name}(_bucket)?"})`);
        if (series.length === 0) missing.push(name);
      }
      assert.deepEqual(missing, [], 'metrics the alert rules read but no service exports');
      // The disk and NATS series those alerts read say something true of a running member.
      const count = async (q: string) => (await p.query(`count(${q})`))[0]?.value[1] ?? '0';
      await until('every consensus has measured its store and the blocks stream', async () =>
        (await count('btcfed_consensus_blocks_stream_bytes > 0')) === String(N) ? true : undefined, 30_000);
      assert.equal(await count('btcfed_consensus_store_bytes > 0'), String(N), 'each block store has bytes');
      assert.equal(await count('btcfed_consensus_data_free_bytes > 0'), String(N), 'each data disk has room');
      assert.equal(await count('btcfed_consensus_blocks_stream_limit_bytes == -1'), String(N), 'no byte limit on BTCFED_BLOCKS by default (-1)');
      assert.equal(await count('btcfed_nats_connected_state == 0'), '0', 'no service is cut from NATS');
      assert.ok(Number(await count('btcfed_nats_connected_state == 1')) >= N, 'and their connections say so');
      const loaded = await until('the rules evaluated', async () => {
        const r = await p.rules();
        return r.length > 0 && r.every((x) => x.health === 'ok') ? r : undefined;
      }, 30_000);
      assert.ok(loaded.length >= 10, `${loaded.length} alert rules loaded`);
      const firing = (await p.query('ALERTS{alertstate="firing"}')).map((a) => a.metric.alertname);
      assert.deepEqual(firing, [], 'a healthy federation fires no alert');
    }
  });

  step('btcfed verify: a committed block and a transaction in it check out against the validator set, asking another member', async () => {
    const tx = new TextEncoder().encode(`verify-me-${randomBytes(4).toString('hex')}`);
    await call(clients[0]!.submitTransaction.bind(clients[0]!), { tx });
    const where = await until('the transaction committed', async () => {
      const r = await call(clients[2]!.getTransaction.bind(clients[2]!), { txHash: txHash(tx), withProof: false });
      return r.status === TxStatus.TX_STATUS_COMMITTED ? r : undefined;
    });
    const cli = (args: string[]) => spawnSync(process.execPath, [path.join(import.meta.dirname, '..', 'cli', 'main.ts'), 'verify', ...args], { encoding: 'utf8', timeout: 60_000 });
    // Ask m2 (with m2's client certificate: each member has its own CA), trust m0's conf.yaml.
    const trust = path.join(dir, 'm0', 'conf.yaml');
    const ok = cli(['--member', path.join(dir, 'm2'), '--trust', trust, '--height', String(where.height), '--tx', toHex(txHash(tx))]);
    assert.equal(ok.status, 0, ok.stdout + ok.stderr);
    assert.match(ok.stdout, new RegExp(`^verified: block ${where.height} is committed on chain ${chainId}: a COMMIT QC of view \\d+ signed by validators [0-3](, [0-3]){2,3} of 4; transaction [0-9a-f]{64} is at index \\d+`));
    // The same block against a trust root with other keys: refused, exit 1.
    const conf = await fs.readFile(path.join(dir, 'm0', 'conf.yaml'), 'utf8');
    const other = path.join(dir, 'untrusted-conf.yaml');
    // Every validator's key changed in its first hex digit (whoever signed, the keys are not theirs).
    await fs.writeFile(other, conf.replace(/public_key: (['"]?)([0-9a-f])/g, (_m, q: string, c: string) => `public_key: ${q}${c === 'a' ? 'b' : 'a'}`));
    const bad = cli(['--member', path.join(dir, 'm2'), '--height', String(where.height), '--trust', other]);
    assert.equal(bad.status, 1, bad.stdout + bad.stderr);
    assert.match(bad.stdout, /^refused: qc: bad signature of [0-3]/);
    // A height no member holds: exit 1, and the error names its code.
    const missing = cli(['--member', path.join(dir, 'm2'), '--height', '1000000000']);
    assert.equal(missing.status, 1, missing.stdout + missing.stderr);
    assert.match(missing.stderr, /^btcfed: .*\([A-Z][A-Z_]+\)\n$/, 'the failure names its code');
    console.log(`# verify of a missing height: ${missing.stderr.trim()}`);

    // The transaction alone, by its inclusion proof from m1 (header, count, Merkle branch): the
    // block's transactions are never fetched.
    const proved = await call(clients[1]!.getTransaction.bind(clients[1]!), { txHash: txHash(tx), withProof: true });
    assert.equal(proved.height, where.height);
    assert.ok(proved.header && proved.txCount >= 1, 'a header and a count');
    const byProof = cli(['--member', path.join(dir, 'm1'), '--trust', trust, '--tx', toHex(txHash(tx))]);
    assert.equal(byProof.status, 0, byProof.stdout + byProof.stderr);
    assert.match(byProof.stdout, new RegExp(`^verified: block ${where.height} is committed .*; transaction ${toHex(txHash(tx))} is at index ${proved.index} \\(by its Merkle branch\\)`));
    const notCommitted = cli(['--member', path.join(dir, 'm1'), '--trust', trust, '--tx', toHex(txHash(new TextEncoder().encode('never submitted')))]);
    assert.equal(notCommitted.status, 1);
    assert.match(notCommitted.stdout, /^refused: the member says the transaction is not committed \(status unknown\)/);
    const byProofUntrusted = cli(['--member', path.join(dir, 'm1'), '--trust', other, '--tx', toHex(txHash(tx))]);
    assert.equal(byProofUntrusted.status, 1);
    assert.match(byProofUntrusted.stdout, /^refused: qc: bad signature of [0-3]/);
  });

  step('btcfed cert issue: an application\'s own client certificate reaches the public API and nothing else', async () => {
    const out = path.join(dir, 'apps');
    const r = spawnSync(process.execPath, [path.join(import.meta.dirname, '..', 'cli', 'main.ts'), 'cert', 'issue', '--client', 'payments',
      '--member-name', 'm1', '--ca-dir', path.join(dir, 'ca', 'm1'), '--out', out], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /^issued m1-client-payments/);
    const security = { mode: 'mtls' as const, caFile: path.join(out, 'm1-ca.pem'), certFile: path.join(out, 'm1-client-payments.pem'),
      keyFile: path.join(out, 'm1-client-payments-key.pem'), serverName: 'localhost' };
    const app = createClient(ConsensusServiceClient, `127.0.0.1:${memberPorts(basePort, 1).consensus}`, { security });
    const appAdmin = createClient(AdminServiceClient, `127.0.0.1:${memberPorts(basePort, 1).admin}`, { security });
    try {
      assert.ok(Number((await call(app.getStatus.bind(app), {})).committedHeight) > 0);
      await assert.rejects(call(appAdmin.pause.bind(appAdmin), {}), (e: grpc.ServiceError) => e.code === grpc.status.PERMISSION_DENIED);
    } finally {
      app.close();
      appAdmin.close();
    }
    // Another member's server does not know m1's CA.
    const other = createClient(ConsensusServiceClient, `127.0.0.1:${memberPorts(basePort, 2).consensus}`, { security });
    try {
      await assert.rejects(call(other.getStatus.bind(other), {}, { deadlineMs: 3000 }));
    } finally {
      other.close();
    }
  });

  step('btcfed submit sends a batch in one call and waits for every commit; a timeout names what is pending', async () => {
    const cli = (args: string[]) => spawnSync(process.execPath, [path.join(import.meta.dirname, '..', 'cli', 'main.ts'), 'submit', '--member', path.join(dir, 'm3'), ...args], { encoding: 'utf8', timeout: 120_000 });
    const ok = cli(['--count', '300', '--size', '64', '--timeout', '90s']);
    assert.equal(ok.status, 0, ok.stdout + ok.stderr);
    assert.match(ok.stdout, /^300 of 300 transactions accepted in \d+ ms\nall 300 committed \d+ ms after the first submit \(last at height \d+\)/);
    const late = cli(['--count', '20', '--size', '64', '--timeout', '0s']);
    assert.equal(late.status, 1, late.stdout + late.stderr);
    assert.match(late.stderr, /^btcfed: 20 of 20 accepted transactions not committed after 0 ms/);
  });

  step('StreamCommits replays the log in order and follows it; GetBlock agrees; view timeouts reload live', async () => {
    const stream = clients[2]!.streamCommits({ fromHeight: 1, headersOnly: true });
    const heightsSeen: number[] = [];
    await new Promise<void>((resolve, reject) => {
      stream.on('data', (r: { block?: { block?: { header?: { height: number } } } }) => {
        heightsSeen.push(r.block!.block!.header!.height);
        if (heightsSeen.length >= 5) resolve();
      });
      stream.on('error', (e: grpc.ServiceError) => { if (e.code !== grpc.status.CANCELLED) reject(e); });
    });
    stream.cancel();
    assert.deepEqual(heightsSeen.slice(0, 5), [1, 2, 3, 4, 5]);
    const b3 = await call(clients[0]!.getBlock.bind(clients[0]!), { by: { $case: 'height', value: 3 } });
    const b3h = await call(clients[1]!.getBlock.bind(clients[1]!), { by: { $case: 'hash', value: b3.blockHash } });
    assert.equal(b3h.block!.header!.height, 3);
    assert.ok(b3.qc, 'a committed block comes with the QC that decided it');
    await assert.rejects(call(clients[0]!.getBlock.bind(clients[0]!), { by: { $case: 'height', value: 10_000_000 } }),
      (e: grpc.ServiceError) => e.code === grpc.status.NOT_FOUND);

    // Edit m0's conf.yaml by hand: the store reloads it, and consensus takes the new view timeouts
    // and, last, the new log level (warn).
    const version = async (service: 'store' | 'consensus') => {
      const port = service === 'store' ? memberPorts(basePort, 0).storeMetrics : memberPorts(basePort, 0).consensusMetrics;
      const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      return Number(new RegExp(`^btcfed_${service}_config_version(?:\\{[^}]*\\})? (\\d+)$`, 'm').exec(text)?.[1] ?? NaN);
    };
    const appliedBefore = await version('consensus');
    assert.ok(Number.isInteger(appliedBefore) && appliedBefore >= 1, `btcfed_consensus_config_version at start: ${appliedBefore}`);
    const confPath = path.join(dir, 'm0', 'conf.yaml');
    const edit = async (baseTimeout: string, level: string) => {
      const doc = parseDocument(await fs.readFile(confPath, 'utf8'));
      doc.setIn(['consensus', 'base_timeout'], baseTimeout);
      doc.setIn(['logging', 'level'], level);
      await fs.writeFile(confPath, doc.toString());
    };
    await edit('1200ms', 'warn');
    const log = path.join(dir, 'm0', 'logs', 'consensus.log');
    const reloadedTo = async () => (await fs.readFile(log, 'utf8')).split('\n').filter((l) => l.includes('view timeouts reloaded'))
      .map((l) => (JSON.parse(l) as { timeouts: { baseMs: number } }).timeouts.baseMs);
    await until('consensus to log the reloaded timeouts', async () => ((await reloadedTo()).includes(1200) ? true : undefined), 15_000);
    // Then 1.5 s (the later steps' timer) and info again: the timeouts are taken (GetValidators says
    // so), and their info line is not written: the warn level of the reload before was in force.
    await edit('1500ms', 'info');
    await until('m0 to report the base timeout reloaded to 1.5 s', async () =>
      ((await call(clients[0]!.getValidators.bind(clients[0]!), {})).baseTimeoutMs === 1500 ? true : undefined), 15_000);
    await new Promise((r) => setTimeout(r, 1000)); // what m0 wrote reaches its log file through the devnet's pipe
    assert.deepEqual(await reloadedTo(), [1200], 'the second reload logged at info although logging.level was warn');
    // Which version consensus has applied, on its metrics: the store's, two edits on at least.
    await until('btcfed_consensus_config_version to reach the store\'s', async () => {
      const [applied, inForce] = [await version('consensus'), await version('store')];
      return applied >= appliedBefore + 2 && applied === inForce ? true : undefined;
    }, 15_000);
  });

  step('AdminService answers the operator certificate only; Pause stops a member signing until Resume', async () => {
    const op = adminClient(path.join(dir, 'm1'));
    const services = createClient(AdminServiceClient, `127.0.0.1:${memberPorts(basePort, 1).admin}`, { security: memberSecurityFromDir(path.join(dir, 'm1')).client });
    try {
      await assert.rejects(call(services.pause.bind(services), {}), (e: grpc.ServiceError) => e.code === grpc.status.PERMISSION_DENIED);
      assert.equal((await call(op.pause.bind(op), {})).paused, true);
      assert.equal((await status(1)).paused, true);
      const stateJson = (await call(op.dumpState.bind(op), {})).stateJson;
      const dump = JSON.parse(stateJson) as { paused: boolean; view: number; self: number; validators: number; committed: { hash: string }; pendingChange: unknown };
      assert.equal(dump.paused, true);
      assert.deepEqual([dump.self, dump.validators], [1, 4], 'whose state, in a set of how many');
      assert.equal(dump.pendingChange, null, 'no reconfiguration pending');
      assert.match(dump.committed.hash, /^[0-9a-f]{64}$/, 'bytes are hex');
      assert.ok(!stateJson.includes('"Buffer"'), 'no byte array from the store is printed one byte per line');
      const before = Math.max(...(await heights()));
      await until('the others commit on while m1 is paused', async () => {
        const hs = await Promise.all([0, 2, 3].map(async (i) => Number((await status(i)).committedHeight)));
        return Math.min(...hs) >= before + 3 ? true : undefined;
      });
      // Health tells the truth: not ready while paused (and why), still live; ready again after Resume.
      const probe = async (p: string) => {
        const r = await fetch(`http://127.0.0.1:${memberPorts(basePort, 1).consensusMetrics}${p}`);
        return { status: r.status, text: await r.text() };
      };
      const paused = await probe('/readyz');
      assert.equal(paused.status, 503);
      assert.match(paused.text, /paused by the operator/);
      assert.equal((await probe('/healthz')).status, 503);
      assert.equal((await probe('/livez')).status, 200);
      assert.equal((await call(op.resume.bind(op), {})).paused, false);
      assert.equal((await status(1)).paused, false);
      assert.equal((await probe('/readyz')).status, 200);
      const gw = await fetch(`http://127.0.0.1:${memberPorts(basePort, 1).gatewayMetrics}/readyz`);
      assert.equal(gw.status, 200, `the gateway reaches a quorum: ${await gw.text()}`);
    } finally {
      op.close();
      services.close();
    }
  });

  step('a forged vote is rejected, counted and reported; an equivocation is kept as evidence', async () => {
    const events = await recordEvents(`btcfed.m0.consensus.security.invalid_signature`, (b) => InvalidSignature.decode(b));
    try {
    // Play m3's consensus: take over its gateway's Attach stream and send m0 a vote with a bad signature.
    await proc(3, 'consensus').child.kill('SIGKILL');
    const gw = createClient(GatewayServiceClient, `127.0.0.1:${memberPorts(basePort, 3).gateway}`, { security: memberSecurityFromDir(path.join(dir, 'm3'), 'consensus').client });
    // The gateway notices the killed consumer's stream end shortly; until then it refuses a second one.
    const stream = await until('the gateway to accept a new consumer', () => new Promise<ReturnType<typeof gw.attach> | undefined>((resolve) => {
      const st = gw.attach();
      st.on('data', (r: AttachResponse) => { if (r.body?.$case === 'ready') resolve(st); });
      st.on('error', () => resolve(undefined));
    }), 15_000);
    // Votes go to the leader of their view, and m0 refuses one for a view it does not lead before
    // checking any signature: send the forged vote while m0 leads (views move fast: until it lands).
    const forged = events.next((e) => e.data.claimedSender === 3, 30_000);
    let landed = false;
    void forged.then(() => { landed = true; }, () => undefined);
    for (const t0 = Date.now(); !landed && Date.now() - t0 < 30_000;) {
      const view = Number((await status(0)).view);
      if (view % N === 0) {
        const vote = { type: 'vote' as const, epoch: 0, phase: Phase.PREPARE, view, blockHash: new Uint8Array(32).fill(7), sender: 3, signature: new Uint8Array(17_088).fill(1) };
        stream.write({ body: { $case: 'send', value: { to: 0, toPeer: '', frame: encodeFrame(chainId, { type: 'consensus', message: vote }) } } });
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    const ev = await forged;
    assert.equal(ev.data.messageType, 'vote');

    // Then equivocate as m3, with m3's real key: two different PREPARE votes for one view.
    const signerDir = path.join(dir, 'm3', 'signer');
    const passphrase = (await fs.readFile((await signerPassphrasePath(signerDir))!, 'utf8')).trim();
    const { secretKey } = await openKey(await fs.readFile(path.join(signerDir, 'signer.key'), 'utf8'), passphrase, 'signer.key');
    const dsa = createSlhDsa();
    // A leader only looks at votes for the view it is in, and views move fast: sign a pair for the
    // current view of a live leader and send it at once, until one lands.
    const eqEvents = await recordEvents(`btcfed.*.consensus.security.equivocation`, (b) => EquivocationEvidence.decode(b));
    try {
      const fromView = Number((await status(0)).view);
      const evidence = await until('evidence of the equivocation', async () => {
        const view = Number((await status(0)).view);
        if (view % N !== 3) {
          for (const fill of [1, 2]) {
            const blockHash = new Uint8Array(32).fill(fill);
            const signature = await dsa.sign(secretKey, voteSigningBytes({ chainId, epoch: 0, phase: Phase.PREPARE, view, blockHash }));
            const frame = encodeFrame(chainId, { type: 'consensus', message: { type: 'vote', epoch: 0, phase: Phase.PREPARE, view, blockHash, sender: 3, signature } });
            stream.write({ body: { $case: 'send', value: { to: view % N, toPeer: '', frame } } });
          }
          await new Promise((r) => setTimeout(r, 300));
        }
        for (const [i, c] of clients.slice(0, 3).entries()) {
          const r = await call(c.getEvidence.bind(c), { fromEpoch: 0, fromView, afterSeq: 0, limit: 0 });
          const hit = r.evidence.find((e) => e.offender === 3);
          if (hit) return { ...hit, at: i };
        }
        return undefined;
      }, 20_000);
      assert.deepEqual([evidence.kind, Number(evidence.epoch), evidence.offenderName], ['prepare', 0, 'm3'], 'the item names its epoch and the member');
      // The operator's view of it: `btcfed evidence` on the member that kept it, as lines and as JSON.
      const cli = (...args: string[]) => spawnSync(process.execPath, [path.join(import.meta.dirname, '..', 'cli', 'main.ts'), 'evidence', '--member', path.join(dir, `m${evidence.at}`), '--from-view', String(fromView), ...args], { encoding: 'utf8', timeout: 60_000 });
      const lines = cli();
      assert.equal(lines.status, 0, lines.stderr);
      assert.match(lines.stdout, new RegExp(`^#${evidence.seq} epoch 0 view ${evidence.view}: m3 \\(validator 3\\) signed two prepare votes \\(seen `, 'm'));
      assert.match(lines.stdout, /\d+ items? of equivocation evidence\n$/);
      const items = cli('--json').stdout.trim().split('\n').map((l) => JSON.parse(l) as { seq: number; offenderName: string; first: string; second: string });
      const item = items.find((x) => x.seq === Number(evidence.seq))!;
      assert.deepEqual([item.offenderName, item.first, item.second], ['m3', Buffer.from(evidence.first).toString('hex'), Buffer.from(evidence.second).toString('hex')], 'both signed messages, whole');
      assert.equal(cli('--from-epoch', '1').stdout, 'no equivocation evidence\n', 'nothing from epoch 1 on');
      assert.notDeepEqual(evidence.first, evidence.second);
      const event = await eqEvents.next((e) => e.data.offender === 3, 5000);
      assert.deepEqual([event.data.phase, Number(event.data.epoch), event.data.offenderName], [Phase.PREPARE, 0, 'm3'], 'the event too, with the votes\' phase');
    } finally {
      await eqEvents.close();
    }
    const metrics = await (await fetch(`http://127.0.0.1:${memberPorts(basePort, 0).consensusMetrics}/metrics`)).text();
    assert.match(metrics, /btcfed_consensus_invalid_signatures_total\{[^}]*what="vote"[^}]*\} [1-9]/);
    stream.cancel();
    gw.close();
    } finally {
      await events.close();
      // bring m3's consensus back for the next tests
      await net.restart(3, 'consensus');
    }
  });

  step('every query of the shipped Grafana dashboards returns data from this federation', async (t) => {
    if (!prom) {
      t.skip('no Prometheus (see the monitoring step)');
      return;
    }
    const dashDir = path.join(import.meta.dirname, '..', 'deploy', 'grafana', 'dashboards');
    const empty: string[] = [];
    let queries = 0;
    for (const file of await fs.readdir(dashDir)) {
      const dash = JSON.parse(await fs.readFile(path.join(dashDir, file), 'utf8')) as { panels: Array<{ title: string; targets: Array<{ expr: string }> }> };
      for (const panel of dash.panels) {
        for (const target of panel.targets) {
          queries++;
          // Grafana's variables, as a user picking member m0 would get them.
          const q = target.expr.replaceAll('$__rate_interval', '30s').replaceAll('$member', 'm0');
          const got = await until(`${file} "${panel.title}"`, async () => ((await prom!.query(q)).length > 0 ? true : undefined), 20_000).catch(() => false);
          if (!got) empty.push(`${file} "${panel.title}": ${q}`);
        }
      }
    }
    assert.ok(queries >= 20, `${queries} dashboard queries`);
    assert.deepEqual(empty, [], 'dashboard queries that return nothing');
  });

  step('kill -9 of the leader\'s consensus: views change, commits continue; restarted, it syncs and rejoins', async () => {
    const s = await status(0);
    const leader = Number(s.leader);
    const before = Math.max(...(await heights()));
    const others = [0, 1, 2, 3].filter((i) => i !== leader);
    await stopped(leader, 'consensus', 'SIGKILL', async () => {
      await until('commits continue without the killed leader', async () => {
        const hs = await Promise.all(others.map(async (i) => Number((await status(i)).committedHeight)));
        return Math.min(...hs) >= before + 5 ? true : undefined;
      });
      // Its gateway tells the others its consensus is gone: they give its views up at once (presence).
      // With a view timer of 1 s the commits above may come first, on the timer: so wait for the word.
      for (const i of others) {
        await until(`m${i} told m${leader} is absent`, async () => (await said(i, /validator absent \(gateway\)/, leader)) || undefined, 15_000)
          .catch(async (err: unknown) => { throw new Error(`${String(err)}\n${await presenceLines(leader, i)}`); });
      }
    });
    await until('the restarted member catches up', async () => {
      const hs = await heights();
      return hs[leader]! >= Math.max(...others.map((i) => hs[i]!)) - 1 && hs[leader]! > before + 5 ? true : undefined;
    });
    for (const i of others) await until(`m${i} told m${leader} is present again`, async () => (await said(i, /validator present again \(gateway\)/, leader)) || undefined);
    // It started saying it was catching up (no commit had reached it: services/consensus/catching-up.ts),
    // and once commits reached it, that it takes part; then it is ready.
    const logOf = async () => (await fs.readFile(path.join(dir, `m${leader}`, 'logs', 'consensus.log'), 'utf8')).split('\n');
    const start = (await logOf()).findLastIndex((l) => l.includes('started: catching up until a commit reaches this member'));
    assert.ok(start >= 0, `m${leader} did not start saying it was catching up`);
    await until(`m${leader} says it takes part again`, async () => (await logOf()).slice(start).some((l) => l.includes('caught up: the gateway tells the validators')) || undefined);
    await until(`m${leader} ready`, async () => ((await fetch(`http://127.0.0.1:${memberPorts(basePort, leader).consensusMetrics}/readyz`)).status === 200 ? true : undefined));
  });

  step('with one member\'s signer stopped, the federation keeps committing, and that member says it is not ready until its signer answers again', async () => {
    const metricsOf2 = `http://127.0.0.1:${memberPorts(basePort, 2).consensusMetrics}`;
    await stopped(2, 'signer', 'SIGTERM', async () => {
      const before = Math.max(...(await heights()));
      await until('commits continue with a signer down', async () => {
        const hs = await Promise.all([0, 1, 3].map(async (i) => Number((await status(i)).committedHeight)));
        return Math.min(...hs) >= before + 5 ? true : undefined;
      });
      const tx = new TextEncoder().encode(`after-signer-stop-${randomBytes(4).toString('hex')}`);
      await call(clients[2]!.submitTransaction.bind(clients[2]!), { tx });
      await until('a transaction submitted to the signerless member commits', async () => {
        const r = await call(clients[0]!.getTransaction.bind(clients[0]!), { txHash: txHash(tx), withProof: false });
        return r.status === TxStatus.TX_STATUS_COMMITTED ? true : undefined;
      });
      // Health tells the truth: m2 takes no part in consensus without its signer.
      const ready = await until('m2 not ready, naming its signer', async () => {
        const r = await fetch(`${metricsOf2}/readyz`);
        const text = await r.text();
        return r.status === 503 && /the signer does not answer/.test(text) ? text : undefined;
      });
      assert.match(ready, /the signer does not answer \(for \d+ s\)/);
      assert.match(await (await fetch(`${metricsOf2}/metrics`)).text(), /^btcfed_consensus_signer_reachable_state(\{[^}]*\})? 0$/m);
    });
    await until('m2 ready again once its signer answers', async () => ((await fetch(`${metricsOf2}/readyz`)).status === 200 ? true : undefined));
  });

  step('retention: keep_blocks reloaded on m0, m1 and m3 prunes their old blocks (BLOCK_PRUNED names the oldest kept); a member stopped past every peer\'s retention joins from a checkpoint and takes part again', async () => {
    await stop(2, 'consensus', 'SIGTERM');
    const lacks = Number((await call(clients[1]!.getStatus.bind(clients[1]!), {}, { deadlineMs: 5000 })).committedHeight) + 1;
    for (const i of [0, 1, 3]) {
      const confPath = path.join(dir, `m${i}`, 'conf.yaml');
      const doc = parseDocument(await fs.readFile(confPath, 'utf8'));
      doc.setIn(['consensus', 'keep_blocks'], 32);
      await fs.writeFile(confPath, doc.toString());
    }
    const prunedAt = (i: number, height: number) => call(clients[i]!.getBlock.bind(clients[i]!), { by: { $case: 'height', value: height } })
      .then(() => undefined, (e: grpc.ServiceError) => (e.code === grpc.status.OUT_OF_RANGE ? e.details : undefined));
    const said = await until(`m0, m1 and m3 to prune height ${lacks}, which m2 lacks`, async () => {
      const [a, b, d] = await Promise.all([prunedAt(0, lacks), prunedAt(1, lacks), prunedAt(3, lacks)]);
      return a && b && d ? a : undefined;
    }, 240_000);
    assert.match(said, new RegExp(`block ${lacks} is pruned on this member \\(consensus.keep_blocks\\): it keeps blocks whole from height \\d+`));
    const metrics0 = await (await fetch(`http://127.0.0.1:${memberPorts(basePort, 0).consensusMetrics}/metrics`)).text();
    const oldest = Number(/^btcfed_consensus_oldest_kept_height(?:\{[^}]*\})? (\d+)$/m.exec(metrics0)?.[1]);
    assert.ok(oldest > lacks, `m0 keeps from ${oldest}, above ${lacks}`);
    assert.match(metrics0, /^btcfed_consensus_blocks_pruned_total(\{[^}]*\})? [1-9]\d*$/m);
    const t0 = Date.now();
    await net.restart(2, 'consensus');
    // The join moves m2's committed height to the checkpoint before it logs that it joined and
    // starts again as a validator: caught up means a validator again, at its peers' height.
    await until('m2 catches up although every peer pruned what it lacks', async () => {
      if ((await status(2)).observer) return undefined;
      const hs = await heights();
      return hs[2]! >= Math.min(hs[0]!, hs[1]!, hs[3]!) - 1 ? true : undefined;
    }, 180_000);
    const caughtUpMs = Date.now() - t0;
    const log2 = await fs.readFile(path.join(dir, 'm2', 'logs', 'consensus.log'), 'utf8');
    assert.match(log2, /behind the peers' retention \(consensus.keep_blocks\): starting again to join from a checkpoint/);
    assert.match(log2, /joined from a checkpoint: following from it/);
    // It takes part again: as a voter (its signature in the QC of a block committed after its
    // catch-up) and as a leader (a block it proposed commits). The others may still suspect it as a
    // leader (its probe views failed while it was joining: libs/hotstuff suspicion.ts) for up to
    // suspicionWindow(MAX_SUSPICION_LEVEL) of its views, N views each, and the leader schedule skips
    // it until a probe rotation (every PROBE_EVERY-th) gives it its view back: so the bound is in
    // views, not seconds. The search pages on from where it left off, once a second (a page of 100
    // costs 101 of the 200 read units a second a client has).
    const joinedAt = Number((await status(2)).committedHeight) + 1;
    const skippedOf2 = async () => (await (await fetch(`http://127.0.0.1:${memberPorts(basePort, 0).consensusMetrics}/metrics`)).text())
      .split('\n').filter((l) => /^btcfed_consensus_(views_skipped_total\{[^}]*leader="2"|skipped_leaders_validators)/.test(l)).join('\n');
    const viewBound = Number((await status(0)).view) + N * suspicionWindow(MAX_SUSPICION_LEVEL) + 2 * N * PROBE_EVERY;
    let from = joinedAt;
    let voted: number | undefined;
    let proposed: number | undefined;
    const outcome = await until('m2 votes and leads again after its catch-up', async () => {
      const page = (await call(clients[0]!.listBlocks.bind(clients[0]!), { fromHeight: from, limit: 100, headersOnly: true })).blocks;
      for (const b of page) {
        const h = Number(b.block?.header?.height);
        if (voted === undefined && b.qc && bitmapToSigners('qc', b.qc.signers).includes(2)) voted = h;
        if (proposed === undefined && b.block?.header?.proposer === 2) proposed = h;
      }
      if (voted !== undefined && proposed !== undefined) return { stuck: undefined };
      const last = page.at(-1)?.block?.header?.height;
      if (last !== undefined) from = Number(last) + 1;
      const view = Number((await status(0)).view);
      if (view <= viewBound) return undefined;
      return { stuck: `m0 is in view ${view}, past ${viewBound}, and since height ${joinedAt} m2 ${voted === undefined ? 'has signed no QC' : `signed the QC of ${voted}`} and ${proposed === undefined ? 'proposed no committed block' : `proposed ${proposed}`}; m0 says:\n${await skippedOf2()}\nm2: ${JSON.stringify(await status(2))}` };
    }, 600_000, 1000);
    if (outcome.stuck !== undefined) assert.fail(outcome.stuck);
    console.log(`retention: m0 on m2's views:\n${await skippedOf2()}`);
    console.log(`retention: m2 lacked ${lacks}, m0 keeps from ${oldest}; m2 joined from a checkpoint and caught up in ${(caughtUpMs / 1000).toFixed(1)} s; it signed the QC of height ${voted} and proposed committed height ${proposed}`);
  });
});
