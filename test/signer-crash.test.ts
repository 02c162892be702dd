// kill -9 during a signing loop, many times. A real signer process serves a client that sends a
// mix of valid, repeated and conflicting requests from several workers; it is SIGKILLed at a
// random moment, restarted, and so on. Afterwards no (kind, view, phase) may hold two different
// messages — neither among every signature the client ever received, nor in the journal — except
// a NEW-VIEW signed again with a newer highQC (never an older one after a newer); no message may
// hold two signatures; and every signature received must be in the journal (fsync before reply).
// A kill in the middle of a journal append leaves a torn line: the loop then recovers the way an
// operator does (repair-journal) and counts it.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { sha256, toHex } from '#libs/crypto/index.ts';
import { Phase, type QuorumCert, type SignRequest } from '#libs/hotstuff/index.ts';
import { createRemoteSigner } from '../services/signer/client.ts';
import { readJournal, verifyJournal } from '../services/signer/journal.ts';
import { signingBytes, slotKey, slotOf } from '../services/signer/rules.ts';
import { makeSignerWorld, type SignerWorld } from '../services/signer/testkit.ts';
import { signerCli, startSignerProcess } from './support/signer.ts';

const ROUNDS = 24;
const WORKERS = 3;

/** A deterministic PRNG so a failing run can be replayed from its seed. */
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Received { slot: string; digest: string; signature: string }

function requestMaker(w: SignerWorld, rnd: () => number, highQCs: QuorumCert[]) {
  let frontier = 1;
  let made = 0;
  return (): SignRequest => {
    if (++made % 4 === 0) frontier++;
    const view = Math.max(1, frontier + Math.floor(rnd() * 5) - 2);
    const variant = Math.floor(rnd() * 2);
    switch (Math.floor(rnd() * 3)) {
      case 0: {
        const b = w.block(view, w.genesis, { salt: variant });
        return { kind: 'vote', epoch: 0, phase: Phase.PREPARE, view, blockHash: b.hash, header: b.header, justify: w.gqc };
      }
      case 1:
        return { kind: 'proposal', epoch: 0, view, block: w.block(view, w.genesis, { proposer: w.self, salt: variant }), justify: w.gqc };
      default:
        return { kind: 'new-view', epoch: 0, view, highQC: highQCs[variant]! };
    }
  };
}

test(`kill -9 during signing, ${ROUNDS} rounds: never two signatures for one slot`, { timeout: 300_000 }, async () => {
  const seed = Number(process.env.SIGNER_CRASH_SEED ?? Date.now() % 100_000);
  const rnd = prng(seed);
  const w = await makeSignerWorld();
  await w.writeConf({ tls: undefined });
  const highQCs = [w.gqc, await w.qc(Phase.PREPARE, 1, w.block(1, w.genesis).hash)];
  const next = requestMaker(w, rnd, highQCs);
  const received: Received[] = [];
  let refusedCount = 0;
  let repairs = 0;
  try {
    for (let round = 0; round < ROUNDS; round++) {
      const flags = ['--insecure', '--no-nats', ...(round === 0 ? ['--init'] : [])];
      const started = await startSignerProcess(w.dir, flags).catch(async (err: unknown) => {
        if (!/SIGNER_JOURNAL_TORN/.test(String(err))) throw err;
        const r = signerCli(['repair-journal', '--data-dir', w.dir]);
        assert.equal(r.status, 0, `repair-journal after a torn append: ${r.stderr}`);
        repairs++;
        return startSignerProcess(w.dir, flags);
      });
      const { svc, port } = started;
      const client = createRemoteSigner({ address: `127.0.0.1:${port}`, security: { mode: 'insecure' }, deadlineMs: 5_000 });
      let killed = false;
      const worker = async () => {
        while (!killed) {
          const req = next();
          try {
            const r = await client.sign(req);
            received.push({ slot: slotKey(slotOf(req)), digest: toHex(sha256(signingBytes(req, w.chainId))), signature: toHex(r.signature) });
            assert.equal(w.slh.verifySync(w.keys[w.self]!.publicKey, signingBytes(req, w.chainId), r.signature), true, 'a valid signature');
          } catch (err) {
            if ((err as { details?: { rule?: string } }).details?.rule) refusedCount++;
            else if (!killed) await sleep(5);
          }
        }
      };
      const workers = Array.from({ length: WORKERS }, worker);
      await sleep(20 + Math.floor(rnd() * 230));
      svc.proc.kill('SIGKILL');
      await svc.exited;
      killed = true;
      await Promise.all(workers);
      await client.close();
    }
  } finally {
    // Evidence first, then the verdicts.
    const bySlot = new Map<string, Set<string>>();
    const sigsByMessage = new Map<string, Set<string>>();
    for (const r of received) {
      (bySlot.get(r.slot) ?? bySlot.set(r.slot, new Set()).get(r.slot)!).add(r.digest);
      const m = `${r.slot} ${r.digest}`;
      (sigsByMessage.get(m) ?? sigsByMessage.set(m, new Set()).get(m)!).add(r.signature);
    }
    // A NEW-VIEW's highQC, by the block the journal records: genesis (view 0) or block 1 (view 1).
    const qcViewOfBlock = new Map(highQCs.map((q) => [toHex(q.blockHash), q.view]));
    const journalDigests = new Map<string, Set<string>>();
    const newViewOrder = new Map<string, number[]>();
    const journalSigs = new Set<string>();
    for await (const { entry } of readJournal(path.join(w.dir, 'journal.jsonl'))) {
      if (entry.type !== 'request' || (entry.decision !== 'signed' && entry.decision !== 'replayed')) continue;
      const key = `${String(entry.kind)}:${String(entry.view)}:${String(entry.phase)}`;
      (journalDigests.get(key) ?? journalDigests.set(key, new Set()).get(key)!).add(String(entry.digest));
      if (entry.kind === 'new-view' && entry.decision === 'signed') {
        (newViewOrder.get(key) ?? newViewOrder.set(key, []).get(key)!).push(qcViewOfBlock.get(String(entry.block))!);
      }
      journalSigs.add(String(entry.sig));
    }
    const verdict = await verifyJournal(path.join(w.dir, 'journal.jsonl'));
    await w.cleanup();

    const context = `seed ${seed} (SIGNER_CRASH_SEED), ${received.length} signatures received, ${refusedCount} refusals, ${repairs} torn journals repaired`;
    const single = (slot: string) => !slot.startsWith('new-view:');
    // That the rounds exercised signing at all; how much each signs before its kill depends on the
    // machine (23 in 24 rounds with three test files beside it, against the 24 this once asked).
    assert.ok(received.length >= ROUNDS / 2, `the loop signed something: ${context}`);
    assert.ok(refusedCount > 0, `conflicting requests were refused: ${context}`);
    for (const [slot, digests] of bySlot) if (single(slot)) assert.equal(digests.size, 1, `client got two messages signed for ${slot}: ${context}`);
    for (const [m, sigs] of sigsByMessage) assert.equal(sigs.size, 1, `client got two signatures for ${m}: ${context}`);
    for (const [slot, digests] of journalDigests) if (single(slot)) assert.equal(digests.size, 1, `journal shows two messages for ${slot}: ${context}`);
    for (const [slot, order] of newViewOrder) {
      assert.ok(order.every((v, i) => i === 0 || v > order[i - 1]!), `journal shows ${slot} signed again with an older highQC (${order.join(' → ')}): ${context}`);
    }
    for (const r of received) {
      const h = createHash('sha256').update(Buffer.from(r.signature, 'hex')).digest('hex');
      assert.ok(journalSigs.has(h), `a received signature for ${r.slot} is in the journal: ${context}`);
    }
    assert.ok(verdict.ok, `journal chain intact: ${JSON.stringify(verdict)}`);
    console.log(`# signer-crash: ${context}, ${bySlot.size} slots`);
  }
});
