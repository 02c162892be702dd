// The public API's client limits over real gRPC: a real server from libs/rpc with mutual TLS,
// clients each with a real certificate from one CA (as `btcfed cert issue --client` makes them),
// the API as main.ts wires it (publicApiLimits, the metrics it counts in). It shows that
//   - streams beyond a client's limit are refused with RESOURCE_EXHAUSTED naming the limit, the
//     value and its key, the FedError code in the trailer, answered after the refusal delay, while
//     another client's stream opens;
//   - a stream whose client stops reading is cancelled after the stall time (RESOURCE_EXHAUSTED:
//     the HTTP/2 reset reaches a client that reads nothing) and its slot freed;
//   - read and submit rates are refused beyond a client's bucket while another client still reads;
//   - a client looping on expensive reads is refused by the CPU its reads took (measured, not
//     counted in units), while another client is still served and the first may still GetStatus;
//     what reads were charged is counted by method (btcfed_consensus_api_read_cpu_seconds_total);
//   - a StreamCommits follower replaying the chain is paced by its client's read budget;
//   - a client that asks and does not read its answers holds no more than its reads in flight;
//   - HTTP/2 advertises the concurrent-stream limit; every refusal is counted.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import http2 from 'node:http2';
import { randomBytes } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { pino } from 'pino';
import { blockHash } from '#libs/crypto/index.ts';
import { consensusLimits } from '#libs/config/schema.ts';
import { createPromMetrics } from '#libs/metrics/index.ts';
import { call, createClient, createServer, errorCodeOf, type RpcServer } from '#libs/rpc/index.ts';
import { generateCa, issueClientCertificate, issueServerCertificate } from '#libs/rpc/certs.ts';
import { genesisBlock, type Block, type QuorumCert } from '#libs/hotstuff/index.ts';
import { ConsensusServiceClient, ListBlocksRequest, type StreamCommitsResponse } from '#libs/gen/btcfed/v1/consensus.pb.ts';
import { CONSENSUS_SERVICE, consensusService, type ApiDeps } from './api.ts';
import { Block as BlockMsg, QuorumCert as QuorumCertMsg } from '#libs/gen/btcfed/v1/wire.pb.ts';
import { blockToWire, qcToWire } from '#libs/wire/index.ts';
import { publicApiLimits, type PublicApiLimits } from './api-guard.ts';
import { consensusMetrics } from './metrics.ts';

const LIMITS = {
  streams_per_client: 3, streams_total: 5, stream_stall: '1s', stream_buffer_bytes: 64 << 10, http2_max_concurrent_streams: 40,
  reads_in_flight_per_client: 4, reads_in_flight_total: 8, refusal_delay: '200ms',
  read_per_client: { rate: 5, burst: 150 }, read_total: { rate: 100, burst: 1000 }, // ListBlocks of 100: 101 units; a streamed block 1
  submit_per_client: { rate: 1, burst: 10_000 }, submit_total: { rate: 1000, burst: 50_000 },
};
/** A 128f QC is three 17,088-byte signatures: each block served is ~51 KiB, freshly read as from LMDB. */
const SIG = 17_088;
const TOP = 10_000;

const genesis = genesisBlock('limits-test', blockHash);
const blockAt = (height: number): Block => ({ ...genesis, header: { ...genesis.header, height }, txs: [] });
const sigs = [randomBytes(SIG), randomBytes(SIG), randomBytes(SIG)];
const qc = (): QuorumCert => ({ phase: 3, view: 7, blockHash: genesis.hash, signers: [0, 1, 2], signatures: sigs.map((s) => new Uint8Array(s)) });

let dir: string;
let server: RpcServer;
let address: string;
let limits: PublicApiLimits;
let metrics: ReturnType<typeof createPromMetrics>;
const certs: Record<string, { certFile: string; keyFile: string }> = {};
let caFile: string;

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'btcfed-limits-'));
  const write = (name: string, pem: string) => { const f = path.join(dir, name); fs.writeFileSync(f, pem, { mode: 0o600 }); return f; };
  const ca = await generateCa({ commonName: 'm0 CA' });
  caFile = write('ca.pem', ca.cert);
  const srv = await issueServerCertificate(ca, { commonName: 'm0-consensus' });
  for (const app of ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i']) {
    const c = await issueClientCertificate(ca, { commonName: `m0-client-${app}` });
    certs[app] = { certFile: write(`${app}.pem`, c.cert), keyFile: write(`${app}-key.pem`, c.key) };
  }
  metrics = createPromMetrics({ prefix: 'btcfed_', processMetrics: false });
  const m = consensusMetrics(metrics);
  const log = pino({ level: process.env.TEST_LOG ?? 'silent' });
  limits = publicApiLimits(consensusLimits.parse(LIMITS), { log, refused: m.api.refused, readCpu: m.api.readCpu });
  const store = {
    committedHeight: () => TOP,
    blockAtHeight: (h: number) => (h >= 1 && h <= TOP ? blockAt(h) : undefined),
    qcFor: () => qc(),
    // As the block store keeps them: GetBlock and ListBlocks answer these bytes.
    storedAtHeight: (h: number) => (h >= 1 && h <= TOP
      ? { hash: genesis.hash, block: BlockMsg.encode(blockToWire(blockAt(h))).finish(), qc: QuorumCertMsg.encode(qcToWire(qc())).finish() } : undefined),
    txLocation: () => undefined,
    hashAtHeight: () => genesis.hash,
    isPruned: () => false,
  };
  const pool = { offer: () => ({ status: 'added', hash: randomBytes(32) }), has: () => false, size: 0, handOff: () => undefined };
  const api = consensusService({
    member: 'm0', chainId: 'limits-test', self: 0, validators: [], log, store, pool, evidence: {},
    node: { genesis, failure: undefined, status: () => ({ view: 1, phase: 'prepare', leader: 0, lockedQcView: 0, highQcView: 0, paused: false, halted: false, observer: false, sourceHeight: 0, behind: 0, epoch: 0 }) },
    nextCommit: (signal: AbortSignal) => new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true })),
    guard: limits.guard, flow: limits.flow,
  } as unknown as ApiDeps);
  server = createServer({ security: { mode: 'mtls', certFile: write('server.pem', srv.cert), keyFile: write('server-key.pem', srv.key), caFile }, log,
    grpcOptions: { 'grpc.max_send_message_length': 64 << 20, ...limits.grpcOptions } });
  server.addService(CONSENSUS_SERVICE, api);
  address = `127.0.0.1:${await server.bind('127.0.0.1:0')}`;
});

after(async () => {
  await server?.shutdown({ graceMs: 100 });
  fs.rmSync(dir, { recursive: true, force: true });
});

const client = (app: string) => createClient(ConsensusServiceClient, address, {
  security: { mode: 'mtls', caFile, ...certs[app]! }, grpcOptions: { 'grpc.max_receive_message_length': 64 << 20 },
});

/**
 * A StreamCommits stream from height 1. `read` false: paused — grpc-js then fills its 16-message
 * buffer and stops taking data from HTTP/2, so the server's writes stay untaken. (A stream never
 * read at all is no stall: grpc-js takes everything into a client-side queue until the first read.)
 */
function open(c: ConsensusServiceClient, read: boolean) {
  const s = c.streamCommits({ fromHeight: 1, headersOnly: false });
  const seen = { blocks: 0, error: undefined as grpc.ServiceError | undefined };
  const ended = new Promise<grpc.ServiceError>((resolve) => s.on('error', (e: grpc.ServiceError) => { seen.error = e; resolve(e); }));
  if (read) s.on('data', (_r: StreamCommitsResponse) => { seen.blocks++; });
  else { s.pause(); s.read(0); }
  return { s, seen, ended };
}

const until = async (what: string, ok: () => boolean, ms = 10_000) => {
  const t0 = Date.now();
  while (!ok()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
};

const readCpuSeconds = async (method: string): Promise<number> => {
  const line = (await metrics.text()).split('\n').find((l) => l.startsWith('btcfed_consensus_api_read_cpu_seconds_total{') && l.includes(`method="${method}"`));
  return line ? Number(line.split(' ').at(-1)) : Number.NaN;
};

const refusedCount = async (method: string, limit: string): Promise<number> => {
  const line = (await metrics.text()).split('\n').find((l) => l.startsWith('btcfed_consensus_api_refused_total{') && l.includes(`method="${method}"`) && l.includes(`limit="${limit}"`));
  return line ? Number(line.split(' ').at(-1)) : 0;
};

test('streams beyond a client\'s limit are refused naming the limit; another client\'s stream still opens', { timeout: 30_000 }, async () => {
  const a = client('a');
  const b = client('b');
  const mine = [open(a, true), open(a, true), open(a, true)];
  try {
    await until('client a\'s three streams to deliver blocks', () => mine.every((x) => x.seen.blocks > 0));
    const t0 = Date.now();
    const fourth = open(a, true);
    const err = await fourth.ended;
    assert.ok(Date.now() - t0 >= 180, `the refusal was answered after ${Date.now() - t0} ms: not held for refusal_delay`);
    assert.equal(err.code, grpc.status.RESOURCE_EXHAUSTED);
    assert.match(err.details, /^StreamCommits: at most 3 open streams per client \(services\.consensus\.limits\.streams_per_client\)$/);
    assert.equal(errorCodeOf(err), 'API_STREAM_LIMIT');
    const theirs = open(b, true);
    await until('client b\'s stream to deliver blocks', () => theirs.seen.blocks > 0);
    assert.equal(limits.guard.limits.streams, 4);
    assert.equal(await refusedCount('StreamCommits', 'streams_per_client'), 1);
    theirs.s.cancel();
  } finally {
    for (const x of mine) x.s.cancel();
    a.close();
    b.close();
  }
  await until('the cancelled streams\' slots to be released', () => limits.guard.limits.streams === 0);
});

test('a stream whose client stops reading is cancelled after the stall time (RESOURCE_EXHAUSTED) and its slot is freed', { timeout: 30_000 }, async () => {
  const c = client('c');
  try {
    const t0 = Date.now();
    const stalled = [open(c, false), open(c, false), open(c, false)];
    await until('the three streams to open', () => limits.guard.limits.streams === 3);
    const errors = await Promise.all(stalled.map((x) => x.ended));
    const ms = Date.now() - t0;
    for (const err of errors) assert.equal(err.code, grpc.status.RESOURCE_EXHAUSTED, `a stalled stream ended ${grpc.status[err.code]}: ${err.details}`);
    assert.ok(ms >= 900 && ms < 8000, `cancelled after ${ms} ms (stall time 1 s)`);
    await until('the stalled streams\' slots to be released', () => limits.guard.limits.streams === 0);
    assert.equal(await refusedCount('StreamCommits', 'stream_stall'), 3);
    // Its slots are free again: the same client opens as many streams as before, and they flow.
    const again = [open(c, true), open(c, true), open(c, true)];
    await until('new streams of the same client to deliver blocks', () => again.every((x) => x.seen.blocks > 3));
    for (const x of again) x.s.cancel();
  } finally {
    c.close();
  }
  await until('slots released', () => limits.guard.limits.streams === 0);
});

test('read and submit rates: beyond a client\'s bucket RESOURCE_EXHAUSTED naming the limit, another client still served', { timeout: 30_000 }, async () => {
  const d = client('d');
  // A client no other test used: the first test's stream of client b spends b's read budget.
  const b = client('g');
  try {
    const page = await call(d.listBlocks.bind(d), { fromHeight: 1, limit: 100, headersOnly: true });
    assert.equal(page.blocks.length, 100, 'a page of 100 (101 units) fits the burst of 150');
    const t0 = Date.now();
    const err = await call(d.listBlocks.bind(d), { fromHeight: 101, limit: 100, headersOnly: true }).then(() => undefined, (e: grpc.ServiceError) => e);
    assert.ok(Date.now() - t0 >= 180, `the refusal was answered after ${Date.now() - t0} ms: not held for refusal_delay`);
    assert.equal(err?.code, grpc.status.RESOURCE_EXHAUSTED);
    assert.match(err!.details, /^ListBlocks: at most 5 read units a second per client, in bursts of up to 150 \(services\.consensus\.limits\.read_per_client\); this call costs 101/);
    assert.equal(errorCodeOf(err), 'API_RATE_LIMIT');
    // Another client's reads are its own budget.
    assert.equal((await call(b.getStatus.bind(b), {})).member, 'm0');
    assert.equal((await call(b.listBlocks.bind(b), { fromHeight: 1, limit: 100, headersOnly: true })).blocks.length, 100);
    // Submissions: a batch of 10,000 spends d's burst, the next transaction is refused.
    const txs = Array.from({ length: 10_000 }, (_, k) => new TextEncoder().encode(`tx-${k}`));
    assert.equal((await call(d.submitTransactions.bind(d), { txs })).accepted, 10_000);
    const refused = await call(d.submitTransaction.bind(d), { tx: new Uint8Array([1]) }).then(() => undefined, (e: grpc.ServiceError) => e);
    assert.equal(refused?.code, grpc.status.RESOURCE_EXHAUSTED);
    assert.match(refused!.details, /^SubmitTransaction: at most 1 transactions a second per client, in bursts of up to 10000 \(services\.consensus\.limits\.submit_per_client\)/);
    assert.equal((await call(b.submitTransaction.bind(b), { tx: new Uint8Array([2]) })).duplicate, false, 'b submits still');
    assert.equal(await refusedCount('ListBlocks', 'read_per_client'), 1);
    assert.equal(await refusedCount('SubmitTransaction', 'submit_per_client'), 1);
  } finally {
    d.close();
    b.close();
  }
});

test('a follower replaying the chain goes at its client\'s read rate, not as fast as the member can read', { timeout: 30_000 }, async () => {
  const e = client('e');
  try {
    const follower = open(e, true);
    await new Promise((r) => setTimeout(r, 2000));
    // A block is a unit: 150 blocks of burst and 5 a second, ~160 in 2 s of the 10,000 there are (unpaced: thousands).
    assert.ok(follower.seen.blocks >= 150 && follower.seen.blocks <= 175, `${follower.seen.blocks} blocks in 2 s`);
    const err = await call(e.getBlock.bind(e), { by: { $case: 'height', value: 1 } }).then(() => undefined, (x: grpc.ServiceError) => x);
    assert.equal(err?.code, grpc.status.RESOURCE_EXHAUSTED, 'the stream spent the client\'s read budget');
    follower.s.cancel();
  } finally {
    e.close();
  }
});

/** An HTTP/2 session of client `app` speaking gRPC by hand, so that it can leave answers unread. */
function rawSession(app: string): http2.ClientHttp2Session {
  return http2.connect(`https://${address}`, {
    ca: fs.readFileSync(caFile), cert: fs.readFileSync(certs[app]!.certFile), key: fs.readFileSync(certs[app]!.keyFile), servername: 'localhost',
  });
}

/** A ListBlocks call of 20 blocks (~1 MB of answer, far beyond the client's 64 KiB window) whose answer is never read. */
function unreadListBlocks(session: http2.ClientHttp2Session): http2.ClientHttp2Stream {
  const body = ListBlocksRequest.encode({ fromHeight: 1, limit: 20, headersOnly: false }).finish();
  const frame = Buffer.alloc(5 + body.length);
  frame.writeUInt32BE(body.length, 1);
  Buffer.from(body).copy(frame, 5);
  const req = session.request({ ':method': 'POST', ':path': '/btcfed.v1.ConsensusService/ListBlocks', 'content-type': 'application/grpc', te: 'trailers' });
  req.end(frame);
  req.pause();
  req.on('error', () => undefined);
  return req;
}

test('answers a client leaves unread hold its reads in flight: beyond them RESOURCE_EXHAUSTED, until it reads or goes', { timeout: 30_000 }, async () => {
  const session = rawSession('f');
  session.on('error', () => undefined);
  const f = client('f');
  try {
    for (let k = 0; k < 4; k++) unreadListBlocks(session);
    await until('four unread answers to hold the client\'s reads in flight', () => limits.guard.limits.reads === 4);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(limits.guard.limits.reads, 4, 'the slots stay held while the answers are not taken');
    const err = await call(f.getStatus.bind(f), {}).then(() => undefined, (e: grpc.ServiceError) => e);
    assert.equal(err?.code, grpc.status.RESOURCE_EXHAUSTED);
    assert.equal(err!.details, 'GetStatus: at most 4 read calls in flight per client (services.consensus.limits.reads_in_flight_per_client)');
    assert.equal(await refusedCount('GetStatus', 'reads_in_flight_per_client'), 1);
    const other = client('b');
    assert.equal((await call(other.getStatus.bind(other), {})).member, 'm0', 'another client still reads');
    other.close();
    session.destroy();
    await until('the slots to be released once the client went', () => limits.guard.limits.reads === 0);
    assert.equal((await call(f.getStatus.bind(f), {})).member, 'm0');
  } finally {
    session.destroy();
    f.close();
  }
});

test('the public listener advertises its HTTP/2 concurrent-stream limit', { timeout: 15_000 }, async () => {
  const session = rawSession('a');
  try {
    const settings = await new Promise<http2.Settings>((resolve, reject) => { session.once('remoteSettings', resolve); session.once('error', reject); });
    assert.equal(settings.maxConcurrentStreams, 40);
  } finally {
    session.close();
  }
});

test('read CPU: a client looping on pages of full blocks is refused by what its reads took, another client still served', { timeout: 60_000 }, async () => {
  // Read units that never bind: only the measured CPU can refuse. A reload, as conf.yaml's would.
  limits.reload(consensusLimits.parse({ ...LIMITS, read_per_client: { rate: 1e6, burst: 1e6 }, read_total: { rate: 1e6, burst: 1e6 },
    read_cpu_per_client: { rate: 5, burst: 20 }, read_cpu_total: { rate: 1000, burst: 100_000 } }));
  const h = client('h');
  const i = client('i');
  const before = { list: await readCpuSeconds('ListBlocks'), status: await readCpuSeconds('GetStatus'), epochs: await readCpuSeconds('GetEpochs') };
  try {
    let served = 0;
    let err: grpc.ServiceError | undefined;
    // A page of 100 blocks of ~51 KiB each (~5 MB): milliseconds each to read and copy; 20 ms of burst lasts a few pages.
    while (!err && served < 200) {
      err = await call(h.listBlocks.bind(h), { fromHeight: 1 + served, limit: 100, headersOnly: false }, { deadlineMs: 10_000 })
        .then((r) => { assert.equal(r.blocks.length, 100); served++; return undefined; }, (e: grpc.ServiceError) => e);
    }
    assert.ok(err, `${served} pages served, none refused`);
    assert.ok(served >= 1, 'the first page is within the burst');
    assert.equal(err.code, grpc.status.RESOURCE_EXHAUSTED, err.details);
    assert.match(err.details, /^ListBlocks: reads may take at most 5 ms of CPU a second per client, in bursts of up to 20 ms \(services\.consensus\.limits\.read_cpu_per_client\); spent, try again in \d+\.\d s$/);
    assert.equal(errorCodeOf(err), 'API_RATE_LIMIT');
    assert.equal(await refusedCount('ListBlocks', 'read_cpu_per_client'), 1);
    // What the pages were charged: more than the burst of 20 ms (the last page overdrew it), counted under ListBlocks.
    const listed = await readCpuSeconds('ListBlocks') - before.list;
    assert.ok(listed > 0.02, `ListBlocks counted ${listed} s of read CPU for ${served} pages`);
    // Its own budget spent, not another's: client i reads pages, and h may still ask where the chain is.
    assert.equal((await call(i.listBlocks.bind(i), { fromHeight: 1, limit: 100, headersOnly: false })).blocks.length, 100);
    assert.equal((await call(h.getStatus.bind(h), {})).member, 'm0');
    assert.ok(await readCpuSeconds('GetStatus') > before.status, 'GetStatus counted under its own method');
    assert.equal(await readCpuSeconds('GetEpochs'), before.epochs, 'a method nobody called counted nothing');
    const again = await call(h.getBlock.bind(h), { by: { $case: 'height', value: 1 } }).then(() => undefined, (e: grpc.ServiceError) => e);
    assert.equal(again?.code, grpc.status.RESOURCE_EXHAUSTED, 'h is refused until its budget refills');
  } finally {
    h.close();
    i.close();
    limits.reload(consensusLimits.parse(LIMITS));
  }
});
