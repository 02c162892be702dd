// Benchmark (prints figures, asserts nothing): the signer's signatures per second and latency
// p50/p95, in-process against through gRPC with mutual TLS on 127.0.0.1, per SLH-DSA backend, in
// one run — every signature includes its QC check, the state fsync+rename+dir fsync and the
// journal fsync. Then the cost of the QC check inside the signer for N = 4, 7, 10, 21, and the CPU
// to write the safety state's text once per signature, against the earlier encoder (same run).
// Run: node_modules/.bin/node bench/signer.ts [--quick]

import { createSlhDsa, sha256Hex, type BackendName } from '#libs/crypto/index.ts';
import { Phase, quorumSize, type SignRequest } from '#libs/hotstuff/index.ts';
import { createQcChecker } from '../services/signer/qc-check.ts';
import { initialSafety, trimRecent, type SignerSafety } from '../services/signer/rules.ts';
import { encodeSafety } from '../services/signer/state-file.ts';
import { genesisHashOf } from '../services/signer/open.ts';
import { testValidatorSet } from '#libs/validators/test-kit.ts';
import type { Signer } from '../services/signer/signer.ts';
import { makeSignerWorld, type SignerWorld } from '../services/signer/testkit.ts';
import { openInProcess, serveOverGrpc } from '../test/support/signer.ts';
import { ms, printMachine, stats, table } from './support.ts';

const quick = process.argv.includes('--quick');
const SIGNS: Record<BackendName, number> = { node: quick ? 40 : 150, noble: quick ? 8 : 25 };

printMachine('signer: signatures through the voting rules, durable before the reply');

/** PRE-COMMIT votes on fresh views: each needs the prepareQC checked (cached after the first). */
async function voteRequests(w: SignerWorld, count: number): Promise<SignRequest[]> {
  const out: SignRequest[] = [];
  for (let v = 1; v <= count; v++) {
    const b = w.block(v, w.genesis);
    const qc = await w.qc(Phase.PREPARE, v, b.hash);
    out.push({ kind: 'vote', epoch: 0, phase: Phase.PRE_COMMIT, view: v, blockHash: b.hash, prepareQC: qc });
  }
  return out;
}

async function measure(signer: Signer, requests: SignRequest[]): Promise<{ perSecond: number; lat: ReturnType<typeof stats> }> {
  const samples: number[] = [];
  const t0 = performance.now();
  for (const r of requests) {
    const t = performance.now();
    await signer.sign(r);
    samples.push(performance.now() - t);
  }
  return { perSecond: requests.length / ((performance.now() - t0) / 1000), lat: stats(samples) };
}

const rows: string[][] = [];
for (const backend of ['node', 'noble'] as const) {
  const count = SIGNS[backend];
  for (const via of ['in-process', 'gRPC mTLS'] as const) {
    const w = await makeSignerWorld({ backend, tls: true });
    const requests = await voteRequests(w, count + 1);
    const warm = requests.shift()!;
    let result;
    if (via === 'in-process') {
      const s = await openInProcess(w, { init: true });
      await s.sign(warm);
      result = await measure(s, requests);
      await s.close();
    } else {
      const g = await serveOverGrpc(w, true);
      await g.client.sign(warm);
      result = await measure(g.client, requests);
      await g.client.close();
      await g.server.shutdown({ graceMs: 500 });
      await g.local.close();
    }
    await w.cleanup();
    rows.push([backend, via, String(count), result.perSecond.toFixed(1), ms(result.lat.p50), ms(result.lat.p95), ms(result.lat.max)]);
  }
}
console.log('sequential PRE-COMMIT votes, one at a time (the signer is a serial queue by design); ms');
console.log(table(['backend', 'path', 'signs', 'sig/s', 'p50', 'p95', 'max'], rows));
console.log('');

// The QC check: structure + quorum signatures verified in parallel on the libuv pool, no cache hit.
const qcRows: string[][] = [];
for (const n of [4, 7, 10, 21]) {
  for (const backend of ['node', 'noble'] as const) {
    const slh = createSlhDsa({ backend });
    const keys = Array.from({ length: n }, () => slh.generateKeyPair());
    const chainId = 'bench';
    const { voteSigningBytes } = await import('#libs/crypto/index.ts');
    const hash = new Uint8Array(32).fill(7);
    const message = voteSigningBytes({ chainId, epoch: 0, phase: Phase.PREPARE, view: 5, blockHash: hash });
    const q = quorumSize(n);
    const signers = Array.from({ length: q }, (_, i) => i);
    const fast = createSlhDsa({ backend: 'node' });
    const qc = { phase: Phase.PREPARE, view: 5, blockHash: hash, signers, signatures: await Promise.all(signers.map((i) => fast.sign(keys[i]!.secretKey, message))) };
    const reps = backend === 'node' ? (quick ? 10 : 30) : (quick ? 2 : 5);
    const samples: number[] = [];
    for (let i = 0; i < reps; i++) {
      const checker = createQcChecker({ chainId, validators: testValidatorSet(keys.length, { publicKeys: keys.map((k) => k.publicKey) }), rootHash: genesisHashOf(chainId), slh });
      const t = performance.now();
      const why = await checker.check(qc);
      samples.push(performance.now() - t);
      if (why) throw new Error(`bench QC invalid: ${why}`);
    }
    const s = stats(samples);
    qcRows.push([String(n), backend, String(q), ms(s.p50), ms(s.p95), ms(s.p50 / q)]);
  }
}
console.log('QC check inside the signer (quorum signatures, parallel async verify, cold cache); ms');
console.log(table(['N', 'backend', 'quorum', 'p50', 'p95', 'p50/sig'], qcRows));
console.log('');

// The state file's text, made before every signature leaves: a state keeping what a live signer
// keeps (RECENT_LIMIT: a proposal, three votes, a NEW-VIEW, each with a 17,088-byte signature), one
// new vote signature each round. The baseline is the encoder before 2026-11-29 (every kept
// signature in base64 again, the whole envelope serialised a second time, indented), kept here.
function earlierEncode(st: SignerSafety): string {
  const state = { ...st, recent: st.recent.map((r) => ({ ...r, signature: Buffer.from(r.signature).toString('base64') })) };
  const sha256 = sha256Hex(JSON.stringify(state));
  return `${JSON.stringify({ format: 'btcfed-signer-state', version: 2, sha256, state }, null, 1)}\n`;
}
const sigOf = (seed: number) => new Uint8Array(17_088).map((_, i) => (i * 31 + seed) & 0xff);
const slot = (kind: 'proposal' | 'vote' | 'new-view', view: number, phase: 0 | 1 | 2 | 3) =>
  ({ kind, view, phase, digest: 'cd'.repeat(32), blockHash: 'ef'.repeat(32), signature: sigOf(view * 4 + phase) });
let live: SignerSafety = { ...initialSafety('bench', 'ab'.repeat(32), new Uint8Array(32)), recent: [slot('proposal', 1, 0), slot('vote', 1, 1), slot('vote', 1, 2), slot('vote', 1, 3), slot('new-view', 1, 0)] };
const encoders: Array<[string, (st: SignerSafety) => string]> = [['earlier (baseline)', earlierEncode], ['now', (st) => encodeSafety(st)]];
const rounds = quick ? 200 : 1000;
const cpu: Record<string, number[]> = Object.fromEntries(encoders.map(([name]) => [name, []]));
let bytes = 0;
for (let i = 0; i < rounds; i++) {
  live = { ...live, recent: trimRecent([...live.recent, slot('vote', 2 + i, 1)]) };
  for (const [name, encode] of i % 2 === 0 ? encoders : [...encoders].reverse()) {
    const t = process.cpuUsage();
    const text = encode(live);
    const d = process.cpuUsage(t);
    cpu[name]!.push((d.user + d.system) / 1000);
    if (name === 'now') bytes = text.length;
  }
}
console.log(`the safety state's text, once per signature (CPU ms, ${rounds} rounds alternating; ${bytes.toLocaleString('en')} bytes)`);
console.log(table(['encoder', 'p50', 'p95', 'mean'], encoders.map(([name]) => {
  const s = stats(cpu[name]!);
  return [name, ms(s.p50), ms(s.p95), ms(cpu[name]!.reduce((a, b) => a + b, 0) / rounds)];
})));
