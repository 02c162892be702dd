// Batches through four real drivers (driver-harness.ts): proposals name the batches every member
// was sent instead of carrying them; a replica that missed a batch fetches it; a batch nobody
// serves costs the view, never a strike.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { blockHash, toHex, txHash } from '#libs/crypto/index.ts';
import { decodeFrame, peekFrame } from '#libs/wire/index.ts';
import { CHAIN, N, dsa, federation, stopAll, until, warnings, type Member } from './driver-harness.ts';

const limits = { chainId: CHAIN, validatorCount: N, signatureBytes: dsa.signatureBytes, maxBlockTxs: 1000, maxBlockBytes: 1 << 20, maxFrameBytes: 8 << 20, maxSyncBlocks: 64, hashBlock: blockHash };
const kind = (frame: Uint8Array) => peekFrame(frame)?.kind;

/**
 * Once the members commit, submits `count` transactions of 200 bytes at members `at` in turn, in
 * rounds of `round` 20 ms apart (as clients would: each round's batch goes out before the next
 * leader builds its block); returns their hex ids.
 */
async function submit(members: Member[], at: readonly number[], count: number, tag: string, round = 100): Promise<Set<string>> {
  await until('the first commit', () => members.every((m) => m.commits.length > 0), 30_000);
  const ids = new Set<string>();
  for (let k = 0; k < count; k++) {
    const m = members[at[k % at.length]!]!;
    const tx = new TextEncoder().encode(`${tag}-${k}-`.padEnd(200, '.'));
    const r = m.pool.add(tx, Date.now(), m.driver.isCommitted);
    m.inbound.gossip(tx, r.hash);
    ids.add(toHex(txHash(tx)));
    if (k % round === round - 1) await new Promise((r) => setTimeout(r, 20));
  }
  return ids;
}

const committed = (m: Member) => m.commits.flatMap((b) => b.txs.map((t) => toHex(txHash(t))));

test('proposals name the batches every member holds instead of carrying them; every transaction is committed once', async () => {
  /** Per proposed block (once, whatever the recipients): its frame's bytes, and the transactions and bytes it named or carried inline. */
  const proposals = new Map<string, { frame: number; named: number; namedBytes: number; inline: number }>();
  const { members } = await federation(undefined, undefined, (_from, _to, frame) => {
    if (kind(frame) !== 'proposal') return false;
    const f = decodeFrame(frame, limits);
    if (f.type !== 'consensus' || f.message.type !== 'proposal') return false;
    const p = { frame: frame.length, named: 0, namedBytes: 0, inline: f.message.block.txs.length };
    for (const part of f.parts ?? []) {
      if ('batch' in part) { p.named += part.batch.count; p.namedBytes += part.batch.bytes; } else p.inline++;
    }
    proposals.set(toHex(f.message.block.hash), p);
    return false;
  });
  members.forEach((m) => m.driver.start());
  try {
    const want = await submit(members, [0, 1, 2, 3], 2000, 'named');
    await until('all transactions committed everywhere', () => members.every((m) => new Set(committed(m)).size === want.size), 60_000);
    for (const m of members) {
      const c = committed(m);
      assert.equal(c.length, new Set(c).size, 'each transaction once');
      assert.deepEqual(new Set(c), want);
      assert.equal(m.pool.size, 0, 'every pool drained (each member was sent every batch)');
    }
    const all = [...proposals.values()];
    const named = all.reduce((a, p) => a + p.named, 0);
    // Only what a leader took in the few milliseconds before its own batch went out travels inline.
    assert.ok(named >= want.size / 2, `proposals named ${named} of ${want.size} transactions (${JSON.stringify(all)})`);
    for (const p of all.filter((x) => x.named > 0)) {
      // A proposal is its header and justify QC (three signatures, ~68 KB) and 52 bytes or so a
      // batch, however many bytes it names (a small block may name fewer bytes than its QC holds).
      assert.ok(p.frame < 80_000, `a proposal naming ${p.named} transactions (${p.namedBytes} bytes) is ${p.frame} bytes`);
      if (p.namedBytes >= 100_000) assert.ok(p.frame < p.namedBytes, `a proposal naming ${p.namedBytes} bytes is ${p.frame} bytes`);
    }
  } finally {
    await stopAll(members);
  }
});

test('a replica that missed a batch asks for it and commits with the others; nobody is struck for it', async () => {
  // m2 never gets m1's batches: every block with m1's transactions names a batch m2 lacks.
  const { members } = await federation(undefined, undefined, (from, to, frame) => from === 1 && to === 2 && kind(frame) === 'tx-batch');
  members.forEach((m) => m.driver.start());
  try {
    const want = await submit(members, [1], 600, 'missed');
    await until('m2 committed m1\'s transactions', () => new Set(committed(members[2]!)).size === want.size, 60_000);
    const counts = members[2]!.inbound.batchCounts;
    assert.ok(counts.asked > 0 && counts.received > 0, `m2 asked for and received the batches it lacked (${JSON.stringify(counts)})`);
    assert.equal(counts.unavailable, 0, 'none was given up');
    for (const m of members) for (let p = 0; p < N; p++) assert.ok(!m.driver.penalties.muted(p), `member ${p} muted`);
    assert.ok(members.filter((m) => m !== members[2]).some((m) => m.inbound.batchCounts.served > 0), 'the proposer or the author served them');
  } finally {
    await stopAll(members);
  }
});

test('a batch nobody serves costs the views whose proposals name it, not a strike; the member catches up by sync', async () => {
  // m2 gets none of m1's batches and no answer to its asks: it cannot vote on blocks naming them.
  const { members } = await federation(undefined, undefined, (from, to, frame) =>
    to === 2 && ((from === 1 && kind(frame) === 'tx-batch') || kind(frame) === 'batch-response'));
  members.forEach((m) => m.driver.start());
  try {
    const want = await submit(members, [1], 300, 'unserved');
    // m0, m1 and m3 are a quorum: they commit; m2 gives those proposals up, then syncs the blocks.
    await until('m0 committed them', () => new Set(committed(members[0]!)).size === want.size, 60_000);
    await until('m2 gave up a proposal without its batches', () => members[2]!.inbound.batchCounts.unavailable > 0, 30_000);
    assert.ok(warnings.some((w) => w['msg'] === 'proposal dropped: its batches did not arrive'), 'the operator is told');
    await until('m2 caught up by sync', () => new Set(committed(members[2]!)).size === want.size, 60_000);
    for (let p = 0; p < N; p++) assert.ok(!members[2]!.driver.penalties.muted(p), `m2 muted member ${p}`);
    assert.deepEqual(members[2]!.refused.filter(([, why]) => why === 'refused:bad_parts'), [], 'no proposal was refused as bad');
  } finally {
    await stopAll(members);
  }
});
