import { test } from 'node:test';
import assert from 'node:assert/strict';
import { blockHash, sha256 } from '#libs/crypto/index.ts';
import { isFedError } from '#libs/errors/index.ts';
import type { BlockPart } from '#libs/blocks/index.ts';
import { Phase, genesisBlock, type Block, type QuorumCert } from '#libs/hotstuff/index.ts';
import { ConsensusFrame } from '#libs/gen/btcfed/v1/wire.pb.ts';
import { MAX_EPOCH_SUFFIX, bitmapToSigners, decodeFrame, encodeFrame, signersToBitmap, type Frame, type FrameLimits } from '#libs/wire/index.ts';

const limits: FrameLimits = {
  chainId: 'wire-test', validatorCount: 10, signatureBytes: 8, maxBlockTxs: 3, maxBlockBytes: 100,
  maxFrameBytes: 4096, maxSyncBlocks: 4, hashBlock: blockHash,
};
const h = (s: string) => sha256(new TextEncoder().encode(s));
const sig = (n: number) => new Uint8Array(8).fill(n);
const genesis = genesisBlock('wire-test', blockHash);
const header = { chainId: 'wire-test', epoch: 0, height: 1, view: 4, parentHash: genesis.hash, proposer: 4, timestampMs: 1700, txRoot: h('r'), stateHash: h('s') };
const block: Block = { header, hash: blockHash(header), txs: [new Uint8Array([1, 2]), new Uint8Array([3])] };
const qc: QuorumCert = { phase: Phase.PREPARE, view: 3, blockHash: genesis.hash, signers: [0, 2, 9], signatures: [sig(0), sig(2), sig(9)] };

const frames: Frame[] = [
  { type: 'consensus', message: { type: 'proposal', view: 4, block, justify: qc, sender: 4, signature: sig(4) } },
  { type: 'consensus', message: { type: 'vote', epoch: 0, phase: Phase.PRE_COMMIT, view: 4, blockHash: block.hash, sender: 1, signature: sig(1) } },
  { type: 'consensus', message: { type: 'new-view', epoch: 0, view: 5, highQC: qc, sender: 7, signature: sig(7) } },
  { type: 'consensus', message: { type: 'qc', epoch: 0, qc: { ...qc, phase: Phase.COMMIT }, sender: 3 } },
  { type: 'block-request', requestId: 9, hashes: [block.hash], fromHeight: 0, maxBlocks: 4 },
  { type: 'block-response', requestId: 9, blocks: [{ block, qc }, { block: genesis, qc: undefined }] },
  { type: 'block-response', requestId: 10, blocks: [{ block, qc: undefined }], epochEnd: { suffix: [header], qc: { ...qc, phase: Phase.COMMIT } } },
  { type: 'tx-batch', txs: [new Uint8Array([7])] },
  { type: 'consensus', message: { type: 'proposal', view: 4, block: { ...block, txs: [] }, justify: qc, sender: 4, signature: sig(4) },
    parts: [{ tx: new Uint8Array([5]) }, { batch: { digest: h('b'), author: 2, count: 2, bytes: 40 } }] },
  { type: 'batch-request', requestId: 11, digests: [h('b'), h('c')] },
  { type: 'batch-response', requestId: 11, batches: [[new Uint8Array([1]), new Uint8Array([2, 3])], []] },
  { type: 'reconfig-forward', epoch: 3, tx: new Uint8Array([9, 8, 7]) },
];

test('every frame kind survives encode → decode unchanged', () => {
  for (const f of frames) assert.deepEqual(decodeFrame(encodeFrame('wire-test', f), limits), f);
});

test('bitmaps: indices ↔ bits, least significant first', () => {
  assert.deepEqual([...signersToBitmap([0, 2, 9])], [0b101, 0b10]);
  assert.deepEqual(bitmapToSigners('x', new Uint8Array([0b101, 0b10]), 10), [0, 2, 9]);
  assert.deepEqual([...signersToBitmap([])], []);
  assert.throws(() => bitmapToSigners('x', new Uint8Array([0, 0b100]), 10), /bit 10 names no validator/);
  assert.throws(() => bitmapToSigners('x', new Uint8Array(3), 10), /too long/);
});

function rejects(bytes: Uint8Array, field: RegExp, l: FrameLimits = limits): void {
  assert.throws(() => decodeFrame(bytes, l), (e) => isFedError(e, 'WIRE_INVALID') && field.test(e.message), `expected ${field}`);
}

test('bad frames are refused naming the field', () => {
  const vote = (v: object) => ConsensusFrame.encode({ chainId: 'wire-test', body: { $case: 'vote', value: { epoch: 0, phase: 1, view: 1, blockHash: block.hash, sender: 1, signature: sig(1), ...v } } }).finish();
  rejects(new Uint8Array(5000), /^frame: .*exceed/);
  rejects(new Uint8Array([0xff, 0xff, 0xff]), /^frame: not a ConsensusFrame/);
  rejects(encodeFrame('other-chain', frames[1]!), /^chain_id/);
  rejects(ConsensusFrame.encode({ chainId: 'wire-test', body: undefined }).finish(), /^body: missing/);
  rejects(vote({ phase: 4 }), /^vote\.phase: unknown phase 4/);
  rejects(vote({ blockHash: new Uint8Array(31) }), /^vote\.block_hash: must be 32 bytes/);
  rejects(vote({ sender: 10 }), /^vote\.sender: validator 10/);
  rejects(vote({ signature: sig(1).subarray(1) }), /^vote\.signature: must be 8 bytes/);
  const qcFrame = (q: object) => ConsensusFrame.encode({ chainId: 'wire-test', body: { $case: 'qcAnnounce', value: { qc: { phase: 1, view: 2, blockHash: block.hash, signers: new Uint8Array([3]), signatures: [sig(0), sig(1)], ...q }, sender: 0, epoch: 0 } } }).finish();
  assert.doesNotThrow(() => decodeFrame(qcFrame({}), limits));
  rejects(qcFrame({ signatures: [sig(0)] }), /^qc_announce\.qc\.signatures: 1 signatures for 2 signers/);
  rejects(ConsensusFrame.encode({ chainId: 'wire-test', body: { $case: 'qcAnnounce', value: { qc: undefined, sender: 0, epoch: 0 } } }).finish(), /^qc_announce\.qc: missing/);
  const big: Block = { ...block, txs: [new Uint8Array(60), new Uint8Array(60)] };
  rejects(encodeFrame('wire-test', { type: 'consensus', message: { type: 'proposal', view: 4, block: big, justify: qc, sender: 4, signature: sig(4) } }), /^proposal\.block\.txs: 120 bytes exceed/);
  const many: Block = { ...block, txs: [1, 2, 3, 4].map((i) => new Uint8Array([i])) };
  rejects(encodeFrame('wire-test', { type: 'consensus', message: { type: 'proposal', view: 4, block: many, justify: qc, sender: 4, signature: sig(4) } }), /^proposal\.block\.txs: 4 transactions/);
  rejects(encodeFrame('wire-test', { type: 'block-request', requestId: 1, hashes: [1, 2, 3, 4, 5].map((i) => h(String(i))), fromHeight: 0, maxBlocks: 1 }), /^block_request\.hashes: more than 4/);
  // A proposal's parts: never beside the block's own transactions, within the block's limits as they claim, each reference sound.
  const proposal = (parts: BlockPart[]) =>
    encodeFrame('wire-test', { type: 'consensus', message: { type: 'proposal', view: 4, block: { ...block, txs: [] }, justify: qc, sender: 4, signature: sig(4) }, parts });
  const ref = (o: object = {}) => ({ batch: { digest: h('b'), author: 2, count: 1, bytes: 10, ...o } });
  const beside = ConsensusFrame.decode(proposal([ref()]));
  if (beside.body?.$case === 'proposal') beside.body.value.block!.txs = [new Uint8Array([1])];
  rejects(ConsensusFrame.encode(beside).finish(), /^proposal\.parts: set beside the block's own transactions/);
  rejects(proposal([ref({ count: 3 }), ref()]), /^proposal\.parts: 4 transactions exceed the limit of 3/);
  rejects(proposal([ref({ bytes: 95 }), { tx: new Uint8Array(6) }]), /^proposal\.parts: 101 bytes exceed the limit of 100/);
  rejects(proposal([ref({ count: 0 })]), /^proposal\.parts\[0\]\.batch\.count: a batch holds at least one/);
  rejects(proposal([ref({ digest: new Uint8Array(31) })]), /^proposal\.parts\[0\]\.batch\.digest: must be 32 bytes/);
  rejects(proposal([ref({ author: 10 })]), /^proposal\.parts\[0\]\.batch\.author: validator 10/);
  rejects(proposal([ref(), ref(), ref(), ref()]), /^proposal\.parts: more than 3/);
  rejects(encodeFrame('wire-test', { type: 'batch-request', requestId: 1, digests: [1, 2, 3, 4].map((i) => h(String(i))) }), /^batch_request\.digests: more than 3/);
  rejects(encodeFrame('wire-test', { type: 'batch-request', requestId: 1, digests: [new Uint8Array(5)] }), /^batch_request\.digests\[0\]: must be 32 bytes/);
  rejects(encodeFrame('wire-test', { type: 'batch-response', requestId: 1, batches: [[], [], [], []] }), /^batch_response\.batches: more than 3/);
  rejects(encodeFrame('wire-test', { type: 'reconfig-forward', epoch: 2, tx: new Uint8Array(0) }), /^reconfig_forward\.tx: empty/);
});

test('a block hash is recomputed from the header, never trusted', () => {
  const f = decodeFrame(encodeFrame('wire-test', frames[0]!), { ...limits, hashBlock: () => h('other') });
  assert.ok(f.type === 'consensus' && f.message.type === 'proposal');
  assert.deepEqual(f.message.block.hash, h('other'));
});

test('a message and the sign request that produced it cover the same bytes; fields matter', async () => {
  const { signingBytesOf, signingBytesOfRequest } = await import('#libs/wire/index.ts');
  const pairs = [
    [{ type: 'proposal', view: 4, block, justify: qc, sender: 4, signature: sig(4) }, { kind: 'proposal', epoch: 0, view: 4, block, justify: qc }],
    [{ type: 'vote', epoch: 0, phase: Phase.PRE_COMMIT, view: 4, blockHash: block.hash, sender: 1, signature: sig(1) }, { kind: 'vote', epoch: 0, phase: Phase.PRE_COMMIT, view: 4, blockHash: block.hash, prepareQC: qc }],
    [{ type: 'new-view', epoch: 0, view: 5, highQC: qc, sender: 7, signature: sig(7) }, { kind: 'new-view', epoch: 0, view: 5, highQC: qc }],
  ] as const;
  const all = new Set<string>();
  for (const [m, r] of pairs) {
    const a = signingBytesOf('wire-test', m as never);
    assert.deepEqual(a, signingBytesOfRequest('wire-test', r as never));
    all.add(Buffer.from(a).toString('hex'));
    assert.notDeepEqual(signingBytesOf('other', m as never), a, 'chain id is covered');
    assert.notDeepEqual(signingBytesOf('wire-test', { ...m, view: m.view + 1 } as never), a, 'view is covered');
  }
  assert.equal(all.size, 3);
});

test('a block response saying where the server\'s kept blocks start: round trip; never beside blocks', () => {
  const said = decodeFrame(encodeFrame('wire-test', { type: 'block-response', requestId: 3, blocks: [], oldestHeight: 1001 }), limits);
  assert.equal(said.type === 'block-response' && said.oldestHeight, 1001);
  const none = decodeFrame(encodeFrame('wire-test', { type: 'block-response', requestId: 3, blocks: [] }), limits);
  assert.equal(none.type === 'block-response' && none.oldestHeight, undefined);
  rejects(encodeFrame('wire-test', { type: 'block-response', requestId: 3, blocks: [{ block, qc: undefined }], oldestHeight: 5 }),
    /^block_response\.oldest_height: set beside blocks/);
});

test('an epoch end in a block response: bounded, and never without the block it ends with', () => {
  const end = (suffix: number, blocks: Block[]) => ConsensusFrame.encode({ chainId: 'wire-test', body: { $case: 'blockResponse', value: {
    requestId: 1, blocks: blocks.map((b) => ({ block: { header: { ...b.header }, txs: b.txs } as never, qc: undefined })),
    epochEnd: { suffix: Array.from({ length: suffix }, () => ({ ...header })) as never, qc: { phase: Phase.COMMIT, view: 4, blockHash: block.hash, signers: new Uint8Array([1]), signatures: [sig(0)] } },
    oldestHeight: 0,
  } } }).finish();
  const ok = decodeFrame(encodeFrame('wire-test', frames[6]!), limits);
  assert.equal(ok.type === 'block-response' && ok.epochEnd?.suffix.length, 1);
  rejects(end(MAX_EPOCH_SUFFIX + 1, [block]), /^block_response\.epoch_end\.suffix: more than 8 headers/);
  rejects(end(0, []), /^block_response\.epoch_end: an epoch end without the block it ends with/);
});
