// The bitmap ↔ index-list conversion and the request codecs of wire.ts.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { isFedError } from '#libs/errors/index.ts';
import { blockHash } from '#libs/crypto/index.ts';
import { Phase, type SignRequest } from '#libs/hotstuff/index.ts';
import { bitmapToSigners, newViewFromWire, proposalFromWire, signRequestToWire, signersToBitmap, voteFromWire } from './wire.ts';

const malformed = (err: unknown) => isFedError(err, 'SIGNER_BAD_REQUEST') && err.details.rule === 'malformed';
const h32 = (b: number) => new Uint8Array(32).fill(b);

describe('signer bitmap', () => {
  test('bit i is validator i, byte i/8, least significant bit first', () => {
    assert.deepEqual(signersToBitmap([0, 2, 9]), new Uint8Array([0b101, 0b10]));
    assert.deepEqual(signersToBitmap([0, 2, 9], 21), new Uint8Array([0b101, 0b10, 0]));
    assert.deepEqual(signersToBitmap([]), new Uint8Array(0));
    assert.deepEqual(bitmapToSigners(new Uint8Array([0x81, 0x01])), [0, 7, 8]);
  });

  test('round-trips any strictly increasing index list', () => {
    fc.assert(fc.property(fc.uniqueArray(fc.integer({ min: 0, max: 99 })), fc.boolean(), (raw, fixed) => {
      const signers = [...raw].sort((a, b) => a - b);
      const bitmap = signersToBitmap(signers, fixed ? 100 : undefined);
      assert.deepEqual(bitmapToSigners(bitmap, 100), signers);
    }));
  });

  test('refuses unsorted or duplicate indices, bits at or above n and over-long bitmaps', () => {
    assert.throws(() => signersToBitmap([2, 1]), malformed);
    assert.throws(() => signersToBitmap([1, 1]), malformed);
    assert.throws(() => signersToBitmap([4], 4), malformed);
    assert.throws(() => bitmapToSigners(new Uint8Array([0b10000]), 4), malformed);
    assert.throws(() => bitmapToSigners(new Uint8Array([1, 0]), 4), malformed);
  });
});

describe('sign request codecs', () => {
  const header = { chainId: 'c', epoch: 0, height: 1, view: 1, parentHash: h32(1), proposer: 0, timestampMs: 5, txRoot: h32(2), stateHash: h32(3) };
  const qc = { phase: Phase.PREPARE, view: 0, blockHash: h32(1), signers: [0, 1, 3], signatures: [h32(7), h32(8), h32(9)] };

  test('every SignRequest kind survives the trip to its gRPC request and back', () => {
    const hash = blockHash(header);
    const requests: SignRequest[] = [
      { kind: 'proposal', epoch: 0, view: 1, block: { header, hash, txs: [new Uint8Array([1, 2])] }, justify: qc },
      { kind: 'vote', epoch: 0, phase: Phase.PREPARE, view: 1, blockHash: hash, header, justify: qc },
      { kind: 'vote', epoch: 0, phase: Phase.PRE_COMMIT, view: 1, blockHash: hash, prepareQC: { ...qc, view: 1 } },
      { kind: 'vote', epoch: 0, phase: Phase.COMMIT, view: 1, blockHash: hash, precommitQC: { ...qc, view: 1, phase: Phase.PRE_COMMIT } },
      { kind: 'new-view', epoch: 0, view: 2, highQC: qc },
    ];
    for (const req of requests) {
      const wire = signRequestToWire(req, 4);
      const back = wire.method === 'signProposal' ? proposalFromWire(wire.request, 4)
        : wire.method === 'signVote' ? voteFromWire(wire.request, 4) : newViewFromWire(wire.request, 4);
      assert.deepEqual(back, req);
    }
  });

  test('the block hash is computed from the header, never taken from the sender', () => {
    const wire = signRequestToWire({ kind: 'proposal', epoch: 0, view: 1, block: { header, hash: h32(9), txs: [] }, justify: qc });
    assert.equal(wire.method, 'signProposal');
    const back = proposalFromWire(wire.request as never);
    assert.ok(back.kind === 'proposal');
    assert.deepEqual(back.block.hash, blockHash(header));
  });

  test('a vote carrying evidence of another phase, or missing its own, is malformed', () => {
    const base = { epoch: 0, view: 1, blockHash: h32(4), header: undefined, justify: undefined, prepareQc: undefined, precommitQc: undefined };
    const wireQc = signRequestToWire({ kind: 'new-view', epoch: 0, view: 1, highQC: qc }).request as unknown as { highQc: never };
    assert.throws(() => voteFromWire({ ...base, phase: 2, precommitQc: wireQc.highQc }), malformed);
    assert.throws(() => voteFromWire({ ...base, phase: 3 }), malformed);
    assert.throws(() => voteFromWire({ ...base, phase: 0 }), malformed);
    assert.throws(() => voteFromWire({ ...base, phase: 2, blockHash: h32(1).subarray(1), prepareQc: wireQc.highQc }), malformed);
  });
});
