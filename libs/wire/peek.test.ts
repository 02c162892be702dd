// peekFrame reads the kind and view (or request id) of a frame without decoding it, and always
// what the decoder would read: the last occurrence of a field wins, as in the generated decoder.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { blockHash, sha256 } from '#libs/crypto/index.ts';
import { Phase, genesisBlock, type Block, type QuorumCert } from '#libs/hotstuff/index.ts';
import { decodeFrame, encodeFrame, peekFrame, type Frame, type FrameLimits } from '#libs/wire/index.ts';

const limits: FrameLimits = {
  chainId: 'peek', validatorCount: 4, signatureBytes: 8, maxBlockTxs: 100, maxBlockBytes: 1 << 20,
  maxFrameBytes: 2 << 20, maxSyncBlocks: 4, hashBlock: blockHash,
};
const sig = (n: number) => new Uint8Array(8).fill(n);
const genesis = genesisBlock('peek', blockHash);
const qc = (view: number): QuorumCert => ({ phase: Phase.PREPARE, view, blockHash: genesis.hash, signers: [0, 1, 2], signatures: [sig(0), sig(1), sig(2)] });
const block = (view: number, txs: number, epoch = 0): Block => {
  const header = { chainId: 'peek', epoch, height: 1, view, parentHash: genesis.hash, proposer: 1, timestampMs: 1, txRoot: sha256(new Uint8Array()), stateHash: sha256(new Uint8Array()) };
  return { header, hash: blockHash(header), txs: Array.from({ length: txs }, (_, i) => new Uint8Array(1000).fill(i)) };
};

/** What the decoder says the frame's kind and view are (the reference for the peek). */
function reference(f: Frame): { kind: string; view?: number; epoch?: number; requestId?: number } {
  switch (f.type) {
    case 'consensus': {
      const m = f.message;
      const epoch = m.type === 'proposal' ? m.block.header.epoch : m.epoch;
      return m.type === 'qc' ? { kind: 'qc', view: m.qc.view, epoch } : { kind: m.type, view: m.view, epoch };
    }
    case 'block-response':
    case 'batch-response': return { kind: f.type, requestId: f.requestId };
    case 'reconfig-forward': return { kind: f.type, epoch: f.epoch };
    default: return { kind: f.type };
  }
}

test('the peek agrees with the decoder on every kind of frame', () => {
  const frames: Frame[] = [
    { type: 'consensus', message: { type: 'proposal', view: 41, block: block(41, 50), justify: qc(40), sender: 1, signature: sig(1) } },
    { type: 'consensus', message: { type: 'proposal', view: 41, block: block(41, 2, 2 ** 33), justify: qc(40), sender: 1, signature: sig(1) } },
    { type: 'consensus', message: { type: 'vote', epoch: 0, phase: Phase.COMMIT, view: 2 ** 40, blockHash: genesis.hash, sender: 2, signature: sig(2) } },
    { type: 'consensus', message: { type: 'vote', epoch: 3, phase: Phase.PREPARE, view: 2, blockHash: genesis.hash, sender: 2, signature: sig(2) } },
    { type: 'consensus', message: { type: 'new-view', epoch: 0, view: 7, highQC: qc(5), sender: 3, signature: sig(3) } },
    { type: 'consensus', message: { type: 'new-view', epoch: 7, view: 7, highQC: qc(5), sender: 3, signature: sig(3) } },
    { type: 'consensus', message: { type: 'qc', epoch: 0, qc: qc(12), sender: 0 } },
    { type: 'consensus', message: { type: 'qc', epoch: 1, qc: qc(12), sender: 0 } },
    { type: 'block-request', requestId: 5, hashes: [genesis.hash], fromHeight: 0, maxBlocks: 4 },
    { type: 'block-response', requestId: 77, blocks: [{ block: block(3, 2), qc: qc(3) }] },
    { type: 'tx-batch', txs: [new Uint8Array([1])] },
    { type: 'consensus', message: { type: 'proposal', view: 43, block: block(43, 0, 5), justify: qc(42), sender: 1, signature: sig(1) },
      parts: [{ batch: { digest: genesis.hash, author: 2, count: 3, bytes: 30 } }] },
    { type: 'batch-request', requestId: 6, digests: [genesis.hash] },
    { type: 'batch-response', requestId: 2 ** 40, batches: [[new Uint8Array([1])]] },
    { type: 'reconfig-forward', epoch: 0, tx: new Uint8Array([1, 2]) },
    { type: 'reconfig-forward', epoch: 2 ** 33, tx: new Uint8Array(5000) },
  ];
  for (const f of frames) {
    const bytes = encodeFrame('peek', f);
    const peeked = peekFrame(bytes)!;
    const ref = reference(decodeFrame(bytes, limits));
    assert.equal(peeked.kind, ref.kind);
    if (ref.view !== undefined) assert.equal(peeked.view, ref.view, `${ref.kind} view`);
    if (ref.epoch !== undefined) assert.equal(peeked.epoch, ref.epoch, `${ref.kind} epoch`);
    if (ref.requestId !== undefined) assert.equal(peeked.requestId, ref.requestId);
  }
});

test('repeated fields: two bodies are left to the decoder (which reads the last); a repeated field within the one body, the peek reads the last, as the decoder does', () => {
  const early = encodeFrame('peek', { type: 'consensus', message: { type: 'vote', epoch: 0, phase: Phase.PREPARE, view: 3, blockHash: genesis.hash, sender: 2, signature: sig(2) } });
  const late = encodeFrame('peek', { type: 'consensus', message: { type: 'vote', epoch: 0, phase: Phase.PREPARE, view: 900, blockHash: genesis.hash, sender: 2, signature: sig(2) } });
  // Concatenated protobuf messages merge: chain id twice, the body case twice (last wins).
  const both = new Uint8Array([...early, ...late]);
  const decoded = decodeFrame(both, limits);
  assert.equal(reference(decoded).view, 900);
  // What the decoder makes of an earlier body can change what it reads of the last (a field 0 in
  // it: test/fuzz.test.ts), so a frame with two is not glanced at.
  assert.equal(peekFrame(both), undefined);
  // view (field 2 of Vote) twice inside one body: the last counts for both.
  const body = Uint8Array.from([0x10, 0x03, 0x10, 0x84, 0x07]);
  const frame = Uint8Array.from([0x0a, 0x04, ...new TextEncoder().encode('peek'), 0x1a, body.length, ...body]);
  assert.equal(peekFrame(frame)!.view, 900);
});

test('fuzz: on any bytes the peek never throws, and where the decoder reads a view the peek reads the same', () => {
  const kinds: Frame[] = [
    { type: 'consensus', message: { type: 'proposal', view: 9, block: block(9, 1), justify: qc(8), sender: 1, signature: sig(1) } },
    { type: 'consensus', message: { type: 'new-view', epoch: 0, view: 9, highQC: qc(8), sender: 3, signature: sig(3) } },
    { type: 'consensus', message: { type: 'qc', epoch: 0, qc: qc(9), sender: 0 } },
    { type: 'block-response', requestId: 9, blocks: [] },
  ];
  const seeds = kinds.map((f) => encodeFrame('peek', f));
  fc.assert(fc.property(fc.integer({ min: 0, max: seeds.length - 1 }), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }), fc.nat(), (k, flips, cut) => {
    const bytes = new Uint8Array(seeds[k]!);
    for (const [at, v] of flips) bytes[at % bytes.length] = v;
    const input = bytes.subarray(0, bytes.length - (cut % 4));
    const peeked = peekFrame(input);
    let decoded: Frame | undefined;
    try { decoded = decodeFrame(input, limits); } catch { decoded = undefined; }
    if (decoded && peeked) {
      const ref = reference(decoded);
      if (ref.kind === peeked.kind && ref.view !== undefined) assert.equal(peeked.view, ref.view);
      if (ref.kind === peeked.kind && ref.requestId !== undefined) assert.equal(peeked.requestId, ref.requestId);
    }
  }), { numRuns: 3000, seed: 26 });
});

test('a tx-batch is known by its kind without its transactions walked: a body whose inside does not parse still peeks as one, and the decoder refuses it', () => {
  const good = encodeFrame('peek', { type: 'tx-batch', txs: [new Uint8Array([1, 2, 3]), new Uint8Array(300)] });
  assert.deepEqual(peekFrame(good), { kind: 'tx-batch' });
  // TxBatch (field 8 of the frame) holding a length-delimited field that runs past its end.
  const body = Uint8Array.from([0x0a, 0x7f, 0x01]);
  const frame = Uint8Array.from([0x0a, 0x04, ...new TextEncoder().encode('peek'), 0x42, body.length, ...body]);
  assert.deepEqual(peekFrame(frame), { kind: 'tx-batch' });
  assert.throws(() => decodeFrame(frame, limits));
});
