// RetiredHandOff (retired.ts) on a real LMDB mempool journal: what a removed member acknowledged
// and has not seen committed is offered again at once and then every REOFFER_AGE_MS, leaves when a
// followed block carries it (and leaves the journal), and is given up GIVE_UP_MS after retirement.

import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { pino } from 'pino';
import { txHash } from '#libs/crypto/index.ts';
import type { Block } from '#libs/hotstuff/index.ts';
import { REOFFER_AGE_MS } from './batch-intake.ts';
import { Mempool } from './mempool.ts';
import { MempoolJournal } from './mempool-journal.ts';
import { GIVE_UP_MS, RetiredHandOff } from './retired.ts';

const log = pino({ level: 'silent' });
const limits = { maxTxs: 100, maxBytes: 100 * 1024 };
const enc = (s: string) => new TextEncoder().encode(s);
const carrying = (...txs: Uint8Array[]) => ({ txs } as unknown as Block);

async function journalWith(dir: string, txs: Uint8Array[]): Promise<void> {
  const j = new MempoolJournal({ path: dir, log, ...limits });
  await j.replay(new Mempool({ ...limits, maxTxBytes: 1024 }), () => false, 0);
  for (const tx of txs) await j.append(txHash(tx), tx);
  await j.close();
}

test('offered at once, again after REOFFER_AGE_MS, gone when committed (from the journal too); the rest given up after GIVE_UP_MS', async () => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'btcfed-retired-'));
  try {
    const [a, b, c, done] = ['a', 'b', 'c', 'done'].map(enc) as [Uint8Array, Uint8Array, Uint8Array, Uint8Array];
    await journalWith(dir, [a, b, c, done]);
    const sent: string[] = [];
    const t0 = 1_000_000;
    const r = await RetiredHandOff.open({ path: dir, log, ...limits, maxTxBytes: 1024, isCommitted: (h) => Buffer.from(h).equals(Buffer.from(txHash(done))),
      handOff: (tx) => sent.push(new TextDecoder().decode(tx)) }, t0);
    assert.equal(r.pending, 3, 'what the chain holds already is not offered');
    assert.equal(r.tick(t0), 3);
    assert.deepEqual(sent.sort(), ['a', 'b', 'c']);
    assert.equal(r.tick(t0 + 1000), 0, 'not again before REOFFER_AGE_MS');
    r.committed([carrying(a)]);
    assert.equal(r.pending, 2);
    assert.equal(r.tick(t0 + REOFFER_AGE_MS), 2, 'the others again');
    assert.equal(r.tick(t0 + GIVE_UP_MS), 0, 'given up');
    assert.equal(r.pending, 0);
    assert.equal(r.offered, 5);
    await r.close();
    // The journal forgot what was committed and what was given up: a second start offers nothing.
    const again = await RetiredHandOff.open({ path: dir, log, ...limits, maxTxBytes: 1024, isCommitted: () => false, handOff: () => assert.fail('nothing to offer') }, t0);
    assert.equal(again.pending, 0);
    await again.close();
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
});
