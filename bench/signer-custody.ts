// Benchmark (prints figures, asserts nothing): the signer per key custody back-end, in one run —
// `file` (scrypt N=2^15 passphrase key, the production default) against `pkcs11` sealed on a
// SoftHSM2 token (AES-256-GCM unseal in the token, every state record HMAC'd by the token and its
// counter raised there). Start-up: opening the key alone (decrypt / unseal) and the whole signer
// (key, epochs, state load — through the token for pkcs11 — and journal). Signing: sequential
// PRE-COMMIT votes in-process, each durable (state + journal fsyncs) before it returns.
// Needs softhsm2 (scripts/ensure-tools.sh). Run: node_modules/.bin/node bench/signer-custody.ts [--quick]

import fs from 'node:fs/promises';
import path from 'node:path';
import { Phase, type SignRequest } from '#libs/hotstuff/index.ts';
import { loadSignerConf } from '../services/signer/open.ts';
import { openCustodyKey } from '../services/signer/custody.ts';
import { importKeyIntoToken } from '../services/signer/ceremony.ts';
import { sealKey } from '../services/signer/keyfile.ts';
import { makeSignerWorld, TEST_PASSPHRASE, type SignerWorld } from '../services/signer/testkit.ts';
import { makeSoftHsm, SOFTHSM_MODULE } from '../services/signer/softhsm-testkit.ts';
import { openInProcess } from '../test/support/signer.ts';
import { ms, printMachine, stats, table } from './support.ts';

const quick = process.argv.includes('--quick');
const SIGNS = quick ? 30 : 120;
const OPENS = quick ? 3 : 8;

printMachine('signer key custody: start-up and signing latency per back-end (file, pkcs11 sealed on SoftHSM2)');

const hsmDir = await fs.mkdtemp('/tmp/btcfed-bench-hsm-');
const hsm = await makeSoftHsm(hsmDir);
process.env.SOFTHSM2_CONF = hsm.confFile; // before the module is first loaded

async function voteRequests(w: SignerWorld, count: number): Promise<SignRequest[]> {
  const out: SignRequest[] = [];
  for (let v = 1; v <= count; v++) {
    const b = w.block(v, w.genesis);
    out.push({ kind: 'vote', epoch: 0, phase: Phase.PRE_COMMIT, view: v, blockHash: b.hash, prepareQC: await w.qc(Phase.PREPARE, v, b.hash) });
  }
  return out;
}

async function world(backend: 'file' | 'pkcs11', i: number): Promise<SignerWorld> {
  const w = await makeSignerWorld({ backend: 'node' });
  // The production KDF, not the tests' fast one: start-up is what this measures.
  await fs.writeFile(path.join(w.dir, 'signer.key'), await sealKey(w.slh.paramSet, w.keys[w.self]!.secretKey, TEST_PASSPHRASE), { mode: 0o600 });
  if (backend === 'pkcs11') {
    hsm.addToken(`bench-${i}`);
    await hsm.writePin(path.join(w.dir, 'pin'));
    await w.writeConf({ custody: { backend: 'pkcs11', module: SOFTHSM_MODULE, token_label: `bench-${i}`, pin_file: 'pin', key_label: 'bench' } });
    await importKeyIntoToken(await loadSignerConf(w.dir), w.dir);
  }
  return w;
}

const startRows: string[][] = [];
const signRows: string[][] = [];
let i = 0;
for (const backend of ['file', 'pkcs11'] as const) {
  const w = await world(backend, i++);
  const conf = await loadSignerConf(w.dir);
  const keyOpen: number[] = [];
  for (let k = 0; k < OPENS; k++) {
    const t = performance.now();
    const key = await openCustodyKey(conf, w.dir);
    keyOpen.push(performance.now() - t);
    key.secretKey.fill(0);
    key.close();
  }
  const first = await openInProcess(w, { init: true });
  await first.close();
  const signerOpen: number[] = [];
  for (let k = 0; k < OPENS; k++) {
    const t = performance.now();
    const s = await openInProcess(w);
    signerOpen.push(performance.now() - t);
    await s.close();
  }
  const ko = stats(keyOpen);
  const so = stats(signerOpen);
  startRows.push([backend === 'file' ? 'file (scrypt 2^15)' : 'pkcs11 sealed', String(OPENS), ms(ko.p50), ms(ko.max), ms(so.p50), ms(so.max)]);

  const requests = await voteRequests(w, SIGNS + 1);
  const s = await openInProcess(w);
  await s.sign(requests.shift()!);
  const samples: number[] = [];
  const t0 = performance.now();
  for (const r of requests) {
    const t = performance.now();
    await s.sign(r);
    samples.push(performance.now() - t);
  }
  const perSecond = requests.length / ((performance.now() - t0) / 1000);
  await s.close();
  const l = stats(samples);
  signRows.push([backend === 'file' ? 'file' : 'pkcs11 sealed', String(requests.length), perSecond.toFixed(1), ms(l.p50), ms(l.p95), ms(l.max)]);
  await w.cleanup();
}
await fs.rm(hsmDir, { recursive: true, force: true });

console.log('start-up: the key alone (decrypt or unseal), and the whole signer opened from its data dir; ms');
console.log(table(['custody', 'opens', 'key p50', 'key max', 'signer p50', 'signer max'], startRows));
console.log('');
console.log('signing: sequential PRE-COMMIT votes in-process (SLH-DSA-SHA2-128f, node backend), durable before each returns; ms');
console.log(table(['custody', 'signs', 'sig/s', 'p50', 'p95', 'max'], signRows));
