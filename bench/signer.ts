// Benchmark (prints figures, asserts nothing): the signer's signatures per second and latency
// p50/p95, in-process against through gRPC with mutual TLS on 127.0.0.1, per SLH-DSA backend, in
// one run — every signature includes its QC check, the state fsync+rename+dir fsync and the
// journal fsync. Then the cost of the QC check inside the signer for N = 4, 7, 10, 21.
// Run: node_modules/.bin/node bench/signer.ts [--quick]

import { createSlhDsa, type BackendName } from '#libs/crypto/index.ts';
import { Phase, quorumSize, type SignRequest } from '#libs/hotstuff/index.ts';
import { createQcChecker } from '../services/signer/qc-check.ts';
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
