// The batch store and batch fetching (batches.ts), with a hand-turned clock and a recording
// transport: bounds per holder, what is served and to whom, what a wrong answer costs its server,
// and how a proposal's parts wait, ask and give up.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { toHex, txHash } from '#libs/crypto/index.ts';
import { batchDigest, type BatchRef, type BlockPart } from '#libs/blocks/index.ts';
import { blockHash } from '#libs/crypto/index.ts';
import { decodeFrame, type Frame } from '#libs/wire/index.ts';
import { BatchFetch, BatchStore, FETCH_DEADLINE_MS, FETCH_GRACE_MS, SERVED_MEMORY_MS, type Resolution } from './batches.ts';
import { manualClock } from './manual-clock.ts';
import { OUTSIDE_BASE } from './ports.ts';

const CHAIN = 'batches-test';
const limits = { maxBlockTxs: 1000, maxBlockBytes: 100_000, maxFrameBytes: 1 << 20 };
const frameLimits = { chainId: CHAIN, validatorCount: 4, signatureBytes: 8, ...limits, maxSyncBlocks: 4, hashBlock: blockHash };
const txs = (tag: string, n: number, size = 100) => Array.from({ length: n }, (_, i) => new TextEncoder().encode(`${tag}-${i}`.padEnd(size, '.')));
const ref = (author: number, t: Uint8Array[]): BatchRef => ({ digest: batchDigest(t.map(txHash)), author, count: t.length, bytes: t.reduce((a, x) => a + x.length, 0) });

function fixture(self = 0, maxBytesPerHolder = 10_000) {
  const clock = manualClock();
  const store = new BatchStore({ maxBytesPerHolder, maxBatchesPerHolder: 8 });
  const sent: { to: number; frame: Frame }[] = [];
  const refused: { from: number; reason: string }[] = [];
  const useless: { from: number; reason: string }[] = [];
  const fetch = new BatchFetch({ store, chainId: CHAIN, self: () => self, clock, limits,
    transport: { send: (to, bytes) => { sent.push({ to, frame: decodeFrame(bytes, frameLimits) }); } },
    refuse: (from, reason) => { refused.push({ from, reason }); },
    useless: (from, reason) => { useless.push({ from, reason }); } });
  return { clock, store, fetch, sent, refused, useless };
}

test('the store: one copy per digest, bounded per holder — a flooder evicts only its own oldest — and forgotten at commit or TTL', () => {
  const { store } = fixture();
  const a = txs('a', 5);
  const b1 = store.add(1, a, a.map(txHash), 0);
  assert.equal(store.add(2, a, a.map(txHash), 0), b1, 'the same digest is one batch');
  for (let k = 0; k < 50; k++) { const t = txs(`flood${k}`, 10); store.add(3, t, t.map(txHash), k); }
  assert.equal(store.get(b1.hex), b1, 'holder 3\'s flood did not evict holder 1\'s batch');
  assert.ok(store.bytes <= 2 * 10_000, `held ${store.bytes} bytes over two holders`);
  store.noteBlock('block', [b1.hex]);
  store.committed('block');
  assert.equal(store.get(b1.hex), undefined, 'forgotten once a block naming it committed');
  const c = txs('c', 2);
  const bc = store.add(1, c, c.map(txHash), 1000);
  assert.equal(store.expire(1000 + 299_999), 8, 'holder 3\'s batches, older, are gone');
  assert.equal(store.get(bc.hex), bc);
  assert.equal(store.expire(1000 + 300_000), 1);
  assert.equal(store.get(bc.hex), undefined, 'gone after the TTL');
});

test('serving: batches a proposal named, once to each asker, within a byte budget a second; asking for others is a useless token and gets no answer', () => {
  const { store, fetch, sent, useless, clock } = fixture();
  const a = txs('a', 10);
  const held = store.add(1, a, a.map(txHash), 0);
  fetch.onRequest(2, 6, [ref(1, a).digest]);
  assert.equal(sent.length, 0, 'held, but no proposal seen here named it: not served');
  assert.deepEqual(useless.splice(0), [{ from: 2, reason: 'unknown_batches' }]);
  store.noteBlock('block', [held.hex]);
  fetch.onRequest(2, 7, [ref(1, a).digest, ref(1, txs('unknown', 1)).digest]);
  assert.equal(sent.length, 1);
  const answer = sent[0]!;
  assert.ok(answer.to === 2 && answer.frame.type === 'batch-response' && answer.frame.requestId === 7);
  assert.deepEqual(answer.frame.type === 'batch-response' && answer.frame.batches, [a]);
  fetch.onRequest(2, 8, [ref(1, txs('unknown', 1)).digest]);
  assert.equal(sent.length, 1, 'no answer');
  assert.deepEqual(useless.splice(0), [{ from: 2, reason: 'unknown_batches' }]);
  // Asked again by the one it was served to: a token for each time it is named, and no answer.
  fetch.onRequest(2, 9, [ref(1, a).digest, ref(1, a).digest]);
  assert.equal(sent.length, 1, 'not served twice');
  assert.deepEqual(useless.splice(0).map((u) => u.reason), ['batch_asked_again', 'unknown_batches']);
  // Another asker is served it; the first again once it is forgotten, SERVED_MEMORY_MS on.
  fetch.onRequest(3, 10, [ref(1, a).digest]);
  assert.equal(sent.at(-1)!.to, 3);
  clock.advance(SERVED_MEMORY_MS);
  fetch.onRequest(2, 11, [ref(1, a).digest]);
  assert.equal(sent.length, 3);
  assert.equal(useless.length, 0);
  // 4 blocks' worth (400 KB) a second: 400 batches of 1 KB, then refused until the budget refills.
  const many = Array.from({ length: 450 }, (_, k) => txs(`m${k}`, 10));
  store.noteBlock('many', many.map((t, k) => store.add(5 + (k % 60), t, t.map(txHash), clock.now()).hex));
  for (const [k, t] of many.entries()) fetch.onRequest(4, 100 + k, [ref(5, t).digest]);
  assert.equal(sent.filter((s) => s.to === 4).length, 400);
  assert.equal(useless.filter((u) => u.reason === 'batch_serve_budget').length, 50);
  store.committed('block');
  fetch.onRequest(2, 12, [ref(1, a).digest]);
  assert.equal(useless.at(-2)!.reason, 'batch_asked_again', 'still remembered as served after the commit');
});

test('answers: only to a request made, and a batch whose bytes are not one asked for is a strike for its server', () => {
  const { store, fetch, sent, refused, useless } = fixture();
  const a = txs('a', 3);
  const b = txs('b', 3);
  fetch.onResponse(1, 1, [a]);
  assert.deepEqual(useless, [{ from: 1, reason: 'unsolicited' }]);
  fetch.ask(1, [ref(1, a), ref(2, b)]);
  const req = sent[0]!.frame;
  assert.ok(req.type === 'batch-request' && req.digests.length === 2);
  assert.ok(fetch.expects(1, req.requestId));
  assert.ok(!fetch.expects(2, req.requestId), 'asked of peer 1, not 2');
  fetch.onResponse(1, req.requestId, [a]);
  assert.equal(store.get(toHex(ref(1, a).digest))?.ref.author, 1, 'kept under its author');
  const again = sent.at(-1)!.frame;
  assert.ok(again.type === 'batch-request' && again.digests.length === 1 && fetch.expects(1, again.requestId), 'b is still owed: asked again');
  const forged = [...b.slice(0, 2), new TextEncoder().encode('not b')];
  fetch.onResponse(1, again.requestId, [forged]);
  assert.deepEqual(refused, [{ from: 1, reason: 'batch_mismatch' }]);
  assert.equal(store.get(toHex(ref(2, b).digest)), undefined, 'nothing kept under b\'s digest');
  assert.ok(!fetch.expects(1, again.requestId), 'the request is closed');
});

test('resolving a proposal: at once when held; else waits, asks the proposer and the authors, and resolves on arrival — or gives up at the deadline', async () => {
  const { clock, store, fetch, sent } = fixture(0);
  const a = txs('a', 4);
  const b = txs('b', 2);
  const loose = new TextEncoder().encode('loose');
  store.add(1, a, a.map(txHash), 0);
  const parts: BlockPart[] = [{ batch: ref(1, a) }, { tx: loose }, { batch: ref(2, b) }];
  let out: Resolution | undefined;
  void fetch.resolve(3, parts, () => true).then((r) => { out = r; });
  clock.advance(FETCH_GRACE_MS - 1);
  assert.equal(sent.length, 0, 'nobody asked within the grace: the batch is usually on its way');
  clock.advance(1);
  assert.deepEqual(sent.map((s) => s.to).sort(), [2, 3], 'the proposer (3) and b\'s author (2) are asked');
  store.add(2, b, b.map(txHash), clock.now());
  await Promise.resolve();
  assert.ok(out?.ok, 'resolved when b arrived');
  assert.deepEqual(out.ok && out.txs, [...a, loose, ...b]);
  assert.equal(fetch.counts.waited, 1);

  const c = txs('c', 1);
  let late: Resolution | undefined;
  void fetch.resolve(3, [{ batch: ref(3, c) }], () => true).then((r) => { late = r; });
  clock.advance(FETCH_DEADLINE_MS);
  await Promise.resolve();
  assert.ok(late && !late.ok && 'unavailable' in late && late.unavailable.length === 1, 'given up at the deadline');
  assert.equal(fetch.counts.unavailable, 1);

  // A proposal whose view has passed by the end of the grace is not worth asking for.
  const before = sent.length;
  let stale: Resolution | undefined;
  void fetch.resolve(3, [{ batch: ref(3, txs('d', 1)) }], () => false).then((r) => { stale = r; });
  clock.advance(FETCH_GRACE_MS);
  await Promise.resolve();
  assert.equal(sent.length, before, 'nobody asked');
  assert.ok(stale && !stale.ok && 'unavailable' in stale);
});

test('resolving: at most four proposals wait at once; a batch named with another size is the proposer\'s error at once', async () => {
  const { fetch, store } = fixture();
  const waits = [0, 1, 2, 3].map((k) => fetch.resolve(1, [{ batch: ref(1, txs(`w${k}`, 1)) }], () => true));
  const fifth = await fetch.resolve(1, [{ batch: ref(1, txs('w4', 1)) }], () => true);
  assert.ok(!fifth.ok && 'busy' in fifth);
  void waits;
  const a = txs('a', 2);
  store.add(1, a, a.map(txHash), 0);
  const lie = await fetch.resolve(1, [{ batch: { ...ref(1, a), count: 5 } }], () => true);
  assert.ok(!lie.ok && 'error' in lie);
});

test('resolving: a proposal no longer worth resolving (its view passed, its epoch ended) gives its slot up to a new one at once, not at its deadline', async () => {
  const { fetch, store, clock } = fixture();
  let passed = false;
  const given: Resolution[] = [];
  const stale = [0, 1, 2].map((k) => fetch.resolve(1, [{ batch: ref(1, txs(`s${k}`, 1)) }], () => !passed).then((r) => { given.push(r); return r; }));
  const current = fetch.resolve(1, [{ batch: ref(1, txs('c0', 1)) }], () => true);
  const busy = await fetch.resolve(1, [{ batch: ref(1, txs('c1', 1)) }], () => true);
  assert.ok(!busy.ok && 'busy' in busy, 'four wait, all worth it: a fifth is busy');
  passed = true; // the engine moved past the first three proposals' view
  const next = txs('next', 1);
  let out: Resolution | undefined;
  void fetch.resolve(1, [{ batch: ref(1, next) }], () => true).then((r) => { out = r; });
  await Promise.resolve();
  assert.equal(given.length, 3, 'the stale ones were given up at once, not at their deadline');
  for (const r of given) assert.ok(!r.ok && 'unavailable' in r);
  store.add(1, next, next.map(txHash), clock.now());
  await Promise.resolve();
  assert.ok(out?.ok, 'the new proposal waited in a freed slot and resolved when its batch came');
  // The one still worth it kept its slot: a fifth still finds three free, not four.
  const more = [0, 1, 2].map((k) => fetch.resolve(1, [{ batch: ref(1, txs(`m${k}`, 1)) }], () => true));
  const full = await fetch.resolve(1, [{ batch: ref(1, txs('m3', 1)) }], () => true);
  assert.ok(!full.ok && 'busy' in full, 'the current proposal still holds its slot');
  clock.advance(FETCH_DEADLINE_MS);
  for (const r of await Promise.all([current, ...more, ...stale])) assert.ok(!r.ok && 'unavailable' in r);
});

test('an answer holds what fits a frame; the asker asks again for the rest', () => {
  const server = fixture();
  const asker = fixture(0);
  // A frame of some 3 KB: two batches of 2 KB each do not fit together.
  const big = (tag: string) => txs(tag, 20);
  const a = big('a');
  const b = big('b');
  server.store.noteBlock('block', [server.store.add(1, a, a.map(txHash), 0).hex, server.store.add(1, b, b.map(txHash), 0).hex]);
  const small = new BatchFetch({ store: server.store, chainId: CHAIN, self: () => 3, clock: server.clock, limits: { ...limits, maxFrameBytes: 1024 + 2200 },
    transport: { send: (to, bytes) => { server.sent.push({ to, frame: decodeFrame(bytes, frameLimits) }); } }, refuse: () => {}, useless: () => {} });
  asker.fetch.ask(3, [ref(1, a), ref(1, b)]);
  const first = asker.sent.at(-1)!.frame;
  assert.ok(first.type === 'batch-request');
  small.onRequest(0, first.requestId, first.digests);
  const answer = server.sent.at(-1)!.frame;
  assert.ok(answer.type === 'batch-response' && answer.batches.length === 1, 'one batch fits');
  asker.fetch.onResponse(3, answer.requestId, answer.batches);
  const again = asker.sent.at(-1)!.frame;
  assert.ok(again.type === 'batch-request' && again.requestId !== first.requestId, 'asked again');
  assert.deepEqual(again.type === 'batch-request' && again.digests.map(toHex), [toHex(ref(1, b).digest)], 'for the one still owed');
  small.onRequest(0, again.requestId, again.digests);
  const rest = server.sent.at(-1)!.frame;
  assert.ok(rest.type === 'batch-response');
  asker.fetch.onResponse(3, rest.requestId, rest.batches);
  assert.ok(asker.store.get(toHex(ref(1, a).digest)) && asker.store.get(toHex(ref(1, b).digest)), 'both held');
  assert.ok(!asker.fetch.expects(3, again.requestId), 'nothing owed');
});

test('a set change renumbers holders and authors: a proposal names the author by its new number, and a member moved into a removed one\'s number is not charged its batches', () => {
  const kept: { holder: number; author: number; epoch: number }[] = [];
  const store = new BatchStore({ maxBytesPerHolder: 100_000, maxBatchesPerHolder: 4 });
  store.keepOn({ put: (_hex, b) => { kept.push({ holder: b.holder, author: b.author, epoch: b.epoch }); }, forget: () => {}, renumber: () => {} });
  const add = (holder: number, tag: string, atMs: number, author?: number) => { const t = txs(tag, 2); return store.add(holder, t, t.map(txHash), atMs, author === undefined ? {} : { author }); };
  const own = add(0, 'own', 0);
  const gone = [0, 1, 2, 3].map((k) => add(1, `m1-${k}`, 10 + k));
  const fromM2 = add(2, 'm2', 5);
  const servedByM3 = add(3, 'by-m3', 20, 1);
  // Epoch 1 removes validator 1: 2 and 3 move down one.
  store.renumber((i) => (i === 1 ? undefined : i > 1 ? i - 1 : i), 1, 0);
  assert.deepEqual([own.holder, own.ref.author], [0, 0]);
  assert.deepEqual([fromM2.holder, fromM2.ref.author], [1, 1], 'm2\'s batch is m2\'s under its new number');
  assert.deepEqual([servedByM3.holder, servedByM3.ref.author], [2, 2], 'an author seated no more is named by the holder');
  for (const b of gone) assert.deepEqual([b.holder, b.ref.author], [OUTSIDE_BASE, 0], 'the removed member\'s: charged as an outsider\'s, named by this member');
  // m2, now number 1, fills its own room: the removed member's four are not what it evicts.
  for (let k = 0; k < 3; k++) add(1, `m2-more-${k}`, 30 + k);
  assert.ok(gone.every((b) => store.get(b.hex) === b), 'the removed member\'s batches are still held');
  assert.equal(store.get(fromM2.hex), fromM2);
  // What is kept from now on says whose numbers it is in.
  assert.deepEqual(kept.at(-1), { holder: 1, author: 1, epoch: 1 });
  assert.deepEqual(kept[0], { holder: 0, author: 0, epoch: 0 });
  // Moved, they expire as they arrived: own (0), m2's (5), the removed member's first three (10–12).
  assert.equal(store.expire(12 + 300_000), 5);
  assert.equal(store.get(gone[3]!.hex), gone[3], 'the removed member\'s fourth (13) is younger');
  // A member seated no more proposes nothing: it keeps nothing.
  store.renumber(() => undefined, 2, undefined);
  assert.equal(store.size, 0);
});

/** Epoch 1 removes validator 1 of four: m2 and m3 move down one (BatchStore.renumber carries it to the fetch). */
const removeM1 = (i: number) => (i === 1 ? undefined : i > 1 ? i - 1 : i);

test('a set change: an answer to a request made before it is taken from the member asked, under its new number (a bad one is its strike); the removed member\'s requests are abandoned, and a proposal waiting on them moves on', async () => {
  const { clock, store, fetch, sent, refused, useless } = fixture(0);
  const [a, b, c, d] = [txs('a', 2), txs('b', 2), txs('c', 2), txs('d', 1)];
  const askedOf = (peer: number) => { const f = sent.findLast((s) => s.to === peer)!.frame; assert.ok(f.type === 'batch-request'); return f.requestId; };
  fetch.ask(1, [ref(1, b)]);
  fetch.ask(3, [ref(3, c)]);
  const [toM1, toM3] = [askedOf(1), askedOf(3)];
  // A proposal of m3 naming m2's batch a: m3 and m2 are asked for it.
  let out: Resolution | undefined;
  void fetch.resolve(3, [{ batch: ref(2, a) }], () => true).then((r) => { out = r; });
  clock.advance(FETCH_GRACE_MS);
  const [forA, forM2] = [askedOf(3), askedOf(2)];
  store.renumber(removeM1, 1, 0);
  assert.ok(fetch.expects(2, forA) && fetch.expects(2, toM3) && fetch.expects(1, forM2), 'm3 and m2 are owed their answers under their new numbers');
  assert.ok(!fetch.expects(1, toM1), 'm2, now number 1, was not asked what m1 was');
  // m2 answers as number 1 what m1 was asked: unsolicited, not kept.
  fetch.onResponse(1, toM1, [b]);
  assert.deepEqual(useless.splice(0), [{ from: 1, reason: 'unsolicited' }]);
  assert.equal(store.get(toHex(ref(1, b).digest)), undefined);
  // m3 answers as number 2 what it was asked: solicited, kept as its own, a's author m2 named by its new number.
  fetch.onResponse(2, forA, [a]);
  assert.deepEqual(useless, [], 'no useless token for the answer asked of it');
  await Promise.resolve();
  assert.ok(out?.ok, 'the proposal resolved with the answer');
  const got = store.get(toHex(ref(2, a).digest))!;
  assert.deepEqual([got.holder, got.ref.author], [2, 1]);
  // m3 answers its other request with bytes that are not c: its strike, not an unsolicited answer.
  fetch.onResponse(2, toM3, [[...c.slice(0, 1), new TextEncoder().encode('not c')]]);
  assert.deepEqual(refused, [{ from: 2, reason: 'batch_mismatch' }]);
  // A proposal that asked only a member the next change removes gives up at its deadline, as for a silent peer.
  let late: Resolution | undefined;
  void fetch.resolve(1, [{ batch: ref(1, d) }], () => true).then((r) => { late = r; });
  clock.advance(FETCH_GRACE_MS);
  const toRemoved = askedOf(1);
  store.renumber((i) => (i === 1 ? undefined : i), 2, 0);
  assert.ok(!fetch.expects(1, toRemoved), 'abandoned');
  clock.advance(FETCH_DEADLINE_MS);
  await Promise.resolve();
  assert.ok(late && !late.ok && 'unavailable' in late, 'given up at the deadline');
});

test('a set change: what a member was served and its serving budget follow it; a member renumbered into a removed one\'s number inherits neither', () => {
  const { store, fetch, sent, useless } = fixture(0, 1 << 20);
  const [x, y, z] = [txs('x', 2), txs('y', 2), txs('z', 2)];
  // Five batches of 80 KB: a peer's whole serving budget (four blocks' worth a second, 400 KB).
  const big = [0, 1, 2, 3, 4].map((k) => txs(`big${k}`, 8, 10_000));
  store.noteBlock('block', [x, y, z, ...big].map((t) => store.add(1, t, t.map(txHash), 0).hex));
  const served = (peer: number, batches: Uint8Array[][]) => {
    const before = sent.length;
    for (const t of batches) fetch.onRequest(peer, sent.length + 1000, [ref(1, t).digest]);
    return sent.length - before;
  };
  assert.equal(served(1, [x]), 1, 'm1 is served x');
  assert.equal(served(3, big), 5, 'm3 spends its budget');
  assert.equal(served(2, [y]), 1, 'm2 is served y');
  store.renumber(removeM1, 1, 0);
  // m2, number 1 now: y was served to it already; x, served to m1, is not refused as asked again.
  assert.equal(served(1, [y]), 0);
  assert.deepEqual(useless.splice(0).map((u) => u.reason), ['batch_asked_again', 'unknown_batches']);
  assert.equal(served(1, [x]), 1, 'm2 is served x');
  // m3, number 2 now: its budget is still spent (it is not m2's).
  assert.equal(served(2, [z]), 0);
  assert.deepEqual(useless.map((u) => u.reason), ['batch_serve_budget']);
});
