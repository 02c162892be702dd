// Batch digests, and a proposal's parts: what a leader names and what a replica resolves them to.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { merkleRoot, toHex, txHash } from '#libs/crypto/index.ts';
import { batchDigest, batchTree, partsOf, rememberIds, resolveParts, txRootOf, type BatchRef, type HeldBatch } from './index.ts';

const tx = (s: string) => new TextEncoder().encode(s);
function batch(author: number, ...txs: string[]): HeldBatch & { ref: BatchRef } {
  const t = txs.map(tx);
  const ids = t.map(txHash);
  const bytes = t.reduce((a, x) => a + x.length, 0);
  return { txs: t, ids, bytes, ref: { digest: batchDigest(ids), author, count: t.length, bytes } };
}
const limits = { maxBlockTxs: 100, maxBlockBytes: 10_000 };

test('a batch digest is the Merkle root of its ids: it commits to every byte and the order', () => {
  const a = batch(0, 'x', 'y');
  assert.deepEqual(a.ref.digest, merkleRoot(a.ids));
  assert.notDeepEqual(batch(0, 'y', 'x').ref.digest, a.ref.digest, 'order');
  assert.notDeepEqual(batch(0, 'x', 'z').ref.digest, a.ref.digest, 'bytes');
});

test('a block made of whole batches names them; a partial run travels inline; resolving gives back the block', () => {
  const a = batch(1, 'a1', 'a2', 'a3');
  const b = batch(2, 'b1', 'b2');
  const loose = tx('loose');
  // The block: all of a, one of b's (the other was committed elsewhere), a loose transaction.
  const txs = [...a.txs, b.txs[0]!, loose];
  const ids = txs.map(txHash);
  const from = [a, a, a, b, undefined];
  const parts = partsOf(txs, ids, (i) => from[i]);
  assert.deepEqual(parts, [{ batch: a.ref }, { tx: b.txs[0] }, { tx: loose }]);
  const held = new Map([[toHex(a.ref.digest), a]]);
  const r = resolveParts(parts, (h) => held.get(h), limits);
  assert.ok(r.ok);
  assert.deepEqual(r.txs, txs);
  assert.deepEqual(r.ids.map(toHex), ids.map(toHex));
  // A run out of the batch's order is no whole batch.
  const swapped = [a.txs[1]!, a.txs[0]!, a.txs[2]!];
  assert.deepEqual(partsOf(swapped, swapped.map(txHash), () => a).map((p) => 'tx' in p), [true, true, true]);
});

test('resolving: a batch not held is missing; one of another size than named, or a block over its limits, is an error', () => {
  const a = batch(1, 'a1', 'a2');
  const held = new Map([[toHex(a.ref.digest), a]]);
  const lookup = (h: string) => held.get(h);
  const other = batch(3, 'c');
  const r = resolveParts([{ batch: a.ref }, { batch: other.ref }], lookup, limits);
  assert.ok(!r.ok && 'missing' in r);
  assert.deepEqual(r.missing, [other.ref]);
  const lie = resolveParts([{ batch: { ...a.ref, count: 3 } }], lookup, limits);
  assert.ok(!lie.ok && 'error' in lie && /holds 2 transactions of 4 bytes, not 3 of 4/.test(lie.error));
  const lieBytes = resolveParts([{ batch: { ...a.ref, bytes: 1 } }], lookup, limits);
  assert.ok(!lieBytes.ok && 'error' in lieBytes);
  const many = resolveParts([{ batch: a.ref }, { tx: tx('z') }], lookup, { maxBlockTxs: 2, maxBlockBytes: 100 });
  assert.ok(!many.ok && 'error' in many && /3 transactions; the limit is 2/.test(many.error));
  const big = resolveParts([{ batch: a.ref }, { tx: tx('z') }], lookup, { maxBlockTxs: 10, maxBlockBytes: 4 });
  assert.ok(!big.ok && 'error' in big && /5 bytes; the limit is 4/.test(big.error));
});

test('a batch keeps its leaves with its digest; a block of batches and inline transactions resolves with the leaves of its whole tree', () => {
  const withLeaves = (b: HeldBatch & { ref: BatchRef }) => ({ ...b, leaves: batchTree(b.ids).leaves });
  const a = withLeaves(batch(1, 'a1', 'a2', 'a3'));
  const b = withLeaves(batch(2, 'b1', 'b2', 'b3', 'b4', 'b5'));
  assert.deepEqual(batchTree(a.ids).digest, a.ref.digest, 'the same digest as batchDigest');
  const loose = tx('loose');
  const held = new Map([[toHex(a.ref.digest), a], [toHex(b.ref.digest), b]]);
  for (const parts of [[{ batch: a.ref }, { tx: loose }, { batch: b.ref }], [{ tx: loose }, { batch: b.ref }, { batch: a.ref }, { tx: tx('last') }], [{ batch: b.ref }]]) {
    const r = resolveParts(parts, (h) => held.get(h), limits);
    assert.ok(r.ok && r.leaves, 'leaves come with a block naming batches that have them');
    assert.equal(toHex(txRootOf({ txs: r.txs })), toHex(merkleRoot(r.ids)), 'no leaves remembered: computed from the ids');
    const again = { txs: [...r.txs] };
    rememberIds(again.txs, r.ids, r.leaves);
    assert.equal(toHex(txRootOf(again)), toHex(merkleRoot(r.ids)), 'from the leaves: the same root');
  }
  // Leaves that are not the ids' (never made so by batchTree) give another root: the root is theirs.
  const r = resolveParts([{ batch: a.ref }], (h) => held.get(h), limits);
  assert.ok(r.ok && r.leaves);
  const forged = { txs: [...r.txs] };
  rememberIds(forged.txs, r.ids, new Uint8Array(r.leaves.length));
  assert.notEqual(toHex(txRootOf(forged)), toHex(merkleRoot(r.ids)));
  // A batch held without leaves: the block resolves without them; inline only: without them.
  const bare = new Map([[toHex(a.ref.digest), batch(1, 'a1', 'a2', 'a3')]]);
  const r2 = resolveParts([{ batch: a.ref }], (h) => bare.get(h), limits);
  assert.ok(r2.ok && r2.leaves === undefined);
  const r3 = resolveParts([{ tx: loose }], () => undefined, limits);
  assert.ok(r3.ok && r3.leaves === undefined);
});
