// Benchmark of libs/crypto: keygen, sign and verify for each SLH-DSA backend × parameter set,
// the noble/node ratio, and how far the node backend's async forms scale on the thread pool.
// Prints the machine baseline first so figures compare across machines.
// Run: node_modules/.bin/node bench/crypto.ts [--quick]
// Must never assert on timings: it prints figures, nothing more.

import { createHash, hash } from 'node:crypto';
import { PARAM_SETS, PHASES, blockHash, blockHeaderBytes, createSlhDsa, merkleLeafBytes, merkleRootOfLeafBytes, nativeSupport, sha256, voteSigningBytes } from '#libs/crypto/index.ts';
import type { BackendName, ParamSet, SlhDsa } from '#libs/crypto/index.ts';
import { ms, printMachine, stats, table, type Stats } from './support.ts';

const quick = process.argv.includes('--quick');

/** Times `op` `n` times after one untimed warm-up call (none in --quick); milliseconds per call. */
function timeSync(n: number, op: () => unknown): Stats {
  if (!quick) op();
  const samples: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    op();
    samples.push(performance.now() - t0);
  }
  return stats(samples);
}

const isSmall = (p: ParamSet): boolean => p.endsWith('s');

/** Iterations per operation: fewer where one call costs seconds (noble's "s" sets). */
function iterations(backend: BackendName, paramSet: ParamSet): { keygen: number; sign: number; verify: number } {
  if (quick) return { keygen: 1, sign: 1, verify: 3 };
  if (backend === 'node') return isSmall(paramSet) ? { keygen: 20, sign: 10, verify: 200 } : { keygen: 100, sign: 40, verify: 200 };
  return isSmall(paramSet) ? { keygen: 3, sign: 3, verify: 40 } : { keygen: 10, sign: 8, verify: 40 };
}

interface Row {
  readonly backend: BackendName;
  readonly paramSet: ParamSet;
  readonly keygen: Stats;
  readonly sign: Stats;
  readonly verify: Stats;
  readonly signatureBytes: number;
}

function measure(dsa: SlhDsa): Row {
  const it = iterations(dsa.backend, dsa.paramSet);
  const msg = createHash('sha256').update('bench message').digest();
  const keys = dsa.generateKeyPair();
  const keygen = timeSync(it.keygen, () => dsa.generateKeyPair());
  const sigs: Uint8Array[] = [];
  const sign = timeSync(it.sign, () => sigs.push(dsa.signSync(keys.secretKey, msg)));
  const sig = sigs[0] ?? dsa.signSync(keys.secretKey, msg);
  const verify = timeSync(it.verify, () => {
    if (!dsa.verifySync(keys.publicKey, msg, sig)) throw new Error('benchmark signature did not verify');
  });
  return { backend: dsa.backend, paramSet: dsa.paramSet, keygen, sign, verify, signatureBytes: sig.length };
}

/** Operations per second with `inFlight` async calls outstanding at once (node: the libuv pool). */
async function throughput(total: number, inFlight: number, op: () => Promise<unknown>): Promise<number> {
  let started = 0;
  const t0 = performance.now();
  const lane = async (): Promise<void> => {
    while (started < total) {
      started++;
      await op();
    }
  };
  await Promise.all(Array.from({ length: inFlight }, lane));
  return (total * 1000) / (performance.now() - t0);
}

const triple = (s: Stats): string => `${ms(s.mean)} / ${ms(s.p50)} / ${ms(s.p95)} (n=${s.n})`;

function printBaseline(): void {
  printMachine('libs/crypto benchmark' + (quick ? ' (--quick: smoke run, figures are noisy)' : ''),
    [`threadpool UV_THREADPOOL_SIZE=${process.env['UV_THREADPOOL_SIZE'] ?? '4 (default)'}`]);
}

async function main(): Promise<void> {
  printBaseline();
  const rows: Row[] = [];
  for (const paramSet of PARAM_SETS) {
    for (const backend of ['node', 'noble'] as const) {
      if (backend === 'node' && !nativeSupport(paramSet)) continue;
      rows.push(measure(createSlhDsa({ paramSet, backend })));
      process.stderr.write(`measured ${backend} ${paramSet}\n`);
    }
  }

  console.log('## keygen / sign / verify, milliseconds per call: mean / p50 / p95 (sync forms)');
  console.log(
    table(
      ['param set', 'backend', 'keygen ms', 'sign ms', 'verify ms', 'sig bytes'],
      rows.map((r) => [r.paramSet, r.backend, triple(r.keygen), triple(r.sign), triple(r.verify), String(r.signatureBytes)]),
    ),
  );

  console.log('\n## noble / node ratio of mean times (how much slower the pure-JS fallback is)');
  const ratioRows: string[][] = [];
  for (const paramSet of PARAM_SETS) {
    const node = rows.find((r) => r.paramSet === paramSet && r.backend === 'node');
    const noble = rows.find((r) => r.paramSet === paramSet && r.backend === 'noble');
    if (node === undefined || noble === undefined) continue;
    const ratio = (a: Stats, b: Stats): string => `${(a.mean / b.mean).toFixed(1)}×`;
    ratioRows.push([paramSet, 'noble/node', ratio(noble.keygen, node.keygen), ratio(noble.sign, node.sign), ratio(noble.verify, node.verify)]);
  }
  console.log(table(['param set', 'ratio', 'keygen', 'sign', 'verify'], ratioRows));

  console.log('\n## node backend, async forms on the libuv pool: operations per second');
  const parRows: string[][] = [];
  for (const paramSet of PARAM_SETS) {
    if (!nativeSupport(paramSet)) continue;
    const dsa = createSlhDsa({ paramSet, backend: 'node' });
    const keys = dsa.generateKeyPair();
    const msg = new TextEncoder().encode('parallel');
    const sig = dsa.signSync(keys.secretKey, msg);
    const verifies = quick ? 20 : 400;
    const signs = quick ? 2 : isSmall(paramSet) ? 8 : 40;
    const v1 = await throughput(verifies, 1, () => dsa.verify(keys.publicKey, msg, sig));
    const v64 = await throughput(verifies, 64, () => dsa.verify(keys.publicKey, msg, sig));
    const s1 = await throughput(signs, 1, () => dsa.sign(keys.secretKey, msg));
    const s8 = await throughput(signs, 8, () => dsa.sign(keys.secretKey, msg));
    parRows.push([paramSet, 'node', v1.toFixed(0), v64.toFixed(0), s1.toFixed(1), s8.toFixed(1)]);
  }
  console.log(table(['param set', 'backend', 'verify/s 1 in flight', 'verify/s 64 in flight', 'sign/s 1', 'sign/s 8'], parRows));
  canonical();
  hashing();
}

/** The canonical encodings every vote, QC check and block read computes, against the SHA-256 of the same bytes. */
function canonical(): void {
  const header = { chainId: 'bench-chain', epoch: 0, height: 12_345, view: 23_456, parentHash: new Uint8Array(32).fill(1), proposer: 2,
    timestampMs: 1_700_000_000_000, txRoot: new Uint8Array(32).fill(2), stateHash: new Uint8Array(32).fill(3) };
  const vote = { chainId: 'bench-chain', epoch: 0, phase: PHASES.PREPARE, view: 23_456, blockHash: new Uint8Array(32).fill(4) };
  const bytes = blockHeaderBytes(header);
  const n = quick ? 20_000 : 300_000;
  const perCall = (op: () => unknown): string => {
    for (let i = 0; i < 1000; i++) op();
    const t0 = performance.now();
    for (let i = 0; i < n; i++) op();
    return ((performance.now() - t0) * 1000 / n).toFixed(2);
  };
  console.log(`\n## canonical encodings, µs per call (${n} calls)`);
  console.log(table(['blockHash (header → hash)', 'voteSigningBytes', `baseline: SHA-256 of the header's ${bytes.length} bytes`],
    [[perCall(() => blockHash(header)), perCall(() => voteSigningBytes(vote)), perCall(() => sha256(bytes))]]));
}

/**
 * SHA-256 as every transaction pays it (its id, its Merkle leaf, its share of the inner nodes):
 * libs/crypto takes Node's one-shot digest as a latin1 string and copies its bytes; the baseline,
 * in the same run, is the digest as a Buffer copied into a Uint8Array (what it did before).
 */
function hashing(): void {
  const n = quick ? 50_000 : 500_000;
  const tx = new Uint8Array(250).fill(7);
  const node = new Uint8Array(65).fill(1);
  const perCall = (op: () => unknown, calls = n): number => {
    for (let i = 0; i < 1000; i++) op();
    const t0 = performance.now();
    for (let i = 0; i < calls; i++) op();
    return (performance.now() - t0) * 1000 / calls;
  };
  const asBuffer = (input: Uint8Array) => new Uint8Array(hash('sha256', input, 'buffer'));
  const ids = Array.from({ length: 5_000 }, (_, i) => sha256(new TextEncoder().encode(`tx-${i}`)));
  const rounds = quick ? 10 : 50;
  const rootNow = perCall(() => merkleRootOfLeafBytes(merkleLeafBytes(ids)), rounds) / ids.length;
  console.log(`\n## SHA-256 per call (µs; ${n} calls) and a batch's Merkle tree of 5,000 ids (µs per id)`);
  console.log(table(['input', 'libs/crypto sha256', 'baseline: digest as a Buffer, copied'], [
    ['a 250-byte transaction', perCall(() => sha256(tx)).toFixed(3), perCall(() => asBuffer(tx)).toFixed(3)],
    ['an inner node (65 bytes)', perCall(() => sha256(node)).toFixed(3), perCall(() => asBuffer(node)).toFixed(3)],
  ]));
  console.log(`batch digest with its leaves (batchTree): ${rootNow.toFixed(3)} µs per id`);
}

await main();
